"""The random-ranking baseline (`ptacl.eval.random_baseline`): exact expectations per query,
checked against simulated random rankings and against retrieval on random embeddings."""

import math

import numpy as np
import pandas as pd
import pytest

from ptacl.eval.random_baseline import (
    _sample_first_rank,
    random_retrieval_baseline,
    random_retrieval_scores,
)
from ptacl.eval.retrieval import retrieval_metrics
from retrieval_cases import hand_case


def test_random_embeddings_give_chance_precision():
    rng = np.random.default_rng(0)
    n = 3000
    pheno = pd.DataFrame({"y": rng.normal(size=n)})
    table = retrieval_metrics(rng.normal(size=(n, 32)), rng.normal(size=(n, 32)), pheno)
    chance = 2 * 0.5 * (1 + math.erf(0.5 / math.sqrt(2) / math.sqrt(2))) - 1  # 0.2763
    se = math.sqrt(chance * (1 - chance) / n)
    assert abs(table.loc["y", "P@1"] - chance) < 4 * se
    assert abs(table.loc["y", "P@15"] - chance) < 4 * se
    base = random_retrieval_baseline(pheno)
    assert abs(base.loc["y", "P@1"] - chance) < 0.01  # exact expectation, sample SD only
    # Random embeddings rank at random: their MnR agrees with the baseline's expectation.
    assert table.loc["y", "MnR"] == pytest.approx(base.loc["y", "MnR"], rel=0.15)


def test_sampled_first_rank_follows_the_exact_distribution():
    c, m, draws = 10, 3, 40000
    got = _sample_first_rank(c, np.full(draws, m), np.random.default_rng(0))
    rng = np.random.default_rng(1)
    perms = np.argsort(rng.random((draws, c)), axis=1) < m  # first m positions are matches
    ref = np.argmax(perms, axis=1) + 1
    for r in range(1, c - m + 2):
        assert np.mean(got == r) == pytest.approx(np.mean(ref == r), abs=0.012)
    assert got.mean() == pytest.approx((c + 1) / (m + 1), abs=0.03)


def test_random_baseline_counts_matches_exactly():
    _, _, pheno = hand_case()
    s = random_retrieval_scores(pheno, ks=(1, 3))["a"]
    # matches per query (self excluded): 2, 0, 2, 2 of 3 candidates.
    np.testing.assert_allclose(s.precision[:, 0], [2 / 3, 0, 2 / 3, 2 / 3])
    np.testing.assert_allclose(s.first_rank, [4 / 3, np.nan, 4 / 3, 4 / 3])


@pytest.mark.parametrize("exclude_self", [True, False])
def test_random_baseline_per_query_equals_a_simulation(exclude_self):
    # MnR against random is only fair if each query's baseline uses that query's own match
    # set: simulate uniformly random rankings of the real candidates and compare query by query.
    rng = np.random.default_rng(5)
    n, draws, ks = 40, 4000, (1, 5)
    y = np.exp(rng.normal(size=n))  # skewed: queries in the tail have few matches
    y[rng.random(n) < 0.15] = np.nan
    base = random_retrieval_scores(pd.DataFrame({"y": y}), ks, exclude_self=exclude_self)["y"]
    valid = ~np.isnan(y)
    half = 0.5 * np.nanstd(y, ddof=1)
    is_cand = np.broadcast_to(valid, (n, n)) & ~(np.eye(n, dtype=bool) & exclude_self)
    match = is_cand & (np.abs(y[None] - y[:, None]) <= half)
    keys = np.where(is_cand, rng.random((draws, n, n)), np.inf)  # non-candidates rank last
    order = np.argsort(keys, axis=2)  # (draws, query, place)
    hits = np.take_along_axis(np.broadcast_to(match, (draws, n, n)), order, axis=2)
    has = match.any(axis=1) & valid
    first = np.argmax(hits, axis=2) + 1.0  # (draws, n)
    sim_rank, sd = first.mean(axis=0), first.std(axis=0)
    np.testing.assert_array_equal(np.isnan(base.first_rank), ~has)
    assert np.all(np.abs(base.first_rank[has] - sim_rank[has]) <= 4 * sd[has] / np.sqrt(draws))
    for j, k in enumerate(ks):
        sim_prec = hits[:, :, :k].mean(axis=(0, 2))[valid]
        p = base.precision[valid, j]
        assert np.all(np.abs(p - sim_prec) <= 4 * np.sqrt(p * (1 - p) / draws) + 1e-12)
