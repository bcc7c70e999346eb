"""ECG arrays in `.npy` / `.npz`, in millivolts, with the sampling rate given explicitly.

- `.npy`: a (12, S) array in LEADS order; (S, 12) is transposed. No pickles are loaded.
- `.npz`: key `signal` (or the only array), optional `leads` (names, any spelling; then fewer
  or reordered leads are fine) and optional `fs`. An `fs` argument must agree with a stored one.
Arrays carry no sampling rate of their own, so without one the file is refused: guessing 500 Hz
would silently rescale time for every other rate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ptacl.io.errors import InputError
from ptacl.io.leads import arrange_leads
from ptacl.io.records import EcgRecord, stated_rate
from ptacl.schema import LEADS


def read_ecg_array(path: Path, fs: float | None) -> EcgRecord:
    """Read an ECG array file (see module docstring)."""
    names: list[str] = list(LEADS)
    if fs is not None:
        fs = stated_rate(fs, path, "the fs given")
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                keys = list(npz.keys())
                key = "signal" if "signal" in keys else (keys[0] if len(keys) == 1 else None)
                if key is None:
                    raise InputError(path, f"no 'signal' array among {keys}")
                data = np.asarray(npz[key])
                if "leads" in keys:
                    names = [str(n) for n in np.atleast_1d(npz["leads"])]
                if "fs" in keys:
                    stored = stated_rate(npz["fs"], path, "the stored 'fs'")
                    if fs is not None and not np.isclose(fs, stored):
                        raise InputError(path, f"fs={fs:g} given but the file says {stored:g}")
                    fs = stored
        else:
            data = np.load(path, allow_pickle=False)
    except InputError:
        raise
    except (ValueError, OSError, EOFError) as err:
        raise InputError(path, f"unreadable array file ({err})") from None
    if fs is None:
        raise InputError(path, "array files carry no sampling rate: pass fs (e.g. fs=500)")
    real = np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating)
    if not real or data.ndim != 2:
        raise InputError(
            path, f"expected a real-valued (leads, samples) array, got {data.dtype} {data.shape}"
        )
    if data.shape[0] != len(names) and data.shape[1] == len(names):
        data = data.T
    signal, derived = arrange_leads(data.astype(np.float64), names, path)
    return EcgRecord(signal=signal, fs=float(fs), leads=LEADS, source=path, derived=derived)
