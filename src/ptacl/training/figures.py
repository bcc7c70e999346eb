"""The figures the training stages draw while they train, in one place: Lightning callbacks
and their drawings, kept out of the stage modules (which hold model, steps and optimisers).

- `ReconstructionFigure` (stage 1, `ptacl pretrain`): what the MAE saw and rebuilt, with a red
  note while it still predicts the mean (`mean_plateau_note`).
- `LocalSimilarityFigure` (stage 2, `ptacl align`): the paper's Figure 2 after each validation,
  drawn by `ptacl.eval.figures.alignment_figure`, which the evaluation report draws too.

Here rather than in `ptacl.eval`: callbacks need Lightning, which the evaluation layer does
not import. matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn

from ptacl.schema import LEADS


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


class LocalSimilarityFigure(Callback):
    """After each validation: figures/local_similarity_step<N>.png (+ .npy of the matrix) and a
    copy named local_similarity_latest.png: the T × T ECG–CMR similarity averaged over the
    validation subjects with a complete beat (the paper's Figure 2)."""

    def __init__(self, out_dir: str | Path, label: str = "") -> None:
        self.out_dir = Path(out_dir)
        self.label = label

    # on_validation_end: Lightning runs callbacks' on_validation_epoch_end before the module's,
    # which is where the matrix of this validation is completed.
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        matrix = getattr(pl_module, "val_similarity", None)
        if matrix is None:
            rank_zero_warn(
                "no validation subject has a complete beat (two R peaks) inside its ECG crop: "
                "no local similarity figure, no alignment accuracy"
            )
            return
        metrics = trainer.callback_metrics
        accuracy = metrics.get("val/alignment_acc")
        title = f"{self.label} step {trainer.global_step}".strip()
        if accuracy is not None:
            title += f", alignment acc (±1) {float(accuracy):.3f}"
        measured = {name: float(metrics[key]) for name, key in
                    (("exact", "val/alignment_acc_exact"), ("±1", "val/alignment_acc"))
                    if metrics.get(key) is not None}  # fmt: skip
        circular = bool(getattr(getattr(pl_module, "loss_config", None), "circular", False))
        stem = f"local_similarity_step{trainer.global_step:07d}"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        np.save(self.out_dir / f"{stem}.npy", matrix)
        for path in (self.out_dir / f"{stem}.png", self.out_dir / "local_similarity_latest.png"):
            save_similarity_figure(matrix, path, title, measured or None, circular=circular)


def save_similarity_figure(
    matrix: np.ndarray,
    path: Path,
    title: str,
    accuracy: dict[str, float] | None = None,
    *,
    circular: bool = False,
) -> Path:
    """The T × T ECG–CMR local similarity (the paper's Figure 2) as a PNG at `path`, with the
    alignment accuracy against chance (`ptacl.eval.figures.alignment_figure`); `accuracy`:
    {"exact", "±1"} of this validation, per subject; `circular`: the loss's time distance."""
    from ptacl.eval.figures import alignment_figure

    source = "validation, per subject" if accuracy else "argmax of this mean matrix"
    fig = alignment_figure(matrix, title, accuracy=accuracy, source=source, circular=circular)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
