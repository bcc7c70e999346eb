"""paired_difference: the vectorised bootstrap against a loop reference, a planted effect found,
no effect rejected at about the nominal rate, and the MDE formula by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from ptacl.eval.paired import mean_metric, paired_difference, r2_metric


def _r2(t: np.ndarray, p: np.ndarray) -> float:
    return 1.0 - float(np.sum((t - p) ** 2)) / float(np.sum((t - t.mean()) ** 2))


def _reference(y, a, b, n_boot, seed, chunk):
    """Replicate by replicate, seed by seed, with the generator drawn as the fast path draws."""
    rng = np.random.default_rng(seed)
    seeds, n = a.shape
    boot = []
    for start in range(0, n_boot, chunk):
        for idx in rng.integers(0, n, size=(min(chunk, n_boot - start), n)):
            boot.append([_r2(y[idx], a[s, idx]) - _r2(y[idx], b[s, idx]) for s in range(seeds)])
    boot = np.array(boot)  # (n_boot, S)
    per_seed = np.array([_r2(y, a[s]) - _r2(y, b[s]) for s in range(seeds)])
    cov = np.cov(boot.T)
    off = [cov[i, j] for i in range(seeds) for j in range(seeds) if i != j]
    var_u = max(0.0, np.var(per_seed, ddof=1) - (np.mean(np.diag(cov)) - np.mean(off)))
    return per_seed, np.sqrt(np.var(boot.mean(axis=1), ddof=1) + var_u / seeds)


def _draw(rng, n, seeds, noise_a, noise_b):
    y = rng.standard_normal(n)
    a = y + noise_a * rng.standard_normal((seeds, n))
    b = y + noise_b * rng.standard_normal((seeds, n))
    return y, a, b


def test_the_fast_bootstrap_equals_the_loop_reference():
    y, a, b = _draw(np.random.default_rng(0), 50, 3, 0.6, 0.7)
    got = paired_difference(r2_metric, y, a, b, n_boot=120, seed=5, chunk=40)
    per_seed, se = _reference(y, a, b, n_boot=120, seed=5, chunk=40)
    np.testing.assert_allclose(got.per_seed, per_seed, rtol=1e-12)
    assert got.estimate == pytest.approx(np.mean(per_seed), rel=1e-12)
    assert got.se == pytest.approx(se, rel=1e-10)
    half = norm.ppf(0.975) * se
    assert got.ci == pytest.approx((got.estimate - half, got.estimate + half))
    assert got.p_value == pytest.approx(2 * norm.sf(abs(got.estimate) / se))
    assert got.mde == pytest.approx((norm.ppf(0.975) + norm.ppf(0.8)) * se)
    assert got.seeds == 3 and got.subjects == 50 and got.seed_variation


def test_a_planted_effect_is_found_and_covered():
    # R² of y + e with var(y) = 1 is 1 − var(e): the true difference is 0.7² − 0.5² = 0.24
    y, a, b = _draw(np.random.default_rng(1), 2000, 4, 0.5, 0.7)
    got = paired_difference(r2_metric, y, a, b, n_boot=400)
    assert got.p_value < 1e-6
    assert got.ci[0] < 0.24 < got.ci[1]
    assert got.mde < 0.24


def test_no_effect_is_rejected_at_about_the_nominal_rate():
    rng = np.random.default_rng(2)
    rejected = []
    for _ in range(300):
        y, a, b = _draw(rng, 150, 3, 0.8, 0.8)
        rejected.append(paired_difference(r2_metric, y, a, b, n_boot=200).p_value < 0.05)
    rate = float(np.mean(rejected))
    # 300 draws: the binomial sd of a 5 % rate is 1.3 points; a broken interval is off by far more
    assert 0.015 <= rate <= 0.095, rate


def _hits(rng, seeds, n, p, seed_sd):
    """Per-query hits (S, n) whose rate moves with each seed's whole model (u_s ~ N(0, sd))."""
    rates = np.clip(p + seed_sd * rng.standard_normal((seeds, 1)), 0, 1)
    return (rng.random((seeds, n)) < rates).astype(float)


def test_a_seed_effect_is_in_the_interval():
    """Both methods have the same mean hit rate, but every seed's model lands higher or lower:
    an interval of the subjects alone would reject far too often."""
    rng = np.random.default_rng(5)
    rejected, var_u = [], []
    for _ in range(300):
        a, b = _hits(rng, 8, 300, 0.35, 0.03), _hits(rng, 8, 300, 0.35, 0.03)
        got = paired_difference(mean_metric, np.zeros(300), a, b, n_boot=200)
        rejected.append(got.p_value < 0.05)
        var_u.append(got.var_seeds)
    rate = float(np.mean(rejected))
    assert 0.015 <= rate <= 0.11, rate  # var(u) from 8 values: slightly liberal, not 3x
    # the difference of two seeds' effects has variance 2 * 0.03²; its estimate, on average
    assert np.mean(var_u) == pytest.approx(2 * 0.03**2, rel=0.35)


def test_per_subject_scores_with_one_seed():
    rng = np.random.default_rng(3)
    hits_a = (rng.random((1, 400)) < 0.40).astype(float)
    hits_b = (rng.random((1, 400)) < 0.30).astype(float)
    got = paired_difference(mean_metric, np.zeros(400), hits_a, hits_b, n_boot=500)
    assert got.estimate == pytest.approx(hits_a.mean() - hits_b.mean())
    assert not got.seed_variation and got.seeds == 1
    assert got.ci[0] < got.estimate < got.ci[1]


def test_unknown_targets_are_left_out_and_shapes_are_checked():
    y, a, b = _draw(np.random.default_rng(4), 30, 2, 0.5, 0.5)
    y[3] = np.nan
    assert paired_difference(r2_metric, y, a, b, n_boot=20).subjects == 29
    with pytest.raises(ValueError, match="must both be"):
        paired_difference(r2_metric, y, a, b[:, :10], n_boot=20)
