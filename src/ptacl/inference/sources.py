"""Which recordings a `predict` or `embed` source stands for: a file, an array, a folder, a
glob pattern, an iterable of any of these, or an HDF5 file of many records.

`expand_sources` turns a source into its inputs (None for a single one); `expand_records`
pairs each with the eid its row gets, an HDF5 file becoming its records under their exam ids.
A folder or pattern without an ECG file is an InputError, never an empty table.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ptacl.io.ecg_hdf5 import SUFFIXES as HDF5_SUFFIXES
from ptacl.io.names import eid_from_path

Source = str | Path | np.ndarray

#: What a folder is searched for: the readers' extensions (`ptacl.io.ecg.FORMATS`) less WFDB's
#: signal files, whose record is its .hea. Extensionless DICOM files must be named one by one.
FOLDER_SUFFIXES = (".xml", ".dcm", ".hea", ".npy", ".npz", *HDF5_SUFFIXES)


def expand_sources(source: object) -> list[Any] | None:
    """The inputs `source` stands for, or None for a single input (a file or an array).

    Several: a folder (its ECG files, `FOLDER_SUFFIXES`, sorted by name, not recursive), a glob
    pattern naming no existing file ("ecgs/*.xml", `**` recursive, sorted), or any iterable of
    paths or arrays (list, tuple, generator, pandas Series, a 1-D array of path strings), whose
    folders and patterns are expanded in turn. A folder or pattern with no ECG file is an
    InputError, so it cannot pass silently as an empty table.
    """
    if isinstance(source, torch.Tensor):
        return None
    if isinstance(source, np.ndarray):
        if source.dtype.kind not in "USO":  # numbers: one signal
            return None
        source = source.ravel().tolist()
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.is_dir():
            return _folder_files(path)
        text = os.fspath(source)
        if not path.exists() and glob.has_magic(text):
            return _glob_files(text)
        return None
    if isinstance(source, pd.DataFrame):  # iterating one yields its column names
        raise TypeError("pass one column of file paths (df['file']), not a DataFrame")
    if isinstance(source, bytes) or not isinstance(source, Iterable):
        return None
    from ptacl.io import InputError

    items: list[Any] = []
    for item in source:
        try:
            nested = None if isinstance(item, np.ndarray | torch.Tensor) else expand_sources(item)
        except InputError:  # an empty folder among others: its error row says so
            nested = None
        items.extend([item] if nested is None else nested)
    return items


def _folder_files(folder: Path) -> list[Path]:
    from ptacl.io import InputError

    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in FOLDER_SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        raise InputError(folder, f"a folder without ECG files ({', '.join(FOLDER_SUFFIXES)})")
    return files


def _glob_files(pattern: str) -> list[Path]:
    from ptacl.io import InputError

    files = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    if not files:
        raise InputError(pattern, "matches no file")
    return files


def is_hdf5_file(source: object) -> bool:
    """An HDF5 file (not one record of it, `FILE[k]`): it holds a table's worth."""
    from ptacl.io.ecg_hdf5 import parse_address

    if not isinstance(source, str | Path):
        return False
    address = parse_address(source)
    return address is not None and address.row is None


def expand_records(paths: Sequence[Source]) -> list[tuple[Source, str]]:
    """(source, eid) per row of the table: an HDF5 file becomes its records, each under its
    exam id; a file that cannot be opened stays one item, so its row says why."""
    from ptacl.io import InputError
    from ptacl.io.ecg_hdf5 import hdf5_records, parse_address

    out: list[tuple[Source, str]] = []
    for path in paths:
        if isinstance(path, np.ndarray | torch.Tensor):
            out.append((path, ""))
            continue
        address = parse_address(path)
        try:
            records = [] if address is None else hdf5_records(address.whole)
        except InputError:
            records = []  # unreadable: reading it again gives its error row
        if records and address.row is None:
            out += records
        elif records and address.row < len(records):
            out.append((path, records[address.row][1]))
        else:  # not HDF5, unreadable, empty or a row beyond its end: the row says which
            out.append((path, eid_from_path(path)))
    return out
