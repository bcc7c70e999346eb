"""Raw files -> prepared store: discovery, matching by eid, per-subject processing, qc, split.

    result = prepare_store(ecg_dir, cmr_dir, phenotypes_csv, out, val=0.1, test=0.2, seed=0)

Discovery (`ptacl.data.discover`): which file is which subject's ECG or cine, by name; UK
Biobank bulk files as delivered, for the visit `instance`; every file not used listed in qc.csv
with the reason (another field or visit, no known layout, superseded, an eid claimed twice).

Identity, before any signal is read: each ECG file's own patient id (`read_patient_id`, header
only) is judged against the whole cohort (`ptacl.qc.identity_findings`): an id naming another
subject of the cohort (or two files naming each other's eid) refuses the ECG; any other id that
differs from the eid (e.g. `0`) keeps it, with a warning; qc.csv lists every file's id.

Per subject, in worker processes (`ptacl.data.process`): read, validate, preprocess (ECG
(12, <=5000) at 500 Hz; CMR (50, 84, 84) in [0, 1]). Any failure rejects that modality only.
Rows are written as they arrive straight into the store's memory-mapped arrays
(`store_writer`), so memory stays bounded for any cohort size and the arrays are written once;
the store appears at `out` only when complete.

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

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ptacl.atomic import NoSpace, atomic_file, output_lock
from ptacl.data.discover import Candidates, cohort_origin, discover_cmr, discover_ecg, join_key
from ptacl.data.process import SubjectResult, process_in_order
from ptacl.data.qc_csv import (
    STATUSES,
    SUBJECT_STATUS,
    QcRow,
    build_qc_table,
    kept_with_warning,
    refusals,
    unused_rows,
)
from ptacl.data.splits import assign_splits, eid_order
from ptacl.data.store_write import ROW_BYTES, StoreWriter, store_writer
from ptacl.io import InputError, read_phenotypes
from ptacl.io.cmr_limits import DEFAULT_LIMITS, CmrLimits
from ptacl.io.ecg import read_patient_id
from ptacl.io.ecg_hdf5 import read_id_table
from ptacl.io.names import DEFAULT_INSTANCE
from ptacl.io.phenotypes import load_mapping
from ptacl.phenotypes import PHENOTYPES
from ptacl.qc import check_labels, identity_findings

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
    """`prepare_store`'s work, under the store's lock, arguments checked: discover the files,
    read the phenotypes, judge the ECGs' identities, process and write each subject, then
    qc.csv, the splits and the manifest."""
    ids = None if ecg_ids is None else read_id_table(ecg_ids)
    ecg_found = Candidates() if ecg_dir is None else discover_ecg(Path(ecg_dir), out, instance, ids)
    cmr_found = Candidates() if cmr_dir is None else discover_cmr(Path(cmr_dir), out, instance)
    table, label_problems, dropped, notes = _phenotype_table(phenotypes, instance, mapping)
    seen = set(ecg_found.chosen) | set(cmr_found.chosen) | ecg_found.rejected | cmr_found.rejected
    if phenotypes is not None:
        subjects = set(ecg_found.chosen) | set(cmr_found.chosen)
        if ecg_dir is not None and cmr_dir is not None:
            subjects = set(ecg_found.chosen) & set(cmr_found.chosen)
        what = "paired subjects" if ecg_dir is not None and cmr_dir is not None else "subjects"
        notes += _phenotype_coverage(sorted(subjects, key=eid_order), what, table, Path(phenotypes))
    qc: list[QcRow] = []  # status added last
    # the cohort: every subject with a file or a phenotype row (an ECG naming a subject known
    # only by its phenotypes would otherwise be given this subject's)
    patient_ids, warned = _judge_identities(ecg_found, seen | set(table.index), qc)
    jobs = [
        (eid, ecg_found.chosen.get(eid), cmr_found.chosen.get(eid))
        for eid in sorted(seen, key=eid_order)
    ]
    qc += unused_rows(ecg_found, cmr_found)
    # a table row's qc lines go under the subject's eid as its files spell it ('01038021')
    file_eid = {join_key(e): e for e in seen}
    qc += [
        (file_eid.get(e, e), "phenotypes", str(phenotypes), "; ".join(r))
        for e, r in label_problems.items()
    ]
    check_free_space(out, len(jobs))
    with (
        store_writer(out, len(jobs), overwrite=overwrite) as writer,
        tqdm(total=len(jobs), desc="prepare", unit="subject", disable=not progress) as bar,
    ):
        results = process_in_order(jobs, workers, cmr_limits)
        status = _write_subjects(writer, jobs, results, bar, warned, patient_ids, qc)
        for eid in sorted(set(table.index) - set(file_eid), key=eid_order):
            status[eid] = "no_images"
            qc.append((eid, "phenotypes", str(phenotypes), "phenotype row with no ECG or CMR file"))
        qc_table = build_qc_table(qc, status)
        notes += kept_with_warning(qc_table)
        counts = {s: sum(v == s for v in status.values()) for s in STATUSES}
        report = {
            **refusals(qc_table, ecg_found, cmr_found),
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
            extra_manifest=_manifest(
                (ecg_dir, cmr_dir, phenotypes),
                covariates,
                cohort_origin(ecg_dir, cmr_dir, phenotypes, ecg_found, cmr_found),
                instance=instance,
                seed=seed,
                fractions={"val": val, "test": test},
                counts=counts,
                phen=phen,
                report=report,
            ),
        )
    split_counts = {s: splits.count(s) for s in ("train", "val", "test")}
    return PrepareResult(out, out / "qc.csv", counts, split_counts, **report)


def _phenotype_table(
    phenotypes: str | Path | None, instance: int, mapping: dict[str, str] | None
) -> tuple[pd.DataFrame, dict[str, list[str]], int, list[str]]:
    """The phenotype table (empty without one) after `check_labels`, its problems by eid, how
    many values were set to NaN, and a note naming the columns left without any value."""
    table = (
        read_phenotypes(phenotypes, instance=instance, mapping=mapping)
        if phenotypes is not None
        else pd.DataFrame(columns=list(PHENOTYPES), index=pd.Index([], name="eid"))
    )
    cleaned, label_problems = check_labels(table)
    dropped = int((table.notna() & cleaned.isna()).to_numpy().sum())
    notes = []
    if phenotypes is not None:
        empty = [c for c in PHENOTYPES if cleaned[c].isna().all()]
        if empty:
            notes.append(
                f"{phenotypes}: no usable value in {len(empty)} phenotype column(s) "
                f"(missing, empty or all implausible), NaN for every subject: {empty}"
            )
    return cleaned, label_problems, dropped, notes


def _write_subjects(
    writer: StoreWriter,
    jobs: list[tuple[str, Path | None, Path | None]],
    results: Iterator[SubjectResult],
    bar: tqdm,
    warned: dict[str, list[str]],
    patient_ids: dict[str, str],
    qc: list[QcRow],
) -> dict[str, str]:
    """Each subject's usable rows into the store as its result arrives (in job order), its
    files' qc rows appended to `qc`; returns eid -> status."""
    status: dict[str, str] = {}
    for (eid, ecg_path, cmr_path), result in zip(jobs, results):
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
        status[eid] = SUBJECT_STATUS[(ok_ecg, ok_cmr)]
        if ok_ecg or ok_cmr:
            writer.add(
                eid,
                ecg=result.ecg,
                ecg_length=result.ecg_length,
                r_peaks=result.r_peaks,
                cmr=result.cmr,
            )
    return status


