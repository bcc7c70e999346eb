import csv

import numpy as np
import pandas as pd
import pytest

from ptacl.io import InputError, read_phenotypes
from ptacl.io.phenotypes import load_mapping, showcase_column
from ptacl.phenotypes import PHENOTYPES, UKB_FIELDS


def test_ukbb_cardiac_table(tmp_path):
    path = tmp_path / "table.csv"
    header = "," + ",".join(PHENOTYPES)  # ukbb_cardiac writes the eid index unnamed
    rows = [
        "1000037," + ",".join(str(10 + k) for k in range(10)),
        "0012345," + ",".join(["1"] * 10),
    ]
    path.write_text("\n".join([header, *rows]) + "\n")
    table = read_phenotypes(path)
    assert list(table.columns) == list(PHENOTYPES)
    # leading zeros go: the index is the join key, so "0012345" meets a file named 12345
    assert list(table.index) == ["1000037", "12345"] and table.index.name == "eid"
    assert table.loc["1000037", "LVEF (%)"] == 13.0


def test_aliases_missing_columns_and_blanks(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        "eid,lv_edv,LVESV (ml),LV EF,age,RVEF (%)\n1,150,60,60,55,\n2,140.5,NA,58,60,52\n"
    )
    table = read_phenotypes(path)
    assert table.loc["1", "LVEDV (mL)"] == 150 and table.loc["2", "LVEDV (mL)"] == 140.5
    assert table.loc["1", "LVESV (mL)"] == 60 and np.isnan(table.loc["2", "LVESV (mL)"])
    assert np.isnan(table.loc["1", "RVEF (%)"]) and np.isnan(table["LVM (g)"]).all()
    assert "age" not in table.columns


