"""`ptacl prepare` on UK Biobank CMR as delivered (field-20209 zips, zipped and unzipped) gives
the store its NIfTI twin gives.

The twin is the same `ptacl synth` cohort with the cines as `{eid}/sa.nii.gz` without the seg
(a zip holds none): both then take the mid-ventricular slice and the heart centre from motion,
so the stored cines are equal exactly (tolerance 0: same pixels, same slice, same crop). Against
the seg-guided NIfTI read, the zip's slice is within one slice (10 mm) of the seg's choice.
Each zip's mid slice was acquired twice, the first time unusable, with random UIDs of which the
unusable one sorts last (`raw_cohort.ukb_cmr_files`): equality needs the last *acquired*.
"""

import json
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest
from raw_cohort import ukb_cmr_files, write_ukb_cmr_zip

from ptacl.cli.prepare import main as prepare
from ptacl.data.discover import ORIGIN_SYNTHETIC, ORIGIN_UKB
from ptacl.data.store import Store
from ptacl.io import read_cmr
from ptacl.synth.cohort import generate_cohort


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """A 3-subject synth cohort, its cines as UK Biobank zips (the last one unzipped) and as
    seg-less NIfTI; both stores prepared through the CLI."""
    root = tmp_path_factory.mktemp("ukb")
    cohort = root / "cohort"
    generate_cohort(cohort, 3, seed=4, progress=False)
    eids = sorted(p.name for p in (cohort / "cmr").iterdir())
    for k, eid in enumerate(eids):
        sa = cohort / "cmr" / eid / "sa.nii.gz"
        (root / "nifti" / eid).mkdir(parents=True)
        shutil.copy(sa, root / "nifti" / eid / "sa.nii.gz")
        zipped = write_ukb_cmr_zip(
            root / "zips" / f"{eid}_20209_2_0.zip", ukb_cmr_files(sa, eid, seed=k)
        )
        if k == len(eids) - 1:  # unzipped into cmr/{eid}_20209_2_0/, as users do
            with zipfile.ZipFile(zipped) as archive:
                archive.extractall(root / "zips" / f"{eid}_20209_2_0")
            zipped.unlink()
    stores = {}
    for name in ("nifti", "zips"):
        argv = ["--ecg", str(cohort / "ecg"), "--cmr", str(root / name), "--phenotypes"]
        argv += [str(cohort / "phenotypes.csv"), "--out", str(root / f"store_{name}"), "--quiet"]
        assert prepare(argv) == 0
        stores[name] = Store.open(root / f"store_{name}")
    return root, cohort, eids, stores


def test_zips_prepare_to_the_store_of_their_nifti_twin(twins):
    _, _, eids, stores = twins
    nifti, zips = stores["nifti"], stores["zips"]
    assert list(zips.subjects["eid"]) == list(nifti.subjects["eid"]) == eids
    assert zips.subjects["paired"].all()
    pd.testing.assert_frame_equal(zips.subjects, nifti.subjects)
    np.testing.assert_array_equal(zips.cmr, nifti.cmr)  # exact: same slice, centre and crop
    np.testing.assert_array_equal(zips.ecg, nifti.ecg)
    np.testing.assert_array_equal(zips.phenotypes, nifti.phenotypes)
    assert zips.manifest["origin"] == ORIGIN_SYNTHETIC  # synth's marker wins over UKB names


def test_qc_says_which_rule_chose_the_repeated_acquisition(twins):
    root, _, eids, _ = twins
    qc = pd.read_csv(root / "store_zips" / "qc.csv", dtype=str, keep_default_na=False)
    cmr = qc[qc["modality"] == "cmr"].set_index("eid")
    for eid in eids:  # a note on a file used, not a refusal
        assert cmr.loc[eid, "reason"] == "" and "2 acquisitions" in cmr.loc[eid, "warning"]
        assert "the last acquired by SeriesNumber is series" in cmr.loc[eid, "warning"]
    assert (qc["status"] == "paired").all()


