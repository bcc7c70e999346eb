"""Whether a prepared store can feed a preset, said before any training.

`check_cohort` refuses (`CohortTooSmall`) a store whose train split is smaller than a
training batch or too small for an OLS probe of the preset's ECG embedding; `demo_probe`
picks ridge instead of OLS where the demo's cohort is too small for OLS to mean anything.
"""

from __future__ import annotations

from pathlib import Path

from ptacl.benchmark.presets import Preset
from ptacl.errors import PtaclError


class CohortTooSmall(PtaclError, ValueError):
    """A store with too few subjects for a preset's batch sizes or probe (said before training)."""


def cohort_problems(preset: Preset, counts: dict[str, int], *, export: bool = True) -> list[str]:
    """Why `preset` cannot run on a store with these subject counts, in words (empty: it can).

    counts: "train_ecg", "train_cmr", "train_paired" (training items per stage; training
    batches are full, `drop_last`, so a split smaller than the batch size gives no step at all),
    "train_probe" (train subjects with an ECG and every phenotype: the OLS probe of `ptacl
    evaluate` and `ptacl export` needs more of them than the ECG encoder has dimensions + 1:
    evaluate warns, export refuses; checked when `export`) and "test_paired" (retrieval
    queries). Validation needs nothing: it runs by steps over whatever the val split holds."""
    from ptacl.config import load_yaml

    def section(kind: str, key: str) -> dict:
        return load_yaml(preset.configs[kind]).get(key) or {}

    items = {"ecg_mae": "train_ecg", "cmr_mae": "train_cmr", "ptacl": "train_paired"}
    problems = []
    for kind, count in items.items():
        batch = int(section(kind, "data").get("batch_size", 64))
        if counts[count] < batch:
            problems.append(
                f"{kind}: {counts[count]} training subjects ({count}) for data.batch_size {batch}"
            )
    width = int(section("ecg_mae", "encoder").get("width", 0))
    if export and width and counts["train_probe"] <= width + 1:
        problems.append(
            f"linear probe: {counts['train_probe']} train subjects with every phenotype for a "
            f"{width}-wide ECG embedding + 1 intercept (OLS needs more; export refuses)"
        )
    if counts["test_paired"] < 2:
        problems.append(f"retrieval: {counts['test_paired']} paired test subject(s)")
    return problems


def demo_probe(preset: Preset, counts: dict[str, int]) -> tuple[str, str | None]:
    """("ols", None), or ("ridge", why) when the cohort is too small for an OLS probe of the
    preset's ECG embedding to mean anything (`ptacl.eval.probe.OLS_INFLATION_LIMIT`)."""
    from ptacl.config import load_yaml
    from ptacl.eval.probe import OLS_INFLATION_LIMIT, ols_inflation

    width = int((load_yaml(preset.configs["ecg_mae"]).get("encoder") or {}).get("width", 0))
    inflation = ols_inflation(counts["train_probe"], width)
    if not width or inflation <= OLS_INFLATION_LIMIT:
        return "ols", None
    return "ridge", (
        f"linear probe: ridge, not OLS: {counts['train_probe']} train subjects for a {width}-wide "
        f"ECG embedding would inflate OLS's test error {1 + inflation:.1f}-fold (OLS "
        f"needs {3 * width + 2} or more); the bundle gets the same ridge probe (`ptacl export --probe`)"
    )


def store_counts(store: Path) -> dict[str, int]:
    """The subject counts `cohort_problems` reads, from a prepared store."""
    import numpy as np

    from ptacl.data.store import Store

    opened = Store.open(store)
    train = opened.indices("train", ecg=True)
    known = np.isfinite(np.asarray(opened.phenotypes[train], dtype=np.float64)).all(axis=1)
    return {
        "train_ecg": len(train),
        "train_cmr": len(opened.indices("train", cmr=True)),
        "train_paired": len(opened.indices("train", ecg=True, cmr=True)),
        "train_probe": int(known.sum()),
        "test_paired": len(opened.indices("test", ecg=True, cmr=True)),
    }


def check_cohort(
    preset: Preset, store: Path, subjects: int | None = None, *, export: bool = True
) -> None:
    """Raise CohortTooSmall, before any training, when `preset` cannot run on `store`. A folder
    that is no store passes: the first step that opens it says so, with its log."""
    from ptacl.data.store import StoreError

    try:
        counts = store_counts(store)
    except StoreError:
        return
    problems = cohort_problems(preset, counts, export=export)
    if problems:
        more = f" ({subjects} subjects asked for: generate more)" if subjects else ""
        raise CohortTooSmall(
            f"{store}: too few subjects for preset {preset.name}{more}: " + "; ".join(problems)
        )
