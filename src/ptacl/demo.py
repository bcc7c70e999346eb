"""`make demo`: the PTACL pipeline end to end on a synthetic cohort, reusing finished stages.

synthetic cohort -> prepared store -> ECG and CMR MAE pretraining -> Global-only and PTACL
alignment, each in the paper's regression and retrieval settings -> evaluation (linear probe
beside the random-init baseline, retrieval, with reports) -> an exported inference
bundle -> phenotypes predicted from a few raw ECG files. Runs the `demo` preset of
`ptacl benchmark` (one seed, no fine-tuning) so its figures are comparable with the benchmark's.
Every stage's log is in OUT/logs; re-running reuses what finished.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# `ptacl benchmark --methods random global ptacl`: the random-init LP rows beside the aligned runs,
# and Table 1 from the retrieval-setting runs that global and ptacl bring along.
DEMO_METHODS = ("random", "global", "ptacl")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ptacl.demo", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo_out"))
    parser.add_argument("--subjects", type=int, default=1500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2, help="training steps run at once")
    parser.add_argument("--preset", default="demo", help="benchmark preset (demo; tiny to try)")
    args = parser.parse_args(argv)

    from ptacl.cli.benchmark import cohort_steps, write_tables
    from ptacl.pipeline import PipelineError, Step, run_steps
    from ptacl.reproduction import PRESETS, build_steps, select_methods

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    cohort, store = cohort_steps(out, args.subjects, args.workers)
    methods = select_methods(DEMO_METHODS)
    bundle, predictions = out / "bundle", out / "predictions.csv"
    start = time.perf_counter()
    try:
        seconds = run_steps(cohort, out)
        examples = sorted((out / "cohort" / "ecg").glob("*.xml"))[-5:]  # known once it exists
        steps = build_steps(PRESETS[args.preset], store, out, [0], methods, finetune=False)
        steps += [
            Step("export", ("export", "--model", str(out / "seed0/runs/ptacl"), "--out",
                            str(bundle)), bundle),
            # exit 1: written, with a row flagged (a warning the demo shows rather than fails on)
            Step("predict", ("predict", "--model", str(bundle), "--ecg", *map(str, examples),
                             "--out", str(predictions), "--no-progress"), predictions, (0, 1)),
        ]  # fmt: skip
        rebuilt = [s.output for s in cohort if seconds[s.name] > 0]  # runs on it are outdated
        seconds |= run_steps(steps, out, rebuilt=rebuilt, jobs=args.jobs)
    except PipelineError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    header = f"# ptacl demo ({args.subjects} synthetic subjects, preset {args.preset}, seed 0)"
    print()
    print(write_tables(out, [0], methods, header))
    print("\nseconds per stage (0 = reused):")
    for name, took in seconds.items():
        print(f"  {name:<28} {took:7.0f}")
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    reports = ", ".join(str(out / f"seed0/eval/{m.key}/report.md") for m in methods if m.evaluate)
    print(f"reports: {reports}")
    print(f"cohort preview: {out / 'cohort/preview.png'}; predictions: {predictions}")
    print_predictions(predictions)
    return 0


def print_predictions(path: Path, columns: tuple[str, ...] = ("LVEDV", "LVM", "RVEDV")) -> None:
    """The demo's predictions as a person reads them: file, status and a few phenotypes."""
    import pandas as pd

    table = pd.read_csv(path)
    shown = [c for c in table.columns if c.split(" ")[0] in columns]
    table["file"] = table["file"].map(lambda f: Path(f).name)
    print(f"\npredictions from the exported bundle ({path}):")
    print(table[["file", "status", *shown]].to_string(index=False, float_format="{:.1f}".format))


if __name__ == "__main__":
    sys.exit(main())
