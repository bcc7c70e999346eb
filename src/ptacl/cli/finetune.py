"""Fine-tune a run's ECG (or CMR) encoder with an attention-pooling head on the phenotypes.

    ptacl finetune --model RUN --data STORE --out RUN_FT [--config YAML] [--resume|--overwrite] [key=value ...]
    ptacl finetune --model none --data STORE --out RUN_FT      (supervised, from random init)
    ptacl finetune --modality cmr --model none|RUN ...         (the same with a CMR encoder)

Full fine-tuning on the train split, standardised targets (train mean and SD, NaN masked out
of the loss), early stopping on the validation loss (`patience` validations), then the best
checkpoint predicts the test split (an ECG averaged over its crops, as `ptacl predict` does):
RUN_FT/test_predictions.npz (eids, true, predicted, in the phenotypes' units) and
RUN_FT/test_metrics.json (R² per phenotype with bootstrap 95 % CIs). The field's recipe
(issue 23), off by default (each part measured worse or equal, RESULTS.md): head_init=ridge
(the head's output layer from the ridge probe of the frozen encoder, LP-FT),
optim.layer_decay=0.75 (layer-wise lr decay), select=r2 (best checkpoint and early stopping by
the validation R²).
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from ptacl.cli.common import add_run_arguments, at_least_one, command_parser

    parser = command_parser("ptacl finetune", __doc__)
    parser.description = __doc__  # the whole of it: its usage lines say what --model takes
    parser.add_argument("--model", required=True, help="run with such an encoder, or `none`")
    parser.add_argument(
        "--modality", choices=["ecg", "cmr"], default="ecg", help="which encoder (default ecg)"
    )
    parser.add_argument(
        "--n-boot", type=at_least_one, default=1000, help="bootstrap replicates for CIs"
    )
    add_run_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)
    import functools

    from ptacl.cli.common import run_command
    from ptacl.training.finetune import FinetuneConfig, fit

    extra = [f"model={args.model}", f"modality={args.modality}"]
    stage = functools.partial(fit, n_boot=args.n_boot)
    return run_command("ptacl finetune", args, FinetuneConfig, stage, extra=extra)


if __name__ == "__main__":
    sys.exit(main())
