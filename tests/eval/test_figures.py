"""The evaluation's figures (`ptacl.eval.figures`): what each panel says."""

import numpy as np

from ptacl.eval.figures import plot_alignment_matrix, plot_predictions


def _captured(monkeypatch):
    """Figures handed to `save_figure` (pyplot) or savefig (Figure API), kept for inspection."""
    from matplotlib.figure import Figure

    import ptacl.eval.figures as module

    figures = []
    monkeypatch.setattr(module, "save_figure", lambda plt, fig, path: figures.append(fig) or path)
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: figures.append(fig))
    return figures


def test_scatter_panels_carry_r2_and_units(tmp_path, monkeypatch):
    figures = _captured(monkeypatch)
    rng = np.random.default_rng(0)
    y = rng.normal(100, 20, size=(40, 2))
    pred = y + rng.normal(0, 10, size=y.shape)
    plot_predictions(y, pred, ["LVEDV (mL)", "LVCO (L/min)"], tmp_path / "s.png")
    axes = figures[0].axes
    r2 = 1 - ((y[:, 0] - pred[:, 0]) ** 2).sum() / ((y[:, 0] - y[:, 0].mean()) ** 2).sum()
    assert axes[0].get_title() == f"LVEDV: R² {r2:.3f} (n 40)"
    assert axes[0].get_xlabel() == "true (mL)" and axes[0].get_ylabel() == "predicted (mL)"
    assert axes[1].get_ylabel() == "predicted (L/min)"


def test_alignment_figure_shows_accuracy_against_chance(tmp_path, monkeypatch):
    figures = _captured(monkeypatch)
    plot_alignment_matrix(np.eye(13), tmp_path / "a.png", "PTACL")
    heatmap, bars = figures[0].axes[:2]
    assert [round(b.get_height(), 3) for b in bars.patches] == [1.0, 1.0]  # exact, ±1
    chance = sorted(round(float(c.get_segments()[0][0][1]), 3) for c in bars.collections)
    assert chance == [round(1 / 13, 3), round(37 / 169, 3)]
    assert "chance" in bars.get_title() and heatmap.get_title() == "PTACL"
