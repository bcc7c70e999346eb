"""UK Biobank short-axis cine CMR (field 20209) as delivered: the zip, or the folder it unzips to.

    record = read_ukb_cmr("cmr/1000589_20209_2_0.zip")   # or "cmr/1000589_20209_2_0/"

A zip holds many single-frame DICOM files (flat) and `manifest.csv` (in some releases
`manifest.cvs`) giving each file's series description, in a column headed "series
discription". Members are read into memory; nothing is unpacked to disk. What is read is
bounded (`ptacl.io.cmr_limits.CmrLimits`): member count and sizes from the zip directory before
anything is inflated, headers from each member's first bytes (the pixels stay compressed;
the manifest's cine files are read whole at once when their sizes fit `cine_bytes`),
every read streamed with a cap, the cine's frames x rows x columns before the pixels are
read. A member too large or compressed other than by deflate is not read (a note, or a refusal
when it is a frame of the cine); a name held twice is a refusal.

What is read follows ukbb_cardiac (Bai et al.), the pipeline behind the `sa.nii.gz` and the
phenotype table most UK Biobank users have, so the frames are those the phenotypes were
measured on:

- Series: `CINE_segmented_SAX_b{k}`, one per slice, stacked by k (base to apex). Older exports
  put every slice in one `CINE_segmented_SAX` series: its files, in name order, are cut into
  slices of `CardiacNumberOfImages` frames. Everything else in the zip (long-axis
  `CINE_segmented_LAX_*`, flow, T1 maps, tagging, `..._InlineVF` results) is ignored.
- Repeated acquisitions of a slice (several SeriesInstanceUIDs under one description): the
  last acquired, by SeriesNumber, else AcquisitionTime / SeriesTime / InstanceCreationTime, the
  UIDs' order only as the last resort (UIDs are identifiers, not timestamps); an acquisition
  whose frames are all identical (no motion) gives way to the one before it. qc.csv notes the
  rule that decided (`CmrRecord.notes`).
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
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ptacl.io.cmr_dicom import (
    by_trigger_time,
    check_cine_size,
    check_mr_frames,
    read_dataset,
    slice_record,
)
from ptacl.io.cmr_limits import DEFAULT_LIMITS, CmrLimits, mib
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


#: Compression methods whose inflation `zipfile` bounds by the bytes asked for; bzip2 and
#: LZMA members are inflated a whole compressed block at a time, so a few KB can become GBs.
_BOUNDED_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_METHOD_NAMES = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA", 9: "Deflate64"}
_CHUNK = 1 << 20


class _Members:
    """The members of a zip or of an unzipped folder, read within `CmrLimits`: count, names and
    sizes checked from the directory before anything is inflated, bytes counted again while
    streaming (a directory can understate a member)."""

    def __init__(self, path: Path, limits: CmrLimits, archive: zipfile.ZipFile | None) -> None:
        self.path, self.limits, self.archive = path, limits, archive
        self.inflated = 0
        if archive is None:
            files = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")]
            sizes = {str(p.relative_to(path)): p.stat().st_size for p in files}
            methods: dict[str, int] = {}
        else:
            infos = [i for i in archive.infolist() if not i.is_dir()]
            repeated = Counter(i.filename for i in infos).most_common(1)
            if repeated and repeated[0][1] > 1:
                name, count = repeated[0]
                raise InputError(
                    path,
                    f"member {name} appears {count} times in the zip: which copy is the image "
                    f"is ambiguous (a zip written twice over?)",
                )
            sizes = {i.filename: i.file_size for i in infos}
            methods = {i.filename: i.compress_type for i in infos}
        if len(sizes) > limits.members:
            raise InputError(
                path, f"{len(sizes)} members, over the limit of {limits.members} per archive"
            )
        self.names = sorted(sizes)
        self.sizes = sizes
        #: members not to be read at all, with the reason (from the directory alone)
        self.unreadable: dict[str, str] = {}
        for name, size in sizes.items():
            if name in methods and methods[name] not in _BOUNDED_METHODS:
                method = _METHOD_NAMES.get(methods[name], "an unknown method")
                self.unreadable[name] = (
                    f"compressed with {method} (method {methods[name]}), not deflate: not "
                    f"inflated (its size cannot be bounded while inflating)"
                )
            elif size > limits.member_bytes:
                self.unreadable[name] = (
                    f"{mib(size)} inflated, over the limit of {mib(limits.member_bytes)} per "
                    f"member: not read"
                )

    def read(self, name: str, *, whole: bool = True) -> bytes:
        """A member's bytes (`whole=False`: only its first `header_bytes`, enough for a DICOM
        header), streamed with a cap, so no member inflates past the limits."""
        if name in self.unreadable:
            raise InputError(self.path, f"{name}: {self.unreadable[name]}")
        cap = self.limits.member_bytes if whole else self.limits.header_bytes
        chunks, size = [], 0
        try:
            with self._open(name) as stream:
                while size <= cap:
                    chunk = stream.read(min(_CHUNK, cap + 1 - size))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as err:
            raise InputError(self.path, f"{name}: unreadable zip member ({err})") from None
        self.inflated += size
        if self.inflated > self.limits.archive_bytes:
            raise InputError(
                self.path,
                f"more than {mib(self.limits.archive_bytes)} inflated from the archive, over "
                f"the limit (--cmr-limit archive_bytes=...)",
            )
        if whole and size > cap:
            raise InputError(
                self.path,
                f"{name}: more than {mib(cap)} inflated (the directory says "
                f"{mib(self.sizes[name])}), over the limit per member",
            )
        return b"".join(chunks)[:cap]

    def _open(self, name: str) -> BinaryIO:
        if self.archive is None:
            return open(self.path / name, "rb")
        return self.archive.open(name)


@contextlib.contextmanager
def _members(path: Path, limits: CmrLimits) -> Iterator[_Members]:
    """The members of a zip or of a folder's files (recursively)."""
    if path.is_dir():
        yield _Members(path, limits, None)
        return
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise InputError(path, f"not a readable zip file ({err})") from None
    with archive:
        yield _Members(path, limits, archive)


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


