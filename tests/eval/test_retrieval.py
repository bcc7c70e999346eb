import math

import numpy as np
import pandas as pd
import pytest
import torch

from ptacl.eval.retrieval import retrieval_metrics, retrieval_scores
from retrieval_cases import hand_case


def test_hand_made_case_gives_known_metrics():
    ecg, cmr, pheno = hand_case()
    table = retrieval_metrics(ecg, cmr, pheno, ks=(1, 3, 5))
    # a: SD = 4.77, window ±2.38: 0, 1, 0.5 match each other, 10 matches nobody.
    # first-match ranks 2, none, 1, 1; P@1 0,0,1,1; P@3 2/3,0,2/3,2/3.
    a = table.loc["a"]
    assert a["P@1"] == pytest.approx(0.5)
    assert a["P@3"] == pytest.approx(0.5)
    assert math.isnan(a["P@5"])  # only 3 candidates
    assert a["MnR"] == pytest.approx(4 / 3)
    assert a["MdR"] == 1.0
    assert (a["queries"], a["no_match"]) == (4, 1)
    # b: subject 1 has no value and disappears; SD = 1.058, only 1.0 and 1.4 match.
    b = table.loc["b"]
    assert b["P@1"] == pytest.approx(2 / 3)
    assert math.isnan(b["P@3"])  # 2 candidates left
    assert (b["MnR"], b["MdR"], b["queries"], b["no_match"]) == (1.0, 1.0, 3, 1)


def test_self_is_a_candidate_when_not_excluded():
    emb = np.random.default_rng(0).normal(size=(20, 5))
    pheno = pd.DataFrame({"x": np.random.default_rng(1).normal(size=20)})
    table = retrieval_metrics(emb, emb, pheno, ks=(1,), exclude_self=False)
    assert table.loc["x", "P@1"] == 1.0
    assert table.loc["x", "MnR"] == 1.0


@pytest.mark.parametrize("top", [None, 1])  # top=1: the tie straddles the top-K boundary
def test_ties_are_broken_by_database_position(top):
    cmr = np.array([[1.0, 0], [0, 1.0], [0, 1.0], [1.0, 0]])  # rows 1 and 2 identical
    ecg = np.array([[1.0, 0], [1.0, 0], [0, 1.0], [0, 1.0]])
    # Query 3 sees rows 1 and 2 tied at similarity 1 (row 3 itself excluded): row 1 first.
    pheno = pd.DataFrame({"x": [0.0, 5.0, 0.0, 0.0]})  # row 1 no match, row 2 match for q3
    scores = retrieval_scores(ecg, cmr, pheno, ks=(1,), top=top)["x"]
    assert scores.first_rank[3] == 2.0
    assert scores.precision[3, 0] == 0.0
    pheno = pd.DataFrame({"x": [0.0, 0.0, 5.0, 0.0]})  # now the earlier tied row matches
    assert retrieval_scores(ecg, cmr, pheno, ks=(1,), top=top)["x"].first_rank[3] == 1.0


def _brute_force(ecg, cmr, pheno, ks, match_sd, exclude_self):
    ecg = ecg / np.linalg.norm(ecg, axis=1, keepdims=True)
    cmr = cmr / np.linalg.norm(cmr, axis=1, keepdims=True)
    sim = ecg @ cmr.T
    out = {}
    for col in pheno.columns:
        y = pheno[col].to_numpy(float)
        ok = ~np.isnan(y)
        half = match_sd * np.std(y[ok], ddof=1)
        n = len(y)
        prec = np.full((n, len(ks)), np.nan)
        rank = np.full(n, np.nan)
        for i in np.flatnonzero(ok):
            cands = [j for j in np.argsort(-sim[i], kind="stable") if ok[j]]
            if exclude_self:
                cands = [j for j in cands if j != i]
            match = [(y[i] - half <= y[j] <= y[i] + half) for j in cands]
            for c, k in enumerate(ks):
                if k <= len(cands):
                    prec[i, c] = sum(match[:k]) / k
            if any(match):
                rank[i] = match.index(True) + 1
        out[col] = (prec, rank)
    return out


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1000])
@pytest.mark.parametrize("top", [None, 3])
def test_chunked_path_equals_brute_force(chunk_size, top):
    rng = np.random.default_rng(chunk_size)
    n = 150
    ecg, cmr = rng.normal(size=(n, 6)), rng.normal(size=(n, 6))
    pheno = pd.DataFrame(
        {
            "normal": rng.normal(size=n),
            "skewed": np.exp(2 * rng.normal(size=n)),  # extremes with few or no matches
            "holes": np.where(rng.random(n) < 0.6, np.nan, rng.normal(size=n)),
        }
    )
    ks = (1, 3, 5, 10, 15)
    # float64 so that BLAS blocking (which differs by chunk size) cannot swap near-ties.
    got = retrieval_scores(ecg, cmr, pheno, ks, chunk_size=chunk_size, top=top, dtype=torch.float64)
    ref = _brute_force(ecg, cmr, pheno, ks, 0.5, True)
    for col in pheno.columns:
        np.testing.assert_array_equal(got[col].precision, ref[col][0])
        np.testing.assert_array_equal(got[col].first_rank, ref[col][1])
    assert np.isnan(got["skewed"].first_rank[pheno["skewed"].argmax()])


