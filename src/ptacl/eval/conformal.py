"""Per-patient prediction intervals by split conformal prediction (Vovk et al. 2005; Lei et al.
2018, J Am Stat Assoc 113:1094, "Distribution-free predictive inference for regression").

A head fitted on the train split predicts the validation split; the absolute residuals
|y - ŷ| of its n validation subjects give the half-width q, the ceil((n + 1)·level)-th smallest
of them, and every later prediction ŷ gets [ŷ - q, ŷ + q]. If the validation and the new
subjects are exchangeable (drawn alike from one population), such an interval holds the true
value with probability at least `level` (and at most level + 1/(n + 1) without ties), whatever
the model and however wrong it is: the guarantee rests on the residuals alone. When
ceil((n + 1)·level) > n, no finite half-width gives it: the interval is unbounded (q = inf),
said as such rather than narrowed into a promise the data cannot keep.

Why plain split conformal and not a normalised (locally weighted) or quantile-regression
variant: those widen the interval for patients the model finds harder, but they need a
second model of the residual's scale fitted on data the calibration does not see, which a
linear probe's bundle does not have, and their per-patient calibration is only as good as that
scale model. Nothing in ptacl shows one better calibrated per patient yet, so the interval is
one width per phenotype: marginally exact, honest about its limit (coverage holds on average
over patients like the validation ones, not for each patient; a patient unlike them, whom
`ptacl predict` flags out of distribution, is not covered by the guarantee).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ptacl.inference.bundle import half_widths as half_widths  # read side: predict applies it
from ptacl.schema import INTERVAL_LEVEL

#: The nominal coverage when none is asked for (`ptacl export --interval-level`).
DEFAULT_LEVEL = INTERVAL_LEVEL
METHOD = (
    "split conformal on absolute residuals of the validation split: half-width = the "
    "ceil((n + 1) * level)-th smallest |true - predicted| (ptacl.eval.conformal)"
)


def check_level(level: float) -> float:
    """`level` as a float strictly between 0 and 1, or ValueError."""
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
        raise ValueError(f"the interval level must be a number between 0 and 1, got {level!r}")
    return float(level)


def conformal_quantile(residuals: Sequence[float] | np.ndarray, level: float) -> float:
    """The split-conformal half-width of absolute `residuals` (NaN ignored: unknown labels) at
    nominal `level`: the k-th smallest |r|, k = ceil((n + 1) * level); inf when k > n (too few
    residuals for that level, including none)."""
    level = check_level(level)
    values = np.abs(np.asarray(residuals, dtype=np.float64).ravel())
    values = np.sort(values[np.isfinite(values)])
    # a tiny tolerance: (n + 1) * 0.9 is 9.000000000000002 for n = 9 in floating point
    k = math.ceil((len(values) + 1) * level - 1e-9)
    return float(values[k - 1]) if k <= len(values) else math.inf


def fit_intervals(
    truth: np.ndarray, predicted: np.ndarray, columns: Sequence[str], level: float
) -> dict[str, Any]:
    """Per column of (N, P) `truth` and `predicted` (the calibration split; NaN truth unknown):
    {"level", "method", "columns": {column: {"half_width": float or None (unbounded), "n"}}}."""
    residuals = np.asarray(truth, np.float64) - np.asarray(predicted, np.float64)
    table = {}
    for p, column in enumerate(columns):
        q = conformal_quantile(residuals[:, p], level)
        n = int(np.isfinite(residuals[:, p]).sum())
        table[column] = {"half_width": q if math.isfinite(q) else None, "n": n}
    return {"level": check_level(level), "method": METHOD, "columns": table}


def interval_coverage(
    truth: np.ndarray, predicted: np.ndarray, widths: np.ndarray, columns: Sequence[str]
) -> dict[str, dict[str, float | int | None]]:
    """Measured on a held-out split: per column the share of known truths inside
    [predicted - w, predicted + w], the mean width 2w and the subjects counted."""
    truth = np.asarray(truth, np.float64)
    inside = np.abs(truth - np.asarray(predicted, np.float64)) <= widths[None, :]
    out: dict[str, dict[str, float | int | None]] = {}
    for p, column in enumerate(columns):
        known = np.isfinite(truth[:, p])
        n = int(known.sum())
        finite = math.isfinite(widths[p])
        out[column] = {
            "coverage": round(float(inside[known, p].mean()), 4) if n else None,
            "mean_width": round(float(2 * widths[p]), 4) if finite else None,
            "n": n,
        }
    return out
