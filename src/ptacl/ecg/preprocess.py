"""ECG preprocessing as in the paper: 500 Hz, wavelet baseline and noise removal, z-score.

The 8-level discrete wavelet transform (PyWavelets, `db4`) splits a 500-Hz signal into an
approximation below ~1 Hz and detail bands of one octave each (level 1: 125-250 Hz, level 2:
62.5-125 Hz, ... level 8: 1-2 Hz). Zeroing the approximation removes baseline wander
(breathing, electrode drift); zeroing the finest `drop_details` levels removes high-frequency
noise (muscle, mains harmonics) while the QRS energy, mostly below 40 Hz, stays.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pywt
from scipy.signal import resample_poly

from ptacl.schema import ECG_FS, ECG_SAMPLES


def resample_ecg(signal: np.ndarray, fs: float, target: float = ECG_FS) -> np.ndarray:
    """Resample (C, S) from `fs` to `target` Hz with a polyphase filter (rational ratio)."""
    if np.isclose(fs, target):
        return np.asarray(signal, dtype=np.float64)
    ratio = Fraction(float(target) / float(fs)).limit_denominator(1000)
    return resample_poly(
        np.asarray(signal, dtype=np.float64), ratio.numerator, ratio.denominator, axis=-1
    )


def wavelet_filter(
    signal: np.ndarray, *, wavelet: str = "db4", level: int = 8, drop_details: int = 2
) -> np.ndarray:
    """Zero the approximation and the `drop_details` finest detail levels of (C, S)."""
    s = signal.shape[-1]
    coeffs = pywt.wavedec(signal, wavelet, level=level, axis=-1, mode="symmetric")
    coeffs[0] = np.zeros_like(coeffs[0])
    for k in range(1, drop_details + 1):
        coeffs[-k] = np.zeros_like(coeffs[-k])
    return pywt.waverec(coeffs, wavelet, axis=-1, mode="symmetric")[..., :s]


def zscore(signal: np.ndarray) -> np.ndarray:
    """Per-lead zero mean, unit variance over time. A flat lead becomes zeros, never NaN
    (`ptacl.qc.validate_ecg` rejects flat leads before this point)."""
    mean = signal.mean(axis=-1, keepdims=True)
    std = signal.std(axis=-1, keepdims=True)
    return (signal - mean) / np.where(std > 1e-12, std, 1.0)


def preprocess_ecg(
    signal: np.ndarray,
    fs: float,
    *,
    max_samples: int = ECG_SAMPLES,
    wavelet: str = "db4",
    level: int = 8,
    drop_details: int = 2,
) -> np.ndarray:
    """(12, S) millivolts at `fs` Hz -> (12, min(S * 500 / fs, max_samples)) float32 at 500 Hz.

    Resampled to 500 Hz, the first `max_samples` samples kept (10 s), wavelet-filtered
    (see module docstring) and z-scored per lead.
    """
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected a (leads, samples) array, got shape {x.shape}")
    x = resample_ecg(x, fs)[:, :max_samples]
    x = wavelet_filter(x, wavelet=wavelet, level=level, drop_details=drop_details)
    return zscore(x).astype(np.float32)
