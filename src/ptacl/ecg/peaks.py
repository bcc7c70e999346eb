"""R-peak detection on 12-lead (or single-lead) ECG.

Beats are found on all leads at once, so one lead with a small, inverted or noisy QRS does
not lose beats: each lead is band-passed to the QRS band (5-30 Hz) and scaled by its own QRS
amplitude, the squared slopes are summed over leads and smoothed over a QRS width (100 ms),
and every peak of that energy above a quarter of its top level, at least `min_rr` apart, is a
beat. The R peak itself is then placed on the apex of the R wave in a reference lead: the lead
whose QRS has the largest positive deflection (lead II in most people), searched within 80 ms
of the energy peak.

`method="neurokit"` runs neurokit2's detector on lead II instead, for comparison
(benchmarks/measure_preprocess.py measures both).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, find_peaks, sosfiltfilt

#: Fraction of the energy's top level (99th percentile) a beat must reach.
THRESHOLD = 0.25
#: Half-width of the window around a beat searched for the R apex, in seconds.
SEARCH = 0.08


def detect_r_peaks(
    signal: np.ndarray, fs: float, *, min_rr: float = 0.3, method: str = "multilead"
) -> np.ndarray:
    """Sample indices of the R peaks of a (C, S) or (S,) ECG sampled at `fs` Hz.

    min_rr: shortest RR interval accepted, in seconds (0.3 s = 200 beats/min).
    Returns int64 indices, increasing; empty when no beat is found.
    """
    x = np.atleast_2d(np.asarray(signal, dtype=np.float64))
    if x.shape[-1] < int(0.5 * fs) or not np.all(np.isfinite(x)):
        return np.zeros(0, dtype=np.int64)
    if method == "neurokit":
        return _neurokit(x, fs)
    if method != "multilead":
        raise ValueError(f"method must be 'multilead' or 'neurokit', got {method!r}")
    qrs = _bandpass(x, fs, 5.0, 30.0)  # (C, S)
    scale = np.percentile(np.abs(qrs), 99, axis=-1, keepdims=True)
    scale[scale <= 0] = np.inf  # flat leads contribute nothing
    energy = (np.gradient(qrs / scale, axis=-1) ** 2).sum(axis=0)  # (S,)
    width = max(round(0.1 * fs), 1)
    energy = np.convolve(energy, np.ones(width) / width, mode="same")
    top = np.percentile(energy, 99)
    if top <= 0:
        return np.zeros(0, dtype=np.int64)
    # Zero ends let a beat whose energy is still rising at the edge count as a peak.
    padded = np.concatenate([[0.0], energy, [0.0]])
    beats, _ = find_peaks(padded, height=THRESHOLD * top, distance=max(int(min_rr * fs), 1))
    beats = np.clip(beats - 1, 0, len(energy) - 1)
    if len(beats) == 0:
        return np.zeros(0, dtype=np.int64)
    return _to_apex(x, fs, beats)


def beat_similarity(signal: np.ndarray, fs: float, peaks: np.ndarray) -> float:
    """Median correlation of each beat's QRS (all leads, ±100 ms) with the median beat.

    Close to 1 for a real ECG (ectopic beats lower a few values, not the median), near 0 for
    peaks picked out of noise (about 0.2 for white or smoothed noise): a check that the
    peaks found are heartbeats.
    """
    x = np.atleast_2d(np.asarray(signal, dtype=np.float64))
    half = round(0.1 * fs)
    peaks = np.asarray(peaks)
    peaks = peaks[(peaks >= half) & (peaks < x.shape[-1] - half)]
    if len(peaks) < 2:
        return 0.0
    qrs = _bandpass(x, fs, 5.0, 30.0)
    beats = np.stack([qrs[:, p - half : p + half].ravel() for p in peaks])  # (n, C * 2 half)
    beats -= beats.mean(axis=1, keepdims=True)
    template = np.median(beats, axis=0)
    norms = np.linalg.norm(beats, axis=1) * np.linalg.norm(template)
    if not np.all(norms > 0):
        return 0.0
    return float(np.median(beats @ template / norms))


def _bandpass(x: np.ndarray, fs: float, low: float, high: float) -> np.ndarray:
    high = min(high, 0.45 * fs)
    sos = butter(3, [low, high], btype="band", fs=fs, output="sos")
    # A 1-s odd extension lets the 0.5-Hz high-pass settle before the first and last beats.
    return sosfiltfilt(sos, x, axis=-1, padlen=min(int(fs), x.shape[-1] - 1))


def _to_apex(x: np.ndarray, fs: float, beats: np.ndarray) -> np.ndarray:
    """Move each beat to the R apex of the lead with the largest positive QRS deflection."""
    # Remove baseline wander and mains noise so the apex is the R wave, not drift.
    clean = _bandpass(x, fs, 0.5, 40.0)
    half = max(round(SEARCH * fs), 1)
    s = x.shape[-1]
    windows = [(max(b - half, 0), min(b + half + 1, s)) for b in beats]
    # Positive deflection per lead and beat: apex height above the window's median level.
    height = np.array(
        [[c[a:e].max() - np.median(c[a:e]) for a, e in windows] for c in clean]
    )  # (C, n)
    ref = clean[int(np.argmax(np.median(height, axis=1)))]
    peaks = np.array([a + int(np.argmax(ref[a:e])) for a, e in windows], dtype=np.int64)
    # An apex on the first or last sample is the tail of a beat cut off by the recording's
    # edge, not a peak; two energy peaks can settle on the same apex: keep one.
    return np.unique(peaks[(peaks > 0) & (peaks < s - 1)])


def _neurokit(x: np.ndarray, fs: float) -> np.ndarray:
    from ptacl.extras import require

    nk = require("neurokit2", "method='neurokit' (the comparison R-peak detector)")

    lead = x[1] if x.shape[0] > 1 else x[0]
    cleaned = nk.ecg_clean(lead, sampling_rate=round(fs))
    _, info = nk.ecg_peaks(cleaned, sampling_rate=round(fs))
    return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)
