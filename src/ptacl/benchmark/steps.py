"""The benchmark's steps: one `ptacl` command line each, laid out for several seeds.

`cohort_steps` generates and prepares a synthetic cohort; `build_steps` trains and evaluates
every chosen method for each seed over that store. `run_steps` (`ptacl.benchmark.pipeline`) runs them
and reuses finished ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ptacl.benchmark.methods import METHODS, STAGE1, Method
from ptacl.benchmark.pipeline import Step
from ptacl.benchmark.presets import Preset


def build_steps(
    preset: Preset,
    store: Path,
    out: Path,
    seeds: Sequence[int],
    methods: Sequence[Method] = METHODS,
    *,
    finetune: bool = True,
    include_self: bool = False,
    probe: str = "ols",
    accelerator: str | None = None,
) -> list[Step]:
    """Training and evaluation steps of `methods` for each seed, in an order that respects
    `needs` (METHODS is listed in such an order). `finetune=False` skips FN+AP (the demo);
    `include_self` keeps each query's own CMR among the retrieval candidates (`ptacl evaluate
    --include-self`); `probe` the linear probe of every evaluation (`ptacl evaluate --probe`);
    `accelerator` (cpu, gpu) overrides the presets' `trainer.accelerator` in every training step
    and fine-tune, and with gpu evaluates on cuda (the tiny preset pins the CPU otherwise).

    With `preset.shared_stage1` the MAEs are trained (and evaluated) for the first seed only and
    every seed's stage 2 starts from them: a paired comparison of two stage-2 recipes then
    varies what it compares and nothing else, conditional on that one stage 1 (whose seed
    variation would move both arms alike), at a fraction of the cost."""
    steps: list[Step] = []
    stage1_runs = out / f"seed{seeds[0]}" / "runs"
    for seed in seeds:
        runs, evals = out / f"seed{seed}" / "runs", out / f"seed{seed}" / "eval"
        for m in methods:
            run = runs / m.key
            if preset.shared_stage1 and seed != seeds[0] and m.key in STAGE1:
                continue
            if m.train is not None:
                argv = [*m.train, "--data", str(store), "--out", str(run)]
                argv += ["--config", str(preset.configs[m.config])]
                if "ecg_mae" in m.needs and m.train[0] == "align":
                    init = stage1_runs if preset.shared_stage1 else runs
                    argv += [
                        "--ecg-init",
                        str(init / "ecg_mae"),
                        "--cmr-init",
                        str(init / "cmr_mae"),
                    ]
                argv += [*preset.overrides.get(m.config, ()), *m.overrides, f"trainer.seed={seed}"]
                argv += [f"trainer.accelerator={accelerator}"] if accelerator else []
                steps.append(Step(f"seed{seed}/train/{m.key}", tuple(argv), run))
            if not m.evaluate:
                continue
            argv = [
                "evaluate",
                "--data",
                str(store),
                "--out",
                str(evals / m.key),
                "--seed",
                str(seed),
            ]
            if m.train is None:  # random init with the architecture of the run it needs
                like = (stage1_runs if preset.shared_stage1 else runs) / m.needs[0]
                argv += ["--model", "none", "--like", str(like)]
            else:
                argv += ["--model", str(run)]
            if m.finetune and finetune:
                argv += ["--finetune", "--finetune-config", str(preset.configs["finetune"])]
                argv += ["--finetune-set", f"trainer.seed={seed}"]
                if accelerator:
                    argv += ["--finetune-set", f"trainer.accelerator={accelerator}"]
            if include_self:
                argv += ["--include-self"]
            if probe != "ols":
                argv += ["--probe", probe]
            if accelerator == "gpu":
                argv += ["--device", "cuda"]
            argv += ["--no-progress", *preset.eval_args]
            steps.append(Step(f"seed{seed}/eval/{m.key}", tuple(argv), evals / m.key))
    return steps


def cohort_steps(
    out: Path, subjects: int, workers: int, seed: int = 0, test: float | None = None
) -> tuple[list[Step], Path]:
    """Steps generating and preparing a synthetic cohort in `out` (`test`: the test fraction,
    prepare's default if None); returns (steps, store)."""
    cohort, store = out / "cohort", out / "store"
    synth = ["synth", "--out", str(cohort), "--subjects", str(subjects), "--seed", str(seed)]
    # no --quiet: their progress bars go to the step's log, whose last line the pipeline shows
    synth += ["--workers", str(workers), "--preview"]
    prepare = ["prepare", "--ecg", str(cohort / "ecg"), "--cmr", str(cohort / "cmr")]
    prepare += ["--phenotypes", str(cohort / "phenotypes.csv"), "--out", str(store)]
    prepare += ["--seed", str(seed), "--workers", str(workers)]
    prepare += ["--test", str(test)] if test is not None else []
    return [
        Step("cohort/synth", tuple(synth), cohort),
        Step("cohort/prepare", tuple(prepare), store),
    ], store
