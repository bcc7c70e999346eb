"""Stage 1, `ptacl pretrain`: masked-autoencoder pretraining of one encoder, in one file.

`MaeRunConfig` (the run's config.yaml), `MaePretraining` (the
LightningModule), `MaeData` (its DataModule) and `fit`, which the command calls. The module
takes its config as a plain dict (the resolved config.yaml), so its checkpoints hold only
tensors and plain values and load with `weights_only=True`. Its figures are in
`ptacl.training.figures`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import lightning as L
import torch
from torch import nn
from torch.utils.data import Dataset

from ptacl.config import depends_on, fill_dependent, from_dict
from ptacl.data.augment_cmr import CmrAugmentConfig
from ptacl.data.augment_ecg import EcgAugmentConfig
from ptacl.models import (
    EncoderConfig,
    MaeConfig,
    MaskedAutoencoder,
    encoder_config_class,
    encoder_from_config,
)
from ptacl.models.mae import mean_prediction_mse
from ptacl.training.loaders import AUGMENT_CONFIGS, DataConfig, StageData, modality_dataset
from ptacl.training.optim import OptimConfig, stage_optimizers
from ptacl.training.trainer import TrainerConfig, compile_blocks

if TYPE_CHECKING:
    from ptacl.data.store import Store


#: modality -> the MAE's default mask ratio (the paper's: ECG 0.75, cine 0.9)
MASK_RATIOS: dict[str, float] = {"ecg": 0.75, "cmr": 0.9}


@dataclass(frozen=True)
class MaeRunConfig:
    """`ptacl pretrain`'s config. `modality` picks the type and default of `encoder` (its
    registered encoders, `ptacl.models.registry`), `augment` (`AUGMENT_CONFIGS`) and the
    default `mae` (`MASK_RATIOS`)."""

    modality: Literal["ecg", "cmr"] = "ecg"
    encoder: EncoderConfig = field(
        default=None, metadata=depends_on("modality", type_of=encoder_config_class)
    )
    mae: MaeConfig = field(
        default=None,
        metadata=depends_on("modality", default_of=lambda m: MaeConfig(mask_ratio=MASK_RATIOS[m])),
    )
    augment: EcgAugmentConfig | CmrAugmentConfig = field(
        default=None, metadata=depends_on("modality", type_of=AUGMENT_CONFIGS.get)
    )
    data: DataConfig = field(default_factory=lambda: DataConfig(batch_size=128))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(warmup_steps=2000))
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        fill_dependent(self)


class MaePretraining(L.LightningModule):
    """MAE training of the `config["modality"]` encoder; validation masks are drawn from a
    fixed seed, so validation losses of different steps compare the same task."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config})
        cfg = from_dict(MaeRunConfig, config)
        self.modality = cfg.modality
        self.optim_config = cfg.optim
        self.batch_size = cfg.data.batch_size
        self.seed = cfg.trainer.seed
        self.mae = MaskedAutoencoder(encoder_from_config(cfg.encoder, cfg.modality), cfg.mae)
        if cfg.trainer.compile:
            compile_blocks(self.mae)  # the encoder's and the decoder's blocks
        self.example: dict[str, torch.Tensor] | None = None  # for ReconstructionFigure

    def encoders(self) -> dict[str, nn.Module]:
        return {self.modality: self.mae.encoder}

    def heads(self) -> dict[str, nn.Module]:
        return {}  # the decoder is trained, but it is no head: it is dropped after pretraining

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        x = batch[self.modality]
        loss = self.mae(x)["loss"]
        self.log("train/loss", loss, prog_bar=True, batch_size=x.shape[0])
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        x = batch[self.modality]
        generator = torch.Generator(device=x.device).manual_seed(self.seed * 100_003 + batch_idx)
        out = self.mae(x, generator=generator)
        baseline = mean_prediction_mse(self.mae.targets(x), out["mask"])
        self.log("val/loss", out["loss"], prog_bar=True, sync_dist=True, batch_size=x.shape[0])
        self.log("val/mean_baseline", baseline, sync_dist=True, batch_size=x.shape[0])
        if batch_idx == 0:
            pictures = self.mae.reconstruct(x[:1], out["pred"][:1], out["mask"][:1])
            self.example = {
                "input": x[:1].detach().float().cpu(),
                "mask": out["mask"][:1].detach().float().cpu(),
                **{k: v.detach().float().cpu() for k, v in pictures.items()},
            }

    def configure_optimizers(self) -> dict[str, Any]:
        return stage_optimizers(self, self.optim_config, self.batch_size)


class MaeData(StageData):
    """Every ECG (or cine) of the train split, and of the val split, as the encoder takes
    them (its crop, or its frames)."""

    def __init__(self, cfg: MaeRunConfig, store: Store) -> None:
        def dataset(split: str, train: bool) -> Dataset:
            return modality_dataset(store, cfg.modality, split, train=train, augment=cfg.augment,
                                    encoder=cfg.encoder, seed=cfg.trainer.seed)  # fmt: skip

        super().__init__(dataset("train", True), dataset("val", False), cfg.data)


def fit(cfg: MaeRunConfig, store: Store, out: Path, resume_from: Path | None) -> int:
    """`ptacl pretrain`: train the MAE into run folder `out` (prepared by `ptacl.run_write`),
    continuing from `resume_from` when given. Returns the exit status (2: an empty val split)."""
    from ptacl.config import to_dict
    from ptacl.training.figures import ReconstructionFigure
    from ptacl.training.parts import parameter_counts
    from ptacl.training.trainer import build_trainer, fit_stage

    data = MaeData(cfg, store)
    if not data.usable("ptacl pretrain", store.root, cfg.modality):
        return 2
    figures = ReconstructionFigure(Path(out) / "figures")
    trainer = build_trainer(cfg.trainer, out, width=cfg.encoder.width, callbacks=[figures])
    module = MaePretraining(to_dict(cfg))
    counts = parameter_counts(module)
    print(
        f"{cfg.modality.upper()} MAE: encoder {counts[f'{cfg.modality}_encoder'] / 1e6:.2f} M, "
        f"decoder {counts['other'] / 1e6:.2f} M, total {counts['total'] / 1e6:.2f} M parameters; "
        f"{len(data.train_set)} train / {len(data.val_set)} val items from {store.root}",
        flush=True,
    )
    fit_stage(trainer, module, data, resume_from)
    print(f"run folder: {out}", flush=True)
    return 0
