"""Writing the prepared store (`ptacl.data.store` reads it): whole from arrays in memory
(`write_store`) or row by row (`store_writer`, what `ptacl prepare` uses); both give the same
bytes and make the folder appear at its destination only when complete.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ptacl.atomic import atomic_folder
from ptacl.data.store import SPLITS, STORE_VERSION
from ptacl.phenotypes import PHENOTYPES
from ptacl.schema import CMR_FRAMES, CMR_SIZE, ECG_FS, ECG_SAMPLES, LEADS


def write_store(
    out: str | Path,
    *,
    eids: Sequence[str],
    splits: Sequence[str],
    ecg: np.ndarray,
    cmr: np.ndarray,
    r_peaks: Sequence[np.ndarray],
    phenotypes: np.ndarray,
    has_ecg: Sequence[bool],
    has_cmr: Sequence[bool],
    qc: pd.DataFrame,
    ecg_lengths: Sequence[int] | None = None,
    extra_manifest: dict | None = None,
    overwrite: bool = False,
    covariates: pd.DataFrame | None = None,
) -> Path:
    """Write a complete store atomically: into a temporary sibling folder, renamed at the end.

    An interrupted run therefore leaves no half store, and an existing store is replaced only
    with `overwrite=True`. `ecg_lengths` gives the valid samples of each ECG row (recordings
    shorter than 10 s are zero-padded; default: full length where `has_ecg`). `ecg` (N, 12, S) and `cmr` (N, F, H, W) may be float arrays (converted:
    ECG to float16, CMR in [0, 1] to uint8) or already in the store's dtypes.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists; pass --overwrite to replace it")
    n = len(eids)
    if len(set(eids)) != n:
        raise ValueError("duplicate eids in the store")
    for name, arr in (("ecg", ecg), ("cmr", cmr), ("phenotypes", phenotypes)):
        if len(arr) != n:
            raise ValueError(f"{name} has {len(arr)} rows for {n} eids")
    with atomic_folder(out, overwrite=overwrite) as tmp:
        np.save(tmp / "ecg.npy", np.asarray(ecg, dtype=np.float16))
        cmr = np.asarray(cmr)
        if cmr.dtype != np.uint8:
            cmr = np.clip(np.rint(cmr * 255.0), 0, 255).astype(np.uint8)
        np.save(tmp / "cmr.npy", cmr)
        _write_tables(
            tmp,
            eids=eids,
            splits=splits,
            r_peaks=r_peaks,
            phenotypes=phenotypes,
            has_ecg=has_ecg,
            has_cmr=has_cmr,
            ecg_lengths=(
                np.where(np.asarray(has_ecg, dtype=bool), np.shape(ecg)[-1], 0)
                if ecg_lengths is None
                else ecg_lengths
            ),
            qc=qc,
            ecg_shape=np.shape(ecg)[1:],
            cmr_shape=np.shape(cmr)[1:],
            extra_manifest=extra_manifest,
            covariates=covariates,
        )
    return out


