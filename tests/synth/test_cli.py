"""`ptacl synth` end to end: layout, formats, determinism across workers, argument errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ptacl.cli import synth
from ptacl.cli.main import main as ptacl_main
from ptacl.phenotypes import PHENOTYPES
from ptacl.synth.cohort import SynthError, generate_cohort, make_eids


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "preview.png"
    }


def test_layout_and_tables(cohort: Path, cohort_spec):
    n_subjects, _ = cohort_spec
    pheno = pd.read_csv(cohort / "phenotypes.csv", dtype={"eid": str})
    assert list(pheno.columns) == ["eid", *PHENOTYPES]
    assert len(pheno) == n_subjects
    assert pheno["eid"].str.fullmatch(r"[1-9]\d{6}").all()
    assert pheno["eid"].astype(int).min() >= 1_000_000
    truth = pd.read_csv(cohort / "truth.csv", dtype={"eid": str})
    assert list(truth["eid"]) == list(pheno["eid"])
    for eid in pheno["eid"]:
        assert (cohort / "ecg" / f"{eid}_20205_2_0.xml").is_file()
        assert (cohort / "cmr" / eid / "sa.nii.gz").is_file()
        assert (cohort / "cmr" / eid / "seg_sa.nii.gz").is_file()
    assert (cohort / "preview.png").stat().st_size > 10_000


def test_nifti_layout(cohort: Path):
    eid = pd.read_csv(cohort / "phenotypes.csv", dtype={"eid": str})["eid"][0]
    img = nib.load(cohort / "cmr" / eid / "sa.nii.gz")
    seg = nib.load(cohort / "cmr" / eid / "seg_sa.nii.gz")
    assert img.shape == seg.shape
    x, y, z, t = img.shape
    assert t == 50 and z >= 8 and x == y >= 96
    assert img.get_data_dtype() == np.int16
    zooms = img.header.get_zooms()
    assert zooms[:3] == pytest.approx((1.8, 1.8, 10.0))
    assert 0.010 < zooms[3] < 0.030  # seconds per frame: 40-120 bpm over 50 frames
    labels = np.unique(np.asanyarray(seg.dataobj))
    assert set(labels.tolist()) == {0, 1, 2, 3}


def test_same_seed_same_bytes_whatever_the_workers(cohort: Path, cohort_spec, tmp_path: Path):
    n_subjects, seed = cohort_spec
    again = tmp_path / "again"
    args = ["--out", str(again), "--subjects", str(n_subjects), "--seed", str(seed)]
    assert synth.main([*args, "--workers", "2", "--quiet"]) == 0
    assert _digests(again) == _digests(cohort)


def test_other_seed_other_cohort():
    assert make_eids(5, 0) != make_eids(5, 1)
    assert make_eids(5, 0) == make_eids(5, 0)


def test_dispatcher_lists_synth(capsys):
    assert ptacl_main(["--help"]) == 0
    assert "synth" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--subjects", "0"], "number of subjects must be an integer >= 1"),
        (["--subjects", "-3"], "number of subjects must be an integer >= 1"),
        (["--subjects", "2", "--workers", "0"], "workers must be an integer >= 1"),
        (["--subjects", "2", "--seed", "-1"], "seed must be a non-negative integer"),
    ],
)
def test_bad_arguments_are_clear_errors(tmp_path: Path, capsys, argv, message):
    assert synth.main(["--out", str(tmp_path / "x"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_refuses_a_non_empty_folder_unless_overwrite(tmp_path: Path, capsys):
    (tmp_path / "notes.txt").write_text("keep me")
    assert synth.main(["--out", str(tmp_path), "--subjects", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "--overwrite" in err
    assert synth.main(["--out", str(tmp_path), "--subjects", "1", "--quiet", "--overwrite"]) == 0
    assert (tmp_path / "notes.txt").read_text() == "keep me"  # only our own outputs are replaced
    assert len(pd.read_csv(tmp_path / "phenotypes.csv")) == 1


def test_out_must_be_a_folder(tmp_path: Path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(SynthError, match="not a folder"):
        generate_cohort(target, 1, progress=False)


def test_non_integer_subjects_is_a_usage_error(tmp_path: Path):
    with pytest.raises(SystemExit) as exc:
        synth.main(["--out", str(tmp_path / "x"), "--subjects", "many"])
    assert exc.value.code == 2
