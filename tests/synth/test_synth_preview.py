"""The cohort preview's ECG panel reads like ECG paper: time and amplitude both scaled."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ptacl.synth.preview import _draw_ecg


def test_the_ecg_panel_has_a_1_mv_scale_bar() -> None:
    ax = Figure().subplots()
    _draw_ecg(ax, np.zeros((12, 2500), np.float32), 500.0)
    assert any(t.get_text() == "1 mV" for t in ax.texts)
    bars = [line for line in ax.lines if len(set(line.get_xdata())) == 1]
    assert [float(np.ptp(line.get_ydata())) for line in bars] == [1.0]  # one mV, in data units
    assert "0.5 mV" in ax.get_xlabel()