def test_the_zip_slice_is_mid_ventricular(twins):
    """Chosen from motion, within one slice of the seg's choice and of the generator's truth."""
    root, cohort, eids, _ = twins
    truth = pd.read_csv(cohort / "truth.csv", dtype={"eid": str}).set_index("eid")
    for eid in eids:
        path = root / "zips" / f"{eid}_20209_2_0.zip"
        record = read_cmr(path if path.exists() else path.with_suffix(""))
        guided = read_cmr(cohort / "cmr" / eid / "sa.nii.gz")  # seg_sa.nii.gz beside it
        assert abs(record.slice_index - guided.slice_index) <= 1
        assert abs(record.slice_index - truth.loc[eid, "mid_slice"]) <= 1


def test_every_file_not_used_is_in_qc_with_its_reason(twins, tmp_path, capsys):
    root, cohort, eids, _ = twins
    cmr = tmp_path / "cmr"
    shutil.copytree(root / "zips", cmr)
    first = eids[0]
    shutil.copy(cmr / f"{first}_20209_2_0.zip", cmr / f"{first}_20209_3_0.zip")  # repeat visit
    shutil.copy(cmr / f"{first}_20209_2_0.zip", cmr / f"{first}_20208_2_0.zip")  # long axis
    (cmr / f"{eids[1]}_20209_2_0.zip").write_bytes(b"PK\x03\x04 cut short")  # damaged
    (cmr / "notes.txt").write_text("download log")
    argv = ["--ecg", str(cohort / "ecg"), "--cmr", str(cmr), "--out", str(tmp_path / "s")]
    assert prepare([*argv, "--quiet"]) == 0
    assert "files ignored: 3" in capsys.readouterr().out
    qc = pd.read_csv(tmp_path / "s" / "qc.csv", dtype=str, keep_default_na=False)
    reasons = qc.set_index("file")["reason"]
    assert (
        "instance 3, not the visit read (--instance 2)"
        in reasons[str(cmr / f"{first}_20209_3_0.zip")]
    )
    assert "field 20208, not 20209" in reasons[str(cmr / f"{first}_20208_2_0.zip")]
    assert "not a CMR file" in reasons[str(cmr / "notes.txt")]
    assert "not a readable zip file" in reasons[str(cmr / f"{eids[1]}_20209_2_0.zip")]
    status = qc.drop_duplicates("eid").set_index("eid")["status"]
    assert status[eids[1]] == "ecg_only" and status[first] == "paired"


def test_nothing_paired_exits_non_zero_and_says_why(twins, tmp_path, capsys):
    """The report of issue 15: UK Biobank CMR beside ECGs of other eids, "0 paired", exit 0."""
    root, cohort, eids, _ = twins
    ecg = tmp_path / "ecg"
    ecg.mkdir()
    for k, eid in enumerate(eids):
        shutil.copy(cohort / "ecg" / f"{eid}_20205_2_0.xml", ecg / f"{9000000 + k}_20205_2_0.xml")
    argv = ["--ecg", str(ecg), "--cmr", str(root / "zips"), "--out", str(tmp_path / "s"), "--quiet"]
    assert prepare(argv) == 1
    err = capsys.readouterr().err
    assert "no subject has both an ECG and a CMR" in err and "qc.csv" in err


def test_ukb_names_without_the_synth_marker_record_uk_biobank(twins, tmp_path):
    _, cohort, _, _ = twins
    data = tmp_path / "data"
    shutil.copytree(cohort / "ecg", data / "ecg")
    argv = ["--ecg", str(data / "ecg"), "--out", str(tmp_path / "s"), "--quiet"]
    assert prepare(argv) == 0
    manifest = Store.open(tmp_path / "s").manifest
    assert manifest["origin"] == ORIGIN_UKB and "20205_2_0.xml" in manifest["evidence"]


def test_one_folder_holding_both_modalities_as_downloaded(twins, tmp_path):
    """UK Biobank bulk downloads land in one folder: --ecg and --cmr may both name it."""
    root, cohort, eids, _ = twins
    both = tmp_path / "bulk"
    shutil.copytree(root / "zips", both)
    for eid in eids:
        shutil.copy(cohort / "ecg" / f"{eid}_20205_2_0.xml", both)
    argv = ["--ecg", str(both), "--cmr", str(both), "--out", str(tmp_path / "s"), "--quiet"]
    assert prepare(argv) == 0
    assert Store.open(tmp_path / "s").subjects["paired"].all()
    qc = pd.read_csv(tmp_path / "s" / "qc.csv", dtype=str, keep_default_na=False)
    xml = qc[(qc["modality"] == "cmr") & qc["file"].str.endswith(".xml")]
    assert len(xml) == len(eids) and (xml["status"] == "paired").all()
    assert xml["reason"].str.contains("UK Biobank field 20205, not 20209").all()
    # the ECG side: two zips and the unzipped folder (once, not its hundreds of MR DICOMs)
    cmr = qc[(qc["modality"] == "ecg") & qc["reason"].str.contains("field 20209, not 20205")]
    assert len(cmr) == len(eids) and "rejected" not in set(qc["status"])


