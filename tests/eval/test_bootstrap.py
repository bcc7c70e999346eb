import numpy as np
import pandas as pd
import pytest

from ptacl.eval.bootstrap import bootstrap_ci, r2_ci, retrieval_ci
from ptacl.eval.probe import r2_per_phenotype
from ptacl.eval.retrieval import (
    RetrievalScores,
    metric_columns,
    retrieval_scores,
    summarize_retrieval,
)

KS = (1, 5)


def _retrieval(n, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n)
    ecg = np.stack([y, rng.normal(size=n)], axis=1)  # informative, so metrics differ from chance
    cmr = np.stack([y + 0.5 * rng.normal(size=n), rng.normal(size=n)], axis=1)
    return retrieval_scores(ecg, cmr, pd.DataFrame({"y": y}), KS)


def test_retrieval_ci_contains_the_point_estimate_and_narrows_with_n():
    widths = []
    for n in (200, 2000):
        scores = _retrieval(n)
        point = summarize_retrieval(scores, KS)
        lo, hi = retrieval_ci(scores, KS, n_boot=200)
        for col in ("P@1", "P@5", "MnR"):
            assert lo.loc["y", col] <= point.loc["y", col] <= hi.loc["y", col]
        assert np.isnan(lo.loc["y", "MdR"]) and np.isnan(hi.loc["y", "MdR"])  # no MdR interval
        widths.append(hi.loc["y", "P@1"] - lo.loc["y", "P@1"])
    assert widths[1] < 0.5 * widths[0]  # SE ~ 1/sqrt(N): about a third


def test_median_rank_has_no_interval_because_its_bootstrap_is_degenerate():
    # 40 % of the queries find their first match at rank 7, the rest spread around it: the
    # percentile bootstrap of a median of integers gave [7.00, 7.00], shown as if certain
    n = 120
    rank = np.array([7.0] * 48 + [5.0, 6.0, 8.0, 9.0] * 18, dtype=np.float64)
    scores = {"y": RetrievalScores(np.full((n, 2), 0.5), rank, np.ones(n, dtype=bool))}
    plain_lo, plain_hi = bootstrap_ci(
        lambda idx: summarize_retrieval(scores, KS, idx), n, columns=metric_columns(KS), n_boot=200
    )
    assert plain_lo.loc["y", "MdR"] == plain_hi.loc["y", "MdR"] == 7.0  # what it was
    lo, hi = retrieval_ci(scores, KS, n_boot=200)
    assert np.isnan(lo.loc["y", "MdR"]) and np.isnan(hi.loc["y", "MdR"])
    assert lo.loc["y", "MnR"] < hi.loc["y", "MnR"]  # the rank's uncertainty, from the mean
    for col in ("P@1", "P@5", "MnR"):  # the same replicates as before
        assert (
            lo.loc["y", col] == plain_lo.loc["y", col]
            and hi.loc["y", col] == plain_hi.loc["y", col]
        )


def test_r2_ci_contains_the_point_estimate_and_narrows_with_n():
    rng = np.random.default_rng(0)
    widths = []
    for n in (100, 1600):
        y = rng.normal(size=(n, 1))
        pred = y + rng.normal(size=(n, 1))
        point = r2_per_phenotype(y, pred, ["a"]).loc["a", "R2"]
        lo, hi = r2_ci(y, pred, ["a"], n_boot=300)
        assert lo.loc["a", "R2"] <= point <= hi.loc["a", "R2"]
        widths.append(hi.loc["a", "R2"] - lo.loc["a", "R2"])
    assert widths[1] < 0.5 * widths[0]


def test_bootstrap_is_seeded_and_a_constant_statistic_has_a_zero_width_interval():
    stat = lambda idx: pd.DataFrame({"m": [float(np.mean(idx))]})  # noqa: E731
    a = bootstrap_ci(stat, 50, n_boot=20, seed=3)
    b = bootstrap_ci(stat, 50, n_boot=20, seed=3)
    pd.testing.assert_frame_equal(a[0], b[0])
    lo, hi = bootstrap_ci(lambda idx: pd.DataFrame({"m": [1.0]}), 50, n_boot=20)
    assert lo.loc[0, "m"] == hi.loc[0, "m"] == 1.0
    with pytest.raises(ValueError):
        bootstrap_ci(stat, 0)
