"""`ptacl demo`: a synthetic cohort through the whole pipeline to a bundle's predictions.

The demo is `ptacl benchmark --methods random global ptacl --seeds 1 --no-finetune` on a
cohort it generates, followed by an export of the PTACL run and a predict from raw ECG files;
finished steps are reused when it is run again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ptacl.benchmark import cohort as cohort_check  # module: tests patch its store_counts
from ptacl.benchmark.methods import Method, select_methods
from ptacl.benchmark.pipeline import Step
from ptacl.benchmark.presets import PRESETS, Preset
from ptacl.benchmark.steps import build_steps, cohort_steps
from ptacl.benchmark.tables import write_tables

#: `ptacl demo` = `ptacl benchmark --methods random global ptacl --seeds 1 --no-finetune`: the
#: random-init LP rows beside the aligned runs, and Table 1 from the retrieval-setting runs
#: that global and ptacl bring along; then an exported bundle predicting from raw ECG files.
DEMO_METHODS = ("random", "global", "ptacl")


@dataclass(frozen=True)
class DemoRun:
    """What `run_demo` made: the tables' text, seconds per step (0 = reused) and the files."""

    tables: str
    seconds: dict[str, float]
    reports: list[Path]
    bundle: Path
    predictions: Path
    preview: Path


def demo_steps(
    out: Path, store: Path, preset: Preset, examples: Sequence[Path], *, probe: str = "ols"
) -> tuple[list[Step], tuple[Method, ...]]:
    """The demo's training, evaluation, export and predict steps (after the cohort's)."""
    methods = select_methods(DEMO_METHODS)
    bundle, predictions = out / "bundle", out / "predictions.csv"
    steps = build_steps(preset, store, out, [0], methods, finetune=False, probe=probe)
    steps += [
        Step("export", ("export", "--model", str(out / "seed0/runs/ptacl"), "--out",
                        str(bundle), *(("--probe", probe) if probe != "ols" else ())), bundle),
        # exit 1: written, with an error row (the demo shows it rather than fails on it)
        Step("predict", ("predict", "--model", str(bundle), "--ecg", *map(str, examples),
                         "--out", str(predictions), "--no-progress"), predictions, (0, 1)),
    ]  # fmt: skip
    return steps, methods


def run_demo(
    out: Path,
    *,
    subjects: int,
    preset: str = "demo",
    workers: int = 2,
    jobs: int = 2,
    quiet: bool = False,
) -> DemoRun:
    """synthetic cohort -> store -> the preset's runs of DEMO_METHODS (seed 0) -> evaluation ->
    export -> predict from five raw ECG files; finished steps are reused. Raises
    `ptacl.benchmark.pipeline.PipelineError` when a step fails and CohortTooSmall (before training) when
    the cohort cannot feed the preset's batches and probe."""
    from ptacl.benchmark.pipeline import run_steps

    chosen = PRESETS[preset]
    out.mkdir(parents=True, exist_ok=True)
    cohort, store = cohort_steps(out, subjects, workers)
    seconds = run_steps(cohort, out, quiet=quiet)
    probe, why = cohort_check.demo_probe(chosen, cohort_check.store_counts(store))
    # A ridge probe is fitted whatever the count; only an OLS one needs more subjects than dims
    cohort_check.check_cohort(chosen, store, subjects, export=probe == "ols")
    if why and not quiet:
        print(f"demo: {why}", flush=True)
    examples = sorted((out / "cohort" / "ecg").glob("*.xml"))[-5:]  # known once it exists
    steps, methods = demo_steps(out, store, chosen, examples, probe=probe)
    rebuilt = [s.output for s in cohort if seconds[s.name] > 0]  # runs on it are outdated
    # idle cores go to the steps still running: the demo's ECG MAE trains alone for minutes
    seconds |= run_steps(steps, out, rebuilt=rebuilt, jobs=jobs, quiet=quiet, share_cores=True)
    header = f"# ptacl demo ({subjects} synthetic subjects, preset {preset}, seed 0)"
    header += f"\n\nNote: {why}." if why else ""
    return DemoRun(
        tables=write_tables(out, [0], methods, header),
        seconds=seconds,
        reports=[out / f"seed0/eval/{m.key}/report.md" for m in methods if m.evaluate],
        bundle=out / "bundle",
        predictions=out / "predictions.csv",
        preview=out / "cohort" / "preview.png",
    )
