import numpy as np
import pytest

from ptacl.io import InputError, read_phenotypes
from ptacl.phenotypes import PHENOTYPES


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
    assert list(table.index) == ["1000037", "0012345"] and table.index.name == "eid"
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
