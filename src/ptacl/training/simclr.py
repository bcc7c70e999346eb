"""`ptacl simclr`, in one file: the SimCLR baselines (Chen et al. 2020), one encoder, two
augmented views, NT-Xent. `SimclrRunConfig`, `TwoViews`,
`SimclrPretraining` (the LightningModule), `SimclrData` (its DataModule) and `fit`.

Each sample is augmented twice with the modality's own augmentations (`ptacl.data.augment_ecg`,
`ptacl.data.augment_cmr`: for the ECG two random crops with FT surrogate, jitter and rescale),
both views pass through the encoder, mean pooling and a projection head (ptacl.models.heads),
and `nt_xent_loss` pulls the two views of a sample together against the other 2B − 2 views of
the global batch. The projection head is discarded for evaluation, as in SimCLR: downstream
code sees the mean-pooled encoder tokens.

The run folder follows `ptacl pretrain`'s convention (config.yaml with `modality` and an
`encoder` section; the encoder under the attribute `<modality>_encoder` in the checkpoints), so
`ptacl embed`, `load_encoder` and `ptacl align --ecg-init` take a SimCLR run like an MAE run.
The head is the attribute `projection`, not `ecg_head` / `cmr_head`, so nothing mistakes it
for a stage-2 head aligned with the other modality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from ptacl.config import depends_on, fill_dependent, from_dict
from ptacl.data.augment_cmr import CmrAugmentConfig
from ptacl.data.augment_ecg import EcgAugmentConfig
from ptacl.eval.metrics import retrieval_hits
from ptacl.losses.nt_xent import nt_xent_loss
from ptacl.models import EncoderConfig, encoder_config_class, encoder_from_config
from ptacl.models.heads import HeadConfig, projection_head
from ptacl.training.feature_cache import ContrastiveModule
from ptacl.training.loaders import AUGMENT_CONFIGS, DataConfig, StageData, modality_dataset
from ptacl.training.optim import OptimConfig
from ptacl.training.trainer import TrainerConfig, compile_blocks

if TYPE_CHECKING:
    from ptacl.data.store import Store


@dataclass(frozen=True)
class SimclrLossConfig:
    # Decision: 0.1, SimCLR's value for large batches and the usual one in ECG/CMR SimCLR work
    # (the paper does not give its baseline's temperature).
    temperature: float = 0.1


@dataclass(frozen=True)
class SimclrRunConfig:
    """`ptacl simclr`'s config. `modality` picks the type and default of `encoder` (its
    registered encoders, `ptacl.models.registry`) and `augment` (`AUGMENT_CONFIGS`)."""

    modality: Literal["ecg", "cmr"] = "ecg"
    stage: Literal["simclr"] = "simclr"
    encoder: EncoderConfig = field(
        default=None, metadata=depends_on("modality", type_of=encoder_config_class)
    )
    head: HeadConfig = field(default_factory=HeadConfig)
    loss: SimclrLossConfig = field(default_factory=SimclrLossConfig)
    augment: EcgAugmentConfig | CmrAugmentConfig = field(
        default=None, metadata=depends_on("modality", type_of=AUGMENT_CONFIGS.get)
    )
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        fill_dependent(self)


class TwoViews(Dataset):
    """Two independently augmented views of each item of a random (training-mode) dataset.

    `base` is an `EcgDataset` / `CmrDataset` built with `train=True` and an augmentation config;
    reading its item twice draws two augmentations. Items: {"view1", "view2": the two tensors
    under `key` ("ecg" (C, S) or "cmr" (1, F, H, W)), "phenotypes", "eid", "index"}.

    fixed_seed: None for fresh draws every epoch (training); an int to draw item k's views from
    the seed (fixed_seed, k) every time, in any worker, so that validation losses of different
    steps compare the same views.
    """

    def __init__(self, base: Dataset, key: str, *, fixed_seed: int | None = None) -> None:
        self.base = base
        self.key = key
        self.fixed_seed = fixed_seed

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, k: int | tuple[int, int]) -> dict[str, Any]:
        if isinstance(k, tuple):  # (epoch, k) from an EpochSampler: views from (seed, epoch, k)
            epoch, k = k
            self.base.seed_item(epoch, k)
        elif self.fixed_seed is not None:
            # First let the dataset do its once-per-worker reseed, which would otherwise
            # overwrite the per-item state on the first read in each worker.
            self.base._check_worker_seed()
            self.base._set_random_state(np.random.SeedSequence([self.fixed_seed, int(k)]))
        first, second = self.base[k], self.base[k]
        return {
            "view1": first[self.key],
            "view2": second[self.key],
            "phenotypes": first["phenotypes"],
            "eid": first["eid"],
            "index": first["index"],
        }


class SimclrPretraining(ContrastiveModule):
    """SimCLR training of the `config["modality"]` encoder with a projection head.

    Takes its config as a plain dict (the resolved config.yaml) so checkpoints load with
    `weights_only=True`. `forward` and `loss` are plain torch, usable without a Trainer.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config})
        cfg = from_dict(SimclrRunConfig, config)
        self.modality = cfg.modality
        self.temperature = cfg.loss.temperature
        self.optim_config = cfg.optim
        self.batch_size = cfg.data.batch_size
        # `<modality>_encoder`: the checkpoint key runs older than weights/ are read by
        setattr(self, f"{cfg.modality}_encoder", encoder_from_config(cfg.encoder, cfg.modality))
        self.projection = projection_head(self.encoder.width, cfg.head)
        if cfg.trainer.compile:
            compile_blocks(self.encoder)
        # trainer.accumulate_grad_batches > 1: NT-Xent over all 2·k·B views (a feature cache)
        self.use_feature_cache(cfg.trainer.accumulate_grad_batches, cfg.trainer.grad_clip)

    @property
    def encoder(self) -> torch.nn.Module:
        return getattr(self, f"{self.modality}_encoder")

    def encoders(self) -> dict[str, torch.nn.Module]:
        return {self.modality: self.encoder}

    def heads(self) -> dict[str, torch.nn.Module]:
        return {"projection": self.projection}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, S) ECG or (B, 1, F, H, W) CMR -> projected embeddings z (B, d)."""
        tokens = self.encoder.forward_features(x)  # (B, L, D)
        return self.projection(self.encoder.pool(tokens))  # (B, d)

    def loss(
        self, view1: torch.Tensor, view2: torch.Tensor, *, gather: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(NT-Xent, z1, z2) for two views of the same B samples. Both views go through the
        encoder as one batch of 2B (a ViT has no batch statistics, so this equals two passes)."""
        z1, z2 = self(torch.cat([view1, view2])).chunk(2)  # (B, d) each
        return nt_xent_loss(z1, z2, self.temperature, gather=gather), z1, z2

    def _embed(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        z1, z2 = self(torch.cat([batch["view1"], batch["view2"]])).chunk(2)  # (B, d) each
        return {"z1": z1, "z2": z2}

    def _train_metrics(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"loss": nt_xent_loss(out["z1"], out["z2"], self.temperature)}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        metrics = self.step_metrics(batch)  # with the feature cache: all k·B, at the k-th
        if metrics is None:
            return None
        size = batch["view1"].shape[0] * self.accumulate
        self.log("train/loss", metrics["loss"], prog_bar=True, batch_size=size)
        return metrics["loss"]  # with the feature cache: detached, for callbacks only

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        size = batch["view1"].shape[0]
        if size < 2:  # a last batch of one has no negatives: its loss would be exactly 0
            return
        # per-process batches may differ in size here, so no gather: in-batch negatives only
        loss, z1, z2 = self.loss(batch["view1"], batch["view2"], gather=False)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=size)
        # how often a view finds its partner first among the batch's other second views
        top1 = retrieval_hits(z1, z2, (1,))[0].float() / size
        self.log("val/view_top1", top1, sync_dist=True, batch_size=size)


