"""Export a trained run's ECG encoder and phenotype probe as a self-contained inference bundle.

    ptacl export --model RUN --out BUNDLE [--data STORE] [--checkpoint best|last]
                 [--metrics EVAL/metrics.json] [--endpoints YAML] [--endpoints-set k=v]
                 [--n-boot 1000]

RUN is a training run folder: `ptacl pretrain` or `ptacl simclr` with the ECG modality or
`ptacl align` get a linear probe (OLS, the paper's linear probing) fitted on the train split of
STORE (default: the store the run trained on) with the same crops `ptacl predict` uses;
`ptacl finetune` brings its own attention-pooling head. The head's R² on STORE's validation
split is written into the bundle's config.json, and per phenotype a prediction interval
(split conformal on that split's residuals, nominal --interval-level, 90 % by default) into its
intervals.json, with the coverage it reaches on STORE's test split. Per clinical endpoint
(the shipped endpoints.yaml, as `ptacl evaluate`: LVEF < 50 %, <= 40 %, LV hypertrophy, LV
dilation) with enough positives and negatives in the train and val splits, a logistic probe of
the ECG embedding is fitted on train and calibrated on val (Platt scaling) into endpoints.json,
so `ptacl predict` writes its probability as `P(<key>)`, with its test metrics and their
bootstrap CIs (--n-boot replicates, as `ptacl evaluate`); the others are listed as skipped
with their counts. An aligned run's ECG
projection head is kept, so `ptacl retrieve` can compare ECGs with that run's CMR embeddings.

Every bundle carries a model card (README.md): the training data's origin (from the store's
manifest), the training command, the head's validation R², test metrics with CIs when
--metrics names the metrics.json of `ptacl evaluate`, intended use, governance and licence.
No path of the training machine is written into the bundle.

The bundle holds weights derived from the training data: for UK Biobank data it is
individual-level derived data and must not be shared outside the approved project.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from ptacl.cli.common import at_least_one
    from ptacl.schema import INTERVAL_LEVEL

    parser = argparse.ArgumentParser(
        prog="ptacl export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", type=Path, required=True, help="training run folder")
    parser.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    parser.add_argument(
        "--data", type=Path, help="prepared store for the probe (default: the run's)"
    )
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best")
    parser.add_argument(
        "--metrics", type=Path, help="metrics.json of `ptacl evaluate` for the model card"
    )
    parser.add_argument(
        "--probe",
        choices=("ols", "ridge"),
        default="ols",
        help="linear probe of an MAE or align run: ols (the paper's) or ridge (small cohorts); "
        "the same fit as `ptacl evaluate --probe`",
    )
    parser.add_argument(
        "--interval-level",
        type=float,
        default=INTERVAL_LEVEL,
        help="nominal coverage of the per-patient prediction intervals fitted on STORE's val "
        "split (split conformal; default %(default)s)",
    )
    parser.add_argument(
        "--endpoints",
        type=Path,
        help="YAML of the clinical endpoints over the shipped endpoints.yaml, as `ptacl evaluate`",
    )
    parser.add_argument(
        "--endpoints-set", action="append", default=[], metavar="key=value",
        help="endpoint config override (repeatable), e.g. lvh.enabled=false, min_positives=5",
    )  # fmt: skip
    parser.add_argument(
        "--n-boot",
        type=at_least_one,
        default=1000,
        help="bootstrap replicates for the CIs of the endpoints' test metrics in endpoints.json "
        "and the model card (as `ptacl evaluate --n-boot`; default %(default)s)",
    )
    parser.add_argument(
        "--batch-size", type=at_least_one, default=32, help="crops per forward pass"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ptacl.atomic import OutputBusy
    from ptacl.config import ConfigError
    from ptacl.data.store import StoreError
    from ptacl.eval.endpoints import load_endpoints
    from ptacl.export import export_run
    from ptacl.runs import RunDirError

    try:
        endpoints = load_endpoints(args.endpoints, args.endpoints_set)  # before any work
    except ConfigError as e:
        print(f"ptacl export: {e}", file=sys.stderr)
        return 2
    try:
        out = export_run(
            args.model,
            args.out,
            data=args.data,
            which=args.checkpoint,
            batch_size=args.batch_size,
            overwrite=args.overwrite,
            metrics=args.metrics,
            probe=args.probe,
            interval_level=args.interval_level,
            endpoints=endpoints,
            n_boot=args.n_boot,
        )
    except (RunDirError, StoreError, FileExistsError, ValueError, OutputBusy, OSError) as e:
        print(f"ptacl export: {e}", file=sys.stderr)  # OSError: e.g. NoSpace, nothing left
        return 1
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    print(
        f"bundle: {out}  (stage {config['source']['stage']}, embedding {config['embedding']['dim']})"
    )
    scores = config["head"].get("validation_r2")
    if scores is None:
        print("no store at hand (--data), so the head was not scored")
        return 0
    print(f"R² on the validation split ({config['head']['validation_subjects']} subjects):")
    for column, r2 in scores.items():
        print(f"  {column:<14} {'n/a' if r2 is None else f'{r2:.3f}'}")
    _print_intervals(out)
    _print_endpoints(out)
    return 0


def _print_endpoints(out: Path) -> None:
    """Each endpoint's predict column and test AUROC, and the endpoints skipped with why."""
    path = out / "endpoints.json"
    if not path.is_file():
        return
    doc = json.loads(path.read_text(encoding="utf-8"))
    print("endpoint probabilities (calibrated on val), test AUROC:")
    for entry in (doc.get("endpoints") or {}).values():
        auroc = (entry.get("test") or {}).get("AUROC")
        text = "not measured" if not auroc or auroc[0] is None else f"{auroc[0]:.3f}"
        print(f"  {entry['column']:<16} {text}  ({entry.get('label')})")
    for key, entry in (doc.get("skipped") or {}).items():
        print(f"  {key}: skipped, {entry.get('why')}")


def _print_intervals(out: Path) -> None:
    """The intervals' nominal level and the test coverage measured at export, per phenotype."""
    path = out / "intervals.json"
    if not path.is_file():
        return
    intervals = json.loads(path.read_text(encoding="utf-8"))
    print(f"{100 * intervals['level']:g} % prediction intervals, coverage on the test split:")
    for column, measured in (intervals.get("test") or {}).items():
        coverage = measured.get("coverage")
        print(f"  {column:<14} {'n/a' if coverage is None else f'{100 * coverage:.1f} %'}")


if __name__ == "__main__":
    sys.exit(main())
