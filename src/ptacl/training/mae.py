"""Stage 1: masked-autoencoder pretraining of one encoder, as a LightningModule.

The module takes its config as a plain dict (the resolved config.yaml), so its checkpoints hold
only tensors and plain values and load with `weights_only=True`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from ptacl.config import from_dict
from ptacl.data.augment_cmr import CmrAugmentConfig
from ptacl.data.augment_ecg import EcgAugmentConfig
from ptacl.models import (
    CmrEncoderConfig,
    EcgEncoderConfig,
    MaeConfig,
    MaskedAutoencoder,
    count_parameters,
    encoder_from_config,
)
from ptacl.models.mae import mean_prediction_mse
from ptacl.schema import LEADS
from ptacl.training.loaders import DataConfig
from ptacl.training.optim import OptimConfig, stage_optimizers
from ptacl.training.trainer import TrainerConfig, compile_blocks


@dataclass(frozen=True)
class EcgMaeRunConfig:
    modality: Literal["ecg"] = "ecg"
    encoder: EcgEncoderConfig = field(default_factory=EcgEncoderConfig)
    mae: MaeConfig = field(default_factory=lambda: MaeConfig(mask_ratio=0.75))
    augment: EcgAugmentConfig = field(default_factory=EcgAugmentConfig)
    data: DataConfig = field(default_factory=lambda: DataConfig(batch_size=128))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(warmup_steps=2000))
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


@dataclass(frozen=True)
class CmrMaeRunConfig:
    modality: Literal["cmr"] = "cmr"
    encoder: CmrEncoderConfig = field(default_factory=CmrEncoderConfig)
    mae: MaeConfig = field(default_factory=lambda: MaeConfig(mask_ratio=0.9))
    augment: CmrAugmentConfig = field(default_factory=CmrAugmentConfig)
    data: DataConfig = field(default_factory=lambda: DataConfig(batch_size=128))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(warmup_steps=2000))
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


MAE_RUN_CONFIGS: dict[str, type] = {"ecg": EcgMaeRunConfig, "cmr": CmrMaeRunConfig}


def parameter_counts(mae: MaskedAutoencoder) -> dict[str, int]:
    encoder = count_parameters(mae.encoder)
    total = count_parameters(mae)
    return {"encoder": encoder, "decoder": total - encoder, "total": total}


class MaePretraining(L.LightningModule):
    """MAE training of the `config["modality"]` encoder; validation masks are drawn from a
    fixed seed, so validation losses of different steps compare the same task."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config})
        cfg = from_dict(MAE_RUN_CONFIGS[config["modality"]], config)
        self.modality = cfg.modality
        self.optim_config = cfg.optim
        self.batch_size = cfg.data.batch_size
        self.seed = cfg.trainer.seed
        self.mae = MaskedAutoencoder(encoder_from_config(cfg.encoder, cfg.modality), cfg.mae)
        if cfg.trainer.compile:
            compile_blocks(self.mae)  # the encoder's and the decoder's blocks
        self.example: dict[str, torch.Tensor] | None = None  # for ReconstructionFigure

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


# ----------------------------------------------------------------------------- figures


def plot_ecg_reconstruction(
    example: dict[str, torch.Tensor], grid: tuple[int, int], leads=(0, 1, 6, 10)
):
    """Original (black) and reconstruction of the removed patches (red, shaded) for a few
    leads of one ECG. Returns a matplotlib Figure (no pyplot state)."""
    from matplotlib.figure import Figure

    x = example["input"][0]  # (C, S)
    pred = example["prediction"][0]
    removed = example["mask"][0].view(grid)  # (C, T)
    patch = x.shape[-1] // grid[1]
    fig = Figure(figsize=(12, 1.8 * len(leads)), layout="constrained")
    axes = fig.subplots(len(leads), 1, sharex=True, squeeze=False)[:, 0]
    for ax, lead in zip(axes, leads):
        ax.plot(x[lead].numpy(), color="black", lw=0.8, label="original")
        shown = pred[lead].clone()
        for t in range(grid[1]):
            if removed[lead, t]:
                ax.axvspan(t * patch, (t + 1) * patch, color="tab:red", alpha=0.08, lw=0)
            else:
                shown[t * patch : (t + 1) * patch] = float("nan")
        ax.plot(shown.numpy(), color="tab:red", lw=0.8, label="reconstruction (removed)")
        ax.set_ylabel(LEADS[lead] if lead < len(LEADS) else f"lead {lead}")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("sample (500 Hz)")
    return fig


