"""`read_phenotypes`: the ukbb_cardiac table (or a look-alike) as the 10 PHENOTYPES columns.

Columns are matched by name after normalisation (lower case, units in parentheses split off,
spaces, "_" and "-" dropped), so "LVEDV (mL)", "LVEDV", "lv_edv" and "LV EDV (ml)" are one
column. A unit given in the file must be the canonical one (compared case-insensitively):
values are never rescaled silently. Missing phenotype columns become NaN; other columns are
dropped. The subject column is `eid` (or `f.eid`, or the unnamed first column ukbb_cardiac
writes).

UK Biobank showcase exports are read too: columns `24100-2.0` (ukbconv CSV), `f.24100.2.0`
(ukbconv R/tab) or `p24100_i2` (Research Analysis Platform) map through
`ptacl.phenotypes.UKB_FIELDS` (field ID -> phenotype), for the visit `instance` only (2, the
first imaging visit, by default; array 0). A user mapping (`load_mapping`: CSV or YAML, column
name or field ID -> phenotype) adds or overrides entries, for other fields or renamed columns.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ptacl.io.errors import InputError
from ptacl.io.names import DEFAULT_INSTANCE, normalise_eid
from ptacl.phenotypes import PHENOTYPE_NAMES, PHENOTYPE_UNITS, PHENOTYPES, UKB_FIELDS

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


def read_text_csv(path: Path) -> pd.DataFrame:
    """A CSV as text cells (no number parsing: eids keep their spelling, empty stays ''), or
    an InputError naming the file and why it cannot be read."""
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(path, f"unreadable CSV ({err})") from None


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


#: Showcase column styles: ukbconv CSV, ukbconv R/tab, Research Analysis Platform.
_SHOWCASE = (
    re.compile(r"(?P<field>\d+)-(?P<instance>\d+)\.(?P<array>\d+)"),
    re.compile(r"f\.(?P<field>\d+)\.(?P<instance>\d+)\.(?P<array>\d+)"),
    re.compile(r"p(?P<field>\d+)_i(?P<instance>\d+)(?:_a(?P<array>\d+))?"),
)


def showcase_column(column: str) -> tuple[str, int, int] | None:
    """'24100-2.0', 'f.24100.2.0', 'p24100_i2' -> ('24100', 2, 0); other names -> None."""
    for pattern in _SHOWCASE:
        match = pattern.fullmatch(str(column).strip())
        if match is not None:
            return match["field"], int(match["instance"]), int(match["array"] or 0)
    return None


def _phenotype_name(target: str, where: Path) -> str:
    """A mapping's target ('LVEDV', 'LVEDV (mL)', 'lv_edv') -> the short phenotype name."""
    match = phenotype_column(target)
    units = dict(zip(PHENOTYPE_NAMES, PHENOTYPE_UNITS))
    if match is None or (match[1] is not None and match[1].lower() != units[match[0]].lower()):
        raise InputError(where, f"maps to {target!r}, not one of {list(PHENOTYPES)}")
    return match[0]


def load_mapping(path: str | Path) -> dict[str, str]:
    """A user mapping, column name or UK Biobank field ID -> phenotype: YAML ({key: phenotype})
    or CSV with two columns (key, phenotype; a header row is skipped when its second cell is
    not a phenotype). Targets are checked: a typo fails here, not as a silently empty column."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise InputError(path, f"unreadable YAML ({err})") from None
        pairs = list((raw or {}).items()) if isinstance(raw, dict) else None
    else:
        try:
            rows = pd.read_csv(path, header=None, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise InputError(path, f"unreadable CSV ({err})") from None
        pairs = None if rows.shape[1] != 2 else list(rows.itertuples(index=False, name=None))
        if pairs and phenotype_column(pairs[0][1]) is None:
            pairs = pairs[1:]  # a header row
    if pairs is None:
        raise InputError(path, "expected pairs of (column name or field ID, phenotype)")
    return {str(k).strip(): _phenotype_name(str(v).strip(), path) for k, v in pairs}


def _join_keys(column: pd.Series, path: Path) -> pd.Series:
    """The eid column as join keys (`normalise_eid`): every spelling of one number is one
    eid, so `X` and `X.0` on two rows are duplicates, refused naming both rows (numbered from
    1, the header not counted) whether or not their values agree."""
    eids = column.str.strip()
    if (eids == "").any():
        raise InputError(path, f"{int((eids == '').sum())} rows without an eid")
    keys = []
    for row, eid in enumerate(eids, start=1):
        try:
            keys.append(normalise_eid(eid))
        except ValueError as err:
            raise InputError(path, f"row {row}: {err}") from None
    keys = pd.Series(keys, index=eids.index)
    duplicated = keys[keys.duplicated(keep=False)]
    if len(duplicated):
        first = duplicated.iloc[0]
        rows = [f"{eids[i]!r} (row {i + 1})" for i in duplicated.index[duplicated == first]]
        how_many = duplicated.nunique()
        raise InputError(
            path,
            f"duplicate eids {list(duplicated.unique()[:5])} ({how_many} in all): eid {first} "
            f"is {' and '.join(rows)}",
        )
    return keys


def read_phenotypes(
    csv: str | Path,
    *,
    instance: int = DEFAULT_INSTANCE,
    mapping: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Phenotype table: index `eid` (str, `normalise_eid`'s join key: '01038021', '1038021.0'
    and '1.038021e+06' are all '1038021'), columns PHENOTYPES (float, NaN where unknown).

    `instance`: the UK Biobank visit read from showcase columns; `mapping`: `load_mapping`'s
    {column name or field ID: phenotype}, over `UKB_FIELDS` (a phenotype it maps is no longer
    read from its built-in field).
    """
    path = Path(csv)
    table = read_text_csv(path)
    eid_cols = [c for c in table.columns if re.sub(r"[\s_\-.:]", "", str(c)).lower() in _EID_NAMES]
    if not eid_cols:
        raise InputError(path, f"no eid column among {list(table.columns)}")
    eids = _join_keys(table[eid_cols[0]], path)
    units = dict(zip(PHENOTYPE_NAMES, PHENOTYPE_UNITS))
    out = pd.DataFrame(np.nan, index=pd.Index(eids, name="eid"), columns=list(PHENOTYPES))
    seen: dict[str, str] = {}
    fields = {field: phenotype_column(name)[0] for field, (name, _) in UKB_FIELDS.items()}
    if mapping:  # the user's entries win: a built-in field of a phenotype they map is dropped
        fields = {f: name for f, name in fields.items() if name not in set(mapping.values())}
        fields.update({key: name for key, name in mapping.items() if key.isdigit()})
    other_visits: set[int] = set()
    for column in table.columns:
        if column in eid_cols:
            continue
        showcase = showcase_column(column)
        if showcase is not None:
            field, visit, array = showcase
            if field not in fields:
                continue
            if visit != instance or array != 0:
                other_visits.add(visit)
                continue
            match: tuple[str, str | None] | None = (fields[field], None)
        elif mapping and str(column).strip() in mapping:
            match = (mapping[str(column).strip()], None)
        else:
            match = phenotype_column(column)
        if match is None:
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
        visits = f" (showcase columns of instance {sorted(other_visits)} only: --instance)"
        raise InputError(
            path,
            f"no phenotype column among {list(table.columns)[:12]}; expected {list(PHENOTYPES)}, "
            f"UK Biobank fields {sorted(fields)} of instance {instance}"
            + (visits if other_visits else "")
            + " or a --phenotype-map",
        )
    return out
