"""A cine CMR DICOM series in a folder: classic single-frame MR images, one file per frame.

Files are grouped by slice (position along the slice normal, from ImagePositionPatient and
ImageOrientationPatient, else SliceLocation); the mid-ventricular slice is taken (from motion,
`ptacl.io.cmr_slice.mid_ventricular_slice`, as there is no seg), its frames ordered by
TriggerTime (else InstanceNumber). Intensities get RescaleSlope/Intercept; `spacing` is
PixelSpacing (row, column) in mm and `frame_interval` the median TriggerTime step in seconds.
Rows and columns are the DICOM image's own. Enhanced multi-frame objects are not read.

The helpers (`read_dataset`, `by_trigger_time`, `slice_record`) work on datasets read from
memory too: `ptacl.io.cmr_ukb` uses them on the files of a UK Biobank zip.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ptacl.io.cmr_slice import mid_ventricular_slice, slice_motion
from ptacl.io.errors import InputError
from ptacl.io.records import CmrRecord

if TYPE_CHECKING:
    from pydicom.dataset import Dataset


def is_dicom(path: Path) -> bool:
    """True for a file with the DICOM preamble, or named *.dcm."""
    if path.suffix.lower() == ".dcm":
        return True
    with open(path, "rb") as f:
        return f.read(132)[128:132] == b"DICM"


def read_dataset(source: Path | bytes, where: Path, *, pixels: bool = True) -> Dataset:
    """One DICOM file, from disk or from bytes (a zip member); `where` names it in errors.
    `pixels=False` stops before the pixel data (headers only: fast)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else source
        return pydicom.dcmread(handle, stop_before_pixels=not pixels)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError) as err:
        raise InputError(where, f"not a readable DICOM file ({err})") from None


def by_trigger_time(datasets: list[Dataset]) -> list[Dataset]:
    """Frames in cardiac-cycle order: TriggerTime (ms after the R peak), then InstanceNumber."""
    return sorted(
        datasets,
        key=lambda ds: (float(ds.get("TriggerTime", 0.0)), int(ds.get("InstanceNumber", 0))),
    )


def stack_frames(datasets: list[Dataset], where: Path) -> np.ndarray:
    """(F, H, W) float32 intensities (RescaleSlope/Intercept applied) of ordered frames."""
    try:
        frames = np.stack(
            [
                ds.pixel_array * float(ds.get("RescaleSlope", 1.0))
                + float(ds.get("RescaleIntercept", 0.0))
                for ds in datasets
            ]
        ).astype(np.float32)
    except (ValueError, AttributeError, TypeError, RuntimeError) as err:
        # frames of different sizes, or pixel data pydicom cannot decode
        raise InputError(where, f"frames cannot be stacked ({err})") from None
    if not np.all(np.isfinite(frames)):
        raise InputError(where, "NaN or infinite intensities")
    return frames


def slice_record(
    slices: list[list[Dataset]], where: Path, min_frames: int, what: str = "slice"
) -> CmrRecord:
    """The mid-ventricular slice of a stack: `slices` in stack order, each slice's frames in
    cycle order. Chosen from motion over every slice (no seg in DICOM)."""
    stacks = [stack_frames(frames, where) if len(frames) > 1 else None for frames in slices]
    motion = [0.0 if stack is None else slice_motion(stack) for stack in stacks]
    z = mid_ventricular_slice(motion)
    chosen, frames = slices[z], stacks[z]
    if frames is None or len(chosen) < min_frames:
        raise InputError(
            where, f"{len(chosen)} frames in the mid-ventricular {what}, need at least {min_frames}"
        )
    ds0 = chosen[0]
    spacing = tuple(float(v) for v in ds0.get("PixelSpacing", [np.nan, np.nan]))
    times = [float(ds.TriggerTime) for ds in chosen if "TriggerTime" in ds]
    interval = float(np.median(np.diff(times))) / 1000.0 if len(times) == len(chosen) else np.nan
    return CmrRecord(
        frames=frames,
        spacing=(spacing[0], spacing[1]),
        frame_interval=interval,
        seg=None,
        source=where,
        slice_index=z if len(slices) > 1 else None,
    )


def read_dicom_cine(folder: Path, min_frames: int) -> CmrRecord:
    """Read the mid-ventricular slice of the cine series in `folder` (see module docstring)."""
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and is_dicom(p)]
    if not files:
        raise InputError(folder, "folder holds neither sa.nii.gz nor DICOM files")
    images = [(path, ds) for path in files if "PixelData" in (ds := read_dataset(path, path))]
    if not images:
        raise InputError(folder, "no DICOM image in the folder")
    series = {str(ds.get("SeriesInstanceUID", "")) for _, ds in images}
    if len(series) > 1:
        raise InputError(folder, f"holds {len(series)} DICOM series; give a folder with one")
    by_slice: dict[float, list] = {}
    for path, ds in images:
        by_slice.setdefault(round(_position(ds, path), 1), []).append(ds)
    slices = [by_trigger_time(by_slice[position]) for position in sorted(by_slice)]
    return slice_record(slices, folder, min_frames)


def _position(ds, path: Path) -> float:
    """Position of the image plane along its normal (mm)."""
    if "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds:
        orientation = np.asarray(ds.ImageOrientationPatient, dtype=float)
        normal = np.cross(orientation[:3], orientation[3:])
        return float(np.dot(normal, np.asarray(ds.ImagePositionPatient, dtype=float)))
    if "SliceLocation" in ds:
        return float(ds.SliceLocation)
    raise InputError(path, "no ImagePositionPatient or SliceLocation to place the slice")
