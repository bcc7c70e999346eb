"""Linear probing (the paper's Table 2, LP rows): a linear map from frozen embeddings to phenotypes.

Targets are regressed in their own units (not standardised): R² does not depend on the target
scale, and predictions in mL, g or % read directly on the scatter plots. Each phenotype is
fitted on the training subjects that have a value for it and scored on the test subjects that
have one (NaN = unknown, never imputed).

- `method="ols"` (the paper): ordinary least squares with an intercept on the raw embeddings
  (`fit_ols`; OLS predictions do not change under any affine rescaling of the features, so none
  is applied).
- `method="ridge"` (`fit_ridge`): features standardised with training statistics, then
  `RidgeCV` choosing the penalty from `RIDGE_ALPHAS` by efficient leave-one-out error on the
  training split; for cohorts too small for OLS (`ptacl demo` at 100 subjects).

Both return a `LinearFit` ((x - mean) @ weight.T + bias), which `ptacl export --probe` bundles
as it is (the same train split, the same solver), so the probe a user deploys is the probe
`ptacl evaluate` scored.

R² = 1 - Σ(y - ŷ)² / Σ(y - ȳ)², ȳ the test mean (as scikit-learn's `r2_score`): 0 for predicting
the test mean, negative for worse.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

RIDGE_ALPHAS = tuple(np.logspace(-3, 4, 15))

#: Relative singular-value cut-off of the OLS fit; float32 embeddings carry ~7 digits.
RCOND = 1e-6


def _targets(y: pd.DataFrame | np.ndarray, n: int, name: str) -> tuple[np.ndarray, list[str]]:
    if isinstance(y, pd.DataFrame):
        columns, values = [str(c) for c in y.columns], y.to_numpy(dtype=np.float64)
    else:
        values = np.asarray(y, dtype=np.float64)
        values = values[:, None] if values.ndim == 1 else values
        columns = [f"y{i}" for i in range(values.shape[1])]
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} rows but its embeddings {n}")
    return values, columns


def _embeddings(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return x


#: OLS's expected test-MSE inflation from estimating p coefficients on n subjects is
#: p / (n − p − 2) (Gaussian design). Above this the estimation noise adds more than half the
#: irreducible error: at the demo's width 64 and 100 subjects (70 train) it is 16, and the OLS
#: probe scored R² of −5 to −21 on every phenotype (measured after a 6-step MAE); the demo then
#: probes with ridge.
OLS_INFLATION_LIMIT = 0.5


def ols_inflation(n_train: int, features: int) -> float:
    """p / (n − p − 2): how much OLS's estimation noise inflates its test MSE (inf when n ≤ p + 2)."""
    spare = n_train - features - 2
    return features / spare if spare > 0 else math.inf


def ols_underdetermined(n_train: int, features: int) -> str | None:
    """Why OLS on `n_train` subjects and `features` embedding dimensions is ill-posed, or None.

    With n_train ≤ features + 1 (the +1 the intercept) the fit has no residual degree of
    freedom: it interpolates its training set and its test predictions mean nothing (R² of
    -600 on tiny stores). `ptacl evaluate` warns with this text, `ptacl export` refuses with it.
    """
    if n_train > features + 1:
        return None
    return (
        f"{n_train} training subjects for {features} features + 1 intercept "
        "(n_train ≤ features + 1): OLS is under-determined"
    )


