"""Stage 1: masked-autoencoder pretraining of the ECG or the CMR encoder on a prepared store.

    ptacl pretrain ecg|cmr --data STORE --out RUN [--config YAML] [--devices N] [--num-nodes N]
                           [--resume|--overwrite] [key=value ...]

The ECG MAE trains on every ECG of the store's train split (ECG-only subjects too) and
validates on the val split; the CMR MAE likewise on every cine. Without --config the paper's
sizes are used (the same as the shipped ecg_mae.yaml, cmr_mae.yaml).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    # Imported here so `ptacl --help` stays quick.
    from ptacl.cli.common import add_run_arguments, command_parser, run_command

    parser = command_parser("ptacl pretrain", __doc__, modality=True)
    add_run_arguments(parser)
    args = parser.parse_intermixed_args(argv)

    from ptacl.training.mae import MaeRunConfig, fit

    modality = [f"modality={args.modality}"]  # a --config of the other modality is refused
    return run_command("ptacl pretrain", args, MaeRunConfig, fit, extra=modality)


if __name__ == "__main__":
    sys.exit(main())
