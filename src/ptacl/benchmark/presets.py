"""The benchmark's presets: which configs, how many subjects, which evaluation settings.

Presets differ only in sizes and steps, never in the method:

- tiny:  a few subjects and 2-step runs of tiny models (seconds; the end-to-end test);
- small: a 1,000-subject synthetic cohort, width-64 models, 80 steps a run (all methods × 3
  seeds in 44 min on 2 CPU cores, RESULTS.md, before the two retrieval-setting runs per seed
  were added). Too short for any model to leave its trivial solution: it shows the pipeline;
- demo:  `make demo`: width-64 models with budgets at which each leaves its trivial solution
  (ECG MAE 2,000 steps, CMR MAE 300, stage 2 250 with the best checkpoint; ptacl/configs/demo say why),
  sized for `--methods random global ptacl --no-finetune` in the demo's 30 minutes;
- medium: the demo's configs for every method, FN+AP included, over 3 seeds (the longer
  benchmark of RESULTS.md), with 1,000 bootstrap replicates for the CIs;
- resolve: the demo's configs over one shared stage 1, a 5,000-subject cohort with 3,000 test
  subjects, for many stage-2 seeds: `--methods global ptacl --no-finetune --seeds 10` is the
  protocol that resolves PTACL − Global (issue 23; the paired table says with what MDE);
- paper: the paper's model sizes and schedules (ptacl/configs/*.yaml; a GPU and a real cohort).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ptacl import configs as _configs

# Package data (ptacl/configs), found through importlib.resources so that an installed wheel
# runs the presets as a checkout does.
CONFIGS = _configs.root()


@dataclass(frozen=True)
class Preset:
    name: str
    subjects: int  # synthetic cohort size when no store is given
    configs: dict[str, Path]  # config kind -> YAML
    eval_args: tuple[str, ...] = ()  # extra `ptacl evaluate` arguments (bootstrap size, ...)
    overrides: dict[str, tuple[str, ...]] = field(default_factory=dict)  # kind -> key=value
    test_fraction: float | None = None  # of the synthetic cohort (prepare's default if None)
    # One stage 1 (the MAEs of the first seed) under every seed's stage 2: see `build_steps`.
    shared_stage1: bool = False


def _preset(name: str, folder: Path, subjects: int, eval_args: tuple[str, ...]) -> Preset:
    kinds = ("ecg_mae", "cmr_mae", "simclr_ecg", "simclr_cmr", "ptacl", "finetune")
    return Preset(name, subjects, {k: folder / f"{k}.yaml" for k in kinds}, eval_args)


PRESETS: dict[str, Preset] = {
    "tiny": _preset("tiny", CONFIGS / "tiny", 48, ("--n-boot", "20", "--batch-size", "8")),
    "small": _preset("small", CONFIGS / "small", 1000, ("--n-boot", "200")),
    "demo": _preset("demo", CONFIGS / "demo", 1500, ("--n-boot", "200")),
    "medium": _preset("medium", CONFIGS / "demo", 1500, ("--n-boot", "1000")),
    # PTACL − Global to ±0.01 (issue 23): the demo's configs, 3,000 test subjects of 5,000, and
    # one shared stage 1, so that seeds vary stage 2 only; run it with --methods global ptacl.
    "resolve": dataclasses.replace(
        _preset("resolve", CONFIGS / "demo", 5000, ("--n-boot", "200")),
        test_fraction=0.6,
        shared_stage1=True,
    ),
    "paper": Preset(
        "paper",
        1500,
        {
            "ecg_mae": CONFIGS / "ecg_mae.yaml",
            "cmr_mae": CONFIGS / "cmr_mae.yaml",
            "simclr_ecg": CONFIGS / "simclr_ecg.yaml",
            "simclr_cmr": CONFIGS / "simclr_cmr.yaml",
            "ptacl": CONFIGS / "ptacl_regression.yaml",
            "finetune": CONFIGS / "finetune.yaml",
        },
    ),
}
