"""Fine-tune a run's ECG (or CMR) encoder with an attention-pooling head on the phenotypes.

    ptacl finetune --model RUN --data STORE --out RUN_FT [--config YAML] [--resume|--overwrite] [key=value ...]
    ptacl finetune --model none --data STORE --out RUN_FT      (supervised, from random init)
    ptacl finetune --modality cmr --model none|RUN ...         (the same with a CMR encoder)

Full fine-tuning on the train split, standardised targets (train mean and SD, NaN masked out
of the loss), early stopping on the validation loss (`patience` validations), then the best
checkpoint predicts the test split (an ECG averaged over its crops, as `ptacl predict` does):
RUN_FT/test_predictions.npz (eids, true, predicted, in the phenotypes' units) and
RUN_FT/test_metrics.json (R² per phenotype with bootstrap 95 % CIs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from ptacl.cli.common import add_run_arguments

    parser = argparse.ArgumentParser(
        prog="ptacl finetune",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="run with such an encoder, or `none`")
    parser.add_argument(
        "--modality", choices=["ecg", "cmr"], default="ecg", help="which encoder (default ecg)"
    )
    parser.add_argument("--data", type=Path, help="prepared store (or data.store in the config)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates for CIs")
    add_run_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)
    import contextlib

    from ptacl.atomic import OutputBusy
    from ptacl.cli.common import resolve_config
    from ptacl.config import ConfigError
    from ptacl.data.store import Store, StoreError
    from ptacl.runs import RunDirError, prepare_run_dir, run_lock
    from ptacl.training.finetune import FinetuneConfig, run_finetune, with_source_encoder
    from ptacl.training.trainer import check_plugins

    with contextlib.ExitStack() as stack:
        try:
            extra = [f"model={args.model}", f"modality={args.modality}"]
            if args.data is not None:
                extra.append(f"data.store={args.data}")
            cfg = with_source_encoder(resolve_config(FinetuneConfig, args, extra))
            if not cfg.data.store:
                raise ConfigError("no store given: pass --data STORE (or set data.store)")
            check_plugins(cfg.trainer)
            store = Store.open(cfg.data.store)
            stack.enter_context(run_lock(args.out))  # held until training ends
            resume_from = prepare_run_dir(args.out, cfg, args.resume, overwrite=args.overwrite)
        except (ConfigError, StoreError, RunDirError, OutputBusy) as e:
            print(f"ptacl finetune: {e}", file=sys.stderr)
            return 2
        try:
            return run_finetune(cfg, store, Path(args.out), resume_from, n_boot=args.n_boot)
        except ConfigError as e:  # a setting that only the data shows wrong (batch > split)
            print(f"ptacl finetune: {e}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
