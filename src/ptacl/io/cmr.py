"""`read_cmr`: one short-axis cine slice from NIfTI (UK Biobank / ukbb_cardiac) or `.npy`.

Layouts accepted:
- 4-D NIfTI `sa.nii.gz` (X, Y, slices, T). With `seg_sa.nii.gz` beside it (labels 1 LV blood
  pool, 2 LV myocardium, 3 RV blood pool) the slice is the middle one of those holding LV blood
  pool in any frame, and that slice's labels are returned too; without it, the mid-ventricular
  slice from motion (`ptacl.io.cmr_slice.mid_ventricular_slice`).
- 3-D NIfTI (X, Y, T): one slice over time (a `seg_` sibling is used the same way).
- A folder holding `sa.nii.gz` (or `sa.nii`), or else a DICOM cine series (see
  `ptacl.io.cmr_dicom`: mid-ventricular slice from motion, frames by trigger time, rows and
  columns as in DICOM).
- UK Biobank's short-axis cine bulk file (field 20209) as delivered: `{eid}_20209_2_0.zip`, or
  the folder it unzips to (it holds `manifest.csv`); see `ptacl.io.cmr_ukb`.
- `.npy` (F, H, W): already a slice; spacing and frame interval are unknown and set to NaN.

Orientation: `frames[t] = volume[:, :, slice, t].T`, i.e. rows follow the NIfTI y axis and
columns the x axis; the seg goes through the same transposition, so the two stay aligned.
`spacing` is (row, column) = (pixdim[2], pixdim[1]) in mm and `frame_interval` is pixdim[4] in
seconds (converted from ms or µs when the header's time unit says so).

Memory is bounded by `CmrLimits` whatever the file claims: a volume whose header declares more
voxels than `cine_bytes` holds as float32 (or a header longer than `header_bytes`) is refused
before its data is read, and a `.nii.gz` is inflated no further than its header's size (zeros
deflate ~1000:1, so a small file could otherwise inflate to GBs).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

try:
    # ISA-L inflates ~2.5x faster than zlib, and inflating the cine was over half of `ptacl
    # prepare`'s time; the bytes are the same, so the fallback gives the same images.
    from isal.isal_zlib import decompressobj as gzip_inflater
except ImportError:  # pragma: no cover - isal is a dependency, but has no wheel everywhere
    from zlib import decompressobj as gzip_inflater

from ptacl.io.cmr_dicom import read_dicom_cine
from ptacl.io.cmr_limits import DEFAULT_LIMITS, CmrLimits, mib
from ptacl.io.cmr_slice import mid_ventricular_slice, slice_motion
from ptacl.io.cmr_ukb import is_ukb_cmr_folder, read_ukb_cmr
from ptacl.io.errors import InputError
from ptacl.io.names import UKB_CMR_FIELD, parse_ukb_name
from ptacl.io.records import CmrRecord

if TYPE_CHECKING:
    from nibabel.nifti1 import Nifti1Image

#: Fewest frames accepted: fewer cannot be resampled to a cardiac cycle with any fidelity.
MIN_FRAMES = 10
_TIME_TO_S = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}
_NIFTI = (".nii.gz", ".nii")
_GZIP = 31  # zlib wbits of a gzip stream
_NIFTI_HEADER = 544  # NIfTI-2's 540-byte header and the 4-byte extension flag (NIfTI-1: 348)


def read_cmr(path: str | Path, limits: CmrLimits = DEFAULT_LIMITS) -> CmrRecord:
    """Read one cine slice: frames (F, H, W) float32 (see module docstring for layouts).
    `limits` bound what a zip or DICOM folder may make the reader inflate and hold."""
    path = Path(path)
    if path.is_dir():
        inside = [path / f"sa{ext}" for ext in _NIFTI if (path / f"sa{ext}").is_file()]
        if not inside:
            if is_ukb_cmr_folder(path) or _is_ukb_cmr_name(path):
                return read_ukb_cmr(path, MIN_FRAMES, limits)
            return read_dicom_cine(path, MIN_FRAMES, limits)
        path = inside[0]
    if not path.exists():
        raise InputError(path, "file not found")
    name = path.name.lower()
    if name.endswith(".zip"):
        return read_ukb_cmr(path, MIN_FRAMES, limits)
    if name.endswith(_NIFTI):
        return _read_nifti(path, limits)
    if name.endswith(".npy"):
        return _read_npy(path)
    raise InputError(path, "unknown CMR format; expected .nii.gz, .nii, .npy or a UK Biobank .zip")


def _is_ukb_cmr_name(path: Path) -> bool:
    ukb = parse_ukb_name(path)
    return ukb is not None and ukb.field == UKB_CMR_FIELD


def _load_nifti(path: Path, limits: CmrLimits) -> tuple[np.ndarray, object]:
    from ptacl.extras import require

    nib = require("nibabel", "reading NIfTI cines")

    try:
        if path.name.lower().endswith(".gz"):
            img = _nifti_from_bytes(_gunzip_bounded(path, limits))
        else:
            img = nib.load(path)
            _check_volume(img.header, path, limits)
        data = np.asanyarray(img.dataobj)
    except InputError:
        raise
    except Exception as err:  # nibabel/gzip/zlib raise many types for damaged files
        raise InputError(path, f"unreadable NIfTI ({type(err).__name__}: {err})") from None
    # Trailing singleton dimensions (X, Y, Z, T, 1) carry nothing.
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    return data, img.header


def _check_volume(header, path: Path, limits: CmrLimits) -> int:
    """Bytes a NIfTI header says its file holds (offset + data); refused over the limits."""
    shape = tuple(int(n) for n in header.get_data_shape())
    voxels = int(np.prod(shape, dtype=np.int64)) if shape else 0
    if 4 * voxels > limits.cine_bytes:
        raise InputError(
            path,
            f"the volume {shape} would take {mib(4 * voxels)} as float32, over the limit of "
            f"{mib(limits.cine_bytes)} (--cmr-limit cine_bytes=...)",
        )
    offset = int(header.get_data_offset())
    if offset > limits.header_bytes:
        raise InputError(
            path, f"a header of {mib(offset)}, over the limit of {mib(limits.header_bytes)}"
        )
    return offset + voxels * header.get_data_dtype().itemsize


def _gunzip_bounded(path: Path, limits: CmrLimits) -> bytes:
    """A .nii.gz inflated no further than the size its header declares (checked first)."""
    import nibabel as nib

    inflater = gzip_inflater(wbits=_GZIP)
    raw = path.read_bytes()  # compressed: its size on disk is what it is
    head = inflater.decompress(raw, _NIFTI_HEADER)
    for klass in (nib.Nifti1Header, nib.Nifti2Header):
        block = head[: klass.sizeof_hdr]
        if len(block) == klass.sizeof_hdr and klass.may_contain_header(block):
            need = _check_volume(klass(block, check=False), path, limits)
            break
    else:
        raise ValueError("no NIfTI-1 or NIfTI-2 header")
    if need <= len(head):
        return head[:need]
    # max_length bounds the inflated bytes; whatever the stream holds beyond is not inflated
    return head + inflater.decompress(inflater.unconsumed_tail, need - len(head))


def _nifti_from_bytes(raw: bytes) -> Nifti1Image:
    """The NIfTI-1 or NIfTI-2 single-file image in `raw`, tried in `nib.load`'s order.

    nibabel would inflate through `gzip.GzipFile` in 4-8 KiB reads; inflating the whole file
    at once (ISA-L when installed) and parsing it from memory gives the same header and data.
    """
    import nibabel as nib

    for klass in (nib.Nifti1Image, nib.Nifti2Image):
        if klass.header_class.may_contain_header(raw[: klass.header_class.sizeof_hdr]):
            return klass.from_bytes(raw)
    raise ValueError("no NIfTI-1 or NIfTI-2 header")


def _read_nifti(path: Path, limits: CmrLimits = DEFAULT_LIMITS) -> CmrRecord:
    data, header = _load_nifti(path, limits)
    if data.ndim not in (3, 4):
        raise InputError(
            path, f"expected a 4-D (X, Y, slices, T) or 3-D (X, Y, T) image, got shape {data.shape}"
        )
    if data.ndim == 3:
        data = data[:, :, None, :]  # (X, Y, 1, T)
    if data.shape[-1] < MIN_FRAMES:
        raise InputError(path, f"{data.shape[-1]} frames, need at least {MIN_FRAMES}")
    if not np.issubdtype(data.dtype, np.number):
        raise InputError(path, f"non-numeric image data ({data.dtype})")
    seg_path = _seg_beside(path)
    seg = None
    if seg_path is not None:
        seg, _ = _load_nifti(seg_path, limits)
        if seg.ndim == 3:
            seg = seg[:, :, None, :]
        if seg.shape != data.shape:
            raise InputError(seg_path, f"seg shape {seg.shape} differs from image {data.shape}")
        lv = np.flatnonzero((seg == 1).any(axis=(0, 1, 3)))
        if len(lv) == 0:
            raise InputError(seg_path, "seg holds no LV blood pool (label 1) on any slice")
        z = int(lv[len(lv) // 2])
    else:
        z = _moving_middle(data)
    frames = np.ascontiguousarray(data[:, :, z, :].transpose(2, 1, 0), dtype=np.float32)
    if not np.all(np.isfinite(frames)):
        raise InputError(path, "NaN or infinite intensities")
    if seg is not None:
        seg = np.ascontiguousarray(seg[:, :, z, :].transpose(2, 1, 0)).astype(np.uint8)
    zooms = header.get_zooms()
    spacing = (float(zooms[1]), float(zooms[0]))
    time_unit = header.get_xyzt_units()[1]
    interval = float(zooms[-1]) * _TIME_TO_S.get(time_unit, 1.0) if len(zooms) >= 3 else np.nan
    return CmrRecord(
        frames=frames,
        spacing=spacing,
        frame_interval=interval,
        seg=seg,
        source=path,
        slice_index=z if data.shape[2] > 1 else None,
    )


def _moving_middle(data: np.ndarray) -> int:
    """The mid-ventricular slice of an (X, Y, slices, T) volume without a seg, from motion."""
    if data.shape[2] == 1:
        return 0
    return mid_ventricular_slice([slice_motion(data[:, :, z, :].T) for z in range(data.shape[2])])


def _seg_beside(path: Path) -> Path | None:
    candidate = path.with_name(f"seg_{path.name}")
    return candidate if candidate.is_file() else None


def _read_npy(path: Path) -> CmrRecord:
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise InputError(path, f"unreadable array file ({err})") from None
    if data.ndim != 3 or not np.issubdtype(data.dtype, np.number):
        raise InputError(path, f"expected a numeric (F, H, W) array, got {data.dtype} {data.shape}")
    if data.shape[0] < MIN_FRAMES:
        raise InputError(path, f"{data.shape[0]} frames, need at least {MIN_FRAMES}")
    frames = np.ascontiguousarray(data, dtype=np.float32)
    if not np.all(np.isfinite(frames)):
        raise InputError(path, "NaN or infinite intensities")
    return CmrRecord(
        frames=frames, spacing=(np.nan, np.nan), frame_interval=np.nan, seg=None, source=path
    )
