"""Stage 2, `ptacl align`: joint contrastive training of the ECG and CMR encoders (PTACL), in
one file: `AlignRunConfig`, `AlignModule` (the LightningModule), `AlignData` (its DataModule)
and `fit`, which the command calls.

    L = L_global + β · L_local

L_global: InfoNCE between the projected, mean-pooled embeddings of the two encoders (negatives:
the other subjects of the global batch). L_local: within each subject, each of the T ECG
heartbeat-phase steps against the subject's own T CMR steps, with the alignment matrix as target
(or the "CosSim++" ablation). The local loss adds no parameters: it reads the encoders' tokens
(default) or sends them through the global projection heads.

`AlignModule.forward` / `.losses` are plain torch (usable without a Trainer); the validation
metrics come from `ptacl.eval.metrics`, summed over processes by `AlignmentSums`; Figure 2 is
drawn by `ptacl.training.figures.LocalSimilarityFigure`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import lightning as L
import numpy as np
import torch
from torch import nn
from torchmetrics import Metric

from ptacl.config import ConfigError, from_dict
from ptacl.data.augment_cmr import CmrAugmentConfig
from ptacl.data.augment_ecg import EcgAugmentConfig
from ptacl.eval.metrics import local_similarity, retrieval_hits, temporal_alignment_hits
from ptacl.losses import (
    cosine_alignment_loss,
    global_contrastive_loss,
    local_contrastive_loss,
)
from ptacl.models import (
    CmrEncoderConfig,
    EcgEncoderConfig,
    encoder_from_config,
)
from ptacl.models.heads import HeadConfig, projection_head
from ptacl.models.local import cmr_local_embeddings, ecg_local_embeddings
from ptacl.training.feature_cache import ContrastiveModule
from ptacl.training.loaders import DataConfig, StageData
from ptacl.training.optim import OptimConfig
from ptacl.training.trainer import TrainerConfig, compile_blocks

if TYPE_CHECKING:
    from ptacl.data.store import Store


@dataclass(frozen=True)
class AlignLossConfig:
    """Hyperparameters of L = L_global + β · L_local (defaults: the paper's regression runs)."""

    temperature_global: float = 0.1
    temperature_local: float = 1.0
    sigma: float = 0.1  # width of the soft alignment; 0 = hard (identity) alignment
    beta: float = 1.0  # weight of the local loss; 0 = the "global only" baseline
    ecg_to_cmr_weight: float = 0.5  # w in w·L_E→C + (1 − w)·L_C→E, both losses
    local_loss: Literal["contrastive", "cosine"] = "contrastive"  # "cosine" = CosSim++
    local_space: Literal["tokens", "projection"] = "tokens"
    num_steps: int = 13  # T
    circular: bool = False  # circular time distance in the alignment matrix


@dataclass(frozen=True)
class AlignRunConfig:
    """Everything `ptacl align` needs; written resolved to the run's config.yaml.

    The encoder sections are taken from the init runs when given (their weights must fit);
    the ECG crop is `ecg_encoder.samples`, the CMR frame count `cmr_encoder.frames`.
    """

    ecg_init: str = ""  # stage-1 run folder of the ECG MAE; "" = random init ("without SMP")
    cmr_init: str = ""
    ecg_encoder: EcgEncoderConfig = field(default_factory=EcgEncoderConfig)
    cmr_encoder: CmrEncoderConfig = field(default_factory=CmrEncoderConfig)
    freeze_blocks: int = 2  # first k transformer blocks of each encoder (and its embedding)
    head: HeadConfig = field(default_factory=HeadConfig)
    loss: AlignLossConfig = field(default_factory=AlignLossConfig)
    ecg_augment: EcgAugmentConfig = field(default_factory=EcgAugmentConfig)
    cmr_augment: CmrAugmentConfig = field(default_factory=CmrAugmentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def init_runs(self) -> dict[str, str]:
        """The runs whose encoders start this stage (`ptacl.stage_config.load_stage_config`)."""
        return {"ecg": self.ecg_init, "cmr": self.cmr_init}


def freeze_first_blocks(encoder: nn.Module, k: int) -> None:
    """Freeze the first k blocks and, when k > 0, everything before them (patch and position
    embeddings): training the input of a frozen block would silently shift what it sees."""
    if not 0 <= k <= len(encoder.blocks):
        raise ValueError(f"freeze_blocks={k}, but the encoder has {len(encoder.blocks)} blocks")
    if k == 0:
        return
    trainable = {id(p) for block in encoder.blocks[k:] for p in block.parameters()}
    norm = getattr(encoder, "norm", None)  # a registered encoder need not have a final norm
    trainable |= {id(p) for p in norm.parameters()} if norm is not None else set()
    for p in encoder.parameters():
        if id(p) not in trainable:
            p.requires_grad_(False)


class AlignmentSums(Metric):
    """The validation sums of one epoch, summed over processes by torchmetrics: in-batch
    retrieval hits (top-1, top-5) and queries; over the subjects with a complete beat, the
    T × T local similarity and the aligned steps (exact, ±1). Metrics: `ptacl.eval.metrics`."""

    full_state_update = False

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.add_state("hits", torch.zeros(2, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("queries", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        zeros = torch.zeros(steps, steps, dtype=torch.float64)
        self.add_state("similarity", zeros, dist_reduce_fx="sum")
        self.add_state("valid", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("aligned", torch.zeros(2, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, out: dict[str, torch.Tensor], circular: bool) -> None:
        """`out`: `AlignModule.forward`'s outputs with the local embeddings."""
        self.hits += retrieval_hits(out["z_ecg"], out["z_cmr"], (1, 5)).to(self.hits)
        self.queries += out["z_ecg"].shape[0]
        valid = out["local_valid"]
        similarity = local_similarity(out["ecg_local"][valid], out["cmr_local"][valid])  # (V, T, T)
        self.similarity += similarity.sum(dim=0).to(self.similarity)
        self.valid += int(valid.sum())
        for i, tolerance in enumerate((0, 1)):
            self.aligned[i] += temporal_alignment_hits(similarity, tolerance, circular).sum()

    def compute(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in self._defaults}


class AlignModule(ContrastiveModule):
    """The two encoders, their projection heads and the PTACL losses.

    Takes its config as a plain dict (the resolved config.yaml) so checkpoints load with
    `weights_only=True`; `encoders()` and `heads()` say which parts it holds
    (`ptacl.training.parts`). Usable without a Trainer:
    `forward` and `losses` are plain torch.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config})
        cfg = from_dict(AlignRunConfig, config)
        self.loss_config = cfg.loss
        self.optim_config = cfg.optim
        self.batch_size = cfg.data.batch_size
        self.ecg_encoder = encoder_from_config(cfg.ecg_encoder, "ecg")
        self.cmr_encoder = encoder_from_config(cfg.cmr_encoder, "cmr")
        self.ecg_head = projection_head(self.ecg_encoder.width, cfg.head)
        self.cmr_head = projection_head(self.cmr_encoder.width, cfg.head)
        freeze_first_blocks(self.ecg_encoder, cfg.freeze_blocks)
        freeze_first_blocks(self.cmr_encoder, cfg.freeze_blocks)
        if cfg.trainer.compile:
            compile_blocks(self.ecg_encoder, self.cmr_encoder)
        if cfg.loss.local_space == "tokens" and self.ecg_encoder.width != self.cmr_encoder.width:
            raise ConfigError(
                f"loss.local_space=tokens compares tokens directly, but the ECG width "
                f"{self.ecg_encoder.width} differs from the CMR width {self.cmr_encoder.width}; "
                "use loss.local_space=projection"
            )
        self.val_sums = AlignmentSums(cfg.loss.num_steps)
        self.val_similarity: np.ndarray | None = None  # (T, T) after each validation
        # trainer.accumulate_grad_batches > 1: one contrastive problem over all k·B pairs
        self.use_feature_cache(cfg.trainer.accumulate_grad_batches, cfg.trainer.grad_clip)

    def encoders(self) -> dict[str, nn.Module]:
        return {"ecg": self.ecg_encoder, "cmr": self.cmr_encoder}

    def heads(self) -> dict[str, nn.Module]:
        return {"ecg": self.ecg_head, "cmr": self.cmr_head}

    # --- model -------------------------------------------------------------------------------

    def forward(
        self, ecg: torch.Tensor, cmr: torch.Tensor, r_peaks: torch.Tensor, *, local: bool = True
    ) -> dict[str, torch.Tensor]:
        """ecg (B, C, S), cmr (B, 1, F, H, W), r_peaks (B, P) sample indices (-1 padded).

        Returns z_ecg, z_cmr (B, d) projected global embeddings and, with `local`, ecg_local and
        cmr_local (B, T, D) (d with local_space=projection) and local_valid (B,) bool.
        """
        ecg_tokens = self.ecg_encoder.forward_features(ecg)  # (B, L_E, D)
        cmr_tokens = self.cmr_encoder.forward_features(cmr)  # (B, L_C, D)
        out = {
            "z_ecg": self.ecg_head(self.ecg_encoder.pool(ecg_tokens)),  # (B, d)
            "z_cmr": self.cmr_head(self.cmr_encoder.pool(cmr_tokens)),  # (B, d)
        }
        if local:
            steps = self.loss_config.num_steps
            ecg_local, valid = ecg_local_embeddings(
                self.ecg_encoder.time_tokens(ecg_tokens),  # (B, L_t, D)
                r_peaks,
                self.ecg_encoder.samples_per_step,
                steps,
            )  # (B, T, D), (B,)
            cmr_time = self.cmr_encoder.time_tokens(cmr_tokens)  # (B, T_C, D)
            cmr_local = cmr_local_embeddings(cmr_time, steps)  # (B, T, D)
            if self.loss_config.local_space == "projection":
                ecg_local, cmr_local = self.ecg_head(ecg_local), self.cmr_head(cmr_local)
            out.update(ecg_local=ecg_local, cmr_local=cmr_local, local_valid=valid)
        return out

    def losses(
        self, out: dict[str, torch.Tensor], *, gather: bool = True
    ) -> dict[str, torch.Tensor]:
        """{"loss", "global", and "local" when `out` has local embeddings}. The local loss joins
        "loss" (weighted by β) only when β > 0; with β = 0 it is still reported."""
        cfg = self.loss_config
        global_loss = global_contrastive_loss(
            out["z_ecg"], out["z_cmr"], cfg.temperature_global, cfg.ecg_to_cmr_weight, gather=gather
        )
        result = {"global": global_loss, "loss": global_loss}
        if "ecg_local" in out:
            args = (out["ecg_local"], out["cmr_local"])
            if cfg.local_loss == "contrastive":
                local = local_contrastive_loss(
                    *args,
                    cfg.temperature_local,
                    cfg.sigma,
                    cfg.ecg_to_cmr_weight,
                    valid=out["local_valid"],
                    circular=cfg.circular,
                )
            else:
                local = cosine_alignment_loss(
                    *args, cfg.sigma, valid=out["local_valid"], circular=cfg.circular
                )
            result["local"] = local
            if cfg.beta > 0:
                result["loss"] = global_loss + cfg.beta * local
        return result

    # --- Lightning ---------------------------------------------------------------------------

    def _embed(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        # with β = 0 the local embeddings are not even computed: "global only" costs nothing more
        return self(batch["ecg"], batch["cmr"], batch["r_peaks"], local=self.loss_config.beta > 0)

    def _train_metrics(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        metrics = self.losses(out)
        if "local_valid" in out:
            metrics["local_valid"] = out["local_valid"].float().mean()
        return metrics

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        metrics = self.step_metrics(batch)  # with the feature cache: all k·B, at the k-th
        if metrics is None:
            return None
        size = batch["ecg"].shape[0] * self.accumulate
        for name, value in metrics.items():
            self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=size)
        return metrics["loss"]  # with the feature cache: detached, for callbacks only

    def on_validation_epoch_start(self) -> None:
        self.val_sums.reset()
        self.val_similarity = None  # a validation without complete beats leaves no matrix

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        out = self(batch["ecg"], batch["cmr"], batch["r_peaks"], local=True)
        # per-process batches may differ in size here, so no gather: in-batch negatives only
        losses = self.losses(out, gather=False)
        size = batch["ecg"].shape[0]
        for name, value in losses.items():
            self.log(f"val/{name}", value, prog_bar=name == "loss", sync_dist=True, batch_size=size)
        self.val_sums.update(out, self.loss_config.circular)

    def on_validation_epoch_end(self) -> None:
        sums = {k: v.cpu() for k, v in self.val_sums.compute().items()}  # over every process
        queries, valid = float(sums["queries"]), float(sums["valid"])
        if queries > 0:
            self.log("val/top1", float(sums["hits"][0]) / queries)
            self.log("val/top5", float(sums["hits"][1]) / queries)
        if valid > 0:
            steps = self.loss_config.num_steps
            self.log("val/alignment_acc_exact", float(sums["aligned"][0]) / (valid * steps))
            self.log("val/alignment_acc", float(sums["aligned"][1]) / (valid * steps))
            self.val_similarity = (sums["similarity"] / valid).numpy()
        self.log("val/local_valid", valid / max(queries, 1.0))


class AlignData(StageData):
    """The paired subjects (an ECG and a cine) of the train split, and of the val split."""

    def __init__(self, cfg: AlignRunConfig, store: Store) -> None:
        from ptacl.data.datasets import PairedDataset

        def dataset(split: str, train: bool) -> PairedDataset:
            return PairedDataset(
                store,
                split,
                train=train,
                ecg_augment=cfg.ecg_augment,
                cmr_augment=cfg.cmr_augment,
                crop=cfg.ecg_encoder.samples,
                frames=cfg.cmr_encoder.frames,
                seed=cfg.trainer.seed,
            )

        super().__init__(dataset("train", True), dataset("val", False), cfg.data)


def _warn_random_frozen(cfg: AlignRunConfig) -> None:
    # Kept as configured (an explicit setting is not overridden behind the user's back), but said
    # loudly: frozen blocks of a random encoder stay random, which is not the paper's "without
    # SMP" ablation (`ptacl benchmark` trains that one with freeze_blocks=0).
    uninit = [m.upper() for m, run in cfg.init_runs().items() if not run]
    if cfg.freeze_blocks and uninit:
        print(
            f"ptacl align: warning: no init run for the {' and '.join(uninit)} encoder, yet "
            f"freeze_blocks={cfg.freeze_blocks} freezes its first blocks and embeddings at their "
            "random weights; pass freeze_blocks=0 to train it whole (the paper's 'without SMP')",
            file=sys.stderr,
        )


def _start_from_init_runs(module: AlignModule, cfg: AlignRunConfig) -> str | None:
    """Load each init run's encoder weights; the reason (one line) when one does not fit."""
    from ptacl.runs import RunDirError, load_encoder_weights

    for modality, run in cfg.init_runs().items():
        if run:
            try:
                module.encoders()[modality].load_state_dict(load_encoder_weights(run, modality))
            except (RunDirError, RuntimeError) as e:
                return f"{run}: cannot start the {modality} encoder: {e}"
    return None


def _describe(module: AlignModule, cfg: AlignRunConfig, data: AlignData, store: Store) -> str:
    from ptacl.training.parts import parameter_counts

    counts, loss = parameter_counts(module), cfg.loss
    return (
        f"PTACL: trainable ECG encoder {counts['ecg_encoder'] / 1e6:.2f} M, CMR encoder "
        f"{counts['cmr_encoder'] / 1e6:.2f} M, heads {counts['heads'] / 1e6:.2f} M "
        f"(first {cfg.freeze_blocks} blocks frozen); β={loss.beta}, σ={loss.sigma}, "
        f"τ_global={loss.temperature_global}, τ_local={loss.temperature_local}, "
        f"local={loss.local_loss} on {loss.local_space}; init: ECG "
        f"{cfg.ecg_init or 'random'}, CMR {cfg.cmr_init or 'random'}; "
        f"{len(data.train_set)} train / {len(data.val_set)} val pairs from {store.root}"
    )


def fit(cfg: AlignRunConfig, store: Store, out: Path, resume_from: Path | None) -> int:
    """`ptacl align`: train both encoders and their heads into run folder `out`, starting from
    the init runs' encoders (not on resume: the checkpoint holds the weights), continuing from
    `resume_from` when given. Returns the exit status (2: an empty val split, or init weights
    that do not fit)."""
    from ptacl.config import to_dict
    from ptacl.training.figures import LocalSimilarityFigure
    from ptacl.training.trainer import build_trainer, fit_stage

    data = AlignData(cfg, store)
    if not data.usable("ptacl align", store.root, "paired subjects"):
        return 2
    _warn_random_frozen(cfg)
    # The module and its init runs before the Trainer: a config or an init run that cannot be
    # used is one line before Lightning prints anything (seeded as build_trainer seeds again).
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    module = AlignModule(to_dict(cfg))
    problem = None if resume_from is not None else _start_from_init_runs(module, cfg)
    if problem is not None:
        print(f"ptacl align: {problem}", file=sys.stderr)
        return 2
    label = "global only" if cfg.loss.beta == 0 else f"PTACL σ={cfg.loss.sigma}"
    # best.ckpt by the validation *global* loss, for Global only and PTACL alike: the patient-level
    # alignment is what evaluation and export use, and in the retrieval setting (τ_local 0.07) the
    # local term would otherwise pick a checkpoint whose global alignment had already overfitted.
    trainer = build_trainer(
        cfg.trainer,
        out,
        monitor="val/global",
        width=max(cfg.ecg_encoder.width, cfg.cmr_encoder.width),
        callbacks=[LocalSimilarityFigure(Path(out) / "figures", label)],
        feature_cache=cfg.trainer.accumulate_grad_batches > 1,
    )
    print(_describe(module, cfg, data, store), flush=True)
    fit_stage(trainer, module, data, resume_from)
    print(f"run folder: {out}", flush=True)
    return 0
