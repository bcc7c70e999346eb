import numpy as np
import pytest

from ptacl.io import InputError, read_ecg, validate_ecg


@pytest.fixture(scope="module")
def real(dicom_path):
    return read_ecg(dicom_path)


def test_real_recording_passes_and_returns_its_beats(real):
    peaks = validate_ecg(real.signal, real.fs, real.source)
    assert len(peaks) == 10


def test_flat_lead(real):
    signal = real.signal.copy()
    signal[8] = 0.2  # V3 disconnected: a constant offset
    with pytest.raises(InputError, match=r"^rec.xml: flat line in leads \['V3'\]"):
        validate_ecg(signal, real.fs, "rec.xml")


def test_nan_and_inf(real):
    signal = real.signal.copy()
    signal[0, 3] = np.inf
    with pytest.raises(InputError, match=r"^rec.xml: 1 NaN or infinite samples in leads \['I'\]"):
        validate_ecg(signal, real.fs, "rec.xml")


def test_too_short(real):
    # 4.99 s at 1000 Hz is 2,495 samples at 500 Hz: one sample short of a training crop.
    with pytest.raises(InputError, match=r"^rec.xml: too short: 4.99 s"):
        validate_ecg(real.signal[:, :4990], real.fs, "rec.xml")
    validate_ecg(real.signal[:, :5000], real.fs, "rec.xml")  # exactly 5 s is enough


def test_no_r_peaks_in_slow_waves():
    t = np.arange(5000) / 500
    signal = np.stack([np.sin(2 * np.pi * 0.3 * t + k) for k in range(12)]).astype(np.float32)
    with pytest.raises(InputError, match=r"^rec.xml: no detectable R peaks"):
        validate_ecg(signal, 500, "rec.xml")


def test_no_r_peaks_in_noise():
    signal = np.random.default_rng(0).normal(0, 0.1, (12, 5000)).astype(np.float32)
    with pytest.raises(InputError, match=r"^rec.xml: no detectable R peaks.*do not look alike"):
        validate_ecg(signal, 500, "rec.xml")
