"""compare_r2 / compare_retrieval: subjects matched by eid across arms and seeds, a planted
difference recovered, files that disagree on the truth refused."""

from __future__ import annotations

import numpy as np
import pytest

from ptacl.eval.comparisons import compare_r2, compare_retrieval, save_predictions, save_retrieval
from ptacl.eval.paired import paired_difference, r2_metric
from ptacl.eval.retrieval import RetrievalScores

NAMES = ["LVEDV (mL)", "LVM (g)"]


def _write_arm(folder, rng, truth, eids, noise, seeds=3, order=None):
    paths = []
    for s in range(seeds):
        idx = np.arange(len(eids)) if order is None else order
        pred = truth + noise * rng.standard_normal(truth.shape)
        path = folder / f"arm{noise}_seed{s}.npz"
        save_predictions(path, np.asarray(eids)[idx], truth[idx], pred[idx], NAMES)
        paths.append(path)
    return paths


def test_r2_differences_match_subjects_by_eid(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    eids = [str(1000000 + i) for i in range(n)]
    truth = rng.standard_normal((n, 2)) * [20, 15] + [150, 100]
    a = _write_arm(tmp_path, rng, truth, eids, 5.0)
    # arm B stored in another subject order and without its first 10 subjects
    order = 10 + rng.permutation(n - 10)
    b = _write_arm(tmp_path, rng, truth, eids, 10.0, order=order)
    got = compare_r2(a, b, n_boot=300)
    assert set(got) == {"LVEDV", "LVM"}
    assert got["LVEDV"].subjects == n - 10 and got["LVEDV"].seeds == 3
    # by hand on the shared subjects, in A's order
    keep = np.arange(10, n)
    per_seed = []
    for pa, pb in zip(a, b):
        da, db = np.load(pa), np.load(pb)
        where = {e: i for i, e in enumerate(db["eids"])}
        rows_b = [where[e] for e in da["eids"][keep]]
        t = da["true"][keep, 0].astype(float)
        per_seed.append(
            r2_metric(t[None], da["predicted"][keep, 0][None].astype(float))[0]
            - r2_metric(t[None], db["predicted"][rows_b, 0][None].astype(float))[0]
        )
    np.testing.assert_allclose(got["LVEDV"].per_seed, per_seed, rtol=1e-9)
    # var(e) = 25 vs 100 over var(y) = 400: a planted difference of 75 / 400 = 0.1875
    assert got["LVEDV"].ci[0] < 0.1875 < got["LVEDV"].ci[1] and got["LVEDV"].p_value < 1e-6


def test_arms_that_disagree_on_the_truth_are_refused(tmp_path):
    rng = np.random.default_rng(1)
    eids = [str(i) for i in range(50)]
    truth = rng.standard_normal((50, 2))
    a = _write_arm(tmp_path, rng, truth, eids, 0.5, seeds=1)
    b = _write_arm(tmp_path, rng, truth + 1.0, eids, 0.6, seeds=1)
    with pytest.raises(ValueError, match="disagree on the true"):
        compare_r2(a, b)
    with pytest.raises(ValueError, match="one file per seed"):
        compare_r2(a, a + a)


def test_retrieval_compares_the_per_query_hits(tmp_path):
    rng = np.random.default_rng(2)
    n, ks = 300, (1, 5)
    eids = [str(i) for i in range(n)]

    def arm(name, rate):
        paths = []
        for s in range(2):
            scores = {}
            for p in NAMES:
                precision = np.stack([rng.random(n) < rate, rng.random(n) < 0.5], 1).astype(float)
                is_query = np.ones(n, bool)
                is_query[:5] = False
                precision[:5] = np.nan
                scores[p] = RetrievalScores(precision, np.ones(n), is_query)
            path = tmp_path / f"{name}{s}.npz"
            save_retrieval(path, eids, NAMES, ks, scores)
            paths.append(path)
        return paths

    a, b = arm("a", 0.45), arm("b", 0.30)
    got = compare_retrieval(a, b, k=1, n_boot=200)
    assert got["LVM"].subjects == n - 5
    hits = [np.load(p)["precision"][1, 5:, 0] for p in (*a, *b)]
    assert got["LVM"].estimate == pytest.approx(np.mean(hits[:2]) - np.mean(hits[2:]))
    assert got["LVM"].p_value < 0.01
    with pytest.raises(ValueError, match="P@3"):
        compare_retrieval(a, b, k=3)
    # the same function as paired_difference on the same matrices
    direct = paired_difference(
        lambda _, x: x.mean(-1), np.zeros(n - 5), np.stack(hits[:2]), np.stack(hits[2:]), n_boot=200
    )
    assert got["LVM"].se == pytest.approx(direct.se)
