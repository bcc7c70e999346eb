"""Percentile-bootstrap 95 % confidence intervals for every reported metric.

What is resampled: the test subjects, with replacement, N of N, the fitted models and the
retrieval database held fixed. For retrieval that means resampling the *queries*: each query's
P@k and first-match rank are computed once against the full database, and a replicate averages
them over a resampled set of queries (the database does not shrink or duplicate). For R², the
test predictions stay as they are and (truth, prediction) pairs are resampled. Intervals are
the 2.5th and 97.5th percentiles of the replicates (replicates where a metric is undefined are
ignored). Replicates are drawn from one seeded generator, so intervals are reproducible. The
median rank gets no interval (`retrieval_ci` says why).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from ptacl.eval.probe import r2_per_phenotype
from ptacl.eval.retrieval import RetrievalScores, metric_columns, summarize_retrieval


def bootstrap_ci(
    statistic: Callable[[np.ndarray], pd.DataFrame],
    n: int,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    columns: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(lower, upper) percentile bounds of `statistic(positions)` over bootstrap replicates.

    `statistic` maps an int array of N resampled positions to a table (the same index and
    columns every time); `columns` restricts the bounds to those columns.
    """
    if n < 1 or n_boot < 1:
        raise ValueError(f"need n >= 1 and n_boot >= 1, got n={n}, n_boot={n_boot}")
    rng = np.random.default_rng(seed)
    first = None
    reps = []
    for _ in range(n_boot):
        table = statistic(rng.integers(0, n, size=n))
        if columns is not None:
            table = table[list(columns)]
        first = table if first is None else first
        reps.append(table.to_numpy(dtype=np.float64))
    stack = np.stack(reps)  # (n_boot, rows, columns)
    tail = 100 * (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN cell stays NaN
        lower = np.nanpercentile(stack, tail, axis=0)
        upper = np.nanpercentile(stack, 100 - tail, axis=0)
    assert first is not None
    return (
        pd.DataFrame(lower, index=first.index, columns=first.columns),
        pd.DataFrame(upper, index=first.index, columns=first.columns),
    )


def retrieval_ci(
    scores: dict[str, RetrievalScores],
    ks: Sequence[int],
    *,
    summarize: Callable[..., pd.DataFrame] = summarize_retrieval,
    **kwargs,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bounds of P@k and MnR from resampled queries (see the module docstring); MdR's are NaN.

    No interval for MdR on purpose: a median of integer ranks is an integer (or a half), so
    its percentile bootstrap piles every replicate onto one or two values and the interval
    collapses ([7.00, 7.00] for MdR 7), which reads as certainty it is not. A smoothed
    (jittered) bootstrap would be a CI of the interpolated median, a different statistic than
    the paper's MdR shown beside it. MnR's interval is the rank's uncertainty to read."""
    n = len(next(iter(scores.values())).is_query)
    columns = [c for c in metric_columns(ks) if c != "MdR"]
    lo, hi = bootstrap_ci(lambda idx: summarize(scores, ks, idx), n, columns=columns, **kwargs)
    lo["MdR"], hi["MdR"] = np.nan, np.nan
    return lo, hi


def r2_ci(
    y_true: np.ndarray, y_pred: np.ndarray, columns: Sequence[str], **kwargs
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bounds of R² per phenotype from resampled (truth, prediction) test pairs."""
    return bootstrap_ci(
        lambda idx: r2_per_phenotype(y_true, y_pred, columns, idx),
        len(y_true),
        columns=["R2"],
        **kwargs,
    )
