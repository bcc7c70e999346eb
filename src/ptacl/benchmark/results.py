"""Read the benchmark's finished evaluations back: per-seed metrics and paired comparisons.

`collect_results` reads every evaluation's metrics.json (missing ones are skipped, never
invented); `paired_comparisons` compares two arms on the same test subjects within each seed
(`ptacl.eval.comparisons`). `ptacl.benchmark.tables` writes both out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from ptacl.benchmark.methods import Method
from ptacl.phenotypes import split_name


def short_name(name: str) -> str:
    """'LVEDV (mL)' -> 'LVEDV': the phenotype's name without its unit."""
    return split_name(name)[0]


def _r2_of(section: dict) -> tuple[dict[str, float], dict[str, list[float] | None]]:
    """({phenotype short name: R²}, {phenotype short name: bootstrap CI or None}) from a
    metrics.json regression section."""
    r2s, cis = {}, {}
    for name, value in section.items():
        r2 = value.get("R2") if isinstance(value, dict) else value
        r2s[short_name(name)] = math.nan if r2 is None else float(r2)
        cis[short_name(name)] = value.get("ci") if isinstance(value, dict) else None
    return r2s, cis


def collect_results(out: Path, seeds: Sequence[int], methods: Sequence[Method]) -> dict:
    """Read every finished evaluation back: {"regression": {(input, label, eval): [per-seed
    {phenotype: R²}]}, "regression_ci": the same keys with per-seed {phenotype: [lo, hi]}
    bootstrap CIs, "retrieval": {label: [per-seed {phenotype: {metric: value}}]},
    "retrieval_ci": {label: [per-seed {phenotype: {metric: [lo, hi]}}]}, "random_retrieval":
    [...], "warnings": {(input, label, eval): [evaluate's warnings]}, "bootstrap": the distinct
    bootstrap settings of the evaluations read}. Table 2 ("regression") reads
    regression-setting runs only and Table 1 ("retrieval" and the random ranking)
    retrieval-setting runs only, as in the paper. Missing results are skipped, never
    invented."""
    regression: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    regression_ci: dict[tuple[str, str, str], list[dict[str, list[float] | None]]] = {}
    warnings: dict[tuple[str, str, str], list[str]] = {}
    retrieval: dict[str, list[dict]] = {}
    retrieval_ci: dict[str, list[dict]] = {}
    random_retrieval: list[dict] = []
    exclude_self: set[bool] = set()  # the retrieval protocol of the Table 1 runs
    collapse: dict[str, list[dict]] = {}  # label -> per-seed top-1 hub share, distinct top-1s
    bootstrap: list[dict] = []  # n_boot, level of the evaluations read (one entry if all agree)

    def add_regression(key: tuple[str, str, str], section: dict) -> None:
        r2s, cis = _r2_of(section)
        regression.setdefault(key, []).append(r2s)
        regression_ci.setdefault(key, []).append(cis)

    for seed in seeds:
        base = out / f"seed{seed}"
        seed_random = None  # the random ranking depends on the test set only: once per seed
        for m in methods:
            if not m.evaluate:
                path = base / "runs" / m.key / "test_metrics.json"
                if path.is_file():
                    data = json.loads(path.read_text(encoding="utf-8"))
                    add_regression((m.input, m.label, "FN"), data["r2"])
                continue
            path = base / "eval" / m.key / "metrics.json"
            if not path.is_file():
                continue
            metrics = json.loads(path.read_text(encoding="utf-8"))
            boot = {k: metrics.get("bootstrap", {}).get(k) for k in ("n_boot", "level")}
            if metrics.get("bootstrap") and boot not in bootstrap:
                bootstrap.append(boot)
            if m.setting == "retrieval":
                if "retrieval" in metrics:
                    section = metrics["retrieval"]
                    rows = {short_name(k): v for k, v in section["model"].items()}
                    retrieval.setdefault(m.label, []).append(rows)
                    cis = {short_name(k): v for k, v in section.get("model_ci", {}).items()}
                    retrieval_ci.setdefault(m.label, []).append(cis)
                    exclude_self.add(bool(section.get("exclude_self", True)))
                    if "collapse" in section:
                        collapse.setdefault(m.label, []).append(section["collapse"])
                    if seed_random is None:
                        seed_random = {short_name(k): v for k, v in section["random"].items()}
                        random_retrieval.append(seed_random)
                continue
            for label, section in metrics.get("regression", {}).items():
                kind = "FN+AP" if label == "FN+AP" else "LP"
                add_regression((m.input, m.label, kind), section)
                found = [w for w in metrics.get("warnings", []) if w.startswith(f"{label}:")]
                if found:
                    warnings.setdefault((m.input, m.label, kind), []).extend(
                        f"seed {seed}: {w}" for w in found
                    )
    return {
        "regression": regression,
        "regression_ci": regression_ci,
        "retrieval": retrieval,
        "retrieval_ci": retrieval_ci,
        "random_retrieval": random_retrieval,
        "warnings": warnings,
        "retrieval_exclude_self": sorted(exclude_self),
        "retrieval_collapse": collapse,
        "bootstrap": bootstrap,
    }


