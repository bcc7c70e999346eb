"""`ptacl prepare --covariates`: sex, height and weight kept in the store, row for row."""

from __future__ import annotations

import numpy as np
from raw_cohort import write_phenotypes, write_subject

from ptacl.cli.prepare import main
from ptacl.data.prepare import prepare_store
from ptacl.data.store import Store
from ptacl.synth.marker import SYNTH_MARKER, marker_contents


def _cohort(root):
    for eid in ("1001", "1002", "1003"):
        write_subject(root, eid)
    write_phenotypes(root / "phenotypes.csv", ["1001", "1002", "1003"])
    return root


def test_covariates_are_stored_by_eid_and_missing_stays_unknown(tmp_path):
    root = _cohort(tmp_path)
    # another spelling of 1001's eid, 1003 absent, a subject without images
    (root / "cov.csv").write_text(
        "eid,sex,height_cm,weight_kg\n1002,0,160,55\n01001.0,1,180,\n2000,1,170,70\n",
        encoding="utf-8",
    )
    prepare_store(root / "ecg", root / "cmr", root / "phenotypes.csv", root / "store",
                  progress=False, covariates=root / "cov.csv")  # fmt: skip
    store = Store.open(root / "store")
    table = store.covariates()
    assert list(store.subjects["eid"]) == ["1001", "1002", "1003"]
    np.testing.assert_array_equal(table.to_numpy()[1], [0, 160, 55])
    assert table.iloc[0, 0] == 1 and np.isnan(table.iloc[0, 2])
    assert table.iloc[2].isna().all()  # no row for 1003: unknown, not dropped
    assert store.manifest["sources"]["covariates"] == str(root / "cov.csv")


def test_a_store_without_covariates_says_none(tmp_path):
    root = _cohort(tmp_path)
    prepare_store(root / "ecg", root / "cmr", root / "phenotypes.csv", root / "store",
                  progress=False)  # fmt: skip
    assert Store.open(root / "store").covariates() is None


def test_a_synthetic_cohorts_table_is_found_and_a_bad_one_refused(tmp_path, capsys):
    root = _cohort(tmp_path)
    (root / SYNTH_MARKER).write_text(marker_contents(3, 0), encoding="utf-8")
    (root / "covariates.csv").write_text("eid,sex,height_cm,weight_kg\n1003,1,175,75\n",
                                         encoding="utf-8")  # fmt: skip
    args = ["--ecg", str(root / "ecg"), "--cmr", str(root / "cmr"), "--quiet",
            "--phenotypes", str(root / "phenotypes.csv")]  # fmt: skip
    assert main([*args, "--out", str(root / "store")]) == 0
    np.testing.assert_array_equal(Store.open(root / "store").covariates().to_numpy()[2],
                                  [1, 175, 75])  # fmt: skip
    (root / "bad.csv").write_text("eid,sex\n1001,F\n", encoding="utf-8")
    assert main([*args, "--out", str(root / "s2"), "--covariates", str(root / "bad.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"ptacl prepare: {root / 'bad.csv'}: row 1: sex 'F' is not 0 (female) or "
                   "1 (male) (1 such rows)"]  # fmt: skip
    assert not (root / "s2").exists()
