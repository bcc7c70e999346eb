"""Quality control of phenotype labels: values that cannot be a heart become NaN, with the reason.

`ptacl prepare` runs `check_labels` on the table `ptacl.io.read_phenotypes` read; the reasons
go to qc.csv. Reading and judging are apart so that the readers stay plain readers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ptacl.phenotypes import PHYSIOLOGICAL_RANGES, split_name

#: Internal consistency tolerances. ukbb_cardiac derives SV = EDV - ESV and EF = 100 SV / EDV
#: from the same segmentation, so they agree to rounding: a table rounded to whole mL is off by
#: at most 1 mL in SV and, for EDV >= 50 mL, by under 1.5 percentage points in EF.
SV_TOLERANCE_ML = 2.0
SV_TOLERANCE_FRACTION = 0.02  # of EDV, for tables that keep fewer digits on large hearts
EF_TOLERANCE_POINTS = 2.0
#: LVCO = LVSV x heart rate, so CO / SV is the heart rate during the scan; outside this range
#: (bpm) the CO and SV columns cannot both be right.
HEART_RATE_BPM = (25.0, 220.0)


def check_labels(table: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Set implausible phenotype values to NaN; return the cleaned table and the reasons.

    `table`: index eid, columns PHENOTYPES (what `read_phenotypes` returns). Checks, in order:
    finite; inside `PHYSIOLOGICAL_RANGES`; ESV < EDV; SV = EDV - ESV and EF = 100 SV / EDV
    within the tolerances above; the heart rate CO / SV implies. Which of a contradicting set
    is wrong cannot be told, so a ventricle whose volumes contradict each other loses all of
    them (EDV, ESV, SV, EF, and the LV's CO); a lone EF or CO that disagrees loses only itself.
    Reasons: eid -> messages naming the values and the rule, for qc.csv.
    """
    out = table.astype(float).copy()
    problems: dict[str, list[str]] = {}

    def drop(eid: str, columns: list[str], reason: str) -> None:
        out.loc[eid, columns] = np.nan
        problems.setdefault(str(eid), []).append(f"{reason}; set to NaN: {', '.join(columns)}")

    raw = table.astype(float)
    for column, (low, high) in PHYSIOLOGICAL_RANGES.items():
        values = raw[column]
        bad = values.notna() & ~values.between(low, high)
        name, unit = split_name(column)
        for eid, value in values[bad].items():
            where = "not finite, outside" if not np.isfinite(value) else "outside"
            reason = f"{name} {value:g} {unit} {where} the physiological range {low:g}-{high:g}"
            drop(eid, [column], reason)
    for side in ("LV", "RV"):
        edv, esv, sv, ef = (f"{side}{n}" for n in ("EDV (mL)", "ESV (mL)", "SV (mL)", "EF (%)"))
        volumes = [edv, esv, sv, ef] + (["LVCO (L/min)"] if side == "LV" else [])
        # vectorised masks (a cohort has tens of thousands of rows); messages for flagged rows
        inverted = out[esv] >= out[edv]  # False where either is NaN
        for eid in out.index[inverted]:
            drop(eid, volumes, f"{side}ESV {out.at[eid, esv]:g} mL >= {side}EDV")
        expected = out[edv] - out[esv]
        tolerance = np.maximum(SV_TOLERANCE_ML, SV_TOLERANCE_FRACTION * out[edv])
        for eid in out.index[(out[sv] - expected).abs() > tolerance]:
            reason = f"{side}SV {out.at[eid, sv]:g} mL != {side}EDV - {side}ESV"
            drop(eid, volumes, f"{reason} = {expected[eid]:g} mL (tolerance {tolerance[eid]:g})")
        expected = 100.0 * out[sv] / out[edv]
        for eid in out.index[(out[ef] - expected).abs() > EF_TOLERANCE_POINTS]:
            reason = f"{side}EF {out.at[eid, ef]:g} % != 100 {side}SV / {side}EDV"
            drop(eid, [ef], f"{reason} = {expected[eid]:.1f} % (tolerance {EF_TOLERANCE_POINTS:g})")
    co, sv = out["LVCO (L/min)"], out["LVSV (mL)"]
    rate = 1000.0 * co / sv
    low, high = HEART_RATE_BPM
    for eid in rate.index[rate.notna() & ~rate.between(low, high)]:
        reason = f"LVCO {co[eid]:g} L/min and LVSV {sv[eid]:g} mL imply a heart rate of"
        drop(eid, ["LVCO (L/min)"], f"{reason} {rate[eid]:.0f} bpm, outside {low:g}-{high:g}")
    return out, problems