def test_wrong_unit_is_refused(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("eid,LVCO (mL/min)\n1,5000\n")
    with pytest.raises(InputError, match=r"unit 'mL/min', expected 'L/min'"):
        read_phenotypes(path)


def test_duplicate_eids(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("eid,LVEDV\n1,150\n2,140\n1,151\n")
    with pytest.raises(InputError, match=rf"^{path}: duplicate eids \['1'\]"):
        read_phenotypes(path)


def test_non_numeric_value(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("eid,LVEDV\n1,150\n2,big\n")
    with pytest.raises(InputError, match=r"non-numeric value 'big' \(eid 2\)"):
        read_phenotypes(path)


def test_two_columns_for_one_phenotype(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("eid,LVEDV,lv_edv\n1,150,150\n")
    with pytest.raises(InputError, match=r"both give LVEDV"):
        read_phenotypes(path)


def test_no_eid_or_no_phenotypes(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,LVEDV\n1,150\n")
    with pytest.raises(InputError, match="no eid column"):
        read_phenotypes(path)
    path.write_text("eid,age\n1,50\n")
    with pytest.raises(InputError, match="no phenotype column"):
        read_phenotypes(path)


# -- UK Biobank showcase exports --------------------------------------------------------------

#: A plausible, consistent row in PHENOTYPES order.
ROW = [150.0, 60.0, 90.0, 60.0, 6.3, 110.0, 160.0, 70.0, 90.0, 56.25]


def _showcase(path, style, instances=(2, 3)):
    """A showcase export of the ten fields, instance 3 values 10 % larger; one extra field."""
    names = {
        "ukbconv": lambda f, i: f"{f}-{i}.0",
        "r": lambda f, i: f"f.{f}.{i}.0",
        "rap": lambda f, i: f"p{f}_i{i}",
    }[style]
    table = {"f.eid" if style == "r" else "eid": ["1001", "1002"]}
    for field, (column, _) in UKB_FIELDS.items():
        value = ROW[PHENOTYPES.index(column)]
        for i in instances:
            table[names(field, i)] = [value * (1 + 0.1 * (i - 2)), ""]
    table[names("21001", 2)] = [27.5, 30.1]  # BMI: not a phenotype, left out
    pd.DataFrame(table).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("style", ["ukbconv", "r", "rap"])
def test_showcase_columns_in_every_naming_style(tmp_path, style):
    path = _showcase(tmp_path / "ukb.csv", style)
    table = read_phenotypes(path)
    assert list(table.columns) == list(PHENOTYPES) and list(table.index) == ["1001", "1002"]
    np.testing.assert_allclose(table.loc["1001"].to_numpy(), ROW)
    assert table.loc["1002"].isna().all()
    repeat = read_phenotypes(path, instance=3)  # the repeat imaging visit
    np.testing.assert_allclose(repeat.loc["1001"].to_numpy(), np.array(ROW) * 1.1)


def test_showcase_names_are_parsed_only_when_whole():
    assert showcase_column("24100-2.0") == ("24100", 2, 0)
    assert showcase_column("f.24100.3.1") == ("24100", 3, 1)
    assert showcase_column("p24100_i2") == ("24100", 2, 0)
    assert showcase_column("p24100_i2_a1") == ("24100", 2, 1)
    assert showcase_column("LVEDV (mL)") is None and showcase_column("24100") is None


def test_only_another_visit_says_so(tmp_path):
    path = _showcase(tmp_path / "ukb.csv", "ukbconv", instances=(3,))
    with pytest.raises(InputError, match=r"instance \[3\] only: --instance"):
        read_phenotypes(path)


@pytest.mark.parametrize("suffix", [".csv", ".yaml"])
def test_a_user_mapping_adds_fields_and_renames_columns(tmp_path, suffix):
    pd.DataFrame({"eid": ["7"], "22420-2.0": [61.0], "left ventricle volume ED": [140.0]}).to_csv(
        tmp_path / "t.csv", index=False
    )
    entries = {"22420": "LVEF", "left ventricle volume ED": "LVEDV (mL)"}
    mapping = tmp_path / f"map{suffix}"
    if suffix == ".csv":
        lines = ["column,phenotype", *(f"{k},{v}" for k, v in entries.items())]
        mapping.write_text("\n".join(lines) + "\n")
    else:
        mapping.write_text("".join(f"'{k}': '{v}'\n" for k, v in entries.items()))
    table = read_phenotypes(tmp_path / "t.csv", mapping=load_mapping(mapping))
    assert table.loc["7", "LVEF (%)"] == 61.0 and table.loc["7", "LVEDV (mL)"] == 140.0


def test_a_mapping_to_no_phenotype_fails_at_once(tmp_path):
    mapping = tmp_path / "map.yaml"
    mapping.write_text("'24100': LV_volume\n")
    with pytest.raises(InputError, match=r"maps to 'LV_volume', not one of"):
        load_mapping(mapping)
    mapping.write_text("'24100': LVEDV (L)\n")  # a unit other than the canonical one
    with pytest.raises(InputError, match=r"maps to 'LVEDV \(L\)'"):
        load_mapping(mapping)


# -- eids however a tool spelled them (issue 19) ------------------------------------------------


def test_pandas_float_eids_after_a_nan_read_as_integers(tmp_path):
    """A float column (what pandas makes of an eid column once it held a NaN) is written by
    pandas itself as `1038021.0`."""
    path = tmp_path / "t.csv"
    frame = pd.DataFrame({"eid": [1038021.0, 1038022.0], "LVEDV (mL)": [150.0, np.nan]})
    frame.to_csv(path, index=False)
    assert "1038021.0," in path.read_text()
    assert list(read_phenotypes(path).index) == ["1038021", "1038022"]


@pytest.mark.parametrize("spelling", ["1.038021e+06", "01038021", " 1038021 ", "1038021.00"])
def test_every_spelling_of_a_number_is_one_eid(tmp_path, spelling):
    path = tmp_path / "t.csv"
    with open(path, "w", newline="") as f:  # the csv module, not our writer
        csv.writer(f).writerows([["eid", "LVEDV"], [spelling, "150"]])
    assert list(read_phenotypes(path).index) == ["1038021"]


def test_conflicting_spellings_of_one_eid_are_duplicates_naming_both_rows(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("eid,LVEDV\n1038021,150\n1038022,140\n1038021.0,151\n")
    with pytest.raises(
        InputError, match=r"eid 1038021 is '1038021' \(row 1\) and '1038021.0' \(row 3\)"
    ):
        read_phenotypes(path)


def test_a_fractional_eid_is_refused_by_name(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("eid,LVEDV\n1038021,150\n1038021.5,140\n")
    with pytest.raises(InputError, match=r"row 2: eid '1038021.5' is not an integer"):
        read_phenotypes(path)


def test_names_that_are_not_numbers_stay_as_they_are(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("eid,LVEDV\nsub-01,150\n007a,140\n")
    assert list(read_phenotypes(path).index) == ["sub-01", "007a"]
