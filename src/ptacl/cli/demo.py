"""The whole pipeline on a synthetic cohort: synth, prepare, train, evaluate, export, predict.

    ptacl demo [--subjects 1500] [--out demo_out] [--preset demo|tiny] [--workers 2] [--jobs 2]

synthetic cohort -> prepared store -> ECG and CMR MAE pretraining -> Global-only and PTACL
alignment, each in the paper's regression and retrieval settings -> evaluation (linear probe
beside the random-init baseline, retrieval, with reports) -> an exported inference bundle ->
phenotypes predicted from a few raw ECG files. Runs the `demo` preset of `ptacl benchmark`
(one seed, no fine-tuning; about 30 minutes on 2 CPU cores) so its figures are comparable with
the benchmark's; `--preset tiny` runs 2-step models in a few minutes, to see the pipeline work
(its numbers mean nothing). Works from an installed wheel: the configs are package data. Every
stage's log is in OUT/logs; re-running reuses what finished.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ptacl demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="demo folder")
    parser.add_argument("--subjects", type=int, default=1500, help="synthetic cohort size")
    parser.add_argument("--preset", choices=("demo", "tiny"), default="demo",
                        help="demo: models that learn; tiny: a quick look at the wiring")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2, help="processes for synth/prepare")
    parser.add_argument("--jobs", type=int, default=2, help="training steps run at once")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ptacl.benchmark.cohort import CohortTooSmall
    from ptacl.benchmark.demo import run_demo
    from ptacl.benchmark.pipeline import PipelineError

    if args.subjects < 1 or args.jobs < 1 or args.workers < 1:
        print("ptacl demo: --subjects, --jobs and --workers must be >= 1", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        run = run_demo(args.out, subjects=args.subjects, preset=args.preset,
                       workers=args.workers, jobs=args.jobs)  # fmt: skip
    except CohortTooSmall as e:
        print(f"ptacl demo: {e}", file=sys.stderr)
        return 2
    except PipelineError as e:
        print(f"ptacl demo: {e}", file=sys.stderr)
        return 1
    print()
    print(run.tables)
    print("\nseconds per stage (0 = reused):")
    for name, took in run.seconds.items():
        print(f"  {name:<28} {took:7.0f}")
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    print(f"reports: {', '.join(map(str, run.reports))}")
    print(f"cohort preview: {run.preview}; predictions: {run.predictions}")
    print_predictions(run.predictions)
    return 0


def print_predictions(path: Path, columns: tuple[str, ...] = ("LVEDV", "LVM", "RVEDV")) -> None:
    """The demo's predictions as a person reads them: file, status and a few phenotypes, each
    with its prediction interval when the bundle has one ("152.3 [110.2, 190.1]")."""
    import pandas as pd

    table = pd.read_csv(path)
    shown = [
        c
        for c in table.columns
        if c.split(" ")[0] in columns and c[-6:] not in (" lower", " upper")
    ]
    out = pd.DataFrame(
        {"file": table["file"].map(lambda f: Path(f).name), "status": table["status"]}
    )
    for c in shown:
        text = table[c].map("{:.1f}".format)
        if f"{c} lower" in table:
            low, high = table[f"{c} lower"], table[f"{c} upper"]
            text += " [" + low.map("{:.1f}".format) + ", " + high.map("{:.1f}".format) + "]"
        out[c] = text
    print(f"\npredictions from the exported bundle ({path}):")
    print(out.to_string(index=False))


if __name__ == "__main__":
    sys.exit(main())
