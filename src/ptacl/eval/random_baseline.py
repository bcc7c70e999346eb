"""The retrieval table of a uniformly random ranking: the chance level every model is read
against, with the definitions of `ptacl.eval.retrieval` (matches, SD, NaN, self excluded).

P@k and MnR are exact expectations per query (no simulation noise); MdR, a median of ranks, is
taken from one seeded draw of each query's first-match rank from its exact distribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import gammaln

from ptacl.eval.retrieval import RetrievalScores, _match_windows, summarize_retrieval


@dataclass(frozen=True)
class RandomRetrievalScores(RetrievalScores):
    """`RetrievalScores` of a random ranking plus one sampled rank per query (for MdR)."""

    sampled_rank: np.ndarray | None = None


def random_retrieval_scores(
    phenotypes: pd.DataFrame,
    ks: Sequence[int] = (1, 3, 5, 10, 15),
    match_sd: float = 0.5,
    exclude_self: bool = True,
    seed: int = 0,
) -> dict[str, RetrievalScores]:
    """Per-query results of a uniformly random ranking, with the same definitions.

    For a query with c candidates of which m match, a random ranking gives P@k = m/c in
    expectation and a first-match rank of mean (c+1)/(m+1). Precision and `first_rank` hold
    those exact expectations, so MnR and P@k of the baseline carry no simulation noise; MdR
    (a median of ranks, not of expectations) is taken from one seeded draw of each query's rank
    from its exact distribution P(R > r) = C(c-m, r) / C(c, r), stored in `sampled_rank`.
    """
    ks = tuple(int(k) for k in ks)
    y_all = phenotypes.to_numpy(dtype=np.float64)
    rng = np.random.default_rng(seed)
    out = {}
    for p, column in enumerate(phenotypes.columns):
        y = y_all[:, p]
        valid = ~np.isnan(y)
        lo, hi, _ = _match_windows(y, match_sd)
        sorted_y = np.sort(y[valid])
        m = np.searchsorted(sorted_y, hi, "right") - np.searchsorted(sorted_y, lo, "left")
        m = m - int(exclude_self)  # the query itself always lies in its own window
        c = int(valid.sum()) - int(exclude_self)
        n = len(y)
        precision = np.full((n, len(ks)), np.nan)
        for j, k in enumerate(ks):
            if k <= c:
                precision[valid, j] = m[valid] / c
        has = valid & (m > 0)
        expected = np.full(n, np.nan)
        expected[has] = (c + 1) / (m[has] + 1)
        sampled = np.full(n, np.nan)
        sampled[has] = _sample_first_rank(c, m[has], rng)
        out[str(column)] = RandomRetrievalScores(
            precision=precision, first_rank=expected, is_query=valid, sampled_rank=sampled
        )
    return out


def _sample_first_rank(c: int, m: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw the first-match rank for c candidates with m >= 1 matches, by inverse CDF."""
    u = rng.random(len(m))

    def log_survival(r: np.ndarray) -> np.ndarray:  # log P(R > r) = log C(c-m, r) - log C(c, r)
        with np.errstate(invalid="ignore"):
            out = gammaln(c - m + 1) - gammaln(c - m - r + 1) + gammaln(c - r + 1) - gammaln(c + 1)
        return np.where(r > c - m, -np.inf, out)

    lo = np.ones(len(m), dtype=np.int64)
    hi = (c - m + 1).astype(np.int64)  # P(R > c-m+1) = 0 <= u always
    log_u = np.log(u)
    while (lo < hi).any():
        mid = (lo + hi) // 2
        done = log_survival(mid) <= log_u
        hi = np.where(done, mid, hi)
        lo = np.where(done, lo, mid + 1)
    return lo.astype(np.float64)


def summarize_random(
    scores: dict[str, RetrievalScores], ks: Sequence[int], subjects: np.ndarray | None = None
) -> pd.DataFrame:
    """Like `summarize_retrieval`, with MdR from the sampled ranks of a random ranking."""
    table = summarize_retrieval(scores, ks, subjects)
    for name, s in scores.items():
        sampled = getattr(s, "sampled_rank", None)
        if sampled is None:
            continue
        ranks = sampled if subjects is None else sampled[subjects]
        ranks = ranks[~np.isnan(ranks)]
        table.loc[name, "MdR"] = float(np.median(ranks)) if len(ranks) else np.nan
    return table


def random_retrieval_baseline(
    phenotypes: pd.DataFrame,
    ks: Sequence[int] = (1, 3, 5, 10, 15),
    match_sd: float = 0.5,
    exclude_self: bool = True,
    seed: int = 0,
) -> pd.DataFrame:
    """The retrieval table of a uniformly random ranking (see `random_retrieval_scores`)."""
    return summarize_random(
        random_retrieval_scores(phenotypes, ks, match_sd, exclude_self, seed), ks
    )
