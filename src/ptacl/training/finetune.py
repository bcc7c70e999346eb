"""Fine-tuning with attention pooling (the paper's FN+AP): an encoder regresses the phenotypes.

A learned query attends over all ECG tokens (`AttentionPoolHead`), a linear layer maps the pooled
vector to the P phenotypes. Targets are standardised with the train split's mean and SD (per
phenotype, over subjects with a value; ddof 1); unknown (NaN) targets are masked out of the loss,
which is the mean squared error over the known entries. Every parameter trains (full
fine-tuning); training stops early when the validation loss has not improved for
`patience` validations, and the best validation checkpoint is scored on the test split.
The encoder starts from a run's ECG encoder (stage 1, stage 2, or another fine-tune) or from a
random initialisation (`model: none`, the supervised baseline). `modality: cmr` does the same
with a CMR encoder on the CMRs (the supervised CMR baseline of Table 2); ECG is the default.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from torch import nn

from ptacl.config import from_dict
from ptacl.data.augment_cmr import CmrAugmentConfig
from ptacl.data.augment_ecg import EcgAugmentConfig
from ptacl.models import CmrEncoderConfig, EcgEncoderConfig, encoder_from_config
from ptacl.models.heads import AttentionPoolHead
from ptacl.training.loaders import DataConfig
from ptacl.training.optim import OptimConfig, stage_optimizers
from ptacl.training.trainer import TrainerConfig, compile_blocks


@dataclass(frozen=True)
class AttentionPoolConfig:
    heads: int = 8
    dropout: float = 0.0  # before the output layer


@dataclass(frozen=True)
class FinetuneConfig:
    stage: str = "finetune"  # marks the run folder for `ptacl embed` / `evaluate`
    modality: Literal["ecg", "cmr"] = "ecg"  # which encoder regresses the phenotypes
    model: str = "none"  # the run whose encoder of `modality` is fine-tuned, or none (random)
    ecg_encoder: EcgEncoderConfig = field(default_factory=EcgEncoderConfig)  # from `model`
    cmr_encoder: CmrEncoderConfig = field(default_factory=CmrEncoderConfig)  # used if cmr
    head: AttentionPoolConfig = field(default_factory=AttentionPoolConfig)
    patience: int = 5  # validations without improvement before stopping
    # Training-time ECG augmentation; off by default (the paper does not say), on with
    # augment.enabled=true.
    augment: EcgAugmentConfig = field(default_factory=lambda: EcgAugmentConfig(enabled=False))
    cmr_augment: CmrAugmentConfig = field(default_factory=lambda: CmrAugmentConfig(enabled=False))
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(base_lr=1e-4, warmup_steps=500, min_lr_ratio=0.01)
    )
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(max_steps=20_000))


def masked_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of (pred - target)² over the entries whose target is known: (B, P) x 2 -> ().
    NaN targets contribute neither to the sum nor to the count; a batch with none known gives 0
    (with a gradient of 0), not NaN."""
    known = ~torch.isnan(target)
    diff = torch.where(known, pred - torch.nan_to_num(target), torch.zeros_like(pred))
    return (diff**2).sum() / known.sum().clamp_min(1)


def target_statistics(phenotypes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD (ddof 1) per column of (N, P) train targets, NaN ignored; SD 1 where it is
    0 or undefined, so a constant phenotype standardises to 0 instead of NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column is handled below
        mean = np.nanmean(phenotypes, axis=0)
        sd = np.nanstd(phenotypes, axis=0, ddof=1)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    sd = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
    return mean.astype(np.float32), sd.astype(np.float32)


class FinetuneModule(L.LightningModule):
    """The encoder of `config["modality"]` + attention-pooling head, trained on standardised
    phenotypes.

    The encoder is the attribute `ecg_encoder` (or `cmr_encoder`) so `load_encoder_weights(run,
    modality)` finds it; the target mean and SD are buffers, saved with the weights.
    """

    def __init__(
        self, config: dict[str, Any], target_mean: Sequence[float], target_sd: Sequence[float]
    ) -> None:
        super().__init__()
        self.save_hyperparameters(
            {"config": config, "target_mean": list(target_mean), "target_sd": list(target_sd)}
        )
        cfg = from_dict(FinetuneConfig, config)
        self.optim_config = cfg.optim
        self.batch_size = cfg.data.batch_size
        self.modality = cfg.modality
        encoder_config = cfg.ecg_encoder if cfg.modality == "ecg" else cfg.cmr_encoder
        self.add_module(
            f"{cfg.modality}_encoder", encoder_from_config(encoder_config, cfg.modality)
        )
        if cfg.trainer.compile:
            compile_blocks(self.encoder)
        outputs = len(target_mean)
        self.head = AttentionPoolHead(
            self.encoder.width, outputs, heads=cfg.head.heads, dropout=cfg.head.dropout
        )
        self.register_buffer("target_mean", torch.tensor(list(target_mean), dtype=torch.float32))
        self.register_buffer("target_sd", torch.tensor(list(target_sd), dtype=torch.float32))

    @property
    def encoder(self) -> nn.Module:
        return getattr(self, f"{self.modality}_encoder")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ECG (B, C, S) or CMR (B, 1, F, H, W) -> (B, P) standardised predictions."""
        return self.head(self.encoder.forward_features(x))

    def predict_phenotypes(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's input -> (B, P) predictions in the phenotypes' units."""
        return self(x) * self.target_sd + self.target_mean

    def _loss(self, batch: dict[str, Any]) -> torch.Tensor:
        target = (batch["phenotypes"] - self.target_mean) / self.target_sd  # NaN stays NaN
        return masked_mse(self(batch[self.modality]).float(), target)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["phenotypes"]))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        loss = self._loss(batch)
        size = len(batch["phenotypes"])
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=size)

    def configure_optimizers(self) -> dict[str, Any]:
        return stage_optimizers(self, self.optim_config, self.batch_size)


@torch.no_grad()
def predict_split(
    module: FinetuneModule, dataset: Any, *, batch_size: int = 32, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(eids (N,), true (N, P), predicted (N, P)) over a dataset, in the phenotypes' units."""
    from torch.utils.data import DataLoader

    module = module.to(device).eval()
    eids, truth, pred = [], [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        eids += list(batch["eid"])
        truth.append(batch["phenotypes"].numpy())
        x = batch[module.modality].to(device)
        pred.append(module.predict_phenotypes(x).float().cpu().numpy())
    return np.asarray(eids, dtype=str), np.concatenate(truth), np.concatenate(pred)
