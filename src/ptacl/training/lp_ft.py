"""LP-FT's start for FN+AP (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features"):
the head's output layer set to the closed-form ridge regression of the standardised train
targets on the frozen encoder's pooled vectors, the penalty per phenotype by validation MSE.
`ptacl.training.finetune` calls `init_head_from_ridge` when `head_init: ridge`; the ridge
itself is plain numpy (float64), tested against the normal equations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ptacl.eval.metrics import r2_from_sums, r2_sums

if TYPE_CHECKING:
    from ptacl.training.finetune import FinetuneModule


def ridge_fit(
    features: np.ndarray, targets: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression with an intercept, one fit per target column on its known rows:
    features (N, D), targets (N, P) with NaN unknown -> weight (P, D), bias (P,), float64.

    For a column with n known rows, Z their features centred on their mean x̄ and divided by
    their SD s (per feature, ddof 0; 1 where it is 0) and y their targets centred on ȳ:
    v = (ZᵀZ + alpha·n·I)⁻¹ Zᵀy, w = v / s, b = ȳ − x̄·w. The penalty is per subject (one alpha
    suits any split size) and per unit of each feature's spread, as the probe's `fit_ridge`:
    a pretrained encoder's pooled vectors can spread by 0.08 per dimension (RESULTS.md, "FN+AP
    recipe"), where a penalty on the raw scale shrinks the head to nothing. The intercept is
    unpenalised; alpha 0 is OLS. A column with no known row gets w = 0, b = 0 (the
    standardised mean)."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"features (N, D) and targets (N, P) expected, got {x.shape}, {y.shape}")
    weight, bias = np.zeros((y.shape[1], x.shape[1])), np.zeros(y.shape[1])
    for p in range(y.shape[1]):
        known = np.isfinite(y[:, p])
        n = int(known.sum())
        if n == 0:
            continue
        xk, yk = x[known], y[known, p]
        x_mean, y_mean = xk.mean(axis=0), yk.mean()
        scale = xk.std(axis=0)
        scale[scale == 0] = 1.0
        z = (xk - x_mean) / scale
        gram = z.T @ z + alpha * n * np.eye(x.shape[1])
        weight[p] = np.linalg.solve(gram, z.T @ (yk - y_mean)) / scale
        bias[p] = y_mean - x_mean @ weight[p]
    return weight, bias


def select_ridge(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    alphas: Sequence[float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ridge (`ridge_fit`) on train = (features (N, D), targets (N, P)) whose penalty,
    per target column, has the lowest MSE on val's known rows (the first of equals; without
    known val rows, the first alpha). Returns weight (P, D), bias (P,), chosen alpha (P,)."""
    if not alphas:
        raise ValueError("ridge_alphas is empty")
    fits = [ridge_fit(*train, alpha) for alpha in alphas]
    x_val, y_val = np.asarray(val[0], dtype=np.float64), np.asarray(val[1], dtype=np.float64)
    known = np.isfinite(y_val)
    errors = np.stack(
        [
            np.where(known, (x_val @ w.T + b - np.nan_to_num(y_val)) ** 2, 0.0).sum(axis=0)
            for w, b in fits
        ]
    )  # (A, P)
    best = errors.argmin(axis=0)  # argmin takes the first of equals: all 0 when none known
    weight = np.stack([fits[a][0][p] for p, a in enumerate(best)])
    bias = np.array([fits[a][1][p] for p, a in enumerate(best)])
    return weight, bias, np.asarray(alphas, dtype=np.float64)[best]


@torch.no_grad()
def pooled_features(
    module: FinetuneModule, dataset: Any, *, batch_size: int = 32, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """(the head's pooled vectors (N, D), standardised targets (N, P), NaN unknown) over a
    dataset, the module in eval mode: what the head's output layer maps."""
    from torch.utils.data import DataLoader

    was_training = module.training
    module = module.to(device).eval()
    features, targets = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        tokens = module.encoder.forward_features(batch[module.modality].to(device))
        features.append(module.head.pooled(tokens).double().cpu().numpy())
        target = (batch["phenotypes"].to(device) - module.target_mean) / module.target_sd
        targets.append(target.double().cpu().numpy())
    module.train(was_training)
    return np.concatenate(features), np.concatenate(targets)


def init_head_from_ridge(
    module: FinetuneModule,
    train_set: Any,
    val_set: Any,
    alphas: Sequence[float],
    *,
    batch_size: int = 32,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """LP-FT's start: the head's output layer := the ridge (`select_ridge`) of the
    standardised train targets on the frozen pooled vectors, penalty by validation MSE.
    Nothing else changes. Returns the chosen alpha (P,) and the init's validation R² (P,)."""
    train = pooled_features(module, train_set, batch_size=batch_size, device=device)
    val = pooled_features(module, val_set, batch_size=batch_size, device=device)
    weight, bias, chosen = select_ridge(train, val, alphas)
    out = module.head.out
    with torch.no_grad():
        out.weight.copy_(torch.as_tensor(weight, dtype=out.weight.dtype))
        out.bias.copy_(torch.as_tensor(bias, dtype=out.bias.dtype))
    module.cpu()
    x_val, y_val = (torch.as_tensor(v) for v in val)
    val_r2 = r2_from_sums(r2_sums(x_val @ torch.as_tensor(weight).T + torch.as_tensor(bias), y_val))
    return chosen, val_r2.numpy()