def _read_manifest(members: _Members, notes: list[str]) -> dict[str, str]:
    found = [n for n in members.names if Path(n).name.lower() in MANIFESTS]
    if not found:
        return {}
    if found[0] in members.unreadable:  # the DICOM headers describe the files instead
        notes.append(f"{found[0]}: {members.unreadable[found[0]]}")
        return {}
    raw = members.read(found[0])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # free text from the scanner; only two columns are used
    return parse_manifest(text)


def _tm_seconds(value: object) -> float | None:
    """DICOM TM ("HHMMSS.FFFFFF", or the old "HH:MM:SS") in seconds; None when unreadable."""
    text = str(value or "").strip().replace(":", "")
    try:
        return int(text[0:2]) * 3600 + int(text[2:4] or 0) * 60 + float(text[4:] or 0)
    except ValueError:
        return None


def _series_number(frames: list[Dataset]) -> tuple | None:
    numbers = {str(ds.get("SeriesNumber", "")).strip() for ds in frames}
    if "" in numbers or not numbers:
        return None
    try:
        return (max(int(n) for n in numbers),)
    except ValueError:
        return None


def _moment(date_tag: str, time_tag: str) -> Callable[[list[Dataset]], tuple | None]:
    """The earliest (date, time) of a series' frames by these tags; None if a frame lacks it."""

    def key(frames: list[Dataset]) -> tuple | None:
        moments = []
        for ds in frames:
            seconds = _tm_seconds(ds.get(time_tag))
            if seconds is None:
                return None
            moments.append((str(ds.get(date_tag, "") or ""), seconds))
        return min(moments) if moments else None

    return key


