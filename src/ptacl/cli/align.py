"""Stage 2: joint global + local contrastive training of the ECG and CMR encoders (PTACL).

    ptacl align --data STORE --ecg-init RUN --cmr-init RUN --out RUN [--config YAML]
                [--devices N] [--num-nodes N] [--resume|--overwrite] [key=value ...]

--ecg-init / --cmr-init are stage-1 runs (`ptacl pretrain`): their encoder architecture and
weights start this stage. Without them the encoders start from random weights (the paper's
"without SMP" ablation, which trains them whole: pass freeze_blocks=0, else a warning).
Shipped configs (`--config NAME`): ptacl_regression.yaml (σ = 0.1, τ 0.1 / 1.0, the
default), ptacl_retrieval.yaml (σ = 0, τ 0.07 / 0.07), global.yaml (β = 0).
Trains on the paired subjects of the train split, validates on the val split; each validation
writes figures/local_similarity_*.png (the paper's Figure 2).
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    # Imported here so `ptacl --help` stays quick.
    from ptacl.cli.common import add_run_arguments, command_parser, run_command

    parser = command_parser("ptacl align", __doc__)
    parser.add_argument("--ecg-init", type=Path, help="stage-1 ECG MAE run folder")
    parser.add_argument("--cmr-init", type=Path, help="stage-1 CMR MAE run folder")
    add_run_arguments(parser)
    args = parser.parse_intermixed_args(argv)

    from ptacl.training.align import AlignRunConfig, fit

    # the init runs may also be named in the YAML or the overrides (ecg_init=..., cmr_init=...);
    # their encoder architecture follows them (`ptacl.stage_config.load_stage_config`)
    runs = [f"{m}_init={r}" for m in ("ecg", "cmr") if (r := getattr(args, f"{m}_init"))]
    return run_command("ptacl align", args, AlignRunConfig, fit, extra=runs)


if __name__ == "__main__":
    sys.exit(main())
