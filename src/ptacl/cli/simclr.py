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
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    # Imported here so `ptacl --help` stays quick.
    from ptacl.cli.common import add_run_arguments, command_parser, run_command

    parser = command_parser("ptacl simclr", __doc__, modality=True)
    add_run_arguments(parser)
    args = parser.parse_intermixed_args(argv)

    from ptacl.training.simclr import SIMCLR_RUN_CONFIGS

    return run_command(
        "ptacl simclr", args, SIMCLR_RUN_CONFIGS[args.modality], _fit, check=_check_views
    )


def _check_views(cfg) -> None:
    from ptacl.config import ConfigError

    if not cfg.augment.enabled:
        raise ConfigError(
            "augment.enabled=false would make the two views identical: SimCLR needs them"
        )


def _fit(cfg, store, out: Path, resume_from: Path | None) -> int:
    import lightning as L

    from ptacl.config import to_dict
    from ptacl.data.datasets import CmrDataset, EcgDataset
    from ptacl.training.simclr import SimclrPretraining, TwoViews, parameter_counts
    from ptacl.training.trainer import build_trainer, fit_stage

    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    # Validation views are augmented too (identical views would make the loss meaningless),
    # but drawn from a fixed seed per item, so every validation sees the same views.
    if cfg.modality == "ecg":

        def dataset(split: str) -> EcgDataset:
            return EcgDataset(
                store,
                split,
                train=True,
                augment=cfg.augment,
                crop=cfg.encoder.samples,
                seed=cfg.trainer.seed,
            )
    else:

        def dataset(split: str) -> CmrDataset:
            return CmrDataset(
                store,
                split,
                train=True,
                augment=cfg.augment,
                frames=cfg.encoder.frames,
                seed=cfg.trainer.seed,
            )

    train_set = TwoViews(dataset("train"), cfg.modality)
    val_set = TwoViews(dataset("val"), cfg.modality, fixed_seed=cfg.trainer.seed)
    if len(val_set) == 0:
        print(f"ptacl simclr: {store.root}: no {cfg.modality} in the val split", file=sys.stderr)
        return 2
    module = SimclrPretraining(to_dict(cfg))
    counts = parameter_counts(module)
    print(
        f"{cfg.modality.upper()} SimCLR: encoder {counts['encoder'] / 1e6:.2f} M, head "
        f"{counts['head'] / 1e6:.2f} M, total {counts['total'] / 1e6:.2f} M parameters; "
        f"{len(train_set)} train / {len(val_set)} val items from {store.root}",
        flush=True,
    )
    trainer = build_trainer(
        cfg.trainer,
        out,
        width=cfg.encoder.width,
        feature_cache=not module.automatic_optimization,
    )
    fit_stage(trainer, module, train_set, val_set, cfg.data, resume_from)
    print(f"run folder: {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