#: How repeated acquisitions of one slice are ordered, most trusted first. UIDs are
#: identifiers, not timestamps: their order is the last resort.
_ACQUISITION_RULES: tuple[tuple[str, Callable[[list[Dataset]], tuple | None]], ...] = (
    ("SeriesNumber", _series_number),
    ("AcquisitionTime", _moment("AcquisitionDate", "AcquisitionTime")),
    ("SeriesTime", _moment("SeriesDate", "SeriesTime")),
    ("InstanceCreationTime", _moment("InstanceCreationDate", "InstanceCreationTime")),
)


def acquisitions_last_first(frames: list[Dataset]) -> tuple[list[list[Dataset]], str]:
    """One slice's frames grouped by SeriesInstanceUID, the last acquired first, and the rule
    that ordered them: the first of SeriesNumber, AcquisitionTime, SeriesTime and
    InstanceCreationTime that every acquisition carries with no two alike, else UID order."""
    groups: dict[str, list[Dataset]] = {}
    for ds in frames:
        groups.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append(ds)
    uids = sorted(groups)
    if len(uids) == 1:
        return [groups[uids[0]]], ""
    for rule, key in _ACQUISITION_RULES:
        values = {uid: key(groups[uid]) for uid in uids}
        if None not in values.values() and len(set(values.values())) == len(uids):
            order = sorted(uids, key=lambda uid: values[uid], reverse=True)
            return [groups[uid] for uid in order], rule
    rule = "SeriesInstanceUID order (no SeriesNumber or acquisition time tells them apart)"
    return [groups[uid] for uid in reversed(uids)], rule


def _describe(frames: list[Dataset]) -> str:
    ds = frames[0]
    number = ds.get("SeriesNumber")
    return f"series {number}" if number is not None else f"UID {ds.get('SeriesInstanceUID')}"


def _cycle(frames: list[Dataset]) -> list[Dataset]:
    """Frames by trigger time, at most CardiacNumberOfImages (one cardiac cycle)."""
    ordered = by_trigger_time(frames)
    count = int(ordered[0].get("CardiacNumberOfImages", 0) or 0) if ordered else 0
    return ordered[:count] if count > 0 else ordered


def _is_sax(description: str | None) -> bool:
    return description is not None and (
        _SAX_SLICE.fullmatch(description) is not None or description == _SAX_MIXED
    )


def _classify(
    members: _Members, described: dict[str, str], notes: list[str]
) -> tuple[dict[int, list[tuple[str, Dataset]]], list[tuple[str, Dataset]]]:
    """Short-axis cine members with their headers: by slice number (`CINE_segmented_SAX_b{k}`)
    and those of an old single `CINE_segmented_SAX` series. Headers are read without the
    pixels, except where the manifest names the cine's files and their sizes in the directory
    fit `cine_bytes` together: those are read once, whole (pixels kept raw, not converted)."""
    slices: dict[int, list[tuple[str, Dataset]]] = {}
    mixed: list[tuple[str, Dataset]] = []
    seen: set[str] = set()
    candidates = [n for n in members.names if Path(n).name.lower() not in MANIFESTS]
    descriptions = {n: described.get(Path(n).name) or described.get(n) for n in candidates}
    named_sax = [n for n in candidates if _is_sax(descriptions[n])]
    whole = sum(members.sizes[n] for n in named_sax) <= members.limits.cine_bytes
    for name in candidates:
        description = descriptions[name]
        sax = _is_sax(description)
        if name in members.unreadable:
            if sax:  # a frame of the cine itself: the cine cannot be read whole
                members.read(name)  # raises, naming the member and the reason
            notes.append(f"{name}: {members.unreadable[name]}")
            continue
        if description is not None and not sax:
            seen.add(description)
            continue  # described by the manifest as another series: not read at all
        try:
            read_whole = whole and sax
            header = read_dataset(
                members.read(name, whole=read_whole), members.path / name, pixels=read_whole
            )
        except InputError:
            if description is not None:
                raise
            continue  # not DICOM (a readme, a checksum file): nothing to read
        if description is None:  # not in the manifest: the file says itself
            description = str(header.get("SeriesDescription", ""))
        seen.add(description)
        match = _SAX_SLICE.fullmatch(description)
        if match is not None:
            slices.setdefault(int(match[1]), []).append((name, header))
        elif description == _SAX_MIXED:
            mixed.append((name, header))
    if not slices and not mixed:
        shown = ", ".join(sorted(d or "<none>" for d in seen)[:8])
        skipped = sum(name in members.unreadable for name in candidates)
        raise InputError(
            members.path,
            f"no short-axis cine series (CINE_segmented_SAX_b1, _b2, ...) among "
            f"{len(candidates)} files; series found: {shown or 'none'}"
            + (f"; {skipped} files not read (over the limits, or not deflate)" if skipped else ""),
        )
    return slices, mixed


