"""`ptacl prepare` on GE MUSE XML folders and CODE-15%-style HDF5 files (issue 19): ECG
exports ptacl could not read, written here from their published descriptions."""

import pandas as pd
import pytest
from raw_cohort import synthetic_ecg_uv, write_subject
from scipy.signal import resample_poly

from ecg_writers import MUSE_STORED, muse_xml, write_code15
from ptacl.cli.prepare import main
from ptacl.data.store import Store
from ptacl.schema import LEADS

EIDS = ["1000037", "1000038", "1000039"]


@pytest.fixture(scope="module")
def cmr(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmr")
    for eid in EIDS:
        write_subject(root, eid, ecg=False)
    return root / "cmr"


def _qc(store):
    return pd.read_csv(store / "qc.csv", dtype=str, keep_default_na=False)


def test_a_muse_folder_prepares_with_every_subject_paired(tmp_path, cmr):
    ecg = tmp_path / "muse"
    ecg.mkdir()
    for k, eid in enumerate(EIDS):
        uv = synthetic_ecg_uv(k)
        stored = {n: uv[LEADS.index(n)] for n in MUSE_STORED}
        fs, step = (250, 2) if k == 0 else (500, 1)  # one device exports at 250 Hz
        stored = {n: v[::step] for n, v in stored.items()}
        (ecg / f"{eid}.xml").write_bytes(
            muse_xml(stored, fs=fs, encoding="UTF-16" if k == 1 else "ISO-8859-1", patient_id=eid)
        )
    argv = ["--ecg", str(ecg), "--cmr", str(cmr), "--out", str(tmp_path / "s"), "--quiet"]
    assert main(argv) == 0
    store = Store.open(tmp_path / "s")
    assert sorted(store.subjects["eid"]) == EIDS and store.subjects["paired"].all()
    assert (store.subjects["ecg_length"] == 5000).all()  # 250 Hz resampled to 10 s at 500 Hz


def test_an_hdf5_file_of_records_prepares_through_the_side_table(tmp_path, cmr):
    ecg = tmp_path / "code15"
    ecg.mkdir()
    recordings = [resample_poly(synthetic_ecg_uv(k), 4, 5, axis=1) / 1000 for k in range(4)]
    write_code15(ecg / "exams_part0.hdf5", recordings, [501, 502, 503, 999])
    ids = tmp_path / "ids.csv"
    pd.DataFrame({"exam_id": [501, 502, 503], "eid": [float(e) for e in EIDS]}).to_csv(
        ids, index=False
    )  # pandas writes the eids as 1000037.0: they still join
    out = tmp_path / "s"
    argv = ["--ecg", str(ecg), "--cmr", str(cmr), "--ecg-ids", str(ids), "--out", str(out)]
    assert main([*argv, "--quiet"]) == 0
    store = Store.open(out)
    assert sorted(store.subjects["eid"]) == EIDS and store.subjects["paired"].all()
    qc = _qc(out)
    used = qc[(qc["modality"] == "ecg") & (qc["reason"] == "")]
    assert sorted(used["file"]) == [f"{ecg / 'exams_part0.hdf5'}[{k}]" for k in range(3)]
    row = qc[qc["file"] == f"{ecg / 'exams_part0.hdf5'}[3]"].iloc[0]
    assert (
        row["status"] == "ignored"
        and "exam_id 999 is not in the exam_id -> eid table" in (row["reason"])
    )
    expected = recordings[1].shape[1] * 500 // 400  # 10 s at 400 Hz -> 5000 samples
    assert (store.subjects["ecg_length"] == expected).all()
