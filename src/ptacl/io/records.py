"""What the readers return: one record per ECG or CMR file, in fixed units and layouts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ptacl.io.errors import InputError


@dataclass(frozen=True)
class EcgRecord:
    """A 12-lead resting ECG.

    signal: (12, S) float32 millivolts, leads in `ptacl.schema.LEADS` order
    fs: sampling rate in Hz
    leads: lead names, one per row of `signal`
    source: the file read
    derived: leads computed from I and II because the file lacked them
    meta: what the file says about itself, for the plausibility checks: "patient_id" (str),
        "ventricular_rate" (bpm, the device's own measurement); absent when it does not say
    """

    signal: np.ndarray
    fs: float
    leads: tuple[str, ...]
    source: Path
    derived: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Every reader's rate passes here, so no later division by it can fail obscurely.
        stated_rate(self.fs, self.source)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.signal.shape[-1] / self.fs


def stated_rate(value: object, source: str | Path, what: str = "sampling rate") -> float:
    """`value` (a number, a numeric string, a one-element array) as a rate in Hz; InputError
    naming `source` and `what` unless it is one finite positive number."""
    if value is None:
        raise InputError(source, f"{what} missing")
    array = np.asarray(value)
    if array.size != 1:
        shown = array.ravel()[:4].tolist()
        raise InputError(source, f"{what} must be one number, got {array.size} values {shown}")
    try:
        rate = float(array.reshape(()))
    except (TypeError, ValueError):
        raise InputError(source, f"{what} {array.reshape(()).item()!r} is not a number") from None
    if not (np.isfinite(rate) and rate > 0):
        raise InputError(source, f"{what} must be a positive number of Hz, got {rate:g}")
    return rate


@dataclass(frozen=True)
class CmrRecord:
    """One short-axis cine slice over the cardiac cycle.

    frames: (F, H, W) float32 intensities; rows run along the NIfTI y axis and columns along x,
        so `frames[t] = volume[:, :, slice, t].T` (what `plt.imshow(frames[t])` shows)
    spacing: (row, column) pixel spacing in mm (NaN when the file does not say)
    frame_interval: seconds between frames (NaN when the file does not say)
    seg: (F, H, W) uint8 labels on the same grid (1 LV blood pool, 2 LV myocardium,
        3 RV blood pool) or None
    source: the file read
    slice_index: the slice taken from a multi-slice volume (None for single-slice input)
    notes: what the reader decided or saw without refusing the file (which repeated
        acquisition was read and by which rule, members not read), for qc.csv
    """

    frames: np.ndarray
    spacing: tuple[float, float]
    frame_interval: float
    seg: np.ndarray | None
    source: Path
    slice_index: int | None = None
    notes: tuple[str, ...] = ()
