"""Raw files -> prepared store: discovery, matching by eid, per-subject processing, qc, split.

    result = prepare_store(ecg_dir, cmr_dir, phenotypes_csv, out, val=0.1, test=0.2, seed=0)

Discovery (`ptacl.data.discover`): which file is which subject's ECG or cine, by name; UK
Biobank bulk files as delivered, for the visit `instance`; every file not used listed in qc.csv
with the reason (another field or visit, no known layout, superseded, an eid claimed twice).

Identity, before any signal is read: each ECG file's own patient id (`read_patient_id`, header
only) is judged against the whole cohort (`ptacl.qc.identity_findings`): an id naming another
subject of the cohort (or two files naming each other's eid) refuses the ECG; any other id that
differs from the eid (e.g. `0`) keeps it, with a warning; qc.csv lists every file's id.

Per subject, in worker processes: read, validate (`ptacl.qc.check_record`: the ECG's
plausibility, with warnings that do not refuse, and the R peaks, detected once), preprocess
(ECG (12, <=5000) at 500 Hz; CMR (50, 84, 84) in [0, 1]). Any
failure rejects that modality only. Rows are written as they arrive straight into the store's
memory-mapped arrays (`store_writer`), so memory stays bounded for any cohort size and the
arrays are written once; the store appears at `out` only when complete.

Phenotype rows join subjects by `join_key` (eids as integers however spelled); a table that
matches no subject is refused, one that matches fewer than 90 % is a warning.
Phenotypes go through `ptacl.qc.check_labels`: a value outside the physiological range or
contradicting its ventricle's other volumes becomes NaN, with a qc.csv row (modality
"phenotypes") naming the value and the rule. A phenotype column without any value is reported.

qc.csv has one row per file seen (and one per phenotype row without images or with values set
to NaN): eid, the subject's status (paired / ecg_only / cmr_only / rejected / no_images, or
"ignored" for a file that names no subject of the store), modality, file, the reason the
file (or value) was not used (empty when it was), a warning about a file kept (empty when
none; for a CMR file, what its reader chose or skipped: which repeated acquisition, members
over the limits) and the patient id an ECG file names itself (empty when it names none).

The manifest records the cohort's `origin` (`ptacl.data.discover.cohort_origin`: synthetic, UK
Biobank or unknown)
and the evidence for it: every bundle's model card repeats it.

Writing is safe against a second writer and a full disk: the store's lock (`ptacl.atomic`) is
taken before anything is scanned, so a second `prepare` into the same `out` is refused at once;
free space for the whole store is checked before the first subject is read.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ptacl.atomic import NoSpace, atomic_file, die_with_parent, output_lock
from ptacl.cmr import preprocess_cmr
from ptacl.data.discover import Candidates, cohort_origin, discover_cmr, discover_ecg, join_key
from ptacl.data.store import ROW_BYTES, store_writer
from ptacl.ecg import preprocess_ecg
from ptacl.io import InputError, read_cmr, read_ecg, read_phenotypes
from ptacl.io.cmr_limits import DEFAULT_LIMITS, CmrLimits
from ptacl.io.ecg import read_patient_id
from ptacl.io.ecg_hdf5 import read_id_table
from ptacl.io.names import DEFAULT_INSTANCE
from ptacl.io.phenotypes import load_mapping
from ptacl.phenotypes import PHENOTYPES
from ptacl.qc import check_labels, check_record, identity_findings
from ptacl.schema import CMR_FRAMES, CMR_SIZE, ECG_FS, ECG_SAMPLES, LEADS

STATUSES = ("paired", "ecg_only", "cmr_only", "rejected", "no_images")
QC_COLUMNS = ("eid", "status", "modality", "file", "reason", "warning", "patient_id")
#: qc.csv status of a file that names no subject of the store (e.g. another visit's only file).
IGNORED = "ignored"
#: A qc.csv row before its status: (eid, modality, file, reason[, warning[, patient_id]]).
QcRow = tuple[str, ...]


@dataclass(frozen=True)
class SubjectResult:
    """What a worker returns for one subject; errors are (file, reason)."""

    eid: str
    ecg: np.ndarray | None = None  # (12, ECG_SAMPLES) float16, zero-padded after ecg_length
    ecg_length: int = 0
    r_peaks: np.ndarray | None = None  # int64 indices into ecg
    cmr: np.ndarray | None = None  # (50, 84, 84) uint8
    ecg_error: tuple[str, str] | None = None
    cmr_error: tuple[str, str] | None = None
    ecg_warnings: tuple[str, ...] = ()
    cmr_notes: tuple[str, ...] = ()  # what the CMR reader decided without refusing, for qc.csv


def _error(err: Exception, path: Path) -> tuple[str, str]:
    if isinstance(err, InputError):
        return str(err.source), err.reason
    # anything else is still this file's fault as far as the cohort goes: report, don't abort
    return str(path), f"{type(err).__name__}: {err}"


def process_ecg(path: Path) -> tuple[np.ndarray, int, np.ndarray, tuple[str, ...]]:
    """One ECG file -> ((12, 5000) float16 zero-padded, valid length, R peaks at 500 Hz, the
    checks' warnings)."""
    record = read_ecg(path)
    check = check_record(record)
    peaks = check.peaks  # at the file's rate
    signal = preprocess_ecg(record.signal, record.fs, max_samples=ECG_SAMPLES)  # (12, S500)
    length = signal.shape[-1]
    peaks = np.rint(np.asarray(peaks) * (ECG_FS / record.fs)).astype(np.int64)
    peaks = np.unique(peaks[(peaks >= 0) & (peaks < length)])
    ecg = np.zeros((len(LEADS), ECG_SAMPLES), dtype=np.float16)
    ecg[:, :length] = signal
    return ecg, length, peaks, check.warnings


def process_cmr(
    path: Path, limits: CmrLimits = DEFAULT_LIMITS
) -> tuple[np.ndarray, tuple[str, ...]]:
    """One cine (with its seg beside it, when there is one) -> ((50, 84, 84) uint8, the
    reader's notes)."""
    record = read_cmr(path, limits)
    cine, _ = preprocess_cmr(record, frames=CMR_FRAMES, size=CMR_SIZE)
    return np.clip(np.rint(cine * 255.0), 0, 255).astype(np.uint8), record.notes


def process_subject(
    eid: str,
    ecg_path: Path | None,
    cmr_path: Path | None,
    cmr_limits: CmrLimits = DEFAULT_LIMITS,
) -> SubjectResult:
    """Read, validate and preprocess one subject's files (runs in a worker process, whose
    memory `cmr_limits` bounds)."""
    out: dict = {"eid": eid}
    if ecg_path is not None:
        try:
            out["ecg"], out["ecg_length"], out["r_peaks"], out["ecg_warnings"] = process_ecg(
                ecg_path
            )
        except Exception as err:
            out["ecg_error"] = _error(err, ecg_path)
    if cmr_path is not None:
        try:
            out["cmr"], out["cmr_notes"] = process_cmr(cmr_path, cmr_limits)
        except Exception as err:
            out["cmr_error"] = _error(err, cmr_path)
    return SubjectResult(**out)


def _in_order(
    jobs: list[tuple[str, Path | None, Path | None]],
    workers: int,
    cmr_limits: CmrLimits = DEFAULT_LIMITS,
) -> Iterator[SubjectResult]:
    """Results in job order; at most a few jobs per worker in flight, so memory stays bounded
    (each worker reads one subject at a time, within `cmr_limits`)."""
    if workers <= 1:
        for job in jobs:
            yield process_subject(*job, cmr_limits)
        return
    pending: deque[Future] = deque()
    # spawn, not fork: a worker starts without the parent's threads, signal handlers and lock
    # descriptors; and it dies with the parent, so a `kill -9` of prepare leaves no orphan.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        try:
            for job in jobs:
                pending.append(pool.submit(process_subject, *job, cmr_limits))
                if len(pending) >= 4 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


#: Below this share of subjects with a phenotype row, `prepare` warns (none at all: refused).
MIN_PHENOTYPE_COVERAGE = 0.9


def _phenotype_coverage(
    subjects: list[str], what: str, table: pd.DataFrame, csv: Path
) -> list[str]:
    """How many `subjects` (paired when both folders were given) the table has a row for:
    none is an InputError (a table that joins nothing would train on NaN labels and look
    fine), fewer than MIN_PHENOTYPE_COVERAGE a warning; either says how many and shows how
    both sides spell their eids, which is usually why."""
    if not subjects:
        return []
    missing = [e for e in subjects if join_key(e) not in table.index]
    matched = len(subjects) - len(missing)
    if matched >= MIN_PHENOTYPE_COVERAGE * len(subjects):
        return []
    message = (
        f"{matched} of {len(subjects)} {what} matched a phenotype row: subjects without one "
        f"have eids like {missing[:3]}, the table's eids look like {list(table.index[:3])}"
    )
    if not matched:
        raise InputError(csv, f"{message}; no subject would get a phenotype")
    return [f"{csv}: only {message} (the others get NaN phenotypes)"]


def _judge_identities(
    ecg_found: Candidates, cohort: set[str], qc: list[QcRow]
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Read each chosen ECG file's own patient id and judge them all together
    (`identity_findings`): a refused file leaves `ecg_found.chosen` with its qc row (reason,
    id) appended to `qc`. Returns eid -> the id its file names, and eid -> warnings."""
    patient_ids = {eid: read_patient_id(path) for eid, path in ecg_found.chosen.items()}
    warned: dict[str, list[str]] = {}
    for eid, (level, reason) in identity_findings(patient_ids, cohort).items():
        if level == "warning":
            warned.setdefault(eid, []).append(reason)
            continue
        path = ecg_found.chosen.pop(eid)
        qc.append((eid, "ecg", str(path), reason, "", patient_ids[eid]))
    return patient_ids, warned


def _eid_key(eid: str) -> tuple[int, str]:
    """Numeric eids in numeric order (shorter first), any other names after, by text."""
    return (len(eid), eid) if eid.isdigit() else (1 << 30, eid)


def assign_splits(
    eids: list[str], groups: list[str], *, val: float, test: float, seed: int
) -> list[str]:
    """Split subjects by a seeded permutation of the sorted eids within each group.

    Each group (paired, ecg_only, cmr_only) gets round(val * n) validation and round(test * n)
    test subjects, so pairs, which stage 2 and evaluation need, are split in proportion. The
    result depends only on the set of (eid, group) and the seed, not on file or worker order.
    """
    if val < 0 or test < 0 or val + test >= 1:
        raise ValueError(f"val={val} and test={test} must be >= 0 with val + test < 1")
    split = dict.fromkeys(eids, "train")
    for group in sorted(set(groups)):
        members = sorted((e for e, gr in zip(eids, groups) if gr == group), key=_eid_key)
        # the group's own stream: a new ECG-only subject must not reshuffle the pairs' split
        order = np.random.default_rng([seed, zlib.crc32(group.encode())]).permutation(len(members))
        n_test, n_val = round(test * len(members)), round(val * len(members))
        for rank, k in enumerate(order):
            if rank < n_test:
                split[members[k]] = "test"
            elif rank < n_test + n_val:
                split[members[k]] = "val"
    return [split[e] for e in eids]


_STATUS = {
    (True, True): "paired",
    (True, False): "ecg_only",
    (False, True): "cmr_only",
    (False, False): "rejected",
}


def _qc_table(qc: list[QcRow], status: dict[str, str]) -> pd.DataFrame:
    """(eid, modality, file, reason[, warning[, patient_id]]) rows -> qc.csv's table, subjects
    in eid order."""
    columns = ["eid", "modality", "file", "reason", "warning", "patient_id"]
    table = pd.DataFrame([row + ("",) * (len(columns) - len(row)) for row in qc], columns=columns)
    # a file that names no subject (another visit's only file, a readme) has no subject status
    table["status"] = table["eid"].map(status).fillna(IGNORED)
    rank = {eid: k for k, eid in enumerate(sorted(status, key=_eid_key))}
    table = table.sort_values("eid", key=lambda col: col.map(rank), kind="stable")
    return table[list(QC_COLUMNS)].reset_index(drop=True)


@dataclass(frozen=True)
class PrepareResult:
    """The store written (None when no subject was usable), its qc.csv, counts by status, the
    files refused (and of how many subjects), the files ignored (not an ECG or CMR layout,
    another UK Biobank field or visit), the phenotype values set to NaN (and of how many
    subjects), and warnings about the run as a whole (e.g. a phenotype column without values)."""

    store: Path | None
    qc: Path
    counts: dict[str, int]
    splits: dict[str, int]
    refused_files: int = 0
    ignored_files: int = 0
    refused_subjects: int = 0
    labels_dropped: int = 0
    label_subjects: int = 0
    warnings: tuple[str, ...] = ()


#: Beyond ecg.npy and cmr.npy: r_peaks, phenotypes, the CSVs and the manifest, generously.
_TABLE_BYTES = 16 * 2**20


def check_free_space(out: Path, subjects: int) -> None:
    """Raise NoSpace unless the file system of `out` has room for a store of `subjects` rows.

    Checked before the first subject is read, so a cohort that cannot fit fails in a second,
    naming the space needed, instead of after hours. (`--overwrite` keeps the old store until the
    new one is complete, so the old one's space is not counted as free.)
    """
    need = subjects * ROW_BYTES + _TABLE_BYTES
    folder = out.parent.absolute()
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if free < need:
        raise NoSpace(
            out,
            f"a store of {subjects} subjects needs {need / 1e9:.2f} GB "
            f"({ROW_BYTES} bytes per subject), {free / 1e9:.2f} GB free on {folder}",
        )


def prepare_store(
    ecg_dir: str | Path | None,
    cmr_dir: str | Path | None,
    phenotypes: str | Path | None,
    out: str | Path,
    *,
    val: float = 0.1,
    test: float = 0.2,
    seed: int = 0,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    instance: int = DEFAULT_INSTANCE,
    phenotype_map: str | Path | None = None,
    ecg_ids: str | Path | None = None,
    cmr_limits: CmrLimits = DEFAULT_LIMITS,
    covariates: str | Path | None = None,
) -> PrepareResult:
    """Build a store from raw files (see the module docstring); bad subjects go to qc.csv.
    `instance`: the UK Biobank visit read (2, the first imaging visit; 3, the repeat), from
    file names and showcase phenotype columns; `phenotype_map`: a CSV or YAML of column name or
    field ID -> phenotype (`ptacl.io.phenotypes.load_mapping`); `ecg_ids`: a CSV of exam_id ->
    eid for the records of HDF5 ECG files (`ptacl.io.ecg_hdf5.read_id_table`; without it a
    record's eid is its exam id); `cmr_limits`: what one CMR archive may make a worker inflate
    and hold (`ptacl.io.cmr_limits`); `covariates`: a CSV of sex, height and weight by eid
    (`ptacl.io.covariates`; default: a synthetic cohort's covariates.csv beside `phenotypes`),
    kept in the store for the endpoints, NaN for a subject it lacks.

    Raises FileExistsError if `out` exists without `overwrite`, FileNotFoundError for a missing
    input folder, InputError for an unusable phenotype table, OutputBusy when another process
    writes `out` and NoSpace when the store cannot fit: those stop the whole run.
    """
    out = Path(out)
    if ecg_dir is None and cmr_dir is None:
        raise ValueError("give at least one of an ECG folder and a CMR folder")
    assign_splits([], [], val=val, test=test, seed=seed)  # check the fractions before working
    for name, folder in (("ECG", ecg_dir), ("CMR", cmr_dir)):
        if folder is not None and not Path(folder).is_dir():
            raise FileNotFoundError(f"{folder}: {name} folder not found")
    mapping = None if phenotype_map is None else load_mapping(phenotype_map)
    covariate_table = _covariates(covariates, phenotypes, instance)
    # Held from here to the final rename (the store writer takes it again, re-entrantly).
    with output_lock(out):
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out}: already exists; pass --overwrite to replace it")
        return _prepare(
            ecg_dir, cmr_dir, phenotypes, out, val, test, seed, workers, overwrite, progress,
            instance, mapping, ecg_ids, cmr_limits, covariate_table,
        )  # fmt: skip


def _covariates(
    path: str | Path | None, phenotypes: str | Path | None, instance: int
) -> tuple[Path, pd.DataFrame] | None:
    """The covariate table asked for, or found beside a synthetic cohort's phenotypes."""
    from ptacl.data.discover import find_cohort_covariates
    from ptacl.io.covariates import read_covariates

    found = Path(path) if path is not None else find_cohort_covariates(phenotypes)
    return None if found is None else (found, read_covariates(found, instance=instance))


def _prepare(
    ecg_dir: str | Path | None,
    cmr_dir: str | Path | None,
    phenotypes: str | Path | None,
    out: Path,
    val: float,
    test: float,
    seed: int,
    workers: int,
    overwrite: bool,
    progress: bool,
    instance: int,
    mapping: dict[str, str] | None,
    ecg_ids: str | Path | None = None,
    cmr_limits: CmrLimits = DEFAULT_LIMITS,
    covariates: tuple[Path, pd.DataFrame] | None = None,
) -> PrepareResult:
    """`prepare_store`'s work, under the store's lock, arguments checked."""
    ids = None if ecg_ids is None else read_id_table(ecg_ids)
    ecg_found = Candidates() if ecg_dir is None else discover_ecg(Path(ecg_dir), out, instance, ids)
    cmr_found = Candidates() if cmr_dir is None else discover_cmr(Path(cmr_dir), out, instance)
    table = (
        read_phenotypes(phenotypes, instance=instance, mapping=mapping)
        if phenotypes is not None
        else pd.DataFrame(columns=list(PHENOTYPES), index=pd.Index([], name="eid"))
    )
    cleaned, label_problems = check_labels(table)
    dropped = int((table.notna() & cleaned.isna()).to_numpy().sum())
    table = cleaned
    notes = []
    if phenotypes is not None:
        empty = [c for c in PHENOTYPES if table[c].isna().all()]
        if empty:
            notes.append(
                f"{phenotypes}: no usable value in {len(empty)} phenotype column(s) "
                f"(missing, empty or all implausible), NaN for every subject: {empty}"
            )
    seen = set(ecg_found.chosen) | set(cmr_found.chosen) | ecg_found.rejected | cmr_found.rejected
    if phenotypes is not None:
        subjects = set(ecg_found.chosen) | set(cmr_found.chosen)
        if ecg_dir is not None and cmr_dir is not None:
            subjects = set(ecg_found.chosen) & set(cmr_found.chosen)
        what = "paired subjects" if ecg_dir is not None and cmr_dir is not None else "subjects"
        notes += _phenotype_coverage(sorted(subjects, key=_eid_key), what, table, Path(phenotypes))
    qc: list[QcRow] = []  # status added last
    # the cohort: every subject with a file or a phenotype row (an ECG naming a subject known
    # only by its phenotypes would otherwise be given this subject's)
    patient_ids, warned = _judge_identities(ecg_found, seen | set(table.index), qc)
    jobs = [
        (eid, ecg_found.chosen.get(eid), cmr_found.chosen.get(eid))
        for eid in sorted(seen, key=_eid_key)
    ]

    qc += [(e, "ecg", str(p), r) for e, p, r in ecg_found.unused]
    qc += [(e, "cmr", str(p), r) for e, p, r in cmr_found.unused]
    qc += [(e, "ecg", str(p), f"ignored: {r}") for e, p, r in ecg_found.ignored]
    qc += [(e, "cmr", str(p), f"ignored: {r}") for e, p, r in cmr_found.ignored]
    # a table row's qc lines go under the subject's eid as its files spell it ('01038021')
    file_eid = {join_key(e): e for e in seen}
    qc += [
        (file_eid.get(e, e), "phenotypes", str(phenotypes), "; ".join(r))
        for e, r in label_problems.items()
    ]
    status: dict[str, str] = {}
    check_free_space(out, len(jobs))
    with (
        store_writer(out, len(jobs), overwrite=overwrite) as writer,
        tqdm(total=len(jobs), desc="prepare", unit="subject", disable=not progress) as bar,
    ):
        for (eid, ecg_path, cmr_path), result in zip(jobs, _in_order(jobs, workers, cmr_limits)):
            bar.update()
            ecg_notes = "; ".join([*warned.get(eid, ()), *result.ecg_warnings])
            pid = patient_ids.get(eid, "")
            if ecg_path is not None:
                file, reason = result.ecg_error or (str(ecg_path), "")
                qc.append((eid, "ecg", file, reason, ecg_notes, pid))
            if cmr_path is not None:
                file, reason = result.cmr_error or (str(cmr_path), "")
                qc.append((eid, "cmr", file, reason, "; ".join(result.cmr_notes)))
            ok_ecg, ok_cmr = result.ecg is not None, result.cmr is not None
            status[eid] = _STATUS[(ok_ecg, ok_cmr)]
            if ok_ecg or ok_cmr:
                writer.add(
                    eid,
                    ecg=result.ecg,
                    ecg_length=result.ecg_length,
                    r_peaks=result.r_peaks,
                    cmr=result.cmr,
                )

        for eid in sorted(set(table.index) - set(file_eid), key=_eid_key):
            status[eid] = "no_images"
            qc.append((eid, "phenotypes", str(phenotypes), "phenotype row with no ECG or CMR file"))
        qc_table = _qc_table(qc, status)
        kept_warned = qc_table[(qc_table["reason"] == "") & (qc_table["warning"] != "")]
        if len(kept_warned):
            first = kept_warned.iloc[0]
            notes.append(
                f"{len(kept_warned)} file(s) kept with a warning (the 'warning' column of "
                f"qc.csv), e.g. {first['file']}: {first['warning']}"
            )
        counts = {s: sum(v == s for v in status.values()) for s in STATUSES}
        refused = qc_table[
            qc_table["modality"].isin(["ecg", "cmr"])
            & (qc_table["reason"] != "")
            & ~qc_table["reason"].str.startswith(("superseded", "ignored"))
        ]
        report = {
            "refused_files": len(refused),
            "ignored_files": len(ecg_found.ignored) + len(cmr_found.ignored),
            "refused_subjects": refused["eid"].nunique(),
            "labels_dropped": dropped,
            "label_subjects": len(label_problems),
            "warnings": tuple(notes),
        }

        if not len(writer):  # no store: leaving the block unfinished removes the folder
            qc_path = out.with_name(f"{out.name}.qc.csv")
            with atomic_file(qc_path) as tmp:
                qc_table.to_csv(tmp, index=False)
            no_splits = dict.fromkeys(("train", "val", "test"), 0)
            return PrepareResult(None, qc_path, counts, no_splits, **report)
        eids = writer.eids
        splits = assign_splits(eids, [status[e] for e in eids], val=val, test=test, seed=seed)
        phen = table.reindex([join_key(e) for e in eids])[list(PHENOTYPES)]
        phen = phen.to_numpy(dtype=np.float32)
        writer.finish(
            splits=splits,
            phenotypes=phen,
            qc=qc_table,
            covariates=None
            if covariates is None
            else covariates[1].reindex([join_key(e) for e in eids]),
            extra_manifest={
                "sources": {
                    "ecg": None if ecg_dir is None else str(ecg_dir),
                    "cmr": None if cmr_dir is None else str(cmr_dir),
                    "phenotypes": None if phenotypes is None else str(phenotypes),
                    "covariates": None if covariates is None else str(covariates[0]),
                },
                **cohort_origin(ecg_dir, cmr_dir, phenotypes, ecg_found, cmr_found),
                "ukb_instance": instance,
                "split_seed": seed,
                "split_fractions": {"val": val, "test": test},
                "qc_counts": counts,
                "with_phenotypes": int(np.isfinite(phen).any(axis=1).sum()),
                "refused_files": report["refused_files"],
                "ignored_files": report["ignored_files"],
                "phenotype_values_set_to_nan": dropped,
                "warnings": list(notes),
            },
        )
    split_counts = {s: splits.count(s) for s in ("train", "val", "test")}
    return PrepareResult(out, out / "qc.csv", counts, split_counts, **report)