def read_ukb_cmr(
    path: str | Path, min_frames: int, limits: CmrLimits = DEFAULT_LIMITS
) -> CmrRecord:
    """Read the mid-ventricular short-axis cine slice of a UK Biobank zip or unzipped folder
    (see the module docstring). Raises InputError naming the file and the reason."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    notes: list[str] = []
    with _members(path, limits) as members:
        described = _read_manifest(members, notes)
        slices, mixed = _classify(members, described, notes)
        names = {id(ds): name for group in [*slices.values(), mixed] for name, ds in group}

        def load(headers: list[Dataset]) -> list[Dataset]:
            """The frames with their pixels, in the headers' order."""
            return [
                ds
                if "PixelData" in ds
                else read_dataset(members.read(names[id(ds)]), path / names[id(ds)])
                for ds in headers
            ]

        if slices:
            stack = _sax_stack(slices, path, limits, load, notes)
            what = f"slice (of {len(stack)}: CINE_segmented_SAX_b{min(slices)}-b{max(slices)})"
        else:
            headers = [ds for _, ds in sorted(mixed, key=lambda item: item[0])]
            count = int(headers[0].get("CardiacNumberOfImages", 0) or 0)
            if count < 1:
                raise InputError(
                    path, f"{_SAX_MIXED} series without CardiacNumberOfImages to split it"
                )
            if len(headers) < count:
                raise InputError(path, f"{len(mixed)} files, fewer than one slice of frames")
            notes += check_mr_frames(headers, path)
            check_cine_size(headers, path, limits.cine_bytes)
            datasets = load(headers)
            stack = [
                by_trigger_time(datasets[k : k + count])
                for k in range(0, len(datasets) - count + 1, count)
            ]
            what = f"slice (of {len(stack)} cut from {_SAX_MIXED})"
        return slice_record(stack, path, min_frames, what, notes)


def _sax_stack(
    slices: dict[int, list[tuple[str, Dataset]]],
    path: Path,
    limits: CmrLimits,
    load: Callable[[list[Dataset]], list[Dataset]],
    notes: list[str],
) -> list[list[Dataset]]:
    """One cycle of frames per slice, base to apex: of repeated acquisitions the last acquired
    whose frames are not all identical (an acquisition without motion is no cine)."""
    ordered = {}
    for k in sorted(slices):
        acquisitions, rule = acquisitions_last_first([ds for _, ds in slices[k]])
        ordered[k] = [_cycle(frames) for frames in acquisitions]
        if rule:
            notes.append(
                f"CINE_segmented_SAX_b{k}: {len(acquisitions)} acquisitions, the last acquired "
                f"by {rule} is {_describe(acquisitions[0])}"
            )
    first_choice = [ds for cycles in ordered.values() for ds in cycles[0]]
    notes += check_mr_frames(first_choice, path)
    check_cine_size(first_choice, path, limits.cine_bytes)
    stack = []
    for k, cycles in ordered.items():
        for rank, headers in enumerate(cycles):
            frames = load(headers)
            constant = len({bytes(ds.PixelData) for ds in frames}) == 1 and len(frames) > 1
            if not constant or rank == len(cycles) - 1:
                break
            notes.append(
                f"CINE_segmented_SAX_b{k}: {_describe(headers)} skipped, its {len(frames)} "
                f"frames are identical (no motion); read {_describe(cycles[rank + 1])}"
            )
            check_mr_frames(cycles[rank + 1], path)
        stack.append(frames)
    return stack
