"""Metrics of a binary endpoint's scores: AUROC, AUPRC, Brier, sensitivity and specificity at a
threshold fixed beforehand, reliability bins, and their bootstrap CIs.

Inputs are (N,) arrays: labels y in {0, 1} and scores or probabilities p (higher = more likely
positive). Pure numpy (scikit-learn gives the same numbers, tests/eval/test_endpoint_metrics.py
checks it); NaN where a metric is undefined (one class only).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

COLUMNS = ("AUROC", "AUPRC", "Brier", "sensitivity", "specificity")


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random
    negative, ties counting one half (Mann-Whitney U / (n+ n-), from average ranks)."""
    y = np.asarray(y, bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(score, np.float64))
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """AUPRC as average precision: sum over distinct score thresholds (high to low) of the
    recall gained times the precision there (no interpolation, as scikit-learn's); its chance
    level is the prevalence, not 0.5."""
    y = np.asarray(y, bool)
    pos = int(y.sum())
    if pos == 0:
        return float("nan")
    order = np.argsort(-np.asarray(score, np.float64), kind="mergesort")
    s, hits = np.asarray(score, np.float64)[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # last index of each tied block
    tp = np.cumsum(hits)[last]
    precision, recall = tp / (last + 1), tp / pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared difference between probability and outcome (0 best; prevalence x (1 -
    prevalence) for a model that always says the prevalence)."""
    return float(np.mean((np.asarray(p, np.float64) - np.asarray(y, np.float64)) ** 2))


def youden_threshold(y: np.ndarray, score: np.ndarray) -> float:
    """The score threshold (positive: score >= t) maximising sensitivity + specificity - 1
    (Youden's J) on these subjects; of equal J the highest t. Fixed on the validation split and
    applied unchanged to the test split, so the test sensitivity is not tuned on the test."""
    y = np.asarray(y, bool)
    score = np.asarray(score, np.float64)
    candidates = np.unique(score)
    best, best_j = float(candidates[-1]), -np.inf
    for t in candidates[::-1]:
        sens, spec = sensitivity_specificity(y, score, float(t))
        j = sens + spec - 1 if np.isfinite(sens + spec) else -np.inf
        if j > best_j:
            best, best_j = float(t), j
    return best


def sensitivity_specificity(
    y: np.ndarray, score: np.ndarray, threshold: float
) -> tuple[float, float]:
    """(sensitivity, specificity) calling score >= threshold positive; NaN for an absent class."""
    y = np.asarray(y, bool)
    called = np.asarray(score, np.float64) >= threshold
    sens = float(called[y].mean()) if y.any() else float("nan")
    spec = float((~called[~y]).mean()) if (~y).any() else float("nan")
    return sens, spec


def metric_table(
    y: np.ndarray, p: np.ndarray, threshold: float, idx: np.ndarray | None = None
) -> pd.DataFrame:
    """One row of COLUMNS for subjects `idx` (all when None): what the bootstrap resamples."""
    if idx is not None:
        y, p = np.asarray(y)[idx], np.asarray(p)[idx]
    sens, spec = sensitivity_specificity(y, p, threshold)
    row = [auroc(y, p), average_precision(y, p), brier(y, p), sens, spec]
    return pd.DataFrame([row], columns=list(COLUMNS))


def metrics_with_ci(
    y: np.ndarray, p: np.ndarray, threshold: float, *, n_boot: int = 1000, seed: int = 0
) -> dict[str, list[float | None]]:
    """{metric: [value, lower, upper]} on these subjects, 95 % percentile bootstrap bounds from
    resampled subjects (`ptacl.eval.bootstrap.bootstrap_ci`)."""
    from ptacl.eval.bootstrap import bootstrap_ci

    point = metric_table(y, p, threshold)
    lo, hi = bootstrap_ci(
        lambda idx: metric_table(y, p, threshold, idx), len(y), n_boot=n_boot, seed=seed
    )
    return {c: [_plain(point[c][0]), _plain(lo[c][0]), _plain(hi[c][0])] for c in COLUMNS}


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, list[Any]]:
    """Calibration table: equal-width probability bins with, per non-empty bin, the mean
    predicted probability, the observed share of positives and the subject count."""
    p = np.asarray(p, np.float64)
    which = np.clip((p * bins).astype(int), 0, bins - 1)
    out: dict[str, list[Any]] = {"predicted": [], "observed": [], "n": []}
    for b in range(bins):
        inside = which == b
        if inside.any():
            out["predicted"].append(round(float(p[inside].mean()), 4))
            out["observed"].append(round(float(np.asarray(y)[inside].mean()), 4))
            out["n"].append(int(inside.sum()))
    return out


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE: over `reliability`'s equal-width probability bins, the subject-weighted mean of
    |mean predicted - observed share of positives| (0: calibrated in every bin; NaN: no
    subjects)."""
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    if not len(p):
        return float("nan")
    which = np.clip((p * bins).astype(int), 0, bins - 1)
    gap = [abs(p[which == b].mean() - y[which == b].mean()) * np.sum(which == b) for b in
           range(bins) if np.any(which == b)]  # fmt: skip
    return float(np.sum(gap) / len(p))


def _plain(value: Any) -> float | None:
    value = float(value)
    return None if not np.isfinite(value) else round(value, 4)
