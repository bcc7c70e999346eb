import numpy as np
import pytest

from ptacl.data.augment_ecg import (
    EcgAugment,
    EcgAugmentConfig,
    FtSurrogate,
    RandomCrop,
    Rescale,
    crop_ecg,
    ft_surrogate,
    pad_peaks,
)


def _ecg(seed=0, s=5000):
    return np.random.default_rng(seed).standard_normal((12, s)).astype(np.float32)


def test_ft_surrogate_keeps_amplitude_spectrum_and_lead_relations():
    ecg = _ecg()
    ecg[2] = ecg[1] - ecg[0]  # lead III = II - I must survive shared phases
    phases = np.random.default_rng(1).uniform(0, 2 * np.pi, 2501)
    out = ft_surrogate(ecg, phases)
    assert out.shape == ecg.shape and out.dtype == np.float32
    np.testing.assert_allclose(
        np.abs(np.fft.rfft(out, axis=-1)), np.abs(np.fft.rfft(ecg, axis=-1)), rtol=1e-3, atol=1e-2
    )
    np.testing.assert_allclose(out[2], out[1] - out[0], atol=1e-4)
    assert not np.allclose(out, ecg, atol=0.1)


def test_ft_surrogate_of_zero_magnitude_is_identity():
    ecg = _ecg()
    out = FtSurrogate(magnitude=0.0, p=1.0)(ecg)
    np.testing.assert_allclose(out, ecg, atol=1e-5)


def test_crop_shifts_r_peaks_and_pads():
    ecg = _ecg()
    window, peaks = crop_ecg(ecg, np.array([100, 1200, 3000, 3700]), 1000, 2500)
    np.testing.assert_array_equal(window, ecg[:, 1000:3500])
    assert list(peaks) == [200, 2000]
    assert list(pad_peaks(peaks, 5)) == [200, 2000, -1, -1, -1]
    assert pad_peaks(peaks).dtype == np.int64 and pad_peaks(peaks).shape == (32,)
    short, peaks = crop_ecg(ecg[:, :2000], np.array([1500]), 0, 2500)
    assert short.shape == (12, 2500) and not short[:, 2000:].any() and list(peaks) == [1500]


def test_random_crop_stays_within_the_valid_length():
    crop = RandomCrop(2500, seed=3)
    ecg = np.tile(np.arange(5000, dtype=np.float32), (12, 1))
    starts = [int(crop(ecg, np.array([2900]), length=2510)[0][0, 0]) for _ in range(200)]
    assert min(starts) == 0 and max(starts) == 10  # both ends reached, never beyond
    window, peaks = crop(ecg, np.array([5, 2505]), length=2510)
    start = int(window[0, 0])
    assert list(peaks) == [p - start for p in (5, 2505) if 0 <= p - start < 2500]


def test_rescale_never_flips_polarity():
    ecg = np.ones((12, 100), np.float32)
    rescale = Rescale(sigma=5.0, minimum=0.1, seed=0)
    assert min(float(rescale(ecg)[0, 0]) for _ in range(200)) == pytest.approx(0.1)


def test_augment_is_deterministic_under_a_seed_and_keeps_contracts():
    ecg, peaks = _ecg(), np.arange(50, 5000, 450)
    config = EcgAugmentConfig(ft_surrogate_p=1.0)
    a = [EcgAugment(config, seed=7)(ecg, peaks, 5000) for _ in range(2)]
    b = EcgAugment(config, seed=8)(ecg, peaks, 5000)
    np.testing.assert_array_equal(a[0][0], a[1][0])
    np.testing.assert_array_equal(a[0][1], a[1][1])
    assert not np.array_equal(a[0][0], b[0])
    out, out_peaks = a[0]
    assert out.shape == (12, 2500) and out.dtype == np.float32
    assert out_peaks.dtype == np.int64 and ((out_peaks >= 0) & (out_peaks < 2500)).all()


def test_disabled_augment_is_the_first_crop():
    ecg, peaks = _ecg(), np.array([10, 2600])
    out, out_peaks = EcgAugment(EcgAugmentConfig(enabled=False))(ecg, peaks, 5000)
    np.testing.assert_array_equal(out, ecg[:, :2500])
    assert list(out_peaks) == [10]


def test_probabilities_are_checked():
    with pytest.raises(ValueError, match="probability"):
        FtSurrogate(p=1.5)