class SimclrData(StageData):
    """Two augmented views of every ECG (or cine) of the train split, and of the val split.
    Validation views are augmented too (identical views would make the loss meaningless), but
    drawn from a fixed seed per item, so every validation sees the same views."""

    def __init__(self, cfg: SimclrRunConfig, store: Store) -> None:
        def dataset(split: str) -> Dataset:
            return modality_dataset(store, cfg.modality, split, train=True, augment=cfg.augment,
                                    encoder=cfg.encoder, seed=cfg.trainer.seed)  # fmt: skip

        train_set = TwoViews(dataset("train"), cfg.modality)
        val_set = TwoViews(dataset("val"), cfg.modality, fixed_seed=cfg.trainer.seed)
        super().__init__(train_set, val_set, cfg.data)


def check_views(cfg: SimclrRunConfig) -> None:
    """ConfigError when the views would be identical (no augmentation)."""
    from ptacl.config import ConfigError

    if not cfg.augment.enabled:
        raise ConfigError(
            "augment.enabled=false would make the two views identical: SimCLR needs them"
        )


def fit(
    cfg: SimclrRunConfig,
    store: Store,
    out: Path,
    resume_from: Path | None,
) -> int:
    """`ptacl simclr`: train the encoder and its projection head into run folder `out`,
    continuing from `resume_from` when given. Returns the exit status (2: an empty val split)."""
    from ptacl.config import to_dict
    from ptacl.training.parts import parameter_counts
    from ptacl.training.trainer import build_trainer, fit_stage

    data = SimclrData(cfg, store)
    if not data.usable("ptacl simclr", store.root, cfg.modality):
        return 2
    cache = cfg.trainer.accumulate_grad_batches > 1  # the module's feature cache
    trainer = build_trainer(cfg.trainer, out, width=cfg.encoder.width, feature_cache=cache)
    module = SimclrPretraining(to_dict(cfg))
    counts = parameter_counts(module)
    print(
        f"{cfg.modality.upper()} SimCLR: encoder {counts[f'{cfg.modality}_encoder'] / 1e6:.2f} M, "
        f"head {counts['heads'] / 1e6:.2f} M, total {counts['total'] / 1e6:.2f} M parameters; "
        f"{len(data.train_set)} train / {len(data.val_set)} val items from {store.root}",
        flush=True,
    )
    fit_stage(trainer, module, data, resume_from)
    print(f"run folder: {out}", flush=True)
    return 0
