"""One subject's files -> its store rows, in worker processes: read, validate
(`ptacl.qc.check_record`: the ECG's plausibility, with warnings that do not refuse, and the R
peaks, detected once), preprocess (ECG (12, <=5000) at 500 Hz; CMR (50, 84, 84) in [0, 1]).
A failure rejects that modality only and comes back as (file, reason) for qc.csv.

    for result in process_in_order(jobs, workers):   # jobs: (eid, ecg path, cmr path)
        ...                                          # SubjectResult, in job order

`ptacl.data.prepare` decides which files are processed and writes what comes back.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptacl.atomic import die_with_parent
from ptacl.cmr import preprocess_cmr
from ptacl.ecg import preprocess_ecg
from ptacl.io import InputError, read_cmr, read_ecg
from ptacl.io.cmr_limits import DEFAULT_LIMITS, CmrLimits
from ptacl.qc import check_record
from ptacl.schema import CMR_FRAMES, CMR_SIZE, ECG_FS, ECG_SAMPLES, LEADS


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


def process_in_order(
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
