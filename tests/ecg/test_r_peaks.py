import numpy as np
import pytest

from ptacl.ecg import beat_similarity, detect_r_peaks, preprocess_ecg


def _match(found: np.ndarray, truth: np.ndarray, tol: float) -> tuple[float, float]:
    """Recall and precision with one-to-one matching within `tol` (same units)."""
    used = np.zeros(len(found), bool)
    hits = 0
    for t in truth:
        d = np.abs(found - t)
        d[used] = np.inf
        k = int(np.argmin(d)) if len(d) else -1
        if k >= 0 and d[k] <= tol:
            used[k] = True
            hits += 1
    return hits / max(len(truth), 1), hits / max(len(found), 1)


@pytest.mark.parametrize("hr", [45, 70, 110, 160])
@pytest.mark.parametrize("fs", [500, 1000])
def test_synthetic_beats_within_10_ms(make_ecg, hr, fs):
    signal, truth = make_ecg(fs=fs, hr=hr, seed=hr, noise=0.05)
    found = detect_r_peaks(signal, fs)
    assert found.dtype == np.int64
    recall, precision = _match(found / fs, truth, 0.010)
    assert recall == 1.0 and precision == 1.0


def test_after_preprocessing_same_beats(make_ecg):
    signal, truth = make_ecg(fs=1000, hr=80, noise=0.05)
    found = detect_r_peaks(preprocess_ecg(signal, 1000), 500)
    assert _match(found / 500, truth, 0.010) == (1.0, 1.0)


def test_one_noisy_lead_does_not_cost_beats(make_ecg):
    signal, truth = make_ecg(hr=75, seed=3)
    signal[1] += np.random.default_rng(0).normal(0, 1.0, signal.shape[1])  # lead II ruined
    assert _match(detect_r_peaks(signal, 500) / 500, truth, 0.010) == (1.0, 1.0)


def test_every_beat_of_the_pydicom_recording():
    """The Mortara recording (10 s, 1000 Hz) holds 10 beats at ~61/min, checked by eye."""
    from pydicom import examples

    from ptacl.io import read_ecg

    rec = read_ecg(examples.get_path("waveform"))
    raw = detect_r_peaks(rec.signal, rec.fs)
    assert len(raw) == 10
    rr = np.diff(raw) / rec.fs
    assert np.all((rr > 0.9) & (rr < 1.05))
    # Each peak is the apex of lead II's R wave (to 5 ms: the raw strip carries HF noise).
    for p in raw:
        window = rec.signal[1, p - 40 : p + 41]
        assert abs(int(np.argmax(window)) - 40) <= 5
    # The same beats after preprocessing at 500 Hz.
    pre = detect_r_peaks(preprocess_ecg(rec.signal, rec.fs), 500)
    assert len(pre) == 10 and np.abs(pre * 2 - raw).max() <= 10


def test_nothing_to_find():
    assert len(detect_r_peaks(np.zeros((12, 5000)), 500)) == 0
    assert len(detect_r_peaks(np.ones((12, 100)), 500)) == 0


def test_beat_similarity_separates_ecg_from_noise(make_ecg):
    signal, _ = make_ecg()
    assert beat_similarity(signal, 500, detect_r_peaks(signal, 500)) > 0.9
    noise = np.random.default_rng(1).normal(size=(12, 5000))
    assert beat_similarity(noise, 500, detect_r_peaks(noise, 500)) < 0.3