def _write_tables(
    folder: Path,
    *,
    eids: Sequence[str],
    splits: Sequence[str],
    r_peaks: Sequence[np.ndarray],
    phenotypes: np.ndarray,
    has_ecg: Sequence[bool],
    has_cmr: Sequence[bool],
    ecg_lengths: Sequence[int] | np.ndarray,
    qc: pd.DataFrame,
    ecg_shape: Sequence[int],
    cmr_shape: Sequence[int],
    extra_manifest: dict | None,
    covariates: pd.DataFrame | None = None,
) -> None:
    """Everything of a store but ecg.npy and cmr.npy: r_peaks, phenotypes, the CSVs, manifest.
    `covariates`: row-aligned sex, height_cm, weight_kg (NaN unknown), or None (no file)."""
    n = len(eids)
    width = max((len(p) for p in r_peaks), default=0)
    peaks = np.full((n, max(width, 1)), -1, dtype=np.int32)
    for i, p in enumerate(r_peaks):
        peaks[i, : len(p)] = p
    np.save(folder / "r_peaks.npy", peaks)
    np.save(folder / "phenotypes.npy", np.asarray(phenotypes, dtype=np.float32))
    has_ecg = np.asarray(has_ecg, dtype=bool)
    has_cmr = np.asarray(has_cmr, dtype=bool)
    subjects = pd.DataFrame(
        {
            "eid": list(eids),
            "split": list(splits),
            "has_ecg": has_ecg,
            "has_cmr": has_cmr,
            "paired": has_ecg & has_cmr,
            "ecg_length": np.asarray(ecg_lengths, dtype=int),
        }
    )
    subjects.to_csv(folder / "subjects.csv", index=False)
    qc.to_csv(folder / "qc.csv", index=False)
    if covariates is not None:
        covariates = pd.DataFrame(covariates).reset_index(drop=True)
        covariates.insert(0, "eid", list(eids))
        covariates.to_csv(folder / "covariates.csv", index=False)
    manifest = {
        "version": STORE_VERSION,
        "subjects": n,
        "paired": int(subjects["paired"].sum()),
        "ecg_only": int((has_ecg & ~has_cmr).sum()),
        "cmr_only": int((~has_ecg & has_cmr).sum()),
        "splits": {s: int((subjects["split"] == s).sum()) for s in SPLITS},
        "leads": list(LEADS),
        "ecg_fs": ECG_FS,
        "ecg_shape": list(ecg_shape),
        "cmr_shape": list(cmr_shape),
        "phenotypes": list(PHENOTYPES),
        **(extra_manifest or {}),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


class StoreWriter:
    """Rows written straight into a store's final ecg.npy and cmr.npy, then `finish`.

    The two arrays are memory-mapped with `capacity` rows (zeros until written: a subject
    without one modality keeps a zero row, as `write_store` stores it); `finish` cuts them
    to the rows added and writes the rest of the store. Each row is written once, so memory
    stays bounded and the store is not copied. Use it through `store_writer`, which makes the
    folder appear at its destination only when finished.
    """

    def __init__(self, folder: Path, capacity: int) -> None:
        self.folder = folder
        self.capacity = max(capacity, 1)
        open_memmap = np.lib.format.open_memmap
        self._ecg: np.memmap | None = open_memmap(
            folder / "ecg.npy",
            mode="w+",
            dtype=np.float16,
            shape=(self.capacity, len(LEADS), ECG_SAMPLES),
        )
        self._cmr: np.memmap | None = open_memmap(
            folder / "cmr.npy",
            mode="w+",
            dtype=np.uint8,
            shape=(self.capacity, CMR_FRAMES, CMR_SIZE, CMR_SIZE),
        )
        for name in ("ecg.npy", "cmr.npy"):
            _reserve(folder / name)
        self.eids: list[str] = []
        self._has_ecg: list[bool] = []
        self._has_cmr: list[bool] = []
        self._ecg_lengths: list[int] = []
        self._r_peaks: list[np.ndarray] = []
        self.finished = False

    def __len__(self) -> int:
        return len(self.eids)

    def add(
        self,
        eid: str,
        *,
        ecg: np.ndarray | None = None,
        ecg_length: int = 0,
        r_peaks: np.ndarray | None = None,
        cmr: np.ndarray | None = None,
    ) -> None:
        """Append one subject: ECG (12, 5000) float16 with its valid length and R peaks, and/or
        CMR (50, 84, 84) uint8."""
        if self._ecg is None or self._cmr is None:
            raise RuntimeError("the store writer is closed")
        i = len(self.eids)
        if i >= self.capacity:
            raise ValueError(f"more than the {self.capacity} rows the store writer was opened for")
        if ecg is not None:
            self._ecg[i] = ecg
        if cmr is not None:
            self._cmr[i] = cmr
        self.eids.append(eid)
        self._has_ecg.append(ecg is not None)
        self._has_cmr.append(cmr is not None)
        self._ecg_lengths.append(ecg_length if ecg is not None else 0)
        self._r_peaks.append(np.zeros(0, np.int64) if r_peaks is None else r_peaks)

    def finish(
        self,
        *,
        splits: Sequence[str],
        phenotypes: np.ndarray,
        qc: pd.DataFrame,
        extra_manifest: dict | None = None,
        covariates: pd.DataFrame | None = None,
    ) -> None:
        """Cut the arrays to the rows added and write the tables and manifest (row-aligned)."""
        n = len(self.eids)
        if n == 0:
            raise ValueError("no rows: a store needs at least one subject")
        if len(set(self.eids)) != n:
            raise ValueError("duplicate eids in the store")
        for name, rows in (("splits", len(splits)), ("phenotypes", len(phenotypes))):
            if rows != n:
                raise ValueError(f"{name} has {rows} rows for {n} subjects")
        self.close()
        for name in ("ecg.npy", "cmr.npy"):
            _cut_rows(self.folder / name, n)
        _write_tables(
            self.folder,
            eids=self.eids,
            splits=splits,
            r_peaks=self._r_peaks,
            phenotypes=phenotypes,
            has_ecg=self._has_ecg,
            has_cmr=self._has_cmr,
            ecg_lengths=self._ecg_lengths,
            qc=qc,
            ecg_shape=(len(LEADS), ECG_SAMPLES),
            cmr_shape=(CMR_FRAMES, CMR_SIZE, CMR_SIZE),
            extra_manifest=extra_manifest,
            covariates=covariates,
        )
        self.finished = True

    def close(self) -> None:
        """Unmap the arrays (before their files are cut, moved or removed).

        No `flush()`: that is a synchronous msync of the whole store, while the shared mapping's
        pages already are the file's (as `np.save` leaves its writes to the page cache too).
        """
        self._ecg = self._cmr = None


#: Bytes of one store row in ecg.npy and cmr.npy (what `prepare` checks free space against).
ROW_BYTES = len(LEADS) * ECG_SAMPLES * 2 + CMR_FRAMES * CMR_SIZE * CMR_SIZE


def _reserve(path: Path) -> None:
    """Allocate the blocks of a freshly created (sparse) .npy file now.

    A write through a memory map into a hole of a sparse file on a full disk kills the process
    with SIGBUS: no message, no cleanup, the temporary folder left behind. `posix_fallocate`
    fails with ENOSPC up front instead, which `atomic_folder` reports and cleans up.
    """
    with open(path, "rb+") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        except OSError as err:
            if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise  # ENOSPC above all; a file system without fallocate just goes on


def _cut_rows(path: Path, rows: int) -> None:
    """Keep the first `rows` rows of an .npy file: rewrite the shape in its header, truncate.

    numpy pads every header so that the first axis can grow to any size without changing the
    header's length (`GROWTH_AXIS_MAX_DIGITS`), so the result is byte for byte what `np.save`
    writes for those rows; the length is checked all the same, as a shift would corrupt data.
    """
    fmt = np.lib.format
    with open(path, "r+b") as f:
        version = fmt.read_magic(f)
        read, write = {
            (1, 0): (fmt.read_array_header_1_0, fmt.write_array_header_1_0),
            (2, 0): (fmt.read_array_header_2_0, fmt.write_array_header_2_0),
        }[version]
        shape, fortran_order, dtype = read(f)
        offset = f.tell()
        f.seek(0)
        header = {
            "descr": fmt.dtype_to_descr(dtype),
            "fortran_order": fortran_order,
            "shape": (rows, *shape[1:]),
        }
        write(f, header)
        if f.tell() != offset:
            raise RuntimeError(f"{path}: the .npy header changed length; the data would shift")
        f.truncate(offset + rows * int(np.prod(shape[1:])) * dtype.itemsize)


class _Unfinished(Exception):
    """Raised inside `atomic_folder` to drop a store that was closed without `finish`."""


@contextlib.contextmanager
def store_writer(
    out: str | Path, capacity: int, *, overwrite: bool = False
) -> Iterator[StoreWriter]:
    """A `StoreWriter` for at most `capacity` subjects, filling a temporary sibling of `out`.

    When the block ends after `finish`, the folder is renamed to `out` (replacing an existing
    one only with `overwrite=True`); on any error, Ctrl-C included, or without `finish` (e.g.
    no usable subject), it is removed and `out` is left as it was.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists; pass --overwrite to replace it")
    with contextlib.suppress(_Unfinished), atomic_folder(out, overwrite=overwrite) as tmp:
        writer = StoreWriter(tmp, capacity)
        try:
            yield writer
        finally:
            writer.close()
        if not writer.finished:
            raise _Unfinished
