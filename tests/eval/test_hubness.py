import numpy as np
import pandas as pd
import pytest
import torch

from ptacl.eval.collapse import top1_candidates
from ptacl.eval.hubness import csls_penalty, direction_stats, hubness_stats, k_occurrence
from ptacl.eval.retrieval import retrieval_metrics, retrieval_scores


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _signal(rng, y, d=8):
    """Noisy unit embeddings (n, d) whose first axis carries the phenotype y."""
    return _unit(rng.normal(size=(len(y), d)) + np.c_[2 * y, np.zeros((len(y), d - 1))])


def _slow_csls(ecg, cmr, k, exclude_self):
    """CSLS as written by Conneau et al. 2018: 2 cos(x, y) − r_Q(x) − r_D(y), by loops."""
    n = len(ecg)
    cos = [[float(_unit(ecg[i : i + 1])[0] @ _unit(cmr[j : j + 1])[0]) for j in range(n)]
           for i in range(n)]  # fmt: skip
    others = [[j for j in range(n) if not (exclude_self and j == i)] for i in range(n)]
    r_q = [np.mean(sorted((cos[i][j] for j in others[i]), reverse=True)[:k]) for i in range(n)]
    r_d = [np.mean(sorted((cos[i][j] for i in others[j]), reverse=True)[:k]) for j in range(n)]
    return np.array([[2 * cos[i][j] - r_q[i] - r_d[j] for j in range(n)] for i in range(n)]), r_d


def _ranked(scores, y, ks, exclude_self):
    """P@k (n, K) and first-match rank (n,) of a full score matrix, by a stable sort."""
    n, half = len(y), 0.5 * np.std(y, ddof=1)
    prec, first = np.zeros((n, len(ks))), np.full(n, np.nan)
    for i in range(n):
        order = [j for j in np.argsort(-scores[i], kind="stable") if not (exclude_self and j == i)]
        hit = np.abs(y[order] - y[i]) <= half
        prec[i] = [hit[:k].mean() for k in ks]
        if hit.any():
            first[i] = np.argmax(hit) + 1
    return prec, first


@pytest.mark.parametrize("exclude_self", [True, False])
def test_csls_ranking_equals_the_slow_reference(exclude_self):
    rng = np.random.default_rng(3)
    n, ks = 60, (1, 3, 5)
    y = rng.normal(size=n)
    ecg, cmr = _signal(rng, y) + 0.8, _signal(rng, y) + 0.8  # off-centre: hubs form
    ref, r_d = _slow_csls(ecg, cmr, 5, exclude_self)
    penalty = csls_penalty(ecg, cmr, 5, exclude_self, dtype=torch.float64)
    np.testing.assert_allclose(penalty, 0.5 * np.array(r_d), rtol=1e-12)
    got = retrieval_scores(
        ecg, cmr, pd.DataFrame({"y": y}), ks, exclude_self=exclude_self, chunk_size=7,
        top=4, dtype=torch.float64, penalty=penalty,
    )["y"]  # fmt: skip
    prec, first = _ranked(ref, y, ks, exclude_self)
    np.testing.assert_array_equal(got.precision, prec)
    np.testing.assert_array_equal(got.first_rank, first)
    best = top1_candidates(ecg, cmr, exclude_self, dtype=torch.float64, penalty=penalty)
    masked = ref + np.where(np.eye(n, dtype=bool) & exclude_self, -np.inf, 0)
    np.testing.assert_array_equal(best, np.argmax(masked, axis=1))


def _planted_hub(seed, n=200, margin=0.05):
    """Signal embeddings plus one database item (the subject of highest phenotype, a match for
    few queries) that every query finds a little closer (1 + margin) than its own best
    candidate: one extra axis that only the hub lies on and each query leans on."""
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n)
    ecg, cmr = _signal(rng, y), _signal(rng, y)
    hub = int(np.argmax(y))
    sim = ecg @ cmr.T
    np.fill_diagonal(sim, -np.inf)
    sim[:, hub] = -np.inf
    s = np.clip(sim.max(axis=1), 0.05, None) * (1 + margin)
    lean = s / np.sqrt(1 + s * s)  # cos(query, hub); the query's other cosines scale by √(1−lean²)
    planted = (np.c_[ecg * np.sqrt(1 - lean * lean)[:, None], lean], np.c_[cmr, np.zeros(n)])
    planted[1][hub] = np.eye(cmr.shape[1] + 1)[-1]
    return (ecg, cmr), planted, pd.DataFrame({"y": y}), hub


@pytest.mark.parametrize("seed", [0, 1])
def test_a_planted_hub_raises_mnr_and_csls_removes_it(seed):
    (ecg, cmr), (ecg_h, cmr_h), pheno, hub = _planted_hub(seed)
    clean = retrieval_metrics(ecg, cmr, pheno).loc["y"]
    raw = retrieval_metrics(ecg_h, cmr_h, pheno).loc["y"]
    penalty = csls_penalty(ecg_h, cmr_h)
    fixed = retrieval_metrics(ecg_h, cmr_h, pheno, penalty=penalty).loc["y"]
    n = len(pheno)
    assert k_occurrence(ecg_h, cmr_h, k=1)[hub] == n - 1  # the top-1 of every other query
    assert raw["MnR"] > clean["MnR"] + 0.5 and raw["P@1"] < 0.1
    assert k_occurrence(ecg_h, cmr_h, k=1, penalty=penalty)[hub] <= 0.05 * n
    assert fixed["MnR"] - clean["MnR"] < 0.3 * (raw["MnR"] - clean["MnR"])
    assert fixed["P@1"] > clean["P@1"] - 0.05


def test_k_occurrence_and_stats_by_hand():
    # database = unit axes; query i ranks the axes by its coordinates (self excluded)
    cmr = np.eye(4)
    ecg = np.array([[0, 3, 2, 1], [1, 0, 2, 3], [3, 2, 0, 1], [1, 2, 3, 0]], dtype=float)
    # top-1: 1, 3, 0, 2; top-2: {1, 2}, {3, 2}, {0, 1}, {2, 1}
    assert k_occurrence(ecg, cmr, k=1).tolist() == [1, 1, 1, 1]
    assert k_occurrence(ecg, cmr, k=2).tolist() == [1, 3, 3, 1]
    # penalising item 2 by 0.5 hands query 3's top-1 to item 1 (cosines 3/√14 → 2/√14)
    assert k_occurrence(ecg, cmr, k=1, penalty=np.array([0, 0, 0.5, 0])).tolist() == [1, 2, 0, 1]
    stats = hubness_stats(ecg, cmr, k=2)
    assert stats["nk_max_share"] == 0.75 and stats["anti_hub_share"] == 0.0
    same = direction_stats(np.ones((5, 3)) + 1e-9 * np.arange(15).reshape(5, 3))
    assert same["mean_norm"] == pytest.approx(1.0)
    spread = direction_stats(np.r_[np.eye(3), -np.eye(3)])
    assert spread["mean_norm"] == pytest.approx(0.0, abs=1e-12)
    assert spread["sv1_share"] == pytest.approx(1 / 3)


def test_bad_arguments_say_what_is_wrong():
    ecg = np.eye(4)
    with pytest.raises(ValueError, match=r"csls k must be in 1\.\.3"):
        csls_penalty(ecg, ecg, k=4)
    with pytest.raises(ValueError, match="penalty has shape"):
        retrieval_metrics(ecg, ecg, pd.DataFrame({"y": np.arange(4.0)}), penalty=np.zeros(3))
