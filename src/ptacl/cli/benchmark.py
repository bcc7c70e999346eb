"""Reproduce the paper's comparisons: every method over several seeds, Tables 1 and 2 side by side.

    ptacl benchmark --preset tiny|small|demo|medium|resolve|paper --out DIR [--data STORE] [--seeds 3]
                    [--methods ptacl global ...] [--workers K]

Without --data a synthetic cohort of the preset's size is generated and prepared in DIR. Each
method is trained and evaluated per seed (DIR/seed{S}/runs, DIR/seed{S}/eval, logs in DIR/logs);
finished steps are reused when the command is run again. DIR/tables.md holds Table 1
(retrieval) and Table 2 (R²) as mean ± sd over seeds with the per-seed bootstrap CIs beside
them, and the paper's UK Biobank figures as labelled reference columns (not comparable with a
synthetic cohort), then the paper's comparisons (PTACL − Global only, ...) paired by test
subject and seed with CI, p and minimal detectable difference; DIR/results.json the per-seed
numbers and CIs behind them. A store too small
for the preset's batches is refused before any training. As in the paper, PTACL and Global only are
trained twice: in the regression setting (the preset's ptacl config; Table 2) and in the
retrieval setting (σ = 0, τ 0.07 / 0.07; methods global_retrieval and ptacl_retrieval, which
`--methods global ptacl` brings along; Table 1).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from ptacl.benchmark.methods import METHOD_KEYS
    from ptacl.benchmark.presets import PRESETS

    parser = argparse.ArgumentParser(
        prog="ptacl benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), required=True)
    parser.add_argument("--out", type=Path, required=True, help="benchmark folder")
    parser.add_argument("--data", type=Path, help="prepared store (default: a synthetic one)")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0, 1, ...)")
    parser.add_argument("--methods", nargs="+", choices=METHOD_KEYS, help="default: all")
    parser.add_argument("--subjects", type=int, help="synthetic cohort size (preset's default)")
    parser.add_argument("--no-finetune", action="store_true", help="skip FN+AP")
    parser.add_argument(
        "--no-retrieval-setting",
        action="store_true",
        help="global and ptacl come without their retrieval-setting runs (Table 1 then lacks "
        "their rows; saves two stage-2 trainings a seed)",
    )
    parser.add_argument(
        "--include-self",
        action="store_true",
        help="retrieval: keep the query's own CMR among the candidates, as the paper's 'all "
        "patients' (default: excluded, stricter); passed to every `ptacl evaluate`",
    )
    parser.add_argument("--workers", type=int, default=2, help="processes for synth/prepare")
    parser.add_argument(
        "--accelerator",
        choices=("cpu", "gpu"),
        help="train (and, with gpu, evaluate) on this device, whatever the preset's configs say",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="training/evaluation steps run at once, the cores shared out between them (2 on a "
        "2-core CPU: small models train faster as two one-thread processes; BENCHMARKS.md)",
    )
    parser.add_argument("--quiet", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ptacl.benchmark.cohort import CohortTooSmall, check_cohort
    from ptacl.benchmark.methods import select_methods
    from ptacl.benchmark.pipeline import PipelineError, run_steps
    from ptacl.benchmark.presets import PRESETS
    from ptacl.benchmark.steps import build_steps, cohort_steps
    from ptacl.benchmark.tables import write_tables

    if args.seeds < 1 or args.jobs < 1:
        print("ptacl benchmark: --seeds and --jobs must be >= 1", file=sys.stderr)
        return 2
    preset = PRESETS[args.preset]
    missing = [str(p) for p in preset.configs.values() if not p.is_file()]
    if missing:
        print(
            f"ptacl benchmark: preset {preset.name}: missing config(s) {missing}", file=sys.stderr
        )
        return 2
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seeds))
    methods = select_methods(args.methods, bring_retrieval=not args.no_retrieval_setting)
    start = time.perf_counter()
    cohort, store, rebuilt = [], args.data, []
    try:
        if store is None:
            subjects = args.subjects or preset.subjects
            cohort, store = cohort_steps(out, subjects, args.workers, test=preset.test_fraction)
            seconds = run_steps(cohort, out, quiet=args.quiet)
            rebuilt = [s.output for s in cohort if seconds[s.name] > 0]  # runs on it are outdated
        # before any training: a split smaller than a batch would fail steps in, one by one
        check_cohort(preset, store, export=False)
    except CohortTooSmall as e:
        print(f"ptacl benchmark: {e}", file=sys.stderr)
        return 2
    except PipelineError as e:
        print(f"ptacl benchmark: {e}", file=sys.stderr)
        return 1
    steps = build_steps(
        preset,
        store,
        out,
        seeds,
        methods,
        finetune=not args.no_finetune,
        include_self=args.include_self,
        accelerator=args.accelerator,
    )
    try:
        run_steps(steps, out, quiet=args.quiet, jobs=args.jobs, rebuilt=rebuilt)
    except PipelineError as e:
        print(f"ptacl benchmark: {e}", file=sys.stderr)
        return 1
    header = (
        f"# ptacl benchmark, preset {preset.name}, {len(seeds)} seed(s), store {store}\n\n"
        f"Command: `ptacl benchmark {' '.join(argv if argv is not None else sys.argv[2:])}`; "
        f"wall time of this invocation {time.perf_counter() - start:.0f} s."
    )
    text = write_tables(out, seeds, methods, header)
    if not args.quiet:
        print(text)
    print(f"tables -> {out / 'tables.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
