"""Checks a raw ECG must pass before it enters the store; each failure names file and reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ptacl.data.store import ECG_FS, LEADS
from ptacl.ecg.peaks import beat_similarity, detect_r_peaks
from ptacl.io.errors import InputError

#: Shortest usable recording: one 2,500-sample training crop at 500 Hz.
MIN_SECONDS = 2500 / ECG_FS
#: A lead whose range stays below this (mV, two LSBs of a UK Biobank file) carries no signal.
FLAT_MV = 0.01
#: The local loss needs at least one complete beat, i.e. two R peaks.
MIN_PEAKS = 2
#: Detected beats must look alike (see `ptacl.ecg.beat_similarity`): noise scores ~0.2,
#: synthetic and real ECGs > 0.99, alternating beat shapes (bigeminy-like) > 0.8.
MIN_SIMILARITY = 0.5


def validate_ecg(
    signal: np.ndarray, fs: float, source: str | Path, *, r_peaks: np.ndarray | None = None
) -> np.ndarray:
    """Raise InputError unless (12, S) mV `signal` is a usable ECG; return its R peaks.

    Checks: shape, finite values, at least `MIN_SECONDS` long, no flat lead, at least
    `MIN_PEAKS` R peaks that look like heartbeats. `r_peaks` (indices at `fs`) skips the
    detection when they are already known.
    """
    signal = np.asarray(signal)
    if signal.ndim != 2 or signal.shape[0] != len(LEADS):
        raise InputError(source, f"expected ({len(LEADS)}, samples), got shape {signal.shape}")
    bad = ~np.isfinite(signal)
    if bad.any():
        leads = [LEADS[k] for k in np.flatnonzero(bad.any(axis=1))]
        raise InputError(source, f"{int(bad.sum())} NaN or infinite samples in leads {leads}")
    seconds = signal.shape[1] / fs
    if seconds < MIN_SECONDS - 1e-9:
        raise InputError(
            source,
            f"too short: {seconds:.2f} s ({signal.shape[1]} samples at {fs:g} Hz), "
            f"need {MIN_SECONDS:g} s ({int(MIN_SECONDS * ECG_FS)} samples at {ECG_FS} Hz)",
        )
    span = np.ptp(signal, axis=1)
    flat = [LEADS[k] for k in np.flatnonzero(span < FLAT_MV)]
    if flat:
        raise InputError(source, f"flat line in leads {flat} (range below {FLAT_MV} mV)")
    peaks = detect_r_peaks(signal, fs) if r_peaks is None else np.asarray(r_peaks)
    if len(peaks) < MIN_PEAKS:
        raise InputError(source, f"no detectable R peaks ({len(peaks)} found, need {MIN_PEAKS})")
    similarity = beat_similarity(signal, fs, peaks)
    if similarity < MIN_SIMILARITY:
        raise InputError(
            source,
            f"no detectable R peaks: the {len(peaks)} candidate beats do not look alike "
            f"(median QRS correlation {similarity:.2f} < {MIN_SIMILARITY})",
        )
    return peaks
