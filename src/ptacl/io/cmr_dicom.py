"""A cine CMR DICOM series in a folder: classic single-frame MR images, one file per frame.

Files are grouped by slice (position along the slice normal, from ImagePositionPatient and
ImageOrientationPatient, else SliceLocation); the mid-ventricular slice is taken (from motion,
`ptacl.io.cmr_slice.mid_ventricular_slice`, as there is no seg), its frames ordered by
TriggerTime (else InstanceNumber). Intensities get RescaleSlope/Intercept; `spacing` is
PixelSpacing (row, column) in mm and `frame_interval` the median TriggerTime step in seconds.
Rows and columns are the DICOM image's own. Enhanced multi-frame objects are not read.

Refused, on what the files say (`check_mr_frames`, `slice_record`): a Modality other than MR
(a missing Modality is only a note), a SOP class other than an MR image, colour frames, two
frames at one TriggerTime (a frame interval of 0) and fewer frames than the
CardiacNumberOfImages of a cycle. Sizes are bounded by `ptacl.io.cmr_limits.CmrLimits`: file
sizes before reading, frames x rows x columns before the pixels are converted.

The helpers (`read_dataset`, `by_trigger_time`, `slice_record`) work on datasets read from
memory too: `ptacl.io.cmr_ukb` uses them on the files of a UK Biobank zip.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ptacl.io.cmr_limits import DEFAULT_LIMITS, CmrLimits, mib
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


#: SOP classes of MR images (classic and enhanced); anything else is not an MR cine.
MR_SOP_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
    "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR Image Storage
)
_GREYSCALE = ("MONOCHROME1", "MONOCHROME2")


def check_mr_frames(datasets: list[Dataset], where: Path) -> list[str]:
    """Refuse frames whose headers say they are not greyscale MR images; returns notes for
    what the headers leave unsaid (a missing Modality is no evidence of another modality)."""
    from pydicom.uid import UID

    notes = []
    modalities = {str(ds.get("Modality", "")).strip() for ds in datasets}
    other = sorted(m for m in modalities if m and m != "MR")
    if other:
        raise InputError(where, f"Modality {', '.join(other)}, not MR: not a cine CMR")
    if "" in modalities:
        notes.append("frames without a Modality tag, read as MR")
    classes = {str(ds.get("SOPClassUID", "")) for ds in datasets} - {""}
    foreign = sorted(c for c in classes if c not in MR_SOP_CLASSES)
    if foreign:
        names = ", ".join(f"{UID(c).name} ({c})" if UID(c).is_valid else c for c in foreign)
        raise InputError(where, f"SOP class {names}, not an MR image: not a cine CMR")
    colour = {
        (int(ds.get("SamplesPerPixel", 1) or 1), str(ds.get("PhotometricInterpretation", "")))
        for ds in datasets
    }
    for samples, photometric in sorted(colour):
        if samples != 1 or (photometric and photometric not in _GREYSCALE):
            raise InputError(
                where,
                f"colour frames (SamplesPerPixel {samples}, PhotometricInterpretation "
                f"{photometric or 'absent'}): a cine CMR is greyscale",
            )
    return notes


def check_cine_size(datasets: list[Dataset], where: Path, limit: int) -> int:
    """Bytes the frames take as float32 (from Rows x Columns of each header); refused over
    `limit` before any pixel is inflated or converted."""
    size = sum(4 * int(ds.get("Rows", 0) or 0) * int(ds.get("Columns", 0) or 0) for ds in datasets)
    if size > limit:
        ds0 = datasets[0]
        raise InputError(
            where,
            f"the cine would take {mib(size)} as float32 ({len(datasets)} frames of "
            f"{ds0.get('Rows')} x {ds0.get('Columns')}), over the limit of {mib(limit)} "
            f"(--cmr-limit cine_bytes=...)",
        )
    return size


def by_trigger_time(datasets: list[Dataset]) -> list[Dataset]:
    """Frames in cardiac-cycle order: TriggerTime (ms after the R peak), then InstanceNumber."""
    return sorted(
        datasets,
        key=lambda ds: (float(ds.get("TriggerTime", 0.0)), int(ds.get("InstanceNumber", 0))),
    )


def stack_frames(datasets: list[Dataset], where: Path) -> np.ndarray:
    """(F, H, W) float32 intensities (RescaleSlope/Intercept applied) of ordered frames, filled
    frame by frame (no float64 copy of the whole stack)."""
    try:
        first = datasets[0].pixel_array
        frames = np.empty((len(datasets), *first.shape), dtype=np.float32)
        for k, ds in enumerate(datasets):
            pixels = first if k == 0 else ds.pixel_array
            slope = float(ds.get("RescaleSlope", 1.0))
            frames[k] = pixels * slope + float(ds.get("RescaleIntercept", 0.0))
    except (ValueError, AttributeError, TypeError, RuntimeError) as err:
        # frames of different sizes, or pixel data pydicom cannot decode
        raise InputError(where, f"frames cannot be stacked ({err})") from None
    if not np.all(np.isfinite(frames)):
        raise InputError(where, "NaN or infinite intensities")
    return frames


def slice_record(
    slices: list[list[Dataset]],
    where: Path,
    min_frames: int,
    what: str = "slice",
    notes: list[str] | None = None,
) -> CmrRecord:
    """The mid-ventricular slice of a stack: `slices` in stack order, each slice's frames in
    cycle order. Chosen from motion over every slice (no seg in DICOM). `notes` (what the
    reader saw but did not refuse) go into the record."""
    stacks = [stack_frames(frames, where) if len(frames) > 1 else None for frames in slices]
    motion = [0.0 if stack is None else slice_motion(stack) for stack in stacks]
    z = mid_ventricular_slice(motion)
    chosen, frames = slices[z], stacks[z]
    if frames is None or len(chosen) < min_frames:
        raise InputError(
            where, f"{len(chosen)} frames in the mid-ventricular {what}, need at least {min_frames}"
        )
    ds0 = chosen[0]
    cycle = int(ds0.get("CardiacNumberOfImages", 0) or 0)
    if len(chosen) < cycle:
        raise InputError(
            where,
            f"{len(chosen)} frames in the mid-ventricular {what}, fewer than the {cycle} of a "
            f"cycle its CardiacNumberOfImages says",
        )
    spacing = tuple(float(v) for v in ds0.get("PixelSpacing", [np.nan, np.nan]))
    times = [float(ds.TriggerTime) for ds in chosen if "TriggerTime" in ds]
    steps = np.diff(times)
    if len(times) == len(chosen) and np.any(steps <= 0):
        k = int(np.flatnonzero(steps <= 0)[0])
        raise InputError(
            where,
            f"two frames of the mid-ventricular {what} at TriggerTime {times[k]:g} ms (a frame "
            f"interval of 0): duplicated frames, not a cine",
        )
    interval = float(np.median(steps)) / 1000.0 if len(times) == len(chosen) else np.nan
    return CmrRecord(
        frames=frames,
        spacing=(spacing[0], spacing[1]),
        frame_interval=interval,
        seg=None,
        source=where,
        slice_index=z if len(slices) > 1 else None,
        notes=tuple(notes or ()),
    )


def read_dicom_cine(folder: Path, min_frames: int, limits: CmrLimits = DEFAULT_LIMITS) -> CmrRecord:
    """Read the mid-ventricular slice of the cine series in `folder` (see module docstring)."""
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and is_dicom(p)]
    if not files:
        raise InputError(folder, "folder holds neither sa.nii.gz nor DICOM files")
    if len(files) > limits.members:
        raise InputError(
            folder, f"{len(files)} DICOM files, over the limit of {limits.members} per folder"
        )
    for path in files:
        if path.stat().st_size > limits.member_bytes:
            raise InputError(
                path, f"{mib(path.stat().st_size)}, over the limit of {mib(limits.member_bytes)}"
            )
    headers = [(path, read_dataset(path, path, pixels=False)) for path in files]
    images = [(path, ds) for path, ds in headers if "Rows" in ds and "Columns" in ds]
    if not images:
        raise InputError(folder, "no DICOM image in the folder")
    series = {str(ds.get("SeriesInstanceUID", "")) for _, ds in images}
    if len(series) > 1:
        raise InputError(folder, f"holds {len(series)} DICOM series; give a folder with one")
    notes = check_mr_frames([ds for _, ds in images], folder)
    check_cine_size([ds for _, ds in images], folder, limits.cine_bytes)
    by_slice: dict[float, list] = {}
    for path, ds in images:
        by_slice.setdefault(round(_position(ds, path), 1), []).append(path)
    slices = [
        by_trigger_time([read_dataset(path, path) for path in by_slice[position]])
        for position in sorted(by_slice)
    ]
    return slice_record(slices, folder, min_frames, notes=notes)


def _position(ds, path: Path) -> float:
    """Position of the image plane along its normal (mm)."""
    if "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds:
        orientation = np.asarray(ds.ImageOrientationPatient, dtype=float)
        normal = np.cross(orientation[:3], orientation[3:])
        return float(np.dot(normal, np.asarray(ds.ImagePositionPatient, dtype=float)))
    if "SliceLocation" in ds:
        return float(ds.SliceLocation)
    raise InputError(path, "no ImagePositionPatient or SliceLocation to place the slice")
