"""SimCLR baseline: contrastive pretraining of the ECG or the CMR encoder on two augmented views.

    ptacl simclr ecg|cmr --data STORE --out RUN [--config YAML] [--devices N] [--num-nodes N]
                         [--resume|--overwrite] [key=value ...]

Trains on every ECG (or cine) of the store's train split and validates on the val split with
views drawn from a fixed seed. The run folder is laid out like a `ptacl pretrain` run, so
`ptacl embed --model RUN` and the evaluation take it as they are. Without --config the encoder
has the paper's size (the shipped simclr_ecg.yaml, simclr_cmr.yaml hold the same values).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    # Imported here so `ptacl --help` stays quick.
    from ptacl.cli.common import add_run_arguments, command_parser, run_command

    parser = command_parser("ptacl simclr", __doc__, modality=True)
    add_run_arguments(parser)
    args = parser.parse_intermixed_args(argv)

    from ptacl.training.simclr import SimclrRunConfig, check_views, fit

    modality = [f"modality={args.modality}"]  # a --config of the other modality is refused
    return run_command(
        "ptacl simclr", args, SimclrRunConfig, fit, extra=modality, check=check_views
    )


if __name__ == "__main__":
    sys.exit(main())