#: The paper's comparisons, A − B on the same test subjects, paired within each seed
#: (`ptacl.eval.comparisons`): (label, metric, A, B); an arm is a method key, or
#: "<key>/finetune" for the FN+AP predictions its evaluation fine-tuned.
PAIRED_COMPARISONS = (
    ("PTACL − Global only", "R²", "ptacl", "global"),
    ("Global only − ECG MAE", "R²", "global", "ecg_mae"),
    ("ECG MAE − ECG SimCLR", "R²", "ecg_mae", "simclr_ecg"),
    ("ECG MAE − random init", "R²", "ecg_mae", "random"),
    ("CMR MAE − ECG MAE", "R²", "cmr_mae", "ecg_mae"),
    ("PTACL FN+AP − PTACL LP", "R²", "ptacl/finetune", "ptacl"),
    ("PTACL − Global only (retrieval setting)", "P@1", "ptacl_retrieval", "global_retrieval"),
)


def _arm_file(out: Path, seed: int, arm: str, metric: str) -> Path:
    from ptacl.eval.comparisons import LP_PREDICTIONS, RETRIEVAL_PER_QUERY

    key, _, sub = arm.partition("/")
    folder = out / f"seed{seed}" / "eval" / key
    if sub:
        return folder / sub / "test_predictions.npz"
    return folder / (RETRIEVAL_PER_QUERY if metric == "P@1" else LP_PREDICTIONS)


def paired_comparisons(out: Path, seeds: Sequence[int], n_boot: int = 2000) -> list[dict]:
    """Every comparison of `PAIRED_COMPARISONS` whose two arms were evaluated in at least one
    seed: one row per phenotype with the difference, its CI, p, MDE and per-seed values."""
    from ptacl.eval.comparisons import compare_r2, compare_retrieval

    rows = []
    for label, metric, a, b in PAIRED_COMPARISONS:
        used = [
            s
            for s in seeds
            if _arm_file(out, s, a, metric).is_file() and _arm_file(out, s, b, metric).is_file()
        ]
        if not used:
            continue
        compare = compare_retrieval if metric == "P@1" else compare_r2
        found = compare(
            [_arm_file(out, s, a, metric) for s in used],
            [_arm_file(out, s, b, metric) for s in used],
            n_boot=n_boot,
        )
        for phenotype, d in found.items():
            rows.append(
                {
                    "comparison": label,
                    "metric": metric,
                    "phenotype": phenotype,
                    "estimate": d.estimate,
                    "ci": list(d.ci),
                    "p": d.p_value,
                    "mde": d.mde,
                    "seed_sd": math.sqrt(d.var_seeds),
                    "seeds": used,
                    "subjects": d.subjects,
                    "per_seed": list(d.per_seed),
                }
            )
    return rows
