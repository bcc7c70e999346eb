"""A synthetic 12-lead ECG with known R-peak times, for the preprocessing and detector tests."""

from __future__ import annotations

import numpy as np
import pytest

# (offset from the R peak in s, width in s, amplitude) of P, Q, R, S and T as seen in lead II.
_WAVES = {
    "P": (-0.18, 0.025, 0.15),
    "Q": (-0.025, 0.01, -0.12),
    "R": (0.0, 0.011, 1.2),
    "S": (0.028, 0.012, -0.3),
    "T": (0.30, 0.05, 0.3),
}
# Gains of the QRS and of P/T per lead for I and II and the chest leads; the other limb leads
# follow Einthoven/Goldberger. V1 and V2 are QS-like (negative), as in most people.
_GAINS = {
    "I": (0.6, 0.6),
    "II": (1.0, 1.0),
    "V1": (-0.7, -0.2),
    "V2": (-0.4, 0.4),
    "V3": (0.5, 0.6),
    "V4": (1.3, 0.8),
    "V5": (1.1, 0.7),
    "V6": (0.8, 0.5),
}


def synthetic_ecg(
    fs: float = 500,
    seconds: float = 10,
    hr: float = 70,
    seed: int = 0,
    noise: float = 0.02,
    wander: float = 0.3,
) -> tuple[np.ndarray, np.ndarray]:
    """(12, S) mV and the true R-peak times in seconds."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * fs)) / fs
    peaks, r = [], rng.uniform(0.2, 0.6)
    while r < seconds:
        peaks.append(r)
        r += 60 / hr * (1 + 0.05 * rng.standard_normal())
    peaks = np.array(peaks)
    qrs = np.zeros_like(t)
    pt = np.zeros_like(t)
    for p in peaks:
        for name, (offset, width, amp) in _WAVES.items():
            target = qrs if name in "QRS" else pt
            target += amp * np.exp(-0.5 * ((t - p - offset) / width) ** 2)
    lead = {name: g_qrs * qrs + g_pt * pt for name, (g_qrs, g_pt) in _GAINS.items()}
    i, ii = lead["I"], lead["II"]
    lead |= {"III": ii - i, "aVR": -(i + ii) / 2, "aVL": i - ii / 2, "aVF": ii - i / 2}
    order = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    signal = np.stack([lead[n] for n in order])
    signal += wander * np.sin(2 * np.pi * 0.25 * t + rng.uniform(0, 6, (12, 1)))
    signal += noise * rng.standard_normal(signal.shape)
    return signal.astype(np.float32), peaks


@pytest.fixture
def make_ecg():
    return synthetic_ecg
