"""`ptacl finetune`, in one file: fine-tuning with attention pooling (the paper's FN+AP), an
encoder regressing the phenotypes. `FinetuneConfig`, `FinetuneModule` (the LightningModule),
`FinetuneData` (its DataModule) and `fit`, which the command calls.

A learned query attends over all ECG tokens (`AttentionPoolHead`), a linear layer maps the pooled
vector to the P phenotypes. Targets are standardised with the train split's mean and SD (per
phenotype, over subjects with a value; ddof 1); unknown (NaN) targets are masked out of the loss,
which is the mean squared error over the known entries. Every parameter trains (full
fine-tuning); training stops early when the validation score (`select`) has not improved for
`patience` validations, and the best validation checkpoint is scored on the test split (an
ECG's prediction averaged over its crops, as `ptacl predict` averages it).

The field's recipe (issue 23), each part a config option, off by default
(`head_init=random optim.layer_decay=1 select=loss`): measured one at a time on 3,001 test
subjects, the probe head and the layer decay each gave up part of FN+AP's gain over its linear
probe and the selection changed nothing (RESULTS.md, "FN+AP against its linear probe"):
- LP-FT (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features"): `head_init: ridge`
  starts the head's output layer from the closed-form ridge regression of the standardised
  train targets on the frozen encoder's pooled vectors (`AttentionPoolHead.pooled`, the
  encoder and the rest of the head as initialised), the penalty per phenotype by validation
  MSE from `ridge_alphas`. Full fine-tuning then starts at the linear probe's predictions
  instead of a random head's, whose gradients would first pull the pretrained features
  towards it.
- Layer-wise lr decay over the encoder's blocks (`optim.layer_decay`, BEiT / MAE fine-tuning;
  `ptacl.training.optim.layer_decay_scales`), after the warm-up + cosine every stage has.
- `select: r2`: early stopping and the best checkpoint by the validation R² (mean over the
  phenotypes of the R² of the standardised predictions), the figure the fine-tune is judged
  by, rather than by the validation loss, whose minimum favours the phenotypes with the most
  variance left.
The encoder starts from a run's ECG encoder (stage 1, stage 2, or another fine-tune) or from a
random initialisation (`model: none`, the supervised baseline). `modality: cmr` does the same
with a CMR encoder on the CMRs (the supervised CMR baseline of Table 2); ECG is the default.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ptacl.config import from_dict
from ptacl.data.augment_cmr import CmrAugmentConfig
from ptacl.data.augment_ecg import EcgAugmentConfig
from ptacl.eval.metrics import r2_from_sums, r2_sums
from ptacl.models import CmrEncoderConfig, EcgEncoderConfig, encoder_from_config
from ptacl.models.heads import AttentionPoolHead
from ptacl.training.loaders import DataConfig, StageData, modality_dataset
from ptacl.training.optim import OptimConfig, stage_optimizers
from ptacl.training.trainer import TrainerConfig, compile_blocks

if TYPE_CHECKING:
    from ptacl.data.store import Store


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
    # LP-FT: the head's output layer from a ridge fit on the frozen pooled vectors ("ridge"),
    # or left at its random initialisation ("random", the old recipe)
    head_init: Literal["random", "ridge"] = "random"
    # penalties of the ridge init on standardised features (alpha × n_known × I,
    # `lp_ft.ridge_fit`), chosen per phenotype on validation
    ridge_alphas: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    # what picks the best checkpoint and stops early: the validation R² (mean over phenotypes,
    # higher is better) or the validation loss (lower is better, the old recipe)
    select: Literal["r2", "loss"] = "loss"
    # Training-time ECG augmentation; off by default (the paper does not say), on with
    # augment.enabled=true.
    augment: EcgAugmentConfig = field(default_factory=lambda: EcgAugmentConfig(enabled=False))
    cmr_augment: CmrAugmentConfig = field(default_factory=lambda: CmrAugmentConfig(enabled=False))
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(base_lr=1e-4, warmup_steps=500, min_lr_ratio=0.01)
    )
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(max_steps=20_000))

    def init_runs(self) -> dict[str, str]:
        """The run whose encoder is fine-tuned (`ptacl.stage_config.load_stage_config`)."""
        return {self.modality: self.model}


def known_target_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
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

    `encoders()` and `heads()` say which parts it holds (`ptacl.training.parts`); the encoder
    is the attribute `<modality>_encoder`, the checkpoint key runs older than weights/ are read
    by. The target mean and SD are buffers, saved with the weights.
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
        self._val_sums: torch.Tensor | None = None  # r2_sums over the current validation

    @property
    def encoder(self) -> nn.Module:
        return getattr(self, f"{self.modality}_encoder")

    def encoders(self) -> dict[str, nn.Module]:
        return {self.modality: self.encoder}

    def heads(self) -> dict[str, nn.Module]:
        return {"phenotypes": self.head}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ECG (B, C, S) or CMR (B, 1, F, H, W) -> (B, P) standardised predictions."""
        return self.head(self.encoder.forward_features(x))

    def predict_phenotypes(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's input -> (B, P) predictions in the phenotypes' units."""
        return self(x) * self.target_sd + self.target_mean

    def _predict_standardised(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(standardised predictions (B, P), standardised targets (B, P), NaN unknown)."""
        target = (batch["phenotypes"] - self.target_mean) / self.target_sd  # NaN stays NaN
        return self(batch[self.modality]).float(), target

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = known_target_mse(*self._predict_standardised(batch))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["phenotypes"]))
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_sums = None

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        pred, target = self._predict_standardised(batch)
        size = len(batch["phenotypes"])
        self.log(
            "val/loss",
            known_target_mse(pred, target),
            prog_bar=True,
            sync_dist=True,
            batch_size=size,
        )
        sums = r2_sums(pred.detach(), target)
        self._val_sums = sums if self._val_sums is None else self._val_sums + sums

    def on_validation_epoch_end(self) -> None:
        """val/r2: the mean over phenotypes of the R² of all validation rows at once (sums
        over processes first), phenotypes with an undefined R² left out; -inf if none."""
        if self._val_sums is None:
            return
        sums = self._val_sums
        if self.trainer.world_size > 1:
            sums = self.all_gather(sums).sum(dim=0)
        r2 = r2_from_sums(sums)
        defined = r2[~torch.isnan(r2)]
        score = defined.mean() if len(defined) else torch.tensor(-torch.inf, dtype=r2.dtype)
        self.log("val/r2", score.float(), prog_bar=True)
        self._val_sums = None

    def configure_optimizers(self) -> dict[str, Any]:
        return stage_optimizers(self, self.optim_config, self.batch_size)


