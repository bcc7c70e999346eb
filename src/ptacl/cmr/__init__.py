"""Cine CMR preprocessing: temporal resampling, heart-centred crop, min-max normalisation."""

from ptacl.cmr.preprocess import (
    crop,
    crop_box,
    find_heart_centre,
    preprocess_cmr,
    resample_frames,
    resample_labels,
)

__all__ = [
    "crop",
    "crop_box",
    "find_heart_centre",
    "preprocess_cmr",
    "resample_frames",
    "resample_labels",
]
