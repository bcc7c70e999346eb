"""qc.csv's `warning` and `patient_id` columns in `prepare`. A file's own patient id: a warning
when it differs from the eid, a refusal only on evidence in the cohort (a file naming another
subject, two files naming each other). The lead checks' warnings land in the same column."""

from __future__ import annotations

import pandas as pd
from raw_cohort import synthetic_ecg_uv, write_subject

from ptacl.data.prepare import prepare_store


def _prepare(root):
    return prepare_store(root / "ecg", root / "cmr", None, root / "store", progress=False)


def _ecg_rows(result) -> pd.DataFrame:
    qc = pd.read_csv(result.qc, dtype=str, keep_default_na=False)
    return qc[qc["modality"] == "ecg"].set_index("eid")


def test_a_cohort_whose_files_name_patient_0_prepares_fully_with_warnings(tmp_path):
    # UK Biobank-named files whose PatientInfo/PID is the placeholder 0 (FORMATS.md)
    eids = ["4100000", "4100001", "4100002"]
    for eid in eids:
        write_subject(tmp_path, eid, pid="0")
    result = _prepare(tmp_path)
    assert result.counts["paired"] == 3 and result.refused_files == 0
    rows = _ecg_rows(result)
    assert (rows["reason"] == "").all() and (rows["patient_id"] == "0").all()
    assert rows["warning"].str.startswith("the file names patient '0', not its eid").all()
    assert any("3 file(s) kept with a warning" in note for note in result.warnings)


def test_an_id_naming_the_eid_or_nothing_gives_no_warning(tmp_path):
    write_subject(tmp_path, "1001", pid="0001001")  # the same number, written with zeros
    write_subject(tmp_path, "1002")  # no PID element at all
    rows = _ecg_rows(_prepare(tmp_path))
    assert rows.loc["1001", "patient_id"] == "0001001"
    assert (rows["warning"] == "").all() and (rows["reason"] == "").all()


def test_two_files_naming_each_other_are_refused_as_a_swap(tmp_path):
    write_subject(tmp_path, "1001", pid="1002")
    write_subject(tmp_path, "1002", pid="1001")
    write_subject(tmp_path, "1003", pid="1003")
    result = _prepare(tmp_path)
    assert result.counts["paired"] == 1 and result.counts["cmr_only"] == 2
    rows = _ecg_rows(result)
    assert rows.loc["1001", "reason"].startswith("swapped with eid 1002's file")
    assert rows.loc["1002", "reason"].startswith("swapped with eid 1001's file")
    assert rows.loc["1003", "reason"] == ""
    assert result.refused_files == 2


def test_a_file_naming_another_subject_is_refused_that_subject_kept(tmp_path):
    write_subject(tmp_path, "1001", pid="1002")  # 1001's file names 1002
    write_subject(tmp_path, "1002", pid="0")
    result = _prepare(tmp_path)
    rows = _ecg_rows(result)
    assert "may be eid 1002's ECG" in rows.loc["1001", "reason"]
    assert rows.loc["1002", "reason"] == "" and rows.loc["1002", "warning"] != ""
    assert result.counts == {
        "paired": 1, "ecg_only": 0, "cmr_only": 1, "rejected": 0, "no_images": 0,
    }  # fmt: skip


def test_an_inverted_ecg_is_kept_with_its_warning(tmp_path, monkeypatch):
    import raw_cohort

    write_subject(tmp_path, "1001")
    # the same writer, every lead's sign flipped (a polarity slip in an export)
    monkeypatch.setattr(raw_cohort, "synthetic_ecg_uv", lambda seed: -synthetic_ecg_uv(seed))
    raw_cohort.write_subject(tmp_path, "1002")
    result = _prepare(tmp_path)
    rows = _ecg_rows(result)
    assert result.counts["paired"] == 2 and (rows["reason"] == "").all()
    assert rows.loc["1001", "warning"] == ""
    assert "every lead inverted?" in rows.loc["1002", "warning"]


def test_a_file_naming_a_subject_known_only_by_its_phenotypes_is_refused(tmp_path):
    from raw_cohort import write_phenotypes

    write_subject(tmp_path, "1001", pid="1009")
    write_subject(tmp_path, "1002")
    table = write_phenotypes(tmp_path / "phenotypes.csv", ["1001", "1002", "1009"])
    result = prepare_store(
        tmp_path / "ecg", tmp_path / "cmr", table, tmp_path / "store", progress=False
    )
    assert "may be eid 1009's ECG" in _ecg_rows(result).loc["1001", "reason"]
