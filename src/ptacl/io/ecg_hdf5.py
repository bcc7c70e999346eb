"""HDF5 arrays of many ECGs, as public sets such as CODE-15% ship them (h5py).

CODE-15% (`exams_part*.hdf5`): a `tracings` dataset (N, 4096, 12) float at 400 Hz, each
recording (7-10 s) zero-padded to 4096 samples on both sides, leads I, II, III, aVR, aVL, aVF,
V1-V6, and an `exam_id` dataset (N,) naming each row; labels in a CSV keyed by exam_id.

One record is addressed as `FILE[k]` (row k) or `FILE:DATASET[k]`; `FILE` or `FILE:DATASET`
names them all (`hdf5_records`). Per file:
- dataset: the one named, else `tracings`, else the only numeric 3-D dataset with an axis of
  12; anything else is refused, naming the candidates.
- rows are (samples, 12) as in CODE-15% (a (12, samples) row is transposed); leads in the
  dataset's `leads` attribute when it has one, else CODE-15%'s order.
- rate: the dataset's (or file's) `fs` / `sampling_rate` attribute, else the `fs` given, else
  400 Hz for the CODE-15% layout (`tracings`, 4096 samples a row); otherwise refused: guessing
  would silently rescale time.
- units: the dataset's `units` attribute (mV, uV, V, or 1e-4 V) when it has one, else
  millivolts. The CODE set's README says both "scale 1e-4V" and "multiplied by 1000 in order
  to obtain the signals in V" (which is mV); its values (a QRS of about 1) are mV, so mV is
  the default, and a file truly in 1e-4 V says so with `attrs["units"] = "1e-4 V"`.
  `ptacl.qc.validate_ecg` refuses spans no mV recording has (a x1000 error); a x10 error is
  refused only where the median lead span exceeds its limit.
- padding: samples that are exactly zero on all 12 leads at either end are cut off (an
  all-zero row is refused: nothing was recorded).
Only the row asked for is read (h5py slicing), never the whole dataset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptacl.io.errors import InputError
from ptacl.io.leads import arrange_leads
from ptacl.io.records import EcgRecord
from ptacl.schema import LEADS

SUFFIXES = (".h5", ".hdf5", ".hdf")
DEFAULT_DATASET = "tracings"
#: The CODE-15% layout: rows of this many samples at this rate.
CODE15_SAMPLES, CODE15_FS = 4096, 400.0
#: Values of one row beyond which it cannot be one resting ECG (10 min of 12 leads at 1 kHz).
MAX_ROW_VALUES = 12 * 600 * 1000
_TO_MV = {
    **{"mv": 1.0, "millivolts": 1.0, "uv": 1e-3, "µv": 1e-3, "microvolts": 1e-3, "v": 1e3},
    "1e-4v": 0.1,
}
_RATE_ATTRS = ("fs", "sampling_rate", "sample_rate", "sampling_frequency")
#: `FILE[:DATASET][[k]]`, FILE ending in one of SUFFIXES.
_ADDRESS = re.compile(
    r"^(?P<file>.+?\.(?:h5|hdf5|hdf))(?::(?P<dataset>[^\[\]:]+))?(?:\[(?P<row>\d+)\])?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Hdf5Address:
    """Where records are: the file, the dataset (None: detected) and the row (None: all)."""

    file: Path
    dataset: str | None = None
    row: int | None = None

    @property
    def whole(self) -> Path:
        """The address of every record ('exams.hdf5', 'exams.hdf5:tracings')."""
        return Path(f"{self.file}:{self.dataset}") if self.dataset else self.file

    def record(self, row: int) -> Path:
        """The address of one row, as a path ('exams.hdf5[3]'): how qc.csv and predict name it."""
        return Path(f"{self.whole}[{row}]")


def parse_address(path: str | Path) -> Hdf5Address | None:
    """'exams.hdf5', 'exams.hdf5[3]', 'exams.hdf5:tracings[3]' -> the address; other names ->
    None."""
    match = _ADDRESS.match(str(path))
    if match is None:
        return None
    if match["dataset"] is None and match["row"] is None:
        return Hdf5Address(Path(path))
    row = None if match["row"] is None else int(match["row"])
    return Hdf5Address(Path(match["file"]), match["dataset"], row)


def _open(path: Path):
    from ptacl.extras import require

    h5py = require("h5py", "reading HDF5 ECG arrays (.h5/.hdf5)")
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise InputError(path, f"not a readable HDF5 file ({err})") from None


def _dataset(handle, path: Path, name: str | None):
    import h5py

    if name is not None:
        found = handle.get(name)
        if not isinstance(found, h5py.Dataset):
            raise InputError(path, f"no dataset {name!r}; datasets: {_datasets(handle)}")
        return found
    if isinstance(handle.get(DEFAULT_DATASET), h5py.Dataset):
        return handle[DEFAULT_DATASET]
    candidates = [
        d
        for d in _datasets(handle, objects=True)
        if d.ndim == 3 and 12 in d.shape[1:] and np.issubdtype(d.dtype, np.number)
    ]
    if len(candidates) != 1:
        raise InputError(
            path,
            f"{len(candidates)} datasets shaped (records, samples, 12) among "
            f"{_datasets(handle)}; name one as FILE:DATASET",
        )
    return candidates[0]


def _datasets(handle, objects: bool = False) -> list:
    import h5py

    found: list = []
    handle.visititems(
        lambda name, obj: (
            found.append(obj if objects else name) if isinstance(obj, h5py.Dataset) else None
        )
    )
    return found


def _attr(obj, names: tuple[str, ...]):
    for name in names:
        if name in obj.attrs:
            value = obj.attrs[name]
            return value.decode() if isinstance(value, bytes) else value
    return None


@dataclass(frozen=True)
class _Layout:
    name: str
    rows: int
    fs: float
    leads: list[str]
    to_mv: float
    transposed: bool


def _layout(handle, dataset, path: Path, fs: float | None) -> _Layout:
    if dataset.ndim != 3 or not np.issubdtype(dataset.dtype, np.number):
        shape = f"{dataset.dtype} {dataset.shape}"
        raise InputError(
            path, f"dataset {dataset.name!r} is {shape}, expected (records, samples, leads)"
        )
    rows, samples, width = dataset.shape
    leads = _attr(dataset, ("leads", "lead_names"))
    leads = list(LEADS) if leads is None else [str(n) for n in np.atleast_1d(leads)]
    transposed = width != len(leads) and samples == len(leads)
    if transposed:
        samples, width = width, samples
    if width != len(leads):
        raise InputError(path, f"rows of {dataset.shape[1:]} for {len(leads)} leads {leads}")
    if samples * width > MAX_ROW_VALUES:
        raise InputError(path, f"rows of {samples} samples are too long for a resting ECG")
    stated = _attr(dataset, _RATE_ATTRS)
    stated = _attr(handle, _RATE_ATTRS) if stated is None else stated
    if stated is not None:
        if fs is not None and not np.isclose(float(stated), fs):
            raise InputError(path, f"fs={fs} given but the file says {float(stated)} Hz")
        fs = float(stated)
    elif fs is None:
        code15 = dataset.name.strip("/") == DEFAULT_DATASET and samples == CODE15_SAMPLES
        if not code15:
            raise InputError(path, "no sampling rate attribute (fs) in the file: pass fs")
        fs = CODE15_FS
    if not np.isfinite(fs) or fs <= 0:
        raise InputError(path, f"sampling rate must be positive, got {fs}")
    units = str(_attr(dataset, ("units", "unit")) or "mV").strip()
    key = units.lower().replace(" ", "")
    if key not in _TO_MV:
        raise InputError(path, f"units {units!r} are not a voltage (mV, uV, V, 1e-4 V)")
    return _Layout(dataset.name, rows, float(fs), leads, _TO_MV[key], transposed)


def read_hdf5_ecg(path: Path, fs: float | None = None) -> EcgRecord:
    """One record of an HDF5 file: `FILE[k]`, `FILE:DATASET[k]`, or a file of one record."""
    address = parse_address(path) or Hdf5Address(Path(path))
    with _open(address.file) as handle:
        dataset = _dataset(handle, address.file, address.dataset)
        layout = _layout(handle, dataset, address.file, fs)
        row = address.row
        if row is None:
            if layout.rows != 1:
                raise InputError(
                    path, f"holds {layout.rows} records: name one as {address.record(0)}"
                )
            row = 0
        if row >= layout.rows:
            raise InputError(path, f"record {row} asked for, the file holds {layout.rows}")
        data = np.asarray(dataset[row], dtype=np.float64)  # this row only
    data = data if layout.transposed else data.T  # (leads, samples)
    recorded = np.flatnonzero((data != 0).any(axis=0))
    if not len(recorded):
        raise InputError(path, "every sample is zero: a padding row, nothing recorded")
    data = data[:, recorded[0] : recorded[-1] + 1] * layout.to_mv
    signal, derived = arrange_leads(data, layout.leads, path)
    return EcgRecord(signal=signal, fs=layout.fs, leads=LEADS, source=Path(path), derived=derived)


def hdf5_records(path: str | Path) -> list[tuple[Path, str]]:
    """(address of each record, its exam id) of a file (`FILE` or `FILE:DATASET`): the id
    from an `exam_id` dataset of one per record, else the row number."""
    address = parse_address(path) or Hdf5Address(Path(path))
    with _open(address.file) as handle:
        dataset = _dataset(handle, address.file, address.dataset)
        rows = dataset.shape[0] if dataset.ndim else 0
        ids = handle.get("exam_id")
        if ids is not None and getattr(ids, "shape", None) == (rows,):
            names = [_exam_id(v) for v in ids[()]]  # one number per record: bounded
        else:
            names = [str(k) for k in range(rows)]
    return [(address.record(k), names[k]) for k in range(rows)]


def _exam_id(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode().strip()
    if isinstance(value, np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def read_id_table(path: str | Path) -> dict[str, str]:
    """A side table exam_id -> eid (CSV with columns `exam_id` and `eid`, any case), both
    normalised as join keys (`normalise_eid`). An exam id given two eids is refused."""
    from ptacl.io.names import normalise_eid
    from ptacl.io.phenotypes import read_text_csv

    path = Path(path)
    table = read_text_csv(path)
    columns = {str(c).strip().lower().replace("_", ""): c for c in table.columns}
    if "examid" not in columns or "eid" not in columns:
        raise InputError(path, f"expected columns exam_id and eid, got {list(table.columns)}")
    out: dict[str, str] = {}
    for row, (exam, eid) in enumerate(
        zip(table[columns["examid"]], table[columns["eid"]]), start=1
    ):
        try:
            exam, eid = normalise_eid(exam), normalise_eid(eid)
        except ValueError as err:
            raise InputError(path, f"row {row}: {err}") from None
        if not exam or not eid:
            raise InputError(path, f"row {row}: empty exam_id or eid")
        if exam in out and out[exam] != eid:
            raise InputError(path, f"exam_id {exam} is given eids {out[exam]} and {eid}")
        out[exam] = eid
    return out