def _manifest(
    sources: tuple[str | Path | None, str | Path | None, str | Path | None],
    covariates: tuple[Path, pd.DataFrame] | None,
    origin: dict,
    *,
    instance: int,
    seed: int,
    fractions: dict[str, float],
    counts: dict[str, int],
    phen: np.ndarray,
    report: dict,
) -> dict:
    """The store manifest's record of how it was prepared: the (ECG, CMR, phenotypes) sources,
    the cohort's origin (`cohort_origin`), visit, split, qc counts, subjects with a phenotype
    (`phen`: (N, P), NaN where missing) and the run's refusals and warnings (`report`)."""
    ecg_dir, cmr_dir, phenotypes = sources
    return {
        "sources": {
            "ecg": None if ecg_dir is None else str(ecg_dir),
            "cmr": None if cmr_dir is None else str(cmr_dir),
            "phenotypes": None if phenotypes is None else str(phenotypes),
            "covariates": None if covariates is None else str(covariates[0]),
        },
        **origin,
        "ukb_instance": instance,
        "split_seed": seed,
        "split_fractions": fractions,
        "qc_counts": counts,
        "with_phenotypes": int(np.isfinite(phen).any(axis=1).sum()),
        "refused_files": report["refused_files"],
        "ignored_files": report["ignored_files"],
        "phenotype_values_set_to_nan": report["labels_dropped"],
        "warnings": list(report["warnings"]),
    }
