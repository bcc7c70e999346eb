"""Which raw files belong to which subject: discovery, UK Biobank naming, the cohort's origin.

    ecg = discover_ecg(ecg_dir, instance=2); cmr = discover_cmr(cmr_dir)

File names are matched to eids (`ptacl.io.names`). UK Biobank bulk files are read as
delivered, for the visit `instance` (2, the first imaging visit, unless told otherwise): ECGs
`{eid}_20205_{instance}_{array}.xml`, short-axis cines `{eid}_20209_{instance}_{array}.zip` or
the folder that zip unzips to (`ptacl.io.cmr_ukb`); of several arrays the lowest is used, the
others listed as superseded. Other names: ECGs `{eid}.xml/.dcm/.hea/.npy/.npz` (searched
recursively; WFDB records by their `.hea`), HDF5 files (`.h5/.hdf5`, CODE-15%-style) of many
records, each under its exam id or the eid a side table gives it, cines `{eid}/sa.nii.gz` (or
`.nii`, `.npy`), a folder the reader takes as it is (a DICOM cine series) or a file
`{eid}.nii.gz/.nii/.npy`. Every other file is `ignored`, with the reason: another UK Biobank
field or visit, or a file of no known layout. Two files that claim the same eid for one
modality (other than UK Biobank arrays) are ambiguous: that modality of the subject is
rejected, naming both. `cohort_origin` says whether the cohort is synthetic, UK Biobank or
unknown (the store manifest's `origin`, repeated by every bundle's model card).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ptacl.io import InputError
from ptacl.io.covariates import COVARIATES_FILE
from ptacl.io.ecg_hdf5 import SUFFIXES as HDF5_SUFFIXES
from ptacl.io.ecg_hdf5 import hdf5_records
from ptacl.io.names import (
    DEFAULT_INSTANCE,
    UKB_CMR_FIELD,
    UKB_ECG_FIELD,
    normalise_eid,
    parse_ukb_name,
    stem,
)

ECG_SUFFIXES = (".xml", ".dcm", ".hea", ".npy", ".npz", *HDF5_SUFFIXES)

CMR_SUFFIXES = (".nii.gz", ".nii", ".npy")


@dataclass
class Candidates:
    """Files found for one modality: eid -> the file to use, files not used and why, and files
    ignored (not this modality's format, another UK Biobank field or visit) and why."""

    chosen: dict[str, Path] = field(default_factory=dict)
    unused: list[tuple[str, Path, str]] = field(default_factory=list)  # (eid, file, reason)
    rejected: set[str] = field(default_factory=set)  # eids whose files are ambiguous
    ignored: list[tuple[str, Path, str]] = field(default_factory=list)  # (eid or "", file, why)


def _name_of(path: Path, suffixes: tuple[str, ...]) -> tuple[str, str] | None:
    """(stem, suffix) when the file has one of `suffixes` (case-insensitive), else None."""
    lower = path.name.lower()
    for suffix in suffixes:
        if lower.endswith(suffix) and len(lower) > len(suffix):
            return path.name[: -len(suffix)], suffix
    return None


Found = dict[str, list[tuple[Path, tuple[int, int] | None]]]


def _resolve(found: Found, ignored: list[tuple[str, Path, str]]) -> Candidates:
    """Pick one file per eid: the lowest UK Biobank array of the visit read, else reject
    ambiguous eids."""
    out = Candidates(ignored=ignored)
    for eid, files in found.items():
        files = sorted(files, key=lambda f: (f[1] is None, f[1] or (0, 0), str(f[0])))
        if len(files) == 1:
            out.chosen[eid] = files[0][0]
        elif all(visit is not None for _, visit in files):
            out.chosen[eid] = files[0][0]
            first = "{}_{}".format(*files[0][1])
            for path, _ in files[1:]:
                out.unused.append(
                    (eid, path, f"superseded: instance {first} of eid {eid} is used (the lowest)")
                )
        else:
            out.rejected.add(eid)
            for path, _ in files:
                others = ", ".join(str(p) for p, _ in files if p != path)
                out.unused.append((eid, path, f"duplicate eid {eid}: also claimed by {others}"))
    return out


def _ukb_visit(
    name: str, path: Path, field_: str, what: str, instance: int, ignored: list
) -> tuple[str, tuple[int, int] | None] | None:
    """(eid, (instance, array)) of a UK Biobank name of `field_` and the visit read, (name,
    None) for any other name; None (and an `ignored` row) for another field or visit."""
    ukb = parse_ukb_name(name)
    if ukb is None:
        return name, None
    if ukb.field != field_:
        ignored.append((ukb.eid, path, f"UK Biobank field {ukb.field}, not {field_} ({what})"))
        return None
    if ukb.instance != instance:
        ignored.append(
            (ukb.eid, path, f"instance {ukb.instance}, not the visit read (--instance {instance})")
        )
        return None
    return ukb.eid, (ukb.instance, ukb.array)


def _not_this_modality(path: Path, field_: str, what: str, layout: str) -> tuple[str, Path, str]:
    """The `ignored` row of a file of no layout of this modality: the eid it names (UK Biobank
    names only, else ''), and the other UK Biobank field it holds (one folder may hold both
    modalities' bulk files) or the layouts expected."""
    ukb = parse_ukb_name(path)
    if ukb is not None and ukb.field != field_:
        return ukb.eid, path, f"UK Biobank field {ukb.field}, not {field_} ({what})"
    return ("" if ukb is None else ukb.eid), path, layout


def _other_field_folder(root: Path, parts: tuple[str, ...], field_: str) -> Path | None:
    """The first folder among `parts` (below `root`) named as a UK Biobank bulk file of
    another field than `field_`, or None."""
    for depth, part in enumerate(parts):
        ukb = parse_ukb_name(part)
        if ukb is not None and ukb.field != field_:
            return root.joinpath(*parts[: depth + 1])
    return None


def discover_ecg(
    root: Path,
    exclude: Path | None = None,
    instance: int = DEFAULT_INSTANCE,
    ids: dict[str, str] | None = None,
) -> Candidates:
    """ECG files under `root`, matched to eids by name (see the module docstring); the
    records of an HDF5 file by their exam id, through `ids` (exam id -> eid) when given.

    Hidden files and folders are skipped, and so is `exclude` (the store being written, whose
    `.npy` arrays would otherwise look like ECGs when it lies inside `root`). Every other file
    not used is in `ignored`, with the reason.
    """
    found: Found = {}
    ignored: list[tuple[str, Path, str]] = []
    other_fields: set[Path] = set()  # e.g. an unzipped {eid}_20209_2_0/: its DICOMs are MR
    excluded = None if exclude is None else exclude.resolve()
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        inside = path.relative_to(root).parts
        if any(part.startswith(".") for part in inside):
            continue
        if excluded is not None and path.resolve().is_relative_to(excluded):
            continue
        folder = _other_field_folder(root, inside[:-1], UKB_ECG_FIELD)
        if folder is not None:
            if folder not in other_fields:
                other_fields.add(folder)
                ignored.append(_not_this_modality(folder, UKB_ECG_FIELD, "resting ECG", ""))
            continue
        if path.name.lower().endswith(HDF5_SUFFIXES):
            _hdf5_candidates(path, ids, found, ignored)
            continue
        named = _name_of(path, ECG_SUFFIXES)
        if named is None:
            if path.suffix.lower() == ".dat" and path.with_suffix(".hea").is_file():
                continue  # a WFDB record's samples: read through its .hea
            layout = f"not an ECG file (expected {', '.join(ECG_SUFFIXES)})"
            ignored.append(_not_this_modality(path, UKB_ECG_FIELD, "resting ECG", layout))
            continue
        visit = _ukb_visit(named[0], path, UKB_ECG_FIELD, "resting ECG", instance, ignored)
        if visit is not None:
            found.setdefault(visit[0], []).append((path, visit[1]))
    return _resolve(found, ignored)


def _hdf5_candidates(
    path: Path, ids: dict[str, str] | None, found: Found, ignored: list[tuple[str, Path, str]]
) -> None:
    """The records of one HDF5 file, each under its eid: its exam id, or what the side table
    `ids` maps it to; a record the table does not name is ignored, with the reason."""
    try:
        records = hdf5_records(path)
    except InputError as err:
        ignored.append(("", path, f"unreadable HDF5 ECG file: {err.reason}"))
        return
    for address, exam in records:
        eid = join_key(exam) if ids is None else ids.get(join_key(exam))
        if eid is None:
            ignored.append(("", address, f"exam_id {exam} is not in the exam_id -> eid table"))
        else:
            found.setdefault(eid, []).append((address, None))


def discover_cmr(
    root: Path, exclude: Path | None = None, instance: int = DEFAULT_INSTANCE
) -> Candidates:
    """The cines directly under `root`: UK Biobank `{eid}_20209_{instance}_{array}.zip` (or the
    folder it unzips to), `{eid}/sa.nii.gz` folders, `{eid}.nii.gz`-style files; every other
    entry in `ignored`, with the reason (`seg_*` files are read beside their image)."""
    found: Found = {}
    ignored: list[tuple[str, Path, str]] = []
    excluded = None if exclude is None else exclude.resolve()
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or (excluded is not None and path.resolve() == excluded):
            continue
        if path.is_dir():
            inside = [path / f"sa{s}" for s in CMR_SUFFIXES if (path / f"sa{s}").is_file()]
            # a folder without sa.* is still a subject seen: the reader names what is missing
            target = inside[0] if inside else path
            visit = _ukb_visit(path.name, path, UKB_CMR_FIELD, "short-axis cine", instance, ignored)
        elif path.name.lower().endswith(".zip"):
            target = path
            visit = _ukb_visit(
                stem(path), path, UKB_CMR_FIELD, "short-axis cine", instance, ignored
            )
            if visit is not None and visit[1] is None:
                reason = f"a zip not named {{eid}}_{UKB_CMR_FIELD}_{{instance}}_{{array}}.zip"
                ignored.append(("", path, reason))
                continue
        else:
            named = _name_of(path, CMR_SUFFIXES)
            if named is not None and named[0].startswith("seg_"):
                continue  # a segmentation, read with the image it belongs to
            if named is None:
                layout = "not a CMR file (expected {eid}/sa.nii.gz, {eid}.nii.gz/.nii/.npy or "
                layout += f"{{eid}}_{UKB_CMR_FIELD}_2_0.zip)"
                ignored.append(_not_this_modality(path, UKB_CMR_FIELD, "short-axis cine", layout))
                continue
            target = path
            visit = _ukb_visit(named[0], path, UKB_CMR_FIELD, "short-axis cine", instance, ignored)
        if visit is not None:
            found.setdefault(visit[0], []).append((target, visit[1]))
    return _resolve(found, ignored)


#: Store manifest `origin` values; the model card of every bundle says which it was trained on.
ORIGIN_SYNTHETIC = "synthetic (ptacl synth)"

ORIGIN_UKB = "UK Biobank"

ORIGIN_UNKNOWN = "unknown"


def cohort_origin(
    ecg_dir: str | Path | None,
    cmr_dir: str | Path | None,
    phenotypes: str | Path | None,
    ecg_found: Candidates,
    cmr_found: Candidates,
) -> dict[str, str]:
    """Where the cohort came from, for the store manifest: {"origin", "evidence"}.

    Synthetic when a folder holding the inputs carries `ptacl synth`'s marker (`SYNTH_MARKER`,
    or truth.csv from before the marker); UK Biobank when files carry its bulk-file names (so
    its rules on derived data apply); unknown otherwise. The marker is checked first: synth
    names its ECGs as UK Biobank does.
    """
    from ptacl.synth.marker import find_synth_marker, generator_version

    inputs = [Path(p) for p in (ecg_dir, cmr_dir, phenotypes) if p is not None]
    marker = find_synth_marker(inputs)
    if marker is not None:
        version = generator_version(marker)  # old and new cohorts draw different data
        return {
            "origin": ORIGIN_SYNTHETIC,
            "evidence": f"{marker.name} beside the inputs (generator version {version})",
        }
    files = [*ecg_found.chosen.values(), *cmr_found.chosen.values()]
    named = [p for p in files if parse_ukb_name(p) is not None]
    if named:
        return {
            "origin": ORIGIN_UKB,
            "evidence": f"{len(named)} of {len(files)} files named as UK Biobank bulk files "
            f"(e.g. {named[0].name})",
        }
    return {
        "origin": ORIGIN_UNKNOWN,
        "evidence": "neither a ptacl synth marker nor UK Biobank names",
    }


def join_key(eid: str) -> str:
    """A file's eid as the phenotype table's index spells it (`normalise_eid`); a name that
    is no integer (e.g. '12.5', impossible from a file name's stem) stays as it is."""
    try:
        return normalise_eid(eid)
    except ValueError:
        return eid


def find_cohort_covariates(phenotypes: str | Path | None) -> Path | None:
    """The covariates.csv of a `ptacl synth` cohort whose phenotypes.csv is `phenotypes`
    (beside it, in a folder with the synth marker), or None. Real cohorts name theirs with
    `ptacl prepare --covariates`: a stray file is not picked up from a user's folder."""
    from ptacl.synth.marker import find_synth_marker

    if phenotypes is None or not Path(phenotypes).is_file():
        return None
    candidate = Path(phenotypes).with_name(COVARIATES_FILE)
    if candidate.is_file() and find_synth_marker([Path(phenotypes)]) is not None:
        return candidate
    return None