def plot_cmr_reconstruction(example: dict[str, torch.Tensor], frames=(0, 6, 12, 18, 24)):
    """Rows: original, visible patches, reconstruction (visible pasted back), for a few
    frames of one cine. Returns a matplotlib Figure."""
    from matplotlib.figure import Figure

    rows = {
        "original": example["input"][0, 0],
        "visible (white: removed)": example["visible"][0, 0],
        "reconstruction": example["pasted"][0, 0],
    }
    frames = [f for f in frames if f < rows["original"].shape[0]]
    fig = Figure(figsize=(2 * len(frames), 6.3), layout="constrained")
    axes = fig.subplots(len(rows), len(frames), squeeze=False)
    for r, (name, video) in enumerate(rows.items()):
        for c, frame in enumerate(frames):
            ax = axes[r, c]
            ax.imshow(video[frame].numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"frame {frame}", fontsize=9)
            if c == 0:
                ax.set_ylabel(name)
    return fig


#: Validation loss / the mean predictor's loss above which a reconstruction figure says the
#: model is still predicting the mean. An MAE first sits on that plateau (ratio ~1.0: it outputs
#: each patch's mean) and only then learns; the demo's ECG MAE goes 1.0 -> 0.50 at step 1,750 ->
#: 0.43 at 2,000 (RESULTS.md). Within 10 % of the mean predictor the red reconstruction is
#: mostly that mean, not the signal, so the figure must not be read as "it learned".
MEAN_PLATEAU_RATIO = 0.9


def mean_plateau_note(loss: Any, baseline: Any, limit: float = MEAN_PLATEAU_RATIO) -> str | None:
    """'still predicting the mean (…)' when val loss / mean-predictor loss > `limit`, else None
    (also when either is unknown or the baseline is 0)."""
    if loss is None or baseline is None or float(baseline) <= 0:
        return None
    ratio = float(loss) / float(baseline)
    if ratio <= limit:
        return None
    worse = " (or worse)" if ratio > 1 else ""
    return (
        f"still predicting the mean{worse}: val loss {ratio:.2f} × the mean predictor's "
        f"(> {limit:g}); the reconstruction is not yet the signal"
    )


#: Suptitle size in points, and the width of one of its characters, on average, in points: a
#: line holds (figure width / that) characters before it would run past both edges.
TITLE_SIZE = 11
TITLE_CHAR_WIDTH = 0.65 * TITLE_SIZE


def title_figure(fig: Any, title: str, note: str | None = None) -> None:
    """`title` over `fig`, and `note` below it in red (a smooth-looking reconstruction on the
    mean plateau is only each patch's mean); lines wrapped to the figure's width, since a
    centred title wider than the figure is clipped at both ends (a 4-frame CMR figure is
    8 inches wide, the note 120 characters)."""
    import textwrap

    width = max(20, int(fig.get_figwidth() * 72 / TITLE_CHAR_WIDTH))
    text = "\n".join(textwrap.fill(part, width) for part in (title, note) if part)
    fig.suptitle(text, fontsize=TITLE_SIZE, color="tab:red" if note else "black")


class ReconstructionFigure(Callback):
    """After each validation, figures/reconstruction_step<N>.png (and a copy named
    reconstruction_latest.png) of one validation example: what the model saw and rebuilt."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        example = getattr(pl_module, "example", None)
        if trainer.sanity_checking or not trainer.is_global_zero or example is None:
            return
        if pl_module.modality == "ecg":
            fig = plot_ecg_reconstruction(example, pl_module.mae.encoder.grid)
        else:
            fig = plot_cmr_reconstruction(example)
        loss = trainer.callback_metrics.get("val/loss")
        baseline = trainer.callback_metrics.get("val/mean_baseline")
        title = f"{pl_module.modality.upper()} MAE, step {trainer.global_step}"
        title += f", val loss {float(loss):.4f}" if loss is not None else ""
        title_figure(fig, title, mean_plateau_note(loss, baseline))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"reconstruction_step{trainer.global_step:07d}.png"
        fig.savefig(path, dpi=90)
        fig.savefig(self.out_dir / "reconstruction_latest.png", dpi=90)
