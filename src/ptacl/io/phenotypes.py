"""`read_phenotypes`: the ukbb_cardiac table (or a look-alike) as the 10 PHENOTYPES columns.

Columns are matched by name after normalisation (lower case, units in parentheses split off,
spaces, "_" and "-" dropped), so "LVEDV (mL)", "LVEDV", "lv_edv" and "LV EDV (ml)" are one
column. A unit given in the file must be the canonical one (compared case-insensitively):
values are never rescaled silently. Missing phenotype columns become NaN; other columns are
dropped. The subject column is `eid` (or the unnamed first column ukbb_cardiac writes).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ptacl.io.errors import InputError
from ptacl.phenotypes import PHENOTYPE_NAMES, PHENOTYPE_UNITS, PHENOTYPES

#: Extra spellings (normalised) -> short phenotype name.
ALIASES: dict[str, str] = {
    "lvedm": "LVM",
    "lvmass": "LVM",
    "lvm": "LVM",
    "lvcardiacoutput": "LVCO",
    "lvstrokevolume": "LVSV",
    "lvejectionfraction": "LVEF",
    "rvstrokevolume": "RVSV",
    "rvejectionfraction": "RVEF",
}
_EID_NAMES = {"eid", "feid", "subject", "subjectid", "participantid", "unnamed0", ""}


def _split(column: str) -> tuple[str, str | None]:
    match = re.fullmatch(r"\s*(.*?)\s*(?:\(([^)]*)\))?\s*", str(column))
    name, unit = match.group(1), match.group(2)
    return re.sub(r"[\s_\-.]", "", name).lower(), (unit.strip() if unit else None)


_CANONICAL = {name.lower(): name for name in PHENOTYPE_NAMES}


def phenotype_column(column: str) -> tuple[str, str | None] | None:
    """'lv_edv' -> ('LVEDV', None); 'LVEDV (ml)' -> ('LVEDV', 'ml'); unrelated -> None."""
    key, unit = _split(column)
    name = _CANONICAL.get(key) or ALIASES.get(key)
    return None if name is None else (name, unit)


def read_phenotypes(csv: str | Path) -> pd.DataFrame:
    """Phenotype table: index `eid` (str), columns PHENOTYPES (float, NaN where unknown)."""
    path = Path(csv)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(path, f"unreadable CSV ({err})") from None
    eid_cols = [c for c in table.columns if re.sub(r"[\s_\-.:]", "", str(c)).lower() in _EID_NAMES]
    if not eid_cols:
        raise InputError(path, f"no eid column among {list(table.columns)}")
    eids = table[eid_cols[0]].str.strip()
    if (eids == "").any():
        raise InputError(path, f"{int((eids == '').sum())} rows without an eid")
    duplicated = eids[eids.duplicated()].unique()
    if len(duplicated):
        raise InputError(path, f"duplicate eids {list(duplicated[:5])} ({len(duplicated)} in all)")
    units = dict(zip(PHENOTYPE_NAMES, PHENOTYPE_UNITS))
    out = pd.DataFrame(np.nan, index=pd.Index(eids, name="eid"), columns=list(PHENOTYPES))
    seen: dict[str, str] = {}
    for column in table.columns:
        match = phenotype_column(column)
        if match is None or column in eid_cols:
            continue
        name, unit = match
        if name in seen:
            raise InputError(path, f"columns {seen[name]!r} and {column!r} both give {name}")
        if unit is not None and unit.lower() != units[name].lower():
            raise InputError(path, f"column {column!r}: unit {unit!r}, expected {units[name]!r}")
        seen[name] = column
        text = table[column].str.strip()
        values = pd.to_numeric(
            text.replace({"": None, "NA": None, "nan": None, "NaN": None}), errors="coerce"
        )
        bad = values.isna() & text.notna() & ~text.isin(["", "NA", "nan", "NaN"])
        if bad.any():
            raise InputError(
                path,
                f"column {column!r}: non-numeric value {text[bad].iloc[0]!r} (eid {eids[bad].iloc[0]})",
            )
        out[f"{name} ({units[name]})"] = values.to_numpy(dtype=float)
    if not seen:
        raise InputError(
            path, f"no phenotype column among {list(table.columns)}; expected {list(PHENOTYPES)}"
        )
    return out
