import numpy as np
import pytest

from ptacl.data.augment_cmr import (
    CmrAugment,
    CmrAugmentConfig,
    ColourJitter,
    GaussianBlur,
    GaussianNoise,
    RandomFlip,
    RandomResizedCrop,
    RandomRotation,
    TemporalSample,
    frame_indices,
)


def _cine(seed=0):
    return np.random.default_rng(seed).random((50, 84, 84)).astype(np.float32)


def test_fixed_sampling_is_every_second_frame_from_end_diastole():
    assert list(frame_indices(26)) == [*range(0, 50, 2), 0]  # frame 50 is the next ED
    assert list(frame_indices(50)) == list(range(50))


def test_temporal_jitter_keeps_frame_zero_first():
    sample = TemporalSample(26, jitter=1, p=1.0, seed=0)
    draws = np.stack([sample.indices(50) for _ in range(100)])
    assert (draws[:, 0] == 0).all()
    offsets = (draws - frame_indices(26) + 25) % 50 - 25
    assert set(np.unique(offsets[:, 1:])) == {-1, 0, 1}


def test_identity_settings_leave_the_cine_unchanged():
    cine = _cine()[:26]
    np.testing.assert_allclose(RandomRotation(0.0, p=1.0)(cine), cine, atol=1e-5)
    crop = RandomResizedCrop(scale=(1.0, 1.0), ratio=(1.0, 1.0), p=1.0)
    np.testing.assert_allclose(crop(cine), cine, atol=1e-5)
    np.testing.assert_array_equal(RandomFlip(p=1.0)(cine), cine[..., ::-1])
    np.testing.assert_allclose(ColourJitter(0.0, 0.0, p=1.0)(cine), cine, atol=1e-6)


def test_rotation_by_90_degrees_moves_pixels_where_expected():
    cine = np.zeros((2, 84, 84), np.float32)
    cine[:, 10:20, 40:44] = 1.0  # a bar above the centre
    rotated = RandomRotation(90.0, p=1.0, seed=0)(cine)
    assert rotated[:, 10:20, 40:44].mean() < 0.2  # the bar has left its place
    assert rotated.sum() == pytest.approx(cine.sum(), rel=0.1)  # and stayed inside the image


def test_blur_smooths_and_keeps_frames_apart():
    cine = np.zeros((3, 84, 84), np.float32)
    cine[1, 42, 42] = 1.0
    out = GaussianBlur(sigma=(1.0, 1.0), p=1.0)(cine)
    assert out[0].max() == 0 and out[2].max() == 0  # no mixing across time
    assert out[1, 42, 42] < 0.5 and out[1].sum() == pytest.approx(1.0, rel=1e-3)


def test_augment_is_deterministic_and_keeps_contracts():
    cine = (_cine() * 255).astype(np.uint8)
    config = CmrAugmentConfig(
        temporal_p=1, resized_crop_p=1, rotation_p=1, flip_p=1, colour_p=1, blur_p=1, noise_p=1
    )
    a = [CmrAugment(config, seed=3)(cine) for _ in range(2)]
    b = CmrAugment(config, seed=4)(cine)
    np.testing.assert_array_equal(a[0], a[1])
    assert not np.array_equal(a[0], b)
    assert a[0].shape == (26, 84, 84) and a[0].dtype == np.float32
    assert a[0].min() >= 0.0 and a[0].max() <= 1.0


def test_disabled_augment_is_the_fixed_sampling():
    cine = (_cine() * 255).astype(np.uint8)
    out = CmrAugment(CmrAugmentConfig(enabled=False))(cine)
    np.testing.assert_allclose(out, cine[frame_indices(26)] / 255.0, atol=1e-7)


def test_noise_is_gaussian_with_the_configured_sigma_and_seeded():
    """The noise (drawn with torch from the transform's own seed stream) is N(0, σ²): a
    Kolmogorov-Smirnov test on 183,456 values of one cine, kept off the clip at 0.5."""
    from scipy import stats

    cine = np.full((26, 84, 84), 0.5, np.float32)
    sigma = 0.03
    out = GaussianNoise(sigma=sigma, p=1.0, seed=5)(cine)
    noise = (out - cine).ravel().astype(np.float64) / sigma
    assert stats.kstest(noise, "norm").pvalue > 1e-3
    assert abs(noise.mean()) < 0.01 and noise.std() == pytest.approx(1.0, abs=0.01)
    np.testing.assert_array_equal(out, GaussianNoise(sigma=sigma, p=1.0, seed=5)(cine))
    assert not np.array_equal(out, GaussianNoise(sigma=sigma, p=1.0, seed=6)(cine))
