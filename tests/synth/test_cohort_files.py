"""The cohort's own files beside the recordings: covariates.csv coded as UK Biobank codes them,
cohort.json with the generator version, and `ptacl prepare` of cohorts of either version."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import defusedxml.ElementTree as ET
import pandas as pd
import pytest

from ptacl.cli.prepare import main as prepare
from ptacl.data.discover import ORIGIN_SYNTHETIC
from ptacl.synth.marker import GENERATOR_VERSION


def test_covariates_have_one_row_per_subject_coded_as_uk_biobank(cohort: Path):
    lines = (cohort / "covariates.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "eid,sex,height_cm,weight_kg"  # h4's endpoints read this header
    covariates = pd.read_csv(cohort / "covariates.csv", dtype={"eid": str}).set_index("eid")
    eids = pd.read_csv(cohort / "phenotypes.csv", dtype={"eid": str})["eid"]
    assert list(covariates.index) == list(eids)
    for eid, row in covariates.iterrows():  # against the ECG file's patient block
        patient = ET.parse(cohort / "ecg" / f"{eid}_20205_2_0.xml").getroot().find("PatientInfo")
        assert row["sex"] == {"MALE": 1, "FEMALE": 0}[patient.findtext("Gender")]  # field 31
        assert round(row["height_cm"]) == int(patient.findtext("Height"))
        assert round(row["weight_kg"]) == int(patient.findtext("Weight"))


def test_the_marker_records_the_generator_version(cohort: Path):
    marker = json.loads((cohort / "cohort.json").read_text(encoding="utf-8"))
    assert marker["generator_version"] == GENERATOR_VERSION >= 2  # 1 had no reduced-EF tail
    assert marker["covariates"]["file"] == "covariates.csv"


def _as_version_1(cohort: Path) -> None:
    """Make a cohort look as generator version 1 left it: no covariates, no version."""
    (cohort / "covariates.csv").unlink()
    marker = json.loads((cohort / "cohort.json").read_text(encoding="utf-8"))
    for key in ("generator_version", "covariates"):
        del marker[key]
    (cohort / "cohort.json").write_text(json.dumps(marker), encoding="utf-8")


@pytest.mark.parametrize("version", [1, GENERATOR_VERSION])
def test_prepare_reads_a_cohort_of_either_version(cohort: Path, tmp_path: Path, version: int):
    copy = tmp_path / "cohort"
    shutil.copytree(cohort, copy)
    if version == 1:
        _as_version_1(copy)
    argv = ["--ecg", str(copy / "ecg"), "--cmr", str(copy / "cmr"), "--phenotypes"]
    argv += [str(copy / "phenotypes.csv"), "--out", str(tmp_path / "store"), "--quiet"]
    assert prepare([*argv, "--val", "0"]) == 0
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["origin"] == ORIGIN_SYNTHETIC
    assert f"(generator version {version})" in manifest["evidence"]
