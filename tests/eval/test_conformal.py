"""Split-conformal intervals: the quantile against a slow reference, coverage on simulated
exchangeable data, and the finite-sample guarantee that a plain empirical quantile misses."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest

from ptacl.eval.conformal import (
    conformal_quantile,
    fit_intervals,
    half_widths,
    interval_coverage,
)


def reference_quantile(residuals: list[float], level: float) -> float:
    """The smallest candidate q with #{|r_i| <= q} >= (n + 1) * level, in exact arithmetic
    (Lei et al. 2018, Algorithm 2); inf when no residual reaches it."""
    values = [abs(r) for r in residuals if not math.isnan(r)]
    need = (len(values) + 1) * Fraction(str(level))
    for q in sorted(values):
        if sum(v <= q for v in values) >= need:
            return q
    return math.inf


def test_conformal_quantile_by_hand() -> None:
    nine = [1.0, -2, 3, -4, 5, -6, 7, -8, 9]
    assert conformal_quantile(nine, 0.9) == 9.0  # k = ceil(10 * 0.9) = 9 of 9
    assert conformal_quantile(nine[:8], 0.9) == math.inf  # k = 9 > 8: no finite width
    assert conformal_quantile(nine, 0.5) == 5.0  # k = ceil(5) = 5
    assert conformal_quantile([3.0, -1.0, 2.0, math.nan], 0.5) == 2.0  # NaN: unknown, n = 3
    assert conformal_quantile([], 0.9) == math.inf
    ten = list(range(1, 11))
    assert conformal_quantile(ten, 0.9) == 10.0  # k = ceil(9.9) = 10, not ceil(10 * 0.9) = 9


@pytest.mark.parametrize("level", [0.5, 0.8, 0.9, 0.95])
def test_conformal_quantile_matches_the_slow_reference(level: float) -> None:
    rng = np.random.default_rng(0)
    for n in [*range(0, 25), 37, 99, 100]:
        residuals = rng.standard_t(3, n) * rng.uniform(0.5, 20)
        if n > 3:
            residuals[rng.integers(0, n)] = np.nan
            residuals[1] = -residuals[0]  # a tie in |r|
        expected = reference_quantile(residuals.tolist(), level)
        assert conformal_quantile(residuals, level) == expected, (n, level)


@pytest.mark.parametrize("level", [0, 1, -0.1, 1.5, True, "0.9", math.nan])
def test_a_level_outside_zero_one_is_refused(level) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        conformal_quantile([1.0, 2.0], level)


def test_coverage_on_exchangeable_data_is_the_finite_sample_value() -> None:
    """Calibration and test residuals drawn alike (a misspecified model: heavy-tailed,
    skewed errors): over many draws the coverage is k / (n + 1) >= level, within binomial
    tolerance. With n = 10 and level 0.9 that is 10/11 = 0.909; the plain empirical quantile
    (k = ceil(n * level) = 9) covers only 9/11 = 0.818, below the nominal level."""
    rng = np.random.default_rng(1)
    n, level, draws = 10, 0.9, 20_000
    errors = rng.standard_t(2, (draws, n + 1)) + rng.exponential(1.0, (draws, n + 1))
    widths = np.array([conformal_quantile(row[:n], level) for row in errors])
    covered = np.abs(errors[:, n]) <= widths
    tolerance = 4 * math.sqrt(level * (1 - level) / draws)
    assert abs(covered.mean() - 10 / 11) < tolerance
    assert covered.mean() >= level - tolerance  # the guarantee, on average over draws
    naive = np.quantile(np.abs(errors[:, :n]), level, axis=1, method="inverted_cdf")
    assert (np.abs(errors[:, n]) <= naive).mean() < level - tolerance


def test_coverage_of_many_test_points_stays_near_nominal_per_draw() -> None:
    """A realistic split (500 val, 500 test subjects of a linear model with noise whose scale
    varies between subjects): each draw's test coverage lies within binomial tolerance of
    the nominal level, and their mean is at or above it."""
    rng = np.random.default_rng(2)
    level, n, m = 0.9, 500, 500
    coverages = []
    for _ in range(200):
        x = rng.normal(size=n + m)
        y = 2 * x + rng.normal(size=n + m) * (0.5 + np.abs(x))
        predicted = 1.8 * x  # a slightly wrong model: the guarantee does not need a right one
        spec = fit_intervals(y[:n, None], predicted[:n, None], ["y"], level)
        got = interval_coverage(y[n:, None], predicted[n:, None], half_widths(spec, ["y"]), ["y"])
        coverages.append(got["y"]["coverage"])
    coverages = np.array(coverages)
    # given its calibration set a draw's coverage is Beta(k, n + 1 - k) (variance about
    # level (1 - level) / (n + 2); Angelopoulos & Bates 2021, section 3.2), then binomial over m
    per_draw = 4 * math.sqrt(level * (1 - level) * (1 / m + 1 / (n + 2)))
    assert (np.abs(coverages - level) < per_draw).all()
    assert coverages.mean() >= level - 4 * coverages.std() / math.sqrt(len(coverages))


def test_fit_intervals_and_coverage_by_hand() -> None:
    columns = ["A (mL)", "B (%)"]
    truth = np.array([[10.0, 1], [12, np.nan], [9, 3], [11, 4]])
    predicted = np.array([[10.0, 2], [10, 2], [10, 2], [10, 2]])
    spec = fit_intervals(truth, predicted, columns, 0.5)
    # A: |r| = 0, 2, 1, 1, n 4, k = ceil(2.5) = 3 -> 1; B: |r| = 1, 1, 2, n 3, k = 2 -> 1
    assert spec["columns"] == {
        "A (mL)": {"half_width": 1.0, "n": 4},
        "B (%)": {"half_width": 1.0, "n": 3},
    }
    assert spec["level"] == 0.5
    json.dumps(spec, allow_nan=False)  # what the bundle writes
    unbounded = fit_intervals(truth[:1], predicted[:1], columns, 0.9)
    assert unbounded["columns"]["A (mL)"] == {"half_width": None, "n": 1}
    assert half_widths(unbounded, columns).tolist() == [math.inf, math.inf]
    got = interval_coverage(truth, predicted, half_widths(spec, columns), columns)
    assert got["A (mL)"] == {"coverage": 0.75, "mean_width": 2.0, "n": 4}  # 12 is outside
    assert got["B (%)"] == {"coverage": 0.6667, "mean_width": 2.0, "n": 3}  # 4 is outside
    none = interval_coverage(truth[:0], predicted[:0], half_widths(unbounded, columns), columns)
    assert none["A (mL)"] == {"coverage": None, "mean_width": None, "n": 0}
