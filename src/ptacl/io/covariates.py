"""Read a covariate table: sex, height and weight per eid (what the endpoints index by).

    read_covariates("covariates.csv")  ->  DataFrame, index eid (join key), columns
                                           sex (0 female, 1 male), height_cm, weight_kg; NaN unknown

Columns by name (`eid,sex,height_cm,weight_kg`, what `ptacl synth` writes) or as a UK Biobank
showcase export spells them: field 31 (sex, coded 0 = female, 1 = male; recorded at instance 0),
50 (standing height, cm) and 21002 (weight, kg), the latter two read at `instance` (2, the
first imaging visit, when the CMR was taken). A missing column or an empty cell is unknown (NaN);
eids are normalised as the phenotype table's are (`ptacl.io.names.normalise_eid`). A value that
cannot be one of these (sex 2, a height of 70 "cm" in inches, text) refuses the file with an
InputError naming the row: a silently wrong sex or size would flip endpoint labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ptacl.io.errors import InputError
from ptacl.io.names import DEFAULT_INSTANCE
from ptacl.io.phenotypes import _EID_NAMES, _join_keys, read_text_csv, showcase_column

#: The file name `ptacl synth` gives it, looked for beside a synthetic cohort's phenotypes.csv.
COVARIATES_FILE = "covariates.csv"
#: column -> (UK Biobank field, the instance it is read at (None: `instance`), plausible range)
FIELDS: dict[str, tuple[str, int | None, tuple[float, float]]] = {
    "sex": ("31", 0, (0.0, 1.0)),
    "height_cm": ("50", None, (100.0, 250.0)),
    "weight_kg": ("21002", None, (25.0, 350.0)),
}


def _source_columns(columns: list[str], instance: int) -> dict[str, str]:
    """covariate -> the table's column holding it (by name first, else its showcase field)."""
    found: dict[str, str] = {}
    for name, (field, at, _) in FIELDS.items():
        for column in columns:
            showcase = showcase_column(column)
            by_field = showcase is not None and showcase[:2] == (
                field,
                instance if at is None else at,
            )
            if str(column).strip().lower() == name or (by_field and showcase[2] == 0):
                found[name] = column
                break
    return found


def read_covariates(path: str | Path, *, instance: int = DEFAULT_INSTANCE) -> pd.DataFrame:
    """The covariate table of `path` (see the module docstring); InputError if unusable."""
    path = Path(path)
    table = read_text_csv(path)
    normalised = {c: "".join(ch for ch in str(c).lower() if ch.isalnum()) for c in table.columns}
    eid_cols = [c for c in table.columns if normalised[c] in _EID_NAMES]
    if not eid_cols:
        raise InputError(path, f"no eid column among {list(table.columns)}")
    sources = _source_columns(list(table.columns), instance)
    if not sources:
        raise InputError(
            path, f"none of the columns {sorted(FIELDS)} (or UK Biobank fields 31, 50, 21002) "
            f"among {list(table.columns)}"
        )  # fmt: skip
    eids = _join_keys(table[eid_cols[0]], path)
    out = pd.DataFrame(np.nan, index=pd.Index(eids, name="eid"), columns=list(FIELDS))
    for name, column in sources.items():
        out[name] = _values(table[column], name, path).to_numpy()
    return out


def _values(column: pd.Series, name: str, path: Path) -> pd.Series:
    """One covariate column as floats (empty: NaN); InputError naming the first bad row."""
    text = column.str.strip()
    values = pd.to_numeric(text.where(text != ""), errors="coerce")
    low, high = FIELDS[name][2]
    bad = (text != "") & (values.isna() | (values < low) | (values > high))
    if name == "sex":
        bad |= values.notna() & ~values.isin([0.0, 1.0])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        expected = "0 (female) or 1 (male)" if name == "sex" else f"between {low:g} and {high:g}"
        raise InputError(
            path, f"row {row + 1}: {name} {text.iloc[row]!r} is not {expected} "
            f"({int(bad.sum())} such rows)"
        )  # fmt: skip
    return values.astype(np.float64)
