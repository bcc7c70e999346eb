"""Phenotype tables joined to the files however their eids are spelled (issue 19): before,
`1038021.0`, `1.038021e+06` or `01038021` left every subject without phenotypes, exit 0."""

import numpy as np
import pandas as pd
import pytest
from raw_cohort import phenotype_row, write_subject

from ptacl.cli.prepare import main
from ptacl.data.store import Store
from ptacl.phenotypes import PHENOTYPES

EIDS = [str(1038021 + k) for k in range(6)]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Six paired subjects named as UK Biobank names them ({eid}_20205_2_0.xml, {eid}/)."""
    root = tmp_path_factory.mktemp("eids")
    for eid in EIDS:
        write_subject(root, eid)
    return root


def _table(path, eids):
    """A ukbb_cardiac-style table written by pandas: row k holds phenotype_row(k)."""
    frame = pd.DataFrame([phenotype_row(k) for k in range(len(eids))], columns=list(PHENOTYPES))
    frame.insert(0, "eid", eids)
    frame.to_csv(path, index=False)
    return path


def _prepare(cohort, table, out):
    argv = ["--ecg", str(cohort / "ecg"), "--cmr", str(cohort / "cmr"), "--phenotypes"]
    return main([*argv, str(table), "--out", str(cohort / out), "--quiet"])


@pytest.mark.parametrize(
    "spell",
    [
        lambda e: float(e),  # pandas writes 1038021.0
        lambda e: f"{float(e):.6e}",  # 1.038021e+06
        lambda e: f"0{e}",  # leading zero
        lambda e: f" {e} ",  # whitespace
    ],
    ids=["float", "scientific", "leading-zero", "whitespace"],
)
def test_each_spelling_of_the_eids_joins_every_subject(cohort, spell, capsys, request):
    out = f"store-{request.node.callspec.id}"
    table = _table(cohort / f"{out}.csv", [spell(e) for e in EIDS])
    assert _prepare(cohort, table, out) == 0
    assert "warning" not in capsys.readouterr().err
    store = Store.open(cohort / out)
    phen = pd.DataFrame(store.phenotypes, columns=list(PHENOTYPES), index=store.subjects["eid"])
    for k, eid in enumerate(EIDS):
        np.testing.assert_allclose(phen.loc[eid].to_numpy(), phenotype_row(k), rtol=1e-6)
    assert store.manifest["with_phenotypes"] == 6


def test_conflicting_spellings_stop_the_run_naming_both_rows(cohort, capsys):
    table = _table(cohort / "conflict.csv", [*EIDS, f"{EIDS[2]}.0"])
    assert _prepare(cohort, table, "conflict") == 2
    err = capsys.readouterr().err
    assert f"eid {EIDS[2]} is '{EIDS[2]}' (row 3) and '{EIDS[2]}.0' (row 7)" in err
    assert not (cohort / "conflict").exists()


def test_a_table_that_matches_nothing_fails_loudly(cohort, capsys):
    table = _table(cohort / "other.csv", [f"A{e}" for e in EIDS])
    assert _prepare(cohort, table, "nothing") == 2
    err = capsys.readouterr().err
    assert "0 of 6 paired subjects matched a phenotype row" in err and "'A1038021'" in err
    assert not (cohort / "nothing").exists()


def test_a_table_that_matches_few_subjects_warns_with_the_count(cohort, capsys):
    table = _table(cohort / "few.csv", [*EIDS[:2], *(f"A{e}" for e in EIDS[2:])])
    assert _prepare(cohort, table, "few") == 0
    err = capsys.readouterr().err
    assert "warning" in err and "only 2 of 6 paired subjects matched a phenotype row" in err
    warnings = Store.open(cohort / "few").manifest["warnings"]
    assert any("only 2 of 6" in w for w in warnings)


def test_a_file_eid_with_leading_zeros_gets_its_row_and_its_qc_lines(tmp_path, capsys):
    """Files named `01038021...` join the table's `1038021`; a value set to NaN is reported
    under the subject as its files name it, not as a row of no subject."""
    write_subject(tmp_path, "01038021")
    values = phenotype_row(0)
    values[0] = -5.0  # an impossible LVEDV: set to NaN with a qc line
    frame = pd.DataFrame([values], columns=list(PHENOTYPES))
    frame.insert(0, "eid", [1038021])
    frame.to_csv(tmp_path / "t.csv", index=False)
    assert _prepare(tmp_path, tmp_path / "t.csv", "s") == 0
    qc = pd.read_csv(tmp_path / "s" / "qc.csv", dtype=str, keep_default_na=False)
    row = qc[qc["modality"] == "phenotypes"].iloc[0]
    assert (row["eid"], row["status"]) == ("01038021", "paired")
    store = Store.open(tmp_path / "s")
    assert np.isnan(store.phenotypes[0, 0])  # the impossible LVEDV
    np.testing.assert_allclose(store.phenotypes[0, 6:], phenotype_row(0)[6:], rtol=1e-6)  # RV
