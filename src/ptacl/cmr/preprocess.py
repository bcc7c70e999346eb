"""Cine CMR preprocessing: 50 frames, 84 x 84 crop around the heart, min-max to [0, 1].

A cine covers one cardiac cycle with frame 0 at end-diastole (the R peak), so resampling in
time is cyclic: new frame k sits at phase k / n of the cycle, frame 0 stays frame 0, and the
frames after the last one interpolate back towards frame 0.

The heart centre comes from the seg when there is one (centroid of labels 1-3 over all frames).
Without it, from motion: over a cycle the ventricles fill and empty while chest wall, liver
and lungs stay still during the breath-hold, so the per-pixel standard deviation over time,
smoothed to heart size, peaks on the ventricles.

The mid-ventricular slice of a stack without a seg comes from motion too, but is chosen while
reading (`ptacl.io.cmr_slice`): a reader returns one slice.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, label

from ptacl.io.cmr_slice import MOTION_SIGMA
from ptacl.io.errors import InputError
from ptacl.io.records import CmrRecord
from ptacl.schema import CMR_FRAMES, CMR_SIZE

#: Pixels whose smoothed motion reaches this fraction of the peak form the heart region.
MOTION_LEVEL = 0.5


def resample_frames(frames: np.ndarray, n: int) -> np.ndarray:
    """(F, H, W) over one cycle -> (n, H, W) by cyclic linear interpolation; frame 0 kept."""
    f = frames.shape[0]
    if f == n:
        return frames
    pos = np.arange(n) * (f / n)
    lo = np.floor(pos).astype(int)
    w = (pos - lo).astype(frames.dtype)[:, None, None]
    return (1 - w) * frames[lo % f] + w * frames[(lo + 1) % f]


def resample_labels(seg: np.ndarray, n: int) -> np.ndarray:
    """(F, H, W) labels -> (n, H, W) by nearest frame in phase (labels cannot be averaged)."""
    f = seg.shape[0]
    if f == n:
        return seg
    return seg[np.rint(np.arange(n) * (f / n)).astype(int) % f]


def find_heart_centre(frames: np.ndarray, seg: np.ndarray | None = None) -> tuple[float, float]:
    """(row, col) of the heart centre in a (F, H, W) cine (see module docstring).

    From `seg` (F, H, W): the centroid of labels 1-3 over all frames. Otherwise the weighted
    centroid of the connected region where the smoothed temporal standard deviation is at least
    `MOTION_LEVEL` of its peak, taking the region that holds the peak.
    """
    if seg is not None:
        rows, cols = np.nonzero(((seg >= 1) & (seg <= 3)).any(axis=0))
        if len(rows) == 0:
            raise ValueError("seg holds no heart labels (1-3)")
        return float(rows.mean()), float(cols.mean())
    _, h, w = frames.shape
    motion = gaussian_filter(frames.std(axis=0, dtype=np.float64), MOTION_SIGMA * CMR_SIZE)
    peak = np.unravel_index(int(np.argmax(motion)), motion.shape)
    if motion[peak] <= 0:
        return (h - 1) / 2, (w - 1) / 2  # nothing moves: the image centre is the best guess
    regions, _ = label(motion >= MOTION_LEVEL * motion[peak])
    mask = regions == regions[peak]
    weight = motion * mask
    rows, cols = np.indices(motion.shape)
    return float((weight * rows).sum() / weight.sum()), float((weight * cols).sum() / weight.sum())


def crop_box(centre: tuple[float, float], size: int) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) of the size x size box centred on `centre` (may leave the image)."""
    r0 = int(np.floor(centre[0] + 0.5 - size / 2))
    c0 = int(np.floor(centre[1] + 0.5 - size / 2))
    return r0, r0 + size, c0, c0 + size


def crop(array: np.ndarray, box: tuple[int, int, int, int], fill: float) -> np.ndarray:
    """Cut `box` out of (..., H, W), padding with `fill` where the box leaves the image."""
    r0, r1, c0, c1 = box
    h, w = array.shape[-2:]
    pad = [(0, 0)] * (array.ndim - 2) + [
        (max(-r0, 0), max(r1 - h, 0)),
        (max(-c0, 0), max(c1 - w, 0)),
    ]
    inside = array[..., max(r0, 0) : min(r1, h), max(c0, 0) : min(c1, w)]
    return np.pad(inside, pad, mode="constant", constant_values=fill)


def preprocess_cmr(
    record: CmrRecord, frames: int = CMR_FRAMES, size: int = CMR_SIZE
) -> tuple[np.ndarray, dict]:
    """CmrRecord -> ((frames, size, size) float32 in [0, 1], info).

    info: "centre" (row, col) in input pixels, "box" (row0, row1, col0, col1) in input pixels
    (outside the image where padded), "centre_from" ("seg" or "motion"), "frames_in" (F) and
    "seg": the labels resampled and cropped the same way (uint8) or None.
    Raises InputError naming the record's file for a constant image.
    """
    clip = resample_frames(np.asarray(record.frames, dtype=np.float32), frames)
    seg = None if record.seg is None else resample_labels(record.seg, frames)
    try:
        centre = find_heart_centre(clip, seg)
    except ValueError as err:
        raise InputError(record.source, str(err)) from None
    box = crop_box(centre, size)
    low = float(record.frames.min())
    out = crop(clip, box, fill=low)
    lo, hi = float(out.min()), float(out.max())
    if not hi > lo:
        raise InputError(record.source, "the cropped image is constant (no contrast to normalise)")
    out = ((out - lo) / (hi - lo)).astype(np.float32)
    info = {
        "centre": centre,
        "box": box,
        "centre_from": "motion" if seg is None else "seg",
        "frames_in": int(record.frames.shape[0]),
        "seg": None if seg is None else crop(seg, box, fill=0).astype(np.uint8),
    }
    return out, info
