"""UK Biobank short-axis cine CMR (field 20209) as delivered: the zip, or the folder it unzips to.

    record = read_ukb_cmr("cmr/1000589_20209_2_0.zip")   # or "cmr/1000589_20209_2_0/"

A zip holds many single-frame DICOM files (flat) and `manifest.csv` (in some releases
`manifest.cvs`) giving each file's series description, in a column headed "series
discription". Members are read into memory; nothing is unpacked to disk.

What is read follows ukbb_cardiac (Bai et al.), the pipeline behind the `sa.nii.gz` and the
phenotype table most UK Biobank users have, so the frames are those the phenotypes were
measured on:

- Series: `CINE_segmented_SAX_b{k}`, one per slice, stacked by k (base to apex). Older exports
  put every slice in one `CINE_segmented_SAX` series: its files, in name order, are cut into
  slices of `CardiacNumberOfImages` frames. Everything else in the zip (long-axis
  `CINE_segmented_LAX_*`, flow, T1 maps, tagging, `..._InlineVF` results) is ignored.
- Repeated acquisitions of a slice (several SeriesInstanceUIDs under one description): the last
  UID in sorted order, ukbb_cardiac's `find_series` rule.
- Frames: by TriggerTime (ms after the R peak), at most `CardiacNumberOfImages` of them.
- The manifest's dates may hold a comma ("Mar 3, 2016") that shifts naive CSV columns: the
  comma is dropped before parsing, as ukbb_cardiac does. A file the manifest does not describe
  (no manifest, or an unparseable line) is described by its own DICOM SeriesDescription.
- The slice: mid-ventricular, from motion (`ptacl.io.cmr_slice.mid_ventricular_slice`), as
  the zip holds no segmentation.

Orientation: frames keep the DICOM rows and columns. ukbb_cardiac stores `pixel_array.T` as the
NIfTI (X, Y) plane and `read_cmr` transposes it back, so a zip and the `sa.nii.gz` converted
from it give the same frames; DICOM's LPS versus NIfTI's RAS (x and y negated) changes the
affine only, never the pixel order.
"""

from __future__ import annotations

import contextlib
import csv
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ptacl.io.cmr_dicom import by_trigger_time, read_dataset, slice_record
from ptacl.io.errors import InputError
from ptacl.io.records import CmrRecord

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

MANIFESTS = ("manifest.csv", "manifest.cvs")
_SAX_SLICE = re.compile(r"CINE_segmented_SAX_b(\d+)")
_SAX_MIXED = "CINE_segmented_SAX"
#: "Mar 3, 2016" -> "Mar 3 2016" (the comma would split the date into two CSV columns).
_DATE_COMMA = re.compile(r"\b([A-Z][a-z]{2} \d{1,2}), (\d{4})\b")
_FILENAME = "filename"
_DESCRIPTION = ("series discription", "series description", "seriesdescription")


def is_ukb_cmr_folder(folder: Path) -> bool:
    """True for an unzipped UK Biobank CMR folder: it holds a manifest.csv (or .cvs)."""
    return any((folder / name).is_file() for name in MANIFESTS)


@contextlib.contextmanager
def _members(path: Path) -> Iterator[tuple[list[str], Callable[[str], bytes]]]:
    """(member names, read(name) -> bytes) of a zip or of a folder's files (recursively)."""
    if path.is_dir():
        names = sorted(
            str(p.relative_to(path))
            for p in path.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )
        yield names, lambda name: (path / name).read_bytes()
        return
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise InputError(path, f"not a readable zip file ({err})") from None
    with archive:
        names = sorted(i.filename for i in archive.infolist() if not i.is_dir())

        def read(name: str) -> bytes:
            try:
                return archive.read(name)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:  # CRC, truncation
                raise InputError(path, f"{name}: unreadable zip member ({err})") from None

        yield names, read


