"""What a bundle learns from a prepared store: the phenotype probe, its checks, its intervals.

The linear probe is the one `ptacl evaluate` scores: ordinary least squares (the paper's linear
probing, `ptacl.eval.probe.fit_ols`) from the crop-averaged mean-pooled encoder embedding
(`ptacl.eval.embed.compute_embeddings`) to the 10 phenotypes, fitted on the train split of a
prepared store. The same embedding is what `ptacl predict` computes from a recording, so the
probe sees at fit time exactly what it sees at prediction time, and its predictions on the test
split are the evaluation's LP predictions. It is fitted on train only, not train + val: a probe
fitted on more data would be a different probe from the one whose test R² the report (and the
model card, `--metrics`) gives. Its R² on the store's validation split is written into
config.json so a user can judge the bundle before trusting it.

What `ptacl predict` checks each prediction against is recorded from the same store
(`ptacl.inference.plausibility`): per phenotype the physiological bounds and the train labels'
range (phenotypes.json `ranges`), and the mean and whitening of the train embeddings with the
out-of-distribution threshold (weights part `ood`, config.json `ood`).

Every bundle with a store at export carries prediction intervals (intervals.json,
`ptacl.eval.conformal`): split conformal on the head's absolute residuals on the val split (the
head never saw it), at nominal level `interval_level` (90 % by default), with the coverage and
mean width they reach on the test split measured at export and stated in the model card.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ptacl.data.store import Store
from ptacl.embedding.crops import store_outputs
from ptacl.inference.modules import BundleModel
from ptacl.inference.plausibility import fit_ood, fit_ranges
from ptacl.models.heads import LinearProbe
from ptacl.phenotypes import PHENOTYPES


def embed_store(
    encoder: nn.Module, store: Store, split: str, *, batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the split's ECGs and their embeddings (N, D): those of `ptacl evaluate`
    (`compute_embeddings`: averaged over each recording's crops)."""
    from ptacl.eval.embed import compute_embeddings
    from ptacl.runs import RunEncoders

    rows = store.indices(split, ecg=True)
    if not len(rows):
        return rows, np.zeros((0, int(encoder.width)), dtype=np.float32)
    encoders = RunEncoders(kind="export", source="export", ecg=encoder.eval())
    embeddings = compute_embeddings(encoders, store, split, batch_size=batch_size)
    assert embeddings.ecg is not None
    return rows, embeddings.ecg


@dataclass(frozen=True)
class Plausibility:
    """What predictions are checked against: phenotypes.json `ranges`, config.json `ood` and
    the weights part `ood` (`mean` (D,), `whiten` (D, D))."""

    ranges: dict[str, Any]
    ood: dict[str, Any]
    tensors: dict[str, torch.Tensor]


def plausibility_from_store(
    encoder: nn.Module,
    store: Store,
    *,
    batch_size: int = 32,
    train: tuple[np.ndarray, np.ndarray] | None = None,
    val: tuple[np.ndarray, np.ndarray] | None = None,
) -> Plausibility:
    """Ranges from the store's train labels, OOD statistics from its train (and validation)
    embeddings; `train`, `val` = (rows, embeddings) when already computed."""
    rows, embeddings = train or embed_store(encoder, store, "train", batch_size=batch_size)
    _, held_out = val or embed_store(encoder, store, "val", batch_size=batch_size)
    mean, whiten, spec = fit_ood(embeddings, held_out)
    spec["fitted_on"] = {"store": Path(store.root).name, "splits": ["train", "val"]}
    targets = np.asarray(store.phenotypes[rows], dtype=np.float64)
    return Plausibility(
        ranges=fit_ranges(targets, PHENOTYPES),
        ood=spec,
        tensors={"mean": torch.from_numpy(mean), "whiten": torch.from_numpy(whiten)},
    )


def store_endpoints(
    encoder: nn.Module,
    store: Store,
    cfg: Any = None,
    *,
    batch_size: int = 32,
    embedded: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    n_boot: int = 1000,
) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """endpoints.json for the endpoints of `cfg` (None: the shipped endpoints.yaml) fitted on
    the store's train, val and test embeddings (`ptacl.export.endpoint_fit`), and those
    embeddings by split; `embedded`: splits already embedded, (rows, embeddings); `n_boot`:
    bootstrap replicates of the test metrics' CIs."""
    from ptacl.eval.endpoints import load_endpoints
    from ptacl.export.endpoint_fit import fit_endpoints

    splits = dict(embedded or {})
    for split in ("train", "val", "test"):
        if split not in splits:
            splits[split] = embed_store(encoder, store, split, batch_size=batch_size)
    cfg = cfg if cfg is not None else load_endpoints()
    return fit_endpoints(cfg, store, splits, n_boot=n_boot), splits


