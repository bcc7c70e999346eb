"""One real recording written in every ECG format ptacl reads predicts the same phenotypes
through a bundle (issue 19): the format must not change the answer.

The recording is pydicom's real Mortara ECG, taken to 500 Hz by keeping every other stored
sample (the DICOM itself is rewritten at 500 Hz, so all same-rate files carry the same
samples, up to each format's quantisation). Each format is written by code independent of its
reader: CardioSoft by `builders`, DICOM by pydicom, WFDB by wfdb, MUSE and HDF5 by
tests/ecg_writers.py. Resampled copies (HDF5 at CODE-15%'s 400 Hz, MUSE at 250 Hz) differ
from the 500-Hz recording by the band the lower rate cannot carry; their tolerance is stated
with the measurement below.
"""

from pathlib import Path

import numpy as np
import pytest
from builders import write_cardiosoft_xml
from scipy.signal import resample_poly

from ecg_writers import MUSE_STORED, muse_xml, write_code15
from ptacl.inference import load
from ptacl.schema import LEADS

#: Same samples at the same rate: within 1 %, as the issue asks. Measured (largest relative
#: difference to the DICOM's prediction over the 10 phenotypes; OLS-probe bundle, which reacts
#: most): CardioSoft 0.70 % (its 5-µV steps against the DICOM's own), MUSE 0.35 % (4.88 µV),
#: WFDB 0.15 %, HDF5 0 (float32 mV); the fine-tuned bundle: all below 0.01 %.
SAME_RATE = 0.01
#: A copy resampled to 400 Hz (CODE-15%) or 250 Hz and back to 500 Hz keeps all that the model
#: sees: preprocessing zeroes the wavelet bands above 62.5 Hz (`drop_details=2`), far below
#: either copy's Nyquist frequency. What differs is the polyphase filters' ripple and the
#: edges of the 10 s. Measured: 400 Hz 0.065 %, 250 Hz 0.65 % (with MUSE's 4.88-µV steps);
#: 2 % is three times the worst.
RESAMPLED = 0.02


@pytest.fixture(scope="module")
def files(tmp_path_factory, dicom_path) -> dict[str, Path]:
    import h5py
    import pydicom
    import wfdb

    out = tmp_path_factory.mktemp("formats")
    ds = pydicom.dcmread(dicom_path)
    group = ds.WaveformSequence[0]
    raw = np.frombuffer(group.WaveformData, "<i2").reshape(-1, group.NumberOfWaveformChannels)
    group.WaveformData = np.ascontiguousarray(raw[::2]).tobytes()
    group.NumberOfWaveformSamples = len(raw[::2])
    group.SamplingFrequency = 500
    ds.save_as(out / "ecg.dcm")
    uv = ds.waveform_array(0).T.astype(np.float64)  # (12, 5000) µV at 500 Hz, LEADS order
    mv = uv / 1000
    paths = {"dicom": out / "ecg.dcm", "cardiosoft": write_cardiosoft_xml(out / "c.xml", mv)}
    wfdb.wrsamp("rec", fs=500, units=["mV"] * 12, sig_name=list(LEADS), p_signal=mv.T,
                fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12,
                write_dir=str(out))  # fmt: skip
    paths["wfdb"] = out / "rec.hea"
    stored = {n: uv[LEADS.index(n)] for n in MUSE_STORED}
    (out / "m.xml").write_bytes(muse_xml(stored))
    paths["muse"] = out / "m.xml"
    paths["hdf5"] = write_code15(out / "e500.hdf5", [mv], [1], samples=5200)
    with h5py.File(paths["hdf5"], "a") as f:
        f["tracings"].attrs["fs"] = 500  # not CODE-15%'s rate, so the file says it
    # resampled copies, as a 400-Hz (CODE-15%) or 250-Hz (MUSE) device would have recorded it
    paths["hdf5 400 Hz"] = write_code15(out / "e400.hdf5", [resample_poly(mv, 4, 5, axis=1)], [2])
    low = {n: resample_poly(v, 1, 2) for n, v in stored.items()}
    (out / "m250.xml").write_bytes(muse_xml(low, fs=250))
    paths["muse 250 Hz"] = out / "m250.xml"
    return paths


@pytest.fixture(scope="module", params=["tiny_bundle", "finetuned_bundle"])
def predictions(request, files):
    predictor = load(request.getfixturevalue(request.param))
    table = predictor.predict_files(list(files.values()))
    assert not table["status"].str.startswith("error").any(), table["status"].tolist()
    assert len(table) == len(files)  # an HDF5 file of one record: one row
    table.index = list(files)
    return table[predictor.columns]


def _relative(predictions, name: str) -> float:
    reference = predictions.loc["dicom"].to_numpy()
    return float(np.max(np.abs(predictions.loc[name].to_numpy() - reference) / np.abs(reference)))


@pytest.mark.parametrize("name", ["cardiosoft", "wfdb", "muse", "hdf5"])
def test_every_format_of_the_same_samples_predicts_within_1_percent(predictions, name):
    assert _relative(predictions, name) < SAME_RATE


@pytest.mark.parametrize("name", ["hdf5 400 Hz", "muse 250 Hz"])
def test_resampled_copies_predict_within_the_stated_tolerance(predictions, name):
    assert _relative(predictions, name) < RESAMPLED


def test_an_hdf5_file_of_records_predicts_one_row_per_record(tmp_path, files, tiny_bundle):
    """`predict` and the CLI take a file of many records: one row each, named by its address
    and exam id; a padding row is an error row, not a lost one."""
    import pandas as pd

    from ptacl.cli.predict import main
    from ptacl.io import read_ecg

    record = read_ecg(f"{files['hdf5 400 Hz']}[0]").signal
    path = write_code15(
        tmp_path / "exams.hdf5", [record, record[:, :3000], record[:, :0]], [7, 8, 0]
    )
    table = load(tiny_bundle).predict(path)
    assert list(table["file"]) == [f"{path}[{k}]" for k in range(3)]
    assert list(table["eid"]) == ["7", "8", "0"]
    assert table["status"].str.startswith("error").tolist() == [False, False, True]
    assert "every sample is zero" in table["status"].iloc[2]
    out = tmp_path / "p.csv"
    assert main(["--model", str(tiny_bundle), "--ecg", str(path), "--out", str(out)]) == 1
    written = pd.read_csv(out, dtype={"eid": str})
    assert list(written["eid"]) == ["7", "8", "0"] and len(written) == 3
