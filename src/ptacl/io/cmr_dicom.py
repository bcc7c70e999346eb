"""A cine CMR DICOM series in a folder: classic single-frame MR images, one file per frame.

Files are grouped by slice (position along the slice normal, from ImagePositionPatient and
ImageOrientationPatient, else SliceLocation); the middle slice is taken, its frames ordered by
TriggerTime (else InstanceNumber). Intensities get RescaleSlope/Intercept; `spacing` is
PixelSpacing (row, column) in mm and `frame_interval` the median TriggerTime step in seconds.
Rows and columns are the DICOM image's own. Enhanced multi-frame objects are not read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ptacl.io.errors import InputError
from ptacl.io.records import CmrRecord


def is_dicom(path: Path) -> bool:
    """True for a file with the DICOM preamble, or named *.dcm."""
    if path.suffix.lower() == ".dcm":
        return True
    with open(path, "rb") as f:
        return f.read(132)[128:132] == b"DICM"


def read_dicom_cine(folder: Path, min_frames: int) -> CmrRecord:
    """Read the middle slice of the cine series in `folder` (see module docstring)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    files = [p for p in sorted(folder.iterdir()) if p.is_file() and is_dicom(p)]
    if not files:
        raise InputError(folder, "folder holds neither sa.nii.gz nor DICOM files")
    images = []
    for path in files:
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, OSError, EOFError, ValueError) as err:
            raise InputError(path, f"not a readable DICOM file ({err})") from None
        if "PixelData" in ds:
            images.append((path, ds))
    if not images:
        raise InputError(folder, "no DICOM image in the folder")
    series = {str(ds.get("SeriesInstanceUID", "")) for _, ds in images}
    if len(series) > 1:
        raise InputError(folder, f"holds {len(series)} DICOM series; give a folder with one")
    by_slice: dict[float, list] = {}
    for path, ds in images:
        by_slice.setdefault(round(_position(ds, path), 1), []).append((path, ds))
    positions = sorted(by_slice)
    z = len(positions) // 2
    chosen = by_slice[positions[z]]
    chosen.sort(
        key=lambda item: (
            float(item[1].get("TriggerTime", 0.0)),
            int(item[1].get("InstanceNumber", 0)),
        )
    )
    if len(chosen) < min_frames:
        raise InputError(
            folder, f"{len(chosen)} frames in the middle slice, need at least {min_frames}"
        )
    try:
        frames = np.stack(
            [
                ds.pixel_array * float(ds.get("RescaleSlope", 1.0))
                + float(ds.get("RescaleIntercept", 0.0))
                for _, ds in chosen
            ]
        ).astype(np.float32)
    except ValueError as err:  # frames of different sizes, or undecodable pixel data
        raise InputError(folder, f"frames cannot be stacked ({err})") from None
    ds0 = chosen[0][1]
    spacing = tuple(float(v) for v in ds0.get("PixelSpacing", [np.nan, np.nan]))
    times = [float(ds.TriggerTime) for _, ds in chosen if "TriggerTime" in ds]
    interval = float(np.median(np.diff(times))) / 1000.0 if len(times) == len(chosen) else np.nan
    if not np.all(np.isfinite(frames)):
        raise InputError(folder, "NaN or infinite intensities")
    return CmrRecord(
        frames=frames,
        spacing=(spacing[0], spacing[1]),
        frame_interval=interval,
        seg=None,
        source=folder,
        slice_index=z if len(positions) > 1 else None,
    )


def _position(ds, path: Path) -> float:
    """Position of the image plane along its normal (mm)."""
    if "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds:
        orientation = np.asarray(ds.ImageOrientationPatient, dtype=float)
        normal = np.cross(orientation[:3], orientation[3:])
        return float(np.dot(normal, np.asarray(ds.ImagePositionPatient, dtype=float)))
    if "SliceLocation" in ds:
        return float(ds.SliceLocation)
    raise InputError(path, "no ImagePositionPatient or SliceLocation to place the slice")
