"""Can a prediction be trusted? Phenotype ranges and an out-of-distribution score, per row.

Recorded at export from the training store (`fit_ranges`, `fit_ood`), checked at predict
(`assess`):

- **Physiological bounds** (`ptacl.phenotypes.PHYSIOLOGICAL_RANGES`): a value outside is not a
  heart (LVEDV -55 mL, LVEF 110 %, LVM 2.6e29 g): `error`. So is a NaN or infinite value.
- **Training range**: the store's train labels per column, widened by `MARGIN` of their span on
  each side. A linear probe shrinks towards the mean, so a prediction beyond it extrapolates
  past anything the head was fitted on: `warning`.
- **Out-of-distribution score**: the Mahalanobis distance of the recording's embedding (what
  the probe reads) from the train embeddings, with a covariance shrunk towards the identity so
  it is invertible when N is not far above D. Threshold: `median + OOD_SPREAD x (q99.9 -
  median)` of the train and validation distances; beyond it the ECG is unlike the training
  ECGs (a spike train, noise, another kind of recording) whatever the values say: `warning`.

Each row gets `ok`, `warning: <reasons>` or `error: <reasons>`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ptacl.phenotypes import PHYSIOLOGICAL_RANGES, split_name

#: Fraction of the training labels' span added on each side of their range.
MARGIN = 0.1
#: The OOD threshold sits this many times the reference distances' upper spread (99.9th
#: percentile minus median) above their median. Measured on the small preset's ECG MAE (D = 64,
#: 1,050 train subjects): test-split distances reached 8.6 against a threshold of 12.8, a spike
#: train scored 46 and Gaussian noise 24 (docs/reliability.md).
OOD_SPREAD = 2.0
OOD_QUANTILE = 0.999


def fit_ranges(targets: np.ndarray, columns: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per column: physiological bounds, the train labels' range and the range expected of a
    prediction (train range +- MARGIN of its span, inside the physiological bounds).

    targets (N, P), NaN unknown. A column without a known label gets only its bounds.
    """
    ranges: dict[str, dict[str, Any]] = {}
    for p, column in enumerate(columns):
        entry: dict[str, Any] = {}
        bounds = PHYSIOLOGICAL_RANGES.get(column)
        if bounds is not None:
            entry["physiological"] = list(bounds)
        known = targets[:, p][np.isfinite(targets[:, p])]
        if bounds is not None:  # a store built from absurd labels must not widen the range
            known = known[(known >= bounds[0]) & (known <= bounds[1])]
        if len(known):
            low, high = float(known.min()), float(known.max())
            span = high - low
            expected = [low - MARGIN * span, high + MARGIN * span]
            if bounds is not None:
                expected = [max(expected[0], bounds[0]), min(expected[1], bounds[1])]
            entry.update(train=[low, high], expected=expected, subjects=len(known))
        ranges[column] = entry
    return ranges


def ood_distances(embeddings: np.ndarray, mean: np.ndarray, whiten: np.ndarray) -> np.ndarray:
    """Mahalanobis distances (N,) of embeddings (N, D) given `fit_ood`'s mean and whitening."""
    return np.linalg.norm((np.asarray(embeddings, np.float64) - mean) @ whiten, axis=1)


def fit_ood(
    train: np.ndarray, held_out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Mean (D,), whitening matrix (D, D) and a description with the threshold.

    The covariance of `train` (N, D) is shrunk towards a scaled identity by D / (N + D): more
    where few subjects per dimension make it noisy or singular, little for a large cohort.
    `held_out` (M, D), the validation embeddings, join the reference distances because
    in-sample distances run low when N is not far above D.
    """
    x = np.asarray(train, np.float64)
    n, dim = x.shape
    if n < 2:
        raise ValueError(f"an OOD reference needs at least 2 embeddings, got {n}")
    mean = x.mean(axis=0)
    cov = np.cov(x, rowvar=False).reshape(dim, dim)
    shrink = dim / (n + dim)
    scale = max(float(np.trace(cov)) / dim, 1e-12)
    cov = (1 - shrink) * cov + shrink * scale * np.eye(dim)
    values, vectors = np.linalg.eigh(cov)
    whiten = vectors / np.sqrt(np.maximum(values, 1e-12 * scale))
    reference = ood_distances(x, mean, whiten)
    if held_out is not None and len(held_out):
        reference = np.concatenate([reference, ood_distances(held_out, mean, whiten)])
    median = float(np.median(reference))
    upper = float(np.quantile(reference, OOD_QUANTILE))
    spec = {
        "method": (
            "Mahalanobis distance of the crop-averaged encoder embedding from the train "
            f"embeddings, covariance shrunk towards the identity by D/(N+D) = {shrink:.3f}"
        ),
        "threshold": median + OOD_SPREAD * (upper - median),
        "rule": f"median + {OOD_SPREAD:g} x (quantile {OOD_QUANTILE:g} - median) of the reference",
        "reference": {
            "train": int(n),
            "validation": 0 if held_out is None else len(held_out),
            "median": median,
            "quantile": upper,
        },
    }
    return mean, whiten, spec


def describe(value: float, column: str) -> str:
    name, unit = split_name(column)
    return f"{name} {value:.4g} {unit}".rstrip()


def assess(
    values: np.ndarray,
    columns: Sequence[str],
    ranges: Mapping[str, Mapping[str, Any]],
    scores: np.ndarray | None = None,
    threshold: float | None = None,
) -> list[str]:
    """The status of each row of predictions `values` (N, P): 'ok', 'warning: ...' or
    'error: ...' (see the module docstring). `scores` (N,) are OOD distances, `threshold` the
    bundle's; without them no OOD check is made."""
    statuses = []
    for i, row in enumerate(np.asarray(values, np.float64)):
        errors, warnings = [], []
        for value, column in zip(row, columns):
            spec = ranges.get(column, {})
            bounds, expected = spec.get("physiological"), spec.get("expected")
            if not np.isfinite(value):
                errors.append(f"{split_name(column)[0]} is {value}")
            elif bounds is not None and not bounds[0] <= value <= bounds[1]:
                errors.append(
                    f"{describe(value, column)} is impossible "
                    f"(physiological range {bounds[0]:g}-{bounds[1]:g})"
                )
            elif expected is not None and not expected[0] <= value <= expected[1]:
                low, high = spec["train"]
                warnings.append(
                    f"{describe(value, column)} outside the training range "
                    f"{low:.4g}-{high:.4g} (+{MARGIN:.0%} of it)"
                )
        if scores is not None and threshold is not None:
            if not np.isfinite(scores[i]):
                errors.append(f"embedding not finite (OOD score {scores[i]})")
            elif scores[i] > threshold:
                warnings.append(
                    f"ECG unlike the training ECGs (OOD score {scores[i]:.1f} > {threshold:.1f})"
                )
        if errors:
            statuses.append("error: " + "; ".join(errors + warnings))
        elif warnings:
            statuses.append("warning: " + "; ".join(warnings))
        else:
            statuses.append("ok")
    return statuses
