"""WFDB records (PhysioNet: PTB-XL, MIMIC-IV-ECG): `NAME.hea` plus signal file(s).

`path` may name the header, the signal file or the record without extension. Physical units
come from the header per channel (mV in PTB-XL; µV is converted).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ptacl.io.errors import InputError
from ptacl.io.leads import arrange_leads
from ptacl.io.records import EcgRecord, stated_rate
from ptacl.schema import LEADS

_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "v": 1e3}


def read_wfdb(path: Path) -> EcgRecord:
    """Read a WFDB record in physical units (see module docstring)."""
    from ptacl.extras import require

    wfdb = require("wfdb", "reading WFDB records (.hea/.dat)")

    base = path.with_suffix("") if path.suffix in {".hea", ".dat", ".mat"} else path
    header = base.with_suffix(".hea")
    if not header.is_file():
        raise InputError(path, f"WFDB header {header.name} not found")
    try:
        record = wfdb.rdrecord(str(base))
    except Exception as err:  # wfdb raises bare ValueError/IndexError/OSError on damaged files
        raise InputError(path, f"unreadable WFDB record ({type(err).__name__}: {err})") from None
    if record.p_signal is None:
        raise InputError(path, "WFDB record has no physical signal")
    fs = stated_rate(record.fs, path, "the header's sampling frequency")
    data = np.asarray(record.p_signal, dtype=np.float64).T
    scale = []
    for name, unit in zip(record.sig_name, record.units or ["mV"] * len(record.sig_name)):
        key = (unit or "mV").strip().lower()
        if key not in _TO_MV:
            raise InputError(path, f"lead {name}: units {unit!r} are not a voltage")
        scale.append(_TO_MV[key])
    data *= np.asarray(scale)[:, None]
    signal, derived = arrange_leads(data, list(record.sig_name), path)
    return EcgRecord(signal=signal, fs=fs, leads=LEADS, source=path, derived=derived)