def parse_manifest(text: str) -> dict[str, str]:
    """manifest.csv -> {file name: series description}; lines that cannot be read are left out
    (their files are then described by their DICOM headers)."""
    lines = [_DATE_COMMA.sub(r"\1 \2", line) for line in text.splitlines() if line.strip()]
    rows = list(csv.reader(lines))
    if not rows:
        return {}
    header = [h.strip().lower() for h in rows[0]]
    if _FILENAME not in header or not any(d in header for d in _DESCRIPTION):
        return {}
    name_col = header.index(_FILENAME)
    desc_col = next(header.index(d) for d in _DESCRIPTION if d in header)
    return {
        row[name_col].strip(): row[desc_col].strip()
        for row in rows[1:]
        if len(row) == len(header) and row[name_col].strip()
    }


def _read_manifest(names: list[str], read: Callable[[str], bytes]) -> dict[str, str]:
    found = [n for n in names if Path(n).name.lower() in MANIFESTS]
    if not found:
        return {}
    raw = read(found[0])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # free text from the scanner; only two columns are used
    return parse_manifest(text)


def _last_acquisition(frames: list[Dataset]) -> list[Dataset]:
    """One slice's frames from its last acquisition: the last SeriesInstanceUID in sorted order
    (ukbb_cardiac's `find_series`), when the slice was acquired more than once."""
    uids = sorted({str(ds.get("SeriesInstanceUID", "")) for ds in frames})
    return [ds for ds in frames if str(ds.get("SeriesInstanceUID", "")) == uids[-1]]


def _cycle(frames: list[Dataset]) -> list[Dataset]:
    """Frames by trigger time, at most CardiacNumberOfImages (one cardiac cycle)."""
    ordered = by_trigger_time(frames)
    count = int(ordered[0].get("CardiacNumberOfImages", 0) or 0) if ordered else 0
    return ordered[:count] if count > 0 else ordered


def read_ukb_cmr(path: str | Path, min_frames: int) -> CmrRecord:
    """Read the mid-ventricular short-axis cine slice of a UK Biobank zip or unzipped folder
    (see the module docstring). Raises InputError naming the file and the reason."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    with _members(path) as (names, read):
        described = _read_manifest(names, read)
        candidates = [n for n in names if Path(n).name.lower() not in MANIFESTS]
        slices: dict[int, list[str]] = {}
        mixed: list[str] = []
        seen: set[str] = set()
        for name in candidates:
            description = described.get(Path(name).name) or described.get(name)
            if description is None:  # not in the manifest: the file says itself
                try:
                    header = read_dataset(read(name), path / name, pixels=False)
                except InputError:
                    continue  # not DICOM (a readme, a checksum file): nothing to read
                description = str(header.get("SeriesDescription", ""))
            seen.add(description)
            match = _SAX_SLICE.fullmatch(description)
            if match is not None:
                slices.setdefault(int(match[1]), []).append(name)
            elif description == _SAX_MIXED:
                mixed.append(name)
        if not slices and not mixed:
            shown = ", ".join(sorted(d or "<none>" for d in seen)[:8])
            raise InputError(
                path,
                f"no short-axis cine series (CINE_segmented_SAX_b1, _b2, ...) among "
                f"{len(candidates)} files; series found: {shown or 'none'}",
            )

        def load(name: str) -> Dataset:
            return read_dataset(read(name), path / name)

        if slices:
            stack = [
                _cycle(_last_acquisition([load(n) for n in slices[k]])) for k in sorted(slices)
            ]
            what = f"slice (of {len(stack)}: CINE_segmented_SAX_b{min(slices)}-b{max(slices)})"
        else:
            datasets = [load(n) for n in sorted(mixed)]
            count = int(datasets[0].get("CardiacNumberOfImages", 0) or 0)
            if count < 1:
                raise InputError(
                    path, f"{_SAX_MIXED} series without CardiacNumberOfImages to split it"
                )
            stack = [
                by_trigger_time(datasets[k : k + count])
                for k in range(0, len(datasets) - count + 1, count)
            ]
            what = f"slice (of {len(stack)} cut from {_SAX_MIXED})"
        if not stack:
            raise InputError(path, f"{len(mixed)} files, fewer than one slice of frames")
        return slice_record(stack, path, min_frames, what)
