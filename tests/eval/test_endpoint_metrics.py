"""Endpoint metrics by hand on tiny arrays, and against scikit-learn on random ones."""

from __future__ import annotations

import numpy as np
import pytest

from ptacl.eval.endpoint_metrics import (
    auroc,
    average_precision,
    brier,
    expected_calibration_error,
    metrics_with_ci,
    reliability,
    sensitivity_specificity,
    youden_threshold,
)

metrics = pytest.importorskip("sklearn.metrics")


def test_by_hand():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    # pairs (pos, neg): (0.35, 0.1) win, (0.35, 0.4) lose, (0.8, *) win twice: 3 of 4
    assert auroc(y, p) == 0.75
    # ranked 0.8 (hit), 0.4 (miss), 0.35 (hit), 0.1: AP = 0.5 * 1 + 0.5 * 2/3
    assert average_precision(y, p) == pytest.approx(0.5 + 1 / 3)
    # (0.01 + 0.16 + 0.4225 + 0.04) / 4
    assert brier(y, p) == pytest.approx(0.158125)
    assert auroc([1, 0], [0.5, 0.5]) == 0.5  # a tie counts one half
    assert np.isnan(auroc([1, 1], [0.2, 0.3]))  # one class: undefined


def test_against_sklearn_with_ties():
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.2
    p = np.round(np.clip(0.2 + 0.3 * y + 0.2 * rng.standard_normal(300), 0, 1), 1)  # many ties
    assert auroc(y, p) == pytest.approx(metrics.roc_auc_score(y, p))
    assert average_precision(y, p) == pytest.approx(metrics.average_precision_score(y, p))
    assert brier(y, p) == pytest.approx(metrics.brier_score_loss(y, p))


def test_threshold_fixed_on_one_split_and_applied_to_another():
    y_val = np.array([0, 0, 0, 1, 1, 1])
    s_val = np.array([0.1, 0.2, 0.6, 0.5, 0.7, 0.9])
    t = youden_threshold(y_val, s_val)
    assert t == 0.7  # J: t=0.7 -> 2/3 + 1 - 1; t=0.5 -> 1 + 2/3 - 1, equal: the higher t
    sens, spec = sensitivity_specificity(np.array([1, 1, 0, 0]), np.array([0.8, 0.6, 0.75, 0.1]), t)
    assert (sens, spec) == (0.5, 0.5)


def test_cis_bracket_the_value_and_reliability_bins():
    rng = np.random.default_rng(1)
    y = (rng.random(200) < 0.3).astype(float)
    p = np.clip(0.3 + 0.3 * (y - 0.3) + 0.1 * rng.standard_normal(200), 0.01, 0.99)
    out = metrics_with_ci(y, p, 0.4, n_boot=200, seed=0)
    for value, lo, hi in out.values():
        assert lo <= value <= hi
    assert out["AUROC"][0] == pytest.approx(metrics.roc_auc_score(y, p), abs=1e-4)
    table = reliability(np.array([0, 1, 1, 0]), np.array([0.05, 0.95, 0.91, 0.5]))
    assert table == {"predicted": [0.05, 0.5, 0.93], "observed": [0.0, 0.0, 1.0], "n": [1, 1, 2]}


def test_expected_calibration_error_by_hand():
    y = np.array([0, 0, 1, 1, 1])
    p = np.array([0.05, 0.15, 0.12, 0.9, 0.7])
    # bins [0, 0.1): 0.05 vs 0 (1 subject); [0.1, 0.2): mean 0.135 vs 1/2 (2 subjects);
    # [0.7, 0.8): 0.7 vs 1; [0.9, 1]: 0.9 vs 1 -> (0.05 + 2 * 0.365 + 0.3 + 0.1) / 5
    assert expected_calibration_error(y, p) == pytest.approx((0.05 + 0.73 + 0.3 + 0.1) / 5)
    assert expected_calibration_error(np.array([0, 1]), np.array([0.0, 1.0])) == 0.0
    assert np.isnan(expected_calibration_error(np.array([]), np.array([])))
