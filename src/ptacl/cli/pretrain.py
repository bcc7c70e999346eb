"""Stage 1: masked-autoencoder pretraining of the ECG or the CMR encoder on a prepared store.

    ptacl pretrain ecg|cmr --data STORE --out RUN [--config YAML] [--devices N] [--num-nodes N]
                           [--resume|--overwrite] [key=value ...]

The ECG MAE trains on every ECG of the store's train split (ECG-only subjects too) and
validates on the val split; the CMR MAE likewise on every cine. Without --config the paper's
sizes are used (the same as the shipped ecg_mae.yaml, cmr_mae.yaml).
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    # Imported here so `ptacl --help` stays quick.
    from ptacl.cli.common import add_run_arguments, command_parser, run_command

    parser = command_parser("ptacl pretrain", __doc__, modality=True)
    add_run_arguments(parser)
    args = parser.parse_intermixed_args(argv)

    from ptacl.training.mae import MAE_RUN_CONFIGS

    return run_command("ptacl pretrain", args, MAE_RUN_CONFIGS[args.modality], _fit)


def _fit(cfg, store, out: Path, resume_from: Path | None) -> int:
    import lightning as L

    from ptacl.config import to_dict
    from ptacl.data.datasets import CmrDataset, EcgDataset
    from ptacl.training.mae import MaePretraining, ReconstructionFigure, parameter_counts
    from ptacl.training.trainer import build_trainer, fit_stage

    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    if cfg.modality == "ecg":

        def dataset(split: str, train: bool) -> EcgDataset:
            return EcgDataset(
                store,
                split,
                train=train,
                augment=cfg.augment,
                crop=cfg.encoder.samples,
                seed=cfg.trainer.seed,
            )
    else:

        def dataset(split: str, train: bool) -> CmrDataset:
            return CmrDataset(
                store,
                split,
                train=train,
                augment=cfg.augment,
                frames=cfg.encoder.frames,
                seed=cfg.trainer.seed,
            )

    train_set, val_set = dataset("train", True), dataset("val", False)
    if len(val_set) == 0:
        print(f"ptacl pretrain: {store.root}: no {cfg.modality} in the val split", file=sys.stderr)
        return 2
    module = MaePretraining(to_dict(cfg))
    counts = parameter_counts(module.mae)
    print(
        f"{cfg.modality.upper()} MAE: encoder {counts['encoder'] / 1e6:.2f} M, decoder "
        f"{counts['decoder'] / 1e6:.2f} M, total {counts['total'] / 1e6:.2f} M parameters; "
        f"{len(train_set)} train / {len(val_set)} val items from {store.root}",
        flush=True,
    )
    trainer = build_trainer(
        cfg.trainer,
        out,
        width=cfg.encoder.width,
        callbacks=[ReconstructionFigure(Path(out) / "figures")],
    )
    fit_stage(trainer, module, train_set, val_set, cfg.data, resume_from)
    print(f"run folder: {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