@dataclass(frozen=True)
class LinearFit:
    """One linear fit per phenotype: predictions are (x - mean) @ weight.T + bias, in float64.

    mean (D,) the training embeddings' mean, weight (P, D), bias (P,), used (P,) the training
    rows with a known value per phenotype. A phenotype with fewer than two has weight 0 and bias
    NaN: NaN predictions. `ptacl.inference.modules.LinearProbe` computes the same in torch.
    """

    mean: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    used: np.ndarray

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, D) -> (N, P) float64."""
        return (np.asarray(embeddings, dtype=np.float64) - self.mean) @ self.weight.T + self.bias


def fit_ols(embeddings: np.ndarray, targets: np.ndarray) -> LinearFit:
    """OLS with intercept, one fit per target column on the rows where it is known (NaN unknown).

    embeddings (N, D), targets (N, P). Centring on the training mean changes nothing
    mathematically, only the conditioning (and keeps the bias at the phenotype's mean).
    Directions whose singular value is below `RCOND` times the largest are dropped (the
    minimum-norm least-squares solution): a mean-pooled LayerNorm output can be exactly
    collinear (at initialisation its D coordinates sum to 0), and float32 rounding along such a
    direction would otherwise be fitted with coefficients of 1e7. Under-determined fits are not
    refused here (`ols_underdetermined` says when: `ptacl evaluate` warns, `ptacl export`
    refuses).
    """

    def solve(x: np.ndarray, y: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, float]:
        design = np.concatenate([x - mean, np.ones((len(x), 1))], axis=1)  # (n, D+1) float64
        coef, *_ = np.linalg.lstsq(design, y, rcond=RCOND)
        return coef[:-1], coef[-1]

    return _fit_per_target(embeddings, targets, solve)


def _fit_per_target(
    embeddings: np.ndarray,
    targets: np.ndarray,
    solve: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, float]],
) -> LinearFit:
    """One `solve(x_known (n, D), y_known (n,), mean (D,)) -> (weight (D,), bias)` per target
    column on the rows where it is known, `mean` being the mean of all N embeddings (the
    centre of the resulting `LinearFit`); fewer than two known rows: weight 0, bias NaN."""
    x = _embeddings(embeddings, "embeddings")
    y, _ = _targets(targets, len(x), "targets")
    n, dim = x.shape
    mean = x.mean(axis=0) if n else np.zeros(dim)
    weight = np.zeros((y.shape[1], dim))
    bias = np.full(y.shape[1], np.nan)
    used = np.zeros(y.shape[1], dtype=np.int64)
    for p in range(y.shape[1]):
        known = np.isfinite(y[:, p])
        used[p] = known.sum()
        if used[p] >= 2:
            weight[p], bias[p] = solve(x[known], y[known, p], mean)
    return LinearFit(mean=mean, weight=weight, bias=bias, used=used)


def probe_predictions(
    train_emb: np.ndarray,
    train_y: pd.DataFrame | np.ndarray,
    test_emb: np.ndarray,
    method: Literal["ols", "ridge"] = "ols",
) -> np.ndarray:
    """Fit one linear model per phenotype on (train_emb (N, D), train_y (N, P)); predict the test.

    Returns (N_test, P) predictions in the targets' units; a phenotype with fewer than two
    training values gets NaN predictions.
    """
    x_train, x_test = _embeddings(train_emb, "train_emb"), _embeddings(test_emb, "test_emb")
    if x_train.shape[1] != x_test.shape[1]:
        raise ValueError(f"train embeddings have width {x_train.shape[1]}, test {x_test.shape[1]}")
    y, _ = _targets(train_y, len(x_train), "train_y")
    if method not in ("ols", "ridge"):
        raise ValueError(f"method must be 'ols' or 'ridge', got {method!r}")
    fit = fit_ols if method == "ols" else fit_ridge
    return fit(x_train, y).predict(x_test)


def fit_ridge(embeddings: np.ndarray, targets: np.ndarray) -> LinearFit:
    """Ridge per target column on its known rows: features standardised with those rows'
    statistics, the penalty chosen by `RidgeCV` from `RIDGE_ALPHAS`; folded back into one
    `LinearFit` on the raw embeddings (weight / scale, the column means into the bias), so the
    bundle's `LinearProbe` computes it unchanged. embeddings (N, D), targets (N, P)."""
    # scikit-learn only for ridge: OLS (and a bundle's prediction) run without it
    from ptacl.extras import require

    require("sklearn", "the ridge probe")
    from sklearn.linear_model import RidgeCV

    def solve(x: np.ndarray, y: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, float]:
        centre, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale == 0] = 1.0  # as StandardScaler: a constant feature is left unscaled
        model = RidgeCV(alphas=RIDGE_ALPHAS).fit((x - centre) / scale, y)
        weight = model.coef_ / scale
        return weight, model.intercept_ + (mean - centre) @ weight

    return _fit_per_target(embeddings, targets, solve)


def r2_per_phenotype(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    columns: Sequence[str],
    subjects: np.ndarray | None = None,
) -> pd.DataFrame:
    """R² and the number of scored subjects, one row per phenotype (rows with NaN left out).

    y_true, y_pred: (N, P). `subjects` (optional) picks rows by position, repetition allowed:
    the bootstrap passes resampled positions here.
    """
    if subjects is not None:
        y_true, y_pred = y_true[subjects], y_pred[subjects]
    rows = {}
    for p, name in enumerate(columns):
        ok = ~np.isnan(y_true[:, p]) & ~np.isnan(y_pred[:, p])
        t, e = y_true[ok, p], y_pred[ok, p]
        total = float(np.sum((t - t.mean()) ** 2)) if len(t) >= 2 else 0.0
        r2 = 1.0 - float(np.sum((t - e) ** 2)) / total if total > 0 else np.nan
        rows[name] = {"R2": r2, "n": int(ok.sum())}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "phenotype"
    return table


def linear_probe(
    train_emb: np.ndarray,
    train_y: pd.DataFrame | np.ndarray,
    test_emb: np.ndarray,
    test_y: pd.DataFrame | np.ndarray,
    method: Literal["ols", "ridge"] = "ols",
) -> pd.DataFrame:
    """Test R² per phenotype of a linear probe (columns `R2`, `n`); see the module docstring."""
    y_test, columns = _targets(test_y, len(np.asarray(test_emb)), "test_y")
    pred = probe_predictions(train_emb, train_y, test_emb, method)
    if pred.shape[1] != y_test.shape[1]:
        raise ValueError(f"train_y has {pred.shape[1]} phenotypes, test_y {y_test.shape[1]}")
    return r2_per_phenotype(y_test, pred, columns)