def selection(cfg: FinetuneConfig) -> tuple[str, Literal["min", "max"]]:
    """The logged metric that picks the best checkpoint and stops early, and its direction."""
    return ("val/r2", "max") if cfg.select == "r2" else ("val/loss", "min")


def early_stopping(cfg: FinetuneConfig) -> L.Callback:
    """Stops when `selection(cfg)` has not improved for `cfg.patience` validations."""
    from lightning.pytorch.callbacks import EarlyStopping

    monitor, mode = selection(cfg)
    # not finite: val/r2 is -inf when no phenotype has an R² on validation (a store of one or
    # two val subjects); the first checkpoint stays the best and patience runs out, as for a
    # flat score, instead of stopping at once
    return EarlyStopping(monitor=monitor, mode=mode, patience=cfg.patience, check_finite=False)


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


@torch.no_grad()
def predict_ecg_crops(
    module: FinetuneModule,
    store: Store,
    rows: np.ndarray,
    *,
    batch_size: int = 32,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(eids (N,), true (N, P), predicted (N, P)) of the store's ECGs at `rows`, predictions
    averaged over each recording's crops (`ptacl.embedding.crops`): what the exported bundle
    predicts, so the test R² `ptacl finetune` reports is that of the head a user deploys."""
    from ptacl.embedding.crops import store_outputs

    module = module.to(device).eval()
    out = store_outputs(
        lambda x: {"phenotypes": module.predict_phenotypes(x)},
        store,
        rows,
        crop=int(module.encoder.samples),
        batch_size=batch_size,
        device=device,
    )
    eids = np.asarray(store.subjects["eid"].astype(str).to_numpy()[rows], dtype=str)
    truth = np.asarray(store.phenotypes[rows], dtype=np.float32)
    return eids, truth, out["phenotypes"]


class FinetuneData(StageData):
    """The subjects of the train, val and test splits with an ECG (or a cine): training with
    `augment` (`cmr_augment`) when enabled; val and test as evaluated."""

    def __init__(self, cfg: FinetuneConfig, store: Store) -> None:
        modality = cfg.modality
        encoder = cfg.ecg_encoder if modality == "ecg" else cfg.cmr_encoder
        augment = cfg.augment if modality == "ecg" else cfg.cmr_augment

        def dataset(split: str, train: bool) -> Dataset:
            return modality_dataset(store, modality, split, train=train, encoder=encoder,
                                    augment=augment if train and augment.enabled else None,
                                    seed=cfg.trainer.seed if train else 0)  # fmt: skip

        super().__init__(dataset("train", True), dataset("val", False), cfg.data)
        self.test_set = dataset("test", False)


def fit(
    cfg: FinetuneConfig, store: Store, out: Path, resume_from: Path | None, *, n_boot: int = 1000
) -> int:
    """`ptacl finetune`: train on the train split, early-stop on the validation score, then
    score the best checkpoint on the test split: out/test_predictions.npz and
    out/test_metrics.json. Returns the exit status (2: no validation subjects)."""
    from ptacl.config import to_dict
    from ptacl.runs import load_encoder_weights
    from ptacl.training.lp_ft import init_head_from_ridge
    from ptacl.training.trainer import build_trainer, fit_stage

    what = cfg.modality.upper()
    data = FinetuneData(cfg, store)
    if not data.usable("ptacl finetune", store.root, what):
        return 2
    print(
        f"FN+AP from {cfg.model}: {len(data.train_set)} train / {len(data.val_set)} val / "
        f"{len(data.test_set)} test {what}s from {store.root}",
        flush=True,
    )
    monitor, mode = selection(cfg)
    stop = early_stopping(cfg)
    width = (cfg.ecg_encoder if cfg.modality == "ecg" else cfg.cmr_encoder).width
    trainer = build_trainer(
        cfg.trainer, out, monitor=monitor, mode=mode, width=width, callbacks=[stop]
    )
    train_rows = store.indices("train", **{cfg.modality: True})
    mean, sd = target_statistics(np.asarray(store.phenotypes[train_rows]))
    module = FinetuneModule(to_dict(cfg), mean.tolist(), sd.tolist())
    if cfg.model != "none" and resume_from is None:
        module.encoder.load_state_dict(load_encoder_weights(cfg.model, cfg.modality))
    if cfg.head_init == "ridge" and resume_from is None:  # a resumed run has its head
        # the train ECGs as training sees them (random crops, augmentation if on), not one
        # fixed crop: the head must fit what the training steps feed it.
        gpu = cfg.trainer.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
        chosen, val_r2 = init_head_from_ridge(
            module,
            data.train_set,
            data.val_set,
            cfg.ridge_alphas,
            batch_size=cfg.data.batch_size,
            device="cuda" if gpu else "cpu",
        )
        print(
            f"head initialised from the ridge probe: alpha per phenotype {chosen.tolist()}, "
            f"val R² {np.round(val_r2, 3).tolist()}",
            flush=True,
        )
    fit_stage(trainer, module, data, resume_from)
    if not trainer.is_global_zero:
        return 0
    return _score_test(module, data, cfg, store, out, int(trainer.global_step), n_boot)


def _score_test(
    module: FinetuneModule,
    data: FinetuneData,
    cfg: FinetuneConfig,
    store: Store,
    out: Path,
    step: int,
    n_boot: int,
) -> int:
    """The best checkpoint on the test split: out/test_predictions.npz, out/test_metrics.json."""
    from ptacl.eval.bootstrap import r2_ci
    from ptacl.eval.comparisons import save_predictions
    from ptacl.eval.probe import r2_per_phenotype
    from ptacl.eval.report import regression_section
    from ptacl.runs import checkpoint_state

    names, what = list(store.manifest.get("phenotypes", [])), cfg.modality.upper()
    ckpt, state = checkpoint_state(out)  # best, or last when no validation ran
    module.load_state_dict(state)
    if len(data.test_set) == 0:
        print(f"ptacl finetune: {store.root}: no {what} in the test split; not scored")
        return 0
    # Test ECGs over all their crops, as the exported bundle predicts them; validation (which
    # only picks the checkpoint) keeps the datasets' first-crop view.
    batch = cfg.data.batch_size
    if cfg.modality == "ecg":
        eids, truth, pred = predict_ecg_crops(module, store, data.test_set.rows, batch_size=batch)
    else:
        eids, truth, pred = predict_split(module, data.test_set, batch_size=batch)
    save_predictions(out / "test_predictions.npz", eids, truth, pred, names)
    if cfg.modality == "ecg":  # the endpoints calibrate FN+AP's scores on val (eval/endpoint_eval)
        val = predict_ecg_crops(module, store, data.val_set.rows, batch_size=batch)
        save_predictions(out / "val_predictions.npz", *val, names)
    point = r2_per_phenotype(truth, pred, names)
    lo, hi = r2_ci(truth, pred, names, n_boot=n_boot, seed=cfg.trainer.seed)
    metrics = {
        "input": what,
        "checkpoint": str(ckpt),
        "stopped_at_step": step,
        "n_boot": n_boot,
        "r2": regression_section(point, lo, hi),
    }
    (out / "test_metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    print(point.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"test R² -> {out / 'test_metrics.json'}", flush=True)
    return 0
