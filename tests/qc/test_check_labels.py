"""`check_labels`: phenotype values that cannot be a heart become NaN, with the reason."""

import re

import numpy as np
import pandas as pd
import pytest

from ptacl.phenotypes import PHENOTYPES
from ptacl.qc import check_labels


def _table(rows):
    return pd.DataFrame(rows, columns=list(PHENOTYPES)).rename(index=str).rename_axis("eid")


#: A plausible, consistent row (SV = EDV - ESV, EF = 100 SV / EDV, CO = SV x 70 bpm).
GOOD = [150.0, 60.0, 90.0, 60.0, 6.3, 110.0, 160.0, 70.0, 90.0, 56.25]


def test_plausible_consistent_labels_pass_untouched():
    rounded = [round(v) for v in GOOD]  # whole numbers, as some exports keep them
    table = _table([GOOD, rounded])
    cleaned, problems = check_labels(table)
    assert problems == {} and cleaned.equals(table.astype(float))


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("LVEDV (mL)", -55.0, r"LVEDV -55 mL outside the physiological range 20-600"),
        ("LVEF (%)", 150.0, r"LVEF 150 % outside .* 5-90"),
        ("LVM (g)", 1e30, r"LVM 1e\+30 g outside"),
        ("RVEDV (mL)", np.inf, r"RVEDV inf mL not finite"),
    ],
)
def test_impossible_values_become_nan_with_the_reason(column, value, reason):
    row = list(GOOD)
    row[PHENOTYPES.index(column)] = value
    cleaned, problems = check_labels(_table([GOOD, row]))
    assert list(problems) == ["1"]
    assert np.isnan(cleaned.loc["1", column])
    assert any(re.search(reason, p) for p in problems["1"]), problems
    assert all(f"set to NaN: {column}" in p or "set to NaN" in p for p in problems["1"])
    assert cleaned.loc["0"].tolist() == GOOD


def test_inconsistent_volumes_lose_the_ventricle_a_lone_ef_only_itself():
    sv_off = list(GOOD)
    sv_off[2] = 70.0  # LVSV 70 but LVEDV - LVESV = 90
    ef_off = list(GOOD)
    ef_off[9] = 80.0  # RVEF 80 but 100 RVSV / RVEDV = 56.25
    co_off = list(GOOD)
    co_off[4] = 1.0  # LVCO 1 L/min for an SV of 90 mL: 11 bpm
    inverted = list(GOOD)
    inverted[6], inverted[7] = 70.0, 160.0
    cleaned, problems = check_labels(_table([sv_off, ef_off, co_off, inverted]))
    lv = ["LVEDV (mL)", "LVESV (mL)", "LVSV (mL)", "LVEF (%)", "LVCO (L/min)"]
    assert cleaned.loc["0", lv].isna().all() and cleaned.loc["0", "LVM (g)"] == 110.0
    assert "LVSV 70 mL != LVEDV - LVESV = 90 mL" in problems["0"][0]
    assert cleaned.loc["1"].isna().tolist() == [False] * 9 + [True]
    assert "RVEF 80 % != 100 RVSV / RVEDV = 56.2 %" in problems["1"][0]
    assert cleaned.loc["2"].isna().tolist() == [False] * 4 + [True] + [False] * 5
    assert "heart rate of 11 bpm" in problems["2"][0]
    assert cleaned.loc["3", PHENOTYPES[6:]].isna().all()
    assert "RVESV 160 mL >= RVEDV" in problems["3"][0]
