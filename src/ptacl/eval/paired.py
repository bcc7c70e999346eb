"""Paired comparison of two methods on the same test subjects over several training seeds.

    diff = paired_difference(r2_metric, y, pred_a, pred_b)   # (S, N) predictions per seed
    diff.estimate, diff.ci, diff.p_value, diff.mde

The difference is metric(A) − metric(B) on the same N test subjects within each of S seeds,
averaged over the seeds. Its variance has two parts, estimated separately and added:

- subjects: which N subjects were tested. A subject bootstrap (N positions drawn with
  replacement, the same positions for every seed, since the subjects are shared) gives the
  replicates d*_s of every seed; the variance of their mean over seeds is this part. It already
  holds the seed-to-seed noise that lives in single subjects' predictions.
- seeds: a seed's whole model landing higher or lower (a random effect u_s). The observed spread
  of the per-seed differences is var(u) plus the part of the subject noise that is not shared
  between seeds, (mean of var d*_s) − (mean of cov(d*_s, d*_t), s ≠ t); what remains after
  subtracting it (at least 0) is var(u), and it enters as var(u) / S. (Resampling seeds as well
  as subjects would count the shared noise twice: a conservative interval, measured at a 0.3 %
  false-positive rate for a nominal 5 % in tests/eval/test_paired.py.)

se is the square root of the sum; CI = estimate ± z_{(1+level)/2} · se; p (two-sided) from
z = estimate / se; MDE, the smallest true difference a two-sided test at level α detects with
the given power, (z_{1−α/2} + z_{power}) · se: what this protocol (subjects, seeds) can resolve,
whatever the estimate. With a single seed only the subject part exists (`seed_variation` False).
With few seeds var(u) rests on few values and the interval is approximate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

#: metric(y_true (R, n, ...), y_pred (R, n, ...)) -> (R,), one value per replicate row
Metric = Callable[[np.ndarray, np.ndarray], np.ndarray]


def r2_metric(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """R² per row: y_true, y_pred (R, n) -> (R,). Rows with no spread in y_true give NaN."""
    resid = np.sum((y_true - y_pred) ** 2, axis=-1)
    total = np.sum((y_true - y_true.mean(axis=-1, keepdims=True)) ** 2, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, 1.0 - resid / total, np.nan)


def mean_metric(_: np.ndarray, per_subject: np.ndarray) -> np.ndarray:
    """Mean of a per-subject score (e.g. P@1 hits of each query): (R, n) -> (R,)."""
    return per_subject.mean(axis=-1)


@dataclass(frozen=True)
class PairedDifference:
    estimate: float  # mean over seeds of metric(A) − metric(B) on all test subjects
    ci: tuple[float, float]
    se: float  # standard error: subject bootstrap plus the seeds' random effect
    var_seeds: float  # the seeds' random-effect variance var(u) (0 with one seed)
    p_value: float  # two-sided, normal approximation with `se`
    mde: float  # minimal detectable difference at `power`, two-sided `alpha`
    per_seed: tuple[float, ...]  # the difference within each seed
    seeds: int
    subjects: int
    seed_variation: bool  # False with one seed: only subject variation is in the interval


def paired_difference(
    metric: Metric,
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    alpha: float = 0.05,
    power: float = 0.8,
    seed: int = 0,
    chunk: int = 100,
) -> PairedDifference:
    """metric(A) − metric(B), paired by subject within seed, combined over seeds.

    y_true: (N,) targets, shared by all seeds (NaN rows are left out);
    pred_a, pred_b: (S, N) each method's predictions (or per-subject scores for `mean_metric`)
    for seed s on the same N subjects in the same order. Returns a `PairedDifference`.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    a = np.atleast_2d(np.asarray(pred_a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(pred_b, dtype=np.float64))
    if a.shape != b.shape or a.shape[1] != y_true.shape[0]:
        raise ValueError(
            f"paired_difference: pred_a {a.shape} and pred_b {b.shape} must both be "
            f"(seeds, {y_true.shape[0]}) like y_true"
        )
    keep = ~np.isnan(y_true) & ~np.isnan(a).any(axis=0) & ~np.isnan(b).any(axis=0)
    y_true, a, b = y_true[keep], a[:, keep], b[:, keep]
    seeds, n = a.shape
    if n < 2:
        raise ValueError(f"paired_difference: {n} scorable subjects; need at least 2")
    per_seed = metric(np.broadcast_to(y_true, a.shape), a) - metric(
        np.broadcast_to(y_true, b.shape), b
    )  # (S,)
    rng = np.random.default_rng(seed)
    reps = []  # (n_boot, S) subject-bootstrap replicates of every seed's difference
    for start in range(0, n_boot, chunk):
        subj = rng.integers(0, n, size=(min(chunk, n_boot - start), n))  # (r, n)
        yt = y_true[subj]  # (r, n)
        reps.append(
            np.stack([metric(yt, a[s, subj]) - metric(yt, b[s, subj]) for s in range(seeds)], 1)
        )
    boot = np.concatenate(reps)  # (n_boot, S)
    var_subjects = float(np.nanvar(boot.mean(axis=1), ddof=1))
    var_seeds = 0.0
    if seeds > 1:
        cov = np.cov(boot, rowvar=False)  # (S, S)
        unshared = np.diag(cov).mean() - cov[~np.eye(seeds, dtype=bool)].mean()
        var_seeds = max(0.0, float(np.var(per_seed, ddof=1) - unshared))
    estimate = float(per_seed.mean())
    se = float(np.sqrt(var_subjects + var_seeds / seeds))
    half = norm.ppf(0.5 + level / 2) * se
    z = estimate / se if se > 0 else (np.inf if estimate else 0.0)
    return PairedDifference(
        estimate=estimate,
        ci=(estimate - half, estimate + half),
        var_seeds=var_seeds,
        se=se,
        p_value=float(2 * norm.sf(abs(z))),
        mde=float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * se),
        per_seed=tuple(float(v) for v in per_seed),
        seeds=seeds,
        subjects=n,
        seed_variation=seeds > 1,
    )