def test_mismatched_inputs_raise_clear_errors():
    ecg, cmr, pheno = hand_case()
    with pytest.raises(ValueError, match="same subjects"):
        retrieval_metrics(ecg, cmr[:3], pheno)
    with pytest.raises(ValueError, match="phenotypes have 3 rows"):
        retrieval_metrics(ecg, cmr, pheno.iloc[:3])
    with pytest.raises(ValueError, match="width"):
        retrieval_metrics(ecg, cmr[:, :3], pheno)
    with pytest.raises(ValueError, match="eids differ at 1 positions"):
        retrieval_metrics(
            ecg, cmr, pheno, ecg_eids=["1", "2", "3", "4"], cmr_eids=["1", "2", "4", "4"]
        )
    with pytest.raises(ValueError, match="ks"):
        retrieval_metrics(ecg, cmr, pheno, ks=(3, 1))


def _sorted_reference(ecg, cmr, pheno, ks, exclude_self):
    """P@k and first-match rank by a full stable sort of every row of the float32 similarity
    (the same matrix product as the code under test, so no rounding can differ)."""
    e = torch.nn.functional.normalize(torch.as_tensor(ecg, dtype=torch.float32), dim=1)
    c = torch.nn.functional.normalize(torch.as_tensor(cmr, dtype=torch.float32), dim=1)
    sim = (e @ c.T).numpy()
    n = len(sim)
    if exclude_self:
        sim[np.arange(n), np.arange(n)] = -np.inf
    out = {}
    for col in pheno.columns:
        y = pheno[col].to_numpy(float)
        ok = ~np.isnan(y)
        half = 0.5 * np.std(y[ok], ddof=1)
        order = np.argsort(-sim, axis=1, kind="stable")
        prec = np.full((n, len(ks)), np.nan)
        rank = np.full(n, np.nan)
        for i in np.flatnonzero(ok):
            cands = order[i][ok[order[i]] & ((order[i] != i) | (not exclude_self))]
            match = (y[cands] >= y[i] - half) & (y[cands] <= y[i] + half)
            for j, k in enumerate(ks):
                if k <= len(cands):
                    prec[i, j] = match[:k].sum() / k
            if match.any():
                rank[i] = np.argmax(match) + 1
        out[col] = (prec, rank)
    return out


@pytest.mark.parametrize("exclude_self", [True, False])
def test_wide_rows_with_ties_equal_a_full_sort(exclude_self):
    # 2,400 candidates and top=8: rows are narrowed by block maxima before the top-K, and many
    # first matches lie beyond it (the counting path). Duplicated embeddings make exact ties,
    # inside and across the narrowed blocks and at the first match's similarity.
    rng = np.random.default_rng(5)
    n = 2400
    ecg = rng.normal(size=(n, 4)).astype(np.float32)
    cmr = rng.normal(size=(n, 4)).astype(np.float32)
    cmr[::3] = cmr[7]
    cmr[1::50] = cmr[2]
    ecg[::13] = ecg[4]
    pheno = pd.DataFrame(
        {
            "normal": rng.normal(size=n),
            "rare": np.exp(2 * rng.normal(size=n)),
            "holes": np.where(rng.random(n) < 0.3, np.nan, rng.normal(size=n)),
            "steps": np.round(rng.normal(size=n)),  # equal values: window edges exactly hit
        }
    )
    ks = (1, 3, 5, 10, 15)
    got = retrieval_scores(ecg, cmr, pheno, ks, exclude_self=exclude_self, top=8, chunk_size=500)
    ref = _sorted_reference(ecg, cmr, pheno, ks, exclude_self)
    for col in pheno.columns:
        np.testing.assert_array_equal(got[col].precision, ref[col][0])
        np.testing.assert_array_equal(got[col].first_rank, ref[col][1])
