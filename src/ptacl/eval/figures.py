"""The evaluation's figures: P@k curves, predicted-vs-true scatters and the paper's Figure 2
(the ECG–CMR local alignment matrix with its accuracy against chance), drawn from the same
metrics.json content and arrays `ptacl.eval.report` writes up. matplotlib is imported here only,
inside the functions, so `import ptacl.eval` stays light.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ptacl.markdown import fmt, short
from ptacl.phenotypes import split_name


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def panel_grid(count: int) -> tuple[Any, Any, np.ndarray]:
    plt = _pyplot()
    cols = min(5, max(count, 1))
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.6 * rows), dpi=110, squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return plt, fig, axes.flat


def _num(value: Any) -> float:
    return np.nan if value is None else float(value)


def plot_precision_curves(retrieval: Mapping[str, Any], path: Path) -> Path:
    """P@k against k for each phenotype: the model (with its CI band) and a random ranking."""
    ks = retrieval["ks"]
    names = list(retrieval["model"])
    plt, fig, axes = panel_grid(len(names))
    for ax, name in zip(axes, names):
        model = [_num(retrieval["model"][name].get(f"P@{k}")) for k in ks]
        ax.plot(ks, model, "o-", label="model")
        ci = retrieval.get("model_ci", {}).get(name)
        if ci:
            bounds = [ci.get(f"P@{k}") or [None, None] for k in ks]
            lo, hi = [_num(b[0]) for b in bounds], [_num(b[1]) for b in bounds]
            ax.fill_between(ks, lo, hi, alpha=0.25, label="model, 95 % CI (bootstrap)")
        base = retrieval.get("random", {}).get(name)
        if base:
            random = [_num(base.get(f"P@{k}")) for k in ks]
            ax.plot(ks, random, "s--", color="grey", label="random ranking")
        ax.set_title(short(name), fontsize=9)
        ax.set_xlabel("k")
        ax.set_ylabel("P@k")
        ax.set_ylim(0, 1)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(plt, fig, path)


def plot_predictions(
    y_true: np.ndarray, y_pred: np.ndarray, columns: Sequence[str], path: Path, title: str = ""
) -> Path:
    """Predicted against true value per phenotype (test subjects), with the identity line; each
    panel titled with its R² (as in the report's table: 1 − SS_res / SS_tot over the subjects
    shown) and its axes in the phenotype's unit (mL, %, g, L/min), so a panel stands alone."""
    from ptacl.eval.probe import r2_per_phenotype

    r2 = r2_per_phenotype(y_true, y_pred, columns)
    plt, fig, axes = panel_grid(len(columns))
    for p, (ax, name) in enumerate(zip(axes, columns)):
        ok = ~np.isnan(y_true[:, p]) & ~np.isnan(y_pred[:, p])
        t, e = y_true[ok, p], y_pred[ok, p]
        ax.scatter(t, e, s=4, alpha=0.5)
        if ok.any():
            lo, hi = float(min(t.min(), e.min())), float(max(t.max(), e.max()))
            ax.plot([lo, hi], [lo, hi], "k--", linewidth=0.8)
        label, unit = split_name(name)
        ax.set_title(f"{label}: R² {fmt(r2.loc[name, 'R2'])} (n {int(ok.sum())})", fontsize=9)
        ax.set_xlabel(f"true ({unit})" if unit else "true")
        ax.set_ylabel(f"predicted ({unit})" if unit else "predicted")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(plt, fig, path)


def alignment_figure(
    matrix: np.ndarray,
    title: str,
    *,
    accuracy: Mapping[str, float] | None = None,
    source: str = "argmax of this mean matrix",
    circular: bool = False,
) -> Any:
    """The paper's Figure 2 that stands alone: the T × T ECG–CMR local cosine similarity (rows
    ECG steps k, columns CMR steps t) with each row's most similar CMR step marked and the
    diagonal (perfect alignment) dashed; beside it, the alignment accuracy, exact and within
    ±1 step, each against the dashed chance level of a random match (`alignment_chance`).

    accuracy: {"exact": a, "±1": b} measured elsewhere (training: per validation subject), said
    by `source`; default: `alignment_accuracy` of `matrix` itself. Returns a matplotlib Figure
    (no pyplot state: training callbacks draw it too)."""
    from matplotlib.figure import Figure

    from ptacl.eval.metrics import alignment_accuracy, alignment_chance

    matrix = np.asarray(matrix, dtype=np.float64)
    steps = matrix.shape[-1]
    if accuracy is None:
        accuracy = {"exact": alignment_accuracy(matrix, 0, circular),
                    "±1": alignment_accuracy(matrix, 1, circular)}  # fmt: skip
    chance = {"exact": alignment_chance(steps, 0, circular), "±1": alignment_chance(steps, 1, circular)}  # fmt: skip
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax, bars = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3.2, 1]})
    image = ax.imshow(matrix, cmap="viridis", origin="upper")
    ax.plot([0, steps - 1], [0, steps - 1], "w--", linewidth=0.8, label="k = t")
    ax.plot(matrix.argmax(axis=1), np.arange(len(matrix)), "wx", markersize=4,
            label="most similar t")  # fmt: skip
    ax.set_xlabel("CMR time step t")
    ax.set_ylabel("ECG time step k")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=6, loc="lower left")
    fig.colorbar(image, ax=ax, label="cosine similarity")
    names = list(chance)
    values = [accuracy.get(n, np.nan) for n in names]
    bars.bar(names, values, color="tab:blue")
    for i, name in enumerate(names):
        bars.hlines(chance[name], i - 0.4, i + 0.4, colors="tab:red", linestyles="--",
                    label="chance" if i == 0 else None)  # fmt: skip
        text = fmt(values[i], 2)
        bars.text(
            i, min(float(np.nan_to_num(values[i])) + 0.03, 0.95), text, ha="center", fontsize=7
        )
    bars.set_ylim(0, 1)
    bars.set_ylabel("alignment accuracy")
    bars.set_title(f"{source}\nchance: {chance['exact']:.2f} / {chance['±1']:.2f}", fontsize=6)
    bars.legend(fontsize=6, loc="upper right")
    return fig


def plot_alignment_matrix(matrix: np.ndarray, path: Path, title: str) -> Path:
    """`alignment_figure` of a mean T × T similarity (accuracy from its argmax) as a PNG."""
    fig = alignment_figure(matrix, title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def save_figure(plt: Any, fig: Any, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