def split_predictions(
    model: BundleModel, store: Store, split: str, *, crop: int, batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """(truth, predicted), both (N, P), of the bundle's model on the split's ECGs."""
    rows = store.indices(split, ecg=True)
    if not len(rows):
        empty = np.zeros((0, len(PHENOTYPES)))
        return empty, empty
    out = store_outputs(model.eval(), store, rows, crop=crop, batch_size=batch_size)
    return np.asarray(store.phenotypes[rows], np.float64), out["phenotypes"]


def validation_r2(
    model: BundleModel,
    store: Store,
    *,
    crop: int,
    batch_size: int = 32,
    val: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[dict[str, float | None], int]:
    """R² per phenotype of the bundle's predictions on the store's val split, and its size;
    `val` = `split_predictions(..., "val")` when already computed."""
    from ptacl.eval.probe import r2_per_phenotype

    truth, predicted = val or split_predictions(
        model, store, "val", crop=crop, batch_size=batch_size
    )
    if not len(truth):
        return dict.fromkeys(PHENOTYPES), 0
    scores = r2_per_phenotype(truth, predicted, PHENOTYPES)["R2"]
    return {
        c: None if not np.isfinite(v) else round(float(v), 4) for c, v in zip(PHENOTYPES, scores)
    }, len(truth)


def calibrate(
    model: BundleModel, store: Store, *, crop: int, level: float, batch_size: int = 32
) -> tuple[dict[str, float | None], int, dict[str, Any]]:
    """The head's validation R² and size, and intervals.json: the conformal half-widths fitted
    on the val split (`ptacl.eval.conformal`) with their coverage and width measured on the
    test split, which neither the head nor the half-widths saw."""
    from ptacl.eval.conformal import fit_intervals, half_widths, interval_coverage

    val = split_predictions(model, store, "val", crop=crop, batch_size=batch_size)
    r2, n_val = validation_r2(model, store, crop=crop, val=val)
    intervals = fit_intervals(*val, PHENOTYPES, level)
    intervals["fitted_on"] = {"store": Path(store.root).name, "split": "val"}
    truth, predicted = split_predictions(model, store, "test", crop=crop, batch_size=batch_size)
    intervals["test"] = interval_coverage(
        truth, predicted, half_widths(intervals, PHENOTYPES), PHENOTYPES
    )
    return r2, n_val, intervals


def fit_probe(
    embeddings: np.ndarray, targets: np.ndarray, *, where: str = "store", method: str = "ols"
) -> tuple[LinearProbe, np.ndarray]:
    """The bundle's linear head: `ptacl evaluate`'s probe fit (`ptacl.eval.probe.fit_ols`, or
    `fit_ridge` for `method="ridge"`) on (N, D) embeddings and (N, P) targets (NaN unknown), as
    a `LinearProbe`, and the rows used per phenotype (P,). OLS raises ValueError when a
    phenotype has too few rows for D + 1 coefficients: an under-determined fit interpolates its
    training set and predicts nothing."""
    from ptacl.eval.probe import fit_ols, fit_ridge, ols_underdetermined

    if method not in ("ols", "ridge"):
        raise ValueError(f"probe must be 'ols' or 'ridge', got {method!r}")
    dim = embeddings.shape[1]
    for p, known in enumerate(np.isfinite(targets).sum(axis=0)):
        problem = ols_underdetermined(int(known), dim) if method == "ols" else None
        if problem is not None:
            name = PHENOTYPES[p] if p < len(PHENOTYPES) else str(p)
            raise ValueError(
                f"{where}: {name}: {problem}; need more subjects, a narrower encoder, or "
                "--probe ridge"
            )
    fit = (fit_ols if method == "ols" else fit_ridge)(embeddings, targets)
    head = LinearProbe(dim, targets.shape[1])
    head.load_state_dict(
        {
            "mean": torch.from_numpy(fit.mean),
            "weight": torch.from_numpy(fit.weight),
            "bias": torch.from_numpy(fit.bias),
        }
    )
    return head, fit.used
