"""The covariate table: named or UK Biobank showcase columns, eids normalised, bad values refused."""

from __future__ import annotations

import numpy as np
import pytest

from ptacl.data.discover import find_cohort_covariates
from ptacl.io import InputError
from ptacl.io.covariates import read_covariates
from ptacl.synth.marker import SYNTH_MARKER, marker_contents


def test_named_columns_with_missing_cells_and_eid_spellings(tmp_path):
    path = tmp_path / "covariates.csv"
    path.write_text(
        "eid,sex,height_cm,weight_kg\n01001,1,180,80\n1002.0,0,,61.5\n1003,,170,\n",
        encoding="utf-8",
    )
    table = read_covariates(path)
    assert list(table.index) == ["1001", "1002", "1003"]  # normalise_eid's join keys
    np.testing.assert_array_equal(table.loc["1001"].to_numpy(), [1, 180, 80])
    assert np.isnan(table.loc["1002", "height_cm"]) and table.loc["1002", "weight_kg"] == 61.5
    assert np.isnan(table.loc["1003", "sex"]) and np.isnan(table.loc["1003", "weight_kg"])


def test_showcase_columns_at_the_imaging_visit(tmp_path):
    path = tmp_path / "ukb.csv"
    # sex is field 31 at instance 0; height 50 and weight 21002 are read at the visit asked for
    path.write_text(
        "eid,31-0.0,50-0.0,50-2.0,21002-2.0,21002-3.0\n5,0,150,160,55,99\n", encoding="utf-8"
    )
    np.testing.assert_array_equal(read_covariates(path).loc["5"].to_numpy(), [0, 160, 55])
    np.testing.assert_array_equal(read_covariates(path, instance=3).loc["5"].to_numpy()[[0, 2]],
                                  [0, 99])  # fmt: skip
    assert np.isnan(read_covariates(path, instance=3).loc["5", "height_cm"])  # no 50-3.0


@pytest.mark.parametrize(
    "row, why",
    [
        ("1,2,180,80", r"row 1: sex '2' is not 0 \(female\) or 1 \(male\)"),
        ("1,1,71,80", r"row 1: height_cm '71' is not between 100 and 250"),  # inches
        ("1,1,180,heavy", r"row 1: weight_kg 'heavy' is not between 25 and 350"),
    ],
)
def test_an_impossible_value_refuses_the_file_naming_the_row(tmp_path, row, why):
    path = tmp_path / "c.csv"
    path.write_text(f"eid,sex,height_cm,weight_kg\n{row}\n", encoding="utf-8")
    with pytest.raises(InputError, match=why) as info:
        read_covariates(path)
    assert str(info.value).startswith(str(path))


def test_a_table_without_eid_or_covariates_is_refused(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("id2,sex\n1,1\n", encoding="utf-8")
    with pytest.raises(InputError, match="no eid column"):
        read_covariates(path)
    path.write_text("eid,age\n1,60\n", encoding="utf-8")
    with pytest.raises(InputError, match="none of the columns"):
        read_covariates(path)


def test_found_beside_a_synthetic_cohorts_phenotypes_only(tmp_path):
    phenotypes = tmp_path / "phenotypes.csv"
    phenotypes.write_text("eid\n1\n", encoding="utf-8")
    (tmp_path / "covariates.csv").write_text("eid,sex\n1,1\n", encoding="utf-8")
    assert find_cohort_covariates(phenotypes) is None  # a user's folder: named, not guessed
    (tmp_path / SYNTH_MARKER).write_text(marker_contents(1, 0), encoding="utf-8")
    assert find_cohort_covariates(phenotypes) == tmp_path / "covariates.csv"
    assert find_cohort_covariates(None) is None
