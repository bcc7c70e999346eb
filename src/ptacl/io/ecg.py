"""`read_ecg`: one entry point for every ECG format, chosen by file extension (or content)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ptacl.io.ecg_array import read_ecg_array
from ptacl.io.ecg_dicom import read_dicom_ecg, read_dicom_patient_id
from ptacl.io.ecg_hdf5 import parse_address, read_hdf5_ecg
from ptacl.io.ecg_muse import read_muse_xml
from ptacl.io.ecg_wfdb import read_wfdb
from ptacl.io.ecg_xml import read_cardiosoft_xml, read_xml_patient_id
from ptacl.io.errors import InputError
from ptacl.io.records import EcgRecord

FORMATS = {
    ".xml": "UK Biobank CardioSoft XML or GE MUSE XML (told apart by the root element)",
    ".dcm": "DICOM 12-lead waveform",
    ".hea": "WFDB record (also .dat or the record name without extension)",
    ".npy": "array (12, S) in mV, fs required",
    ".npz": "arrays 'signal' [, 'leads', 'fs'] in mV",
    ".hdf5": "HDF5 arrays, CODE-15% layout (also .h5; one record as FILE[k])",
}


def read_ecg(path: str | Path, fs: float | None = None) -> EcgRecord:
    """Read a 12-lead ECG: (12, S) float32 mV in standard lead order, with its rate in Hz.

    Formats: see `FORMATS`. `fs` is required for arrays and, for other formats, must match
    the rate the file states. Raises InputError (message starting with the path) for a
    missing, unreadable or incomplete file and for NaN or infinite samples.
    """
    path = Path(path)
    hdf5 = parse_address(path)
    if hdf5 is not None:  # FILE[k] names a record inside a file: checked by the reader
        return _checked(read_hdf5_ecg(path, fs), path)
    suffix = path.suffix.lower()
    wfdb_base = suffix in {"", ".hea", ".dat", ".mat"} and path.with_suffix(".hea").is_file()
    if not path.exists() and not wfdb_base:
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a folder, expected an ECG file")
    if suffix == ".xml":
        muse = _xml_root(path) == "RestingECG"
        record = read_muse_xml(path) if muse else read_cardiosoft_xml(path)
    elif suffix in {".npy", ".npz"}:
        record = read_ecg_array(path, fs)
    elif wfdb_base:
        record = read_wfdb(path)
    elif suffix == ".dcm" or _is_dicom(path):
        record = read_dicom_ecg(path)
    else:
        raise InputError(path, f"unknown ECG format {suffix!r}; known: {FORMATS}")
    if fs is not None and suffix not in {".npy", ".npz"} and not np.isclose(fs, record.fs):
        raise InputError(path, f"fs={fs} given but the file says {record.fs} Hz")
    return _checked(record, path)


def _checked(record: EcgRecord, path: Path) -> EcgRecord:
    bad = ~np.isfinite(record.signal)
    if bad.any():
        leads = [record.leads[k] for k in np.flatnonzero(bad.any(axis=1))]
        raise InputError(path, f"{int(bad.sum())} NaN or infinite samples in leads {leads}")
    return record


def read_patient_id(path: str | Path) -> str:
    """The patient id an ECG file names itself ('' for formats without one, an absent id or a
    file that cannot be read, which `read_ecg` then refuses with its reason). Reads the header
    only: `prepare` judges every file's id against the whole cohort before reading signals."""
    path = Path(path)
    if not path.is_file():
        return ""
    if path.suffix.lower() == ".xml":
        return read_xml_patient_id(path)
    if path.suffix.lower() == ".dcm" or _is_dicom(path):
        return read_dicom_patient_id(path)
    return ""


def _is_dicom(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(132)
    return head[128:132] == b"DICM"


def _xml_root(path: Path) -> str | None:
    """The root element's name, from the first tag alone (streamed: a big file is not read
    here); None when even that cannot be parsed (the reader then says why)."""
    from xml.etree.ElementTree import ParseError

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import iterparse

    events = None
    try:
        events = iterparse(str(path), events=("start",))
        return next(events)[1].tag
    except (DefusedXmlException, ParseError, OSError, StopIteration):
        return None
    finally:
        close = getattr(events, "close", None)  # Python >= 3.13: frees the open file now
        if close is not None:
            close()
