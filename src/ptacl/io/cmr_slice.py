"""Which slice of a cine stack to read: the mid-ventricular one, from motion.

Slices through the ventricles move, slices beyond the apex or above the base barely do, so the
middle of the run of moving slices is the middle of the ventricles. The readers of stacks
without a seg (DICOM, UK Biobank zips, NIfTI without `seg_`) call this to return one slice;
`ptacl.cmr.preprocess` smooths its heart-finding motion map with the same `MOTION_SIGMA`.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from ptacl.schema import CMR_SIZE

#: Smoothing of the motion map, as a fraction of the crop size (~ a ventricle's radius).
MOTION_SIGMA = 0.12
#: Slices whose motion reaches this fraction of the stack's highest are inside the ventricles.
#: The basal slice moves most (the base descends through it), mid and apical slices keep
#: 0.3-0.7 of that and slices outside the heart under 0.15 (`ptacl synth` phantoms, where
#: this rule lands within one slice of the generator's mid-ventricular slice).
SLICE_MOTION_LEVEL = 0.2


def slice_motion(frames: np.ndarray) -> float:
    """Peak of the smoothed temporal standard deviation of one (F, H, W) slice: how much the
    heart moves in it (the map `ptacl.cmr.find_heart_centre` reads, smoothed the same way)."""
    std = np.asarray(frames, dtype=np.float32).std(axis=0, dtype=np.float64)
    return float(gaussian_filter(std, MOTION_SIGMA * CMR_SIZE).max())


def mid_ventricular_slice(motion: list[float] | np.ndarray) -> int:
    """Index of the mid-ventricular slice from each slice's `slice_motion`, slices in stack
    order: the middle of the contiguous run of slices at or above `SLICE_MOTION_LEVEL` of the
    highest that holds the highest (the later of two middles, away from the moving base in a
    base-to-apex stack). A stack where nothing moves gets its middle slice."""
    motion = np.asarray(motion, dtype=np.float64)
    if len(motion) == 0:
        raise ValueError("no slices")
    peak = int(np.argmax(motion))
    if not motion[peak] > 0:
        return len(motion) // 2
    moving = motion >= SLICE_MOTION_LEVEL * motion[peak]
    low = high = peak
    while low > 0 and moving[low - 1]:
        low -= 1
    while high < len(motion) - 1 and moving[high + 1]:
        high += 1
    return (low + high + 1) // 2