def test_a_big_member_beside_the_cine_is_a_qc_note_and_limits_are_options(twins, tmp_path, capsys):
    """Issue 20: a big useless member was inflated whole and qc.csv said nothing of it."""
    root, cohort, eids, stores = twins
    cmr = tmp_path / "cmr"
    shutil.copytree(root / "zips", cmr)
    first = cmr / f"{eids[0]}_20209_2_0.zip"
    with zipfile.ZipFile(first, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("1.3.12.2.1107.5.2.18.1.dcm", "w") as member:
            for _ in range(20):
                member.write(bytes(2**20))  # 20 MiB of zeros
    argv = ["--ecg", str(cohort / "ecg"), "--cmr", str(cmr), "--out", str(tmp_path / "s")]
    assert prepare([*argv, "--quiet", "--cmr-limit", "member_bytes=16MiB"]) == 0
    assert "files refused: 0" in capsys.readouterr().out  # a note is no refusal
    qc = pd.read_csv(tmp_path / "s" / "qc.csv", dtype=str, keep_default_na=False)
    row = qc[(qc["modality"] == "cmr") & (qc["eid"] == eids[0])]
    assert row["reason"].item() == ""  # used, with a warning
    reason = row["warning"].item()
    assert "1.3.12.2.1107.5.2.18.1.dcm: 20 MiB inflated, over the limit of 16 MiB" in reason
    np.testing.assert_array_equal(Store.open(tmp_path / "s").cmr, stores["nifti"].cmr)


def test_a_malformed_limit_is_an_argument_error(twins, tmp_path, capsys):
    _, cohort, _, _ = twins
    argv = ["--ecg", str(cohort / "ecg"), "--out", str(tmp_path / "s"), "--quiet"]
    assert prepare([*argv, "--cmr-limit", "cine_bytes=lots"]) == 2
    assert "--cmr-limit 'cine_bytes=lots': expected NAME=SIZE" in capsys.readouterr().err


#: `ptacl prepare` in a fresh interpreter; prints its exit status and the peak RSS of its
#: largest worker (RUSAGE_CHILDREN: the pool's processes, reaped before main returns).
_PREPARE_PEAK = """
import json, resource, sys
from ptacl.cli.prepare import main
rc = main(sys.argv[1:])
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"rc": rc, "worker_peak": peak}))
"""


@pytest.mark.slow
def test_each_of_n_workers_stays_within_the_limits(twins, tmp_path):
    """Issue 20: with --workers N, N copies of a bomb's memory. Each zip here holds a 400 MiB
    member of zeros beside its cine; no worker inflates it, so none grows by it."""
    root, cohort, _, _ = twins
    cmr = tmp_path / "cmr"
    shutil.copytree(root / "zips", cmr)
    for path in cmr.glob("*.zip"):
        with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            with zf.open("1.3.12.2.1107.5.2.18.1.dcm", "w", force_zip64=True) as member:
                for _ in range(400):
                    member.write(bytes(2**20))
    argv = ["--ecg", str(cohort / "ecg"), "--cmr", str(cmr), "--workers", "2", "--quiet"]
    done = subprocess.run(
        [sys.executable, "-c", _PREPARE_PEAK, *argv, "--out", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    outcome = json.loads(done.stdout.splitlines()[-1])
    assert outcome["rc"] == 0, done.stderr
    assert outcome["worker_peak"] < 400 * 2**20, outcome  # the member alone is 400 MiB
    qc = pd.read_csv(tmp_path / "s" / "qc.csv", dtype=str, keep_default_na=False)
    notes = qc[qc["modality"] == "cmr"]["warning"]  # two zips and one unzipped folder
    assert notes.str.contains("400 MiB inflated, over the limit").sum() == 2
    assert (qc["status"] == "paired").all()
