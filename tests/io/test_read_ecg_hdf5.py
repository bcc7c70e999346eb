"""CODE-15%-style HDF5, written from its published description by tests/ecg_writers.py (not by
the reader's code): (N, 4096, 12) float mV at 400 Hz, zero-padded, with `exam_id`."""

import tracemalloc

import numpy as np
import pytest
from scipy.signal import resample_poly

from ecg_writers import write_code15
from ptacl.io import InputError, read_ecg
from ptacl.io.ecg_hdf5 import hdf5_records, read_id_table


@pytest.fixture(scope="module")
def recordings(dicom_path) -> list[np.ndarray]:
    """Three real-derived recordings at 400 Hz in mV: 10 s, 7 s and 8.5 s of the Mortara one."""
    import pydicom

    uv = pydicom.dcmread(dicom_path).waveform_array(0).T  # 1000 Hz
    mv = resample_poly(uv, 2, 5, axis=1) / 1000.0  # 400 Hz
    return [mv[:, :4000], mv[:, 500:3300], mv[:, 200:3600]]


@pytest.fixture
def code15(tmp_path, recordings):
    return write_code15(tmp_path / "exams_part0.hdf5", recordings, [9021, 1174, 30012])


def test_each_record_is_read_with_its_padding_trimmed(code15, recordings):
    for k, rec in enumerate(recordings):
        record = read_ecg(f"{code15}[{k}]")
        assert record.fs == 400 and record.signal.shape == rec.shape
        np.testing.assert_allclose(record.signal, rec, rtol=1e-6, atol=1e-6)
        assert record.derived == ()


def test_the_records_of_a_file_are_named_by_exam_id(code15):
    records = hdf5_records(code15)
    assert [str(p) for p, _ in records] == [f"{code15}[{k}]" for k in range(3)]
    assert [eid for _, eid in records] == ["9021", "1174", "30012"]


def test_a_file_of_many_records_is_not_one_ecg(code15):
    with pytest.raises(InputError, match=r"holds 3 records: name one as .*exams_part0.hdf5\[0\]"):
        read_ecg(code15)
    with pytest.raises(InputError, match="record 3 asked for, the file holds 3"):
        read_ecg(f"{code15}[3]")


def test_a_padding_row_is_refused(tmp_path, recordings):
    path = write_code15(tmp_path / "e.hdf5", [recordings[0], np.zeros((12, 0))], [1, 0])
    with pytest.raises(InputError, match="every sample is zero"):
        read_ecg(f"{path}[1]")


def test_the_dataset_is_named_or_detected_and_the_rate_is_never_guessed(tmp_path, recordings):
    import h5py

    path = write_code15(tmp_path / "e.h5", recordings[:1], [5], dataset="ecg", samples=4000)
    with pytest.raises(InputError, match="no sampling rate attribute"):
        read_ecg(f"{path}[0]")  # not the CODE-15% layout: 400 Hz would be a guess
    assert read_ecg(f"{path}[0]", fs=400).fs == 400
    with h5py.File(path, "a") as f:
        f["ecg"].attrs["fs"] = 400
        f.create_dataset("other", data=np.zeros((1, 50, 12)))
    with pytest.raises(InputError, match="2 datasets shaped"):
        read_ecg(f"{path}[0]")
    record = read_ecg(f"{path}:ecg[0]")
    assert record.fs == 400 and record.signal.shape == recordings[0].shape
    with pytest.raises(InputError, match="fs=500 given but the file says 400"):
        read_ecg(f"{path}:ecg[0]", fs=500)


def test_units_come_from_the_file_when_it_says(tmp_path, recordings):
    import h5py

    path = write_code15(tmp_path / "e.hdf5", [recordings[0] * 1000], [5])
    with h5py.File(path, "a") as f:
        f["tracings"].attrs["units"] = "uV"
    np.testing.assert_allclose(read_ecg(f"{path}[0]").signal, recordings[0], atol=1e-5)
    with h5py.File(path, "a") as f:
        f["tracings"].attrs["units"] = "1e-4 V"  # the scale the CODE README also names
    np.testing.assert_allclose(read_ecg(f"{path}[0]").signal, recordings[0] * 100, rtol=1e-5)
    with h5py.File(path, "a") as f:
        f["tracings"].attrs["units"] = "counts"
    with pytest.raises(InputError, match="'counts' are not a voltage"):
        read_ecg(f"{path}[0]")


def test_one_record_is_read_without_reading_the_dataset(tmp_path, recordings):
    """A dataset of 200,000 records (39 GB as floats, nearly all chunks unwritten): one
    record is read in a few MB."""
    import h5py

    path = tmp_path / "big.hdf5"
    with h5py.File(path, "w") as f:
        data = f.create_dataset("tracings", (200_000, 4096, 12), "f4", chunks=(1, 4096, 12))
        data[150_000, 48:4048] = recordings[0].T
        f.create_dataset("exam_id", data=np.arange(200_000))
    tracemalloc.start()
    record = read_ecg(f"{path}[150000]")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert record.signal.shape == (12, 4000) and peak < 20 * 2**20


def test_the_side_table_maps_exam_ids_to_eids(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("exam_id,eid\n9021,1000037\n1174.0,01000038\n")
    assert read_id_table(path) == {"9021": "1000037", "1174": "1000038"}
    path.write_text("exam_id,eid\n9021,1000037\n9021,1000038\n")
    with pytest.raises(InputError, match="exam_id 9021 is given eids 1000037 and 1000038"):
        read_id_table(path)


def test_rows_longer_than_any_resting_ecg_are_refused_unread(tmp_path):
    import h5py

    path = tmp_path / "long.hdf5"
    with h5py.File(path, "w") as f:  # 20 min of 12 leads at 1 kHz a row, nothing written
        f.create_dataset("tracings", (1, 1_200_000, 12), "f4", chunks=(1, 4096, 12))
        f["tracings"].attrs["fs"] = 1000
    with pytest.raises(InputError, match="too long for a resting ECG"):
        read_ecg(f"{path}[0]")
