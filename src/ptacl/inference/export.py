"""Make a bundle from a trained ECG encoder: fit the phenotype probe, describe, write.

The linear probe is ordinary least squares (the paper's linear probing) from the mean-pooled
encoder embedding to the 10 phenotypes, fitted on the train split of a prepared store with the
same crops and averaging that `ptacl predict` uses, so the probe sees at fit time exactly what
it sees at prediction time. Its R² on the store's validation split is written into config.json
so a user can judge the bundle before trusting it.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import ptacl
from ptacl.config import to_dict
from ptacl.data.store import ECG_FS, ECG_SAMPLES, LEADS, Store
from ptacl.inference.bundle import encoder_fingerprint, write_bundle
from ptacl.inference.crops import run_over_crops
from ptacl.inference.modules import LinearProbe
from ptacl.phenotypes import PHENOTYPE_NAMES, PHENOTYPE_UNITS, PHENOTYPES

COMBINE = (
    "mean over ceil(S / crop) crops spread evenly from the first to the last sample "
    "(a 10-s ECG: its two non-overlapping 5-s halves); see ptacl.inference.crops"
)


#: Relative singular-value cut-off of the OLS fit; float32 embeddings carry ~7 digits.
RCOND = 1e-6


def preprocessing_spec(crop: int) -> dict[str, Any]:
    """What `ptacl predict` does to a recording before the encoder, as plain JSON."""
    from ptacl.ecg import preprocess_ecg

    defaults = inspect.signature(preprocess_ecg).parameters
    return {
        "function": "ptacl.ecg.preprocess_ecg",
        "validation": "ptacl.io.validate.validate_ecg",
        "fs": ECG_FS,
        "samples": ECG_SAMPLES,
        "crop": int(crop),
        "combine": COMBINE,
        "leads": list(LEADS),
        "units": "mV before preprocessing",
        "dwt": {k: defaults[k].default for k in ("wavelet", "level", "drop_details")},
        "normalisation": "z-score per lead over the recording",
    }


def phenotypes_spec() -> dict[str, Any]:
    return {
        "columns": list(PHENOTYPES),
        "names": list(PHENOTYPE_NAMES),
        "units": list(PHENOTYPE_UNITS),
    }


def embed_store(
    encoder: nn.Module,
    store: Store,
    split: str,
    *,
    crop: int,
    batch_size: int = 32,
    chunk: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the split's ECGs and their embeddings (N, D), averaged over crops."""
    rows = store.indices(split, ecg=True)
    lengths = store.subjects["ecg_length"].to_numpy()
    encoder = encoder.eval()

    def pooled(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"embedding": encoder.pool(encoder.forward_features(x))}

    parts = []
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        ecgs = [np.asarray(store.ecg[i], dtype=np.float32) for i in part]
        out = run_over_crops(
            pooled, ecgs, [int(lengths[i]) for i in part], crop, batch_size=batch_size
        )
        parts.append(out["embedding"])
    width = int(getattr(encoder, "width", 0))
    return rows, (np.concatenate(parts) if parts else np.zeros((0, width), np.float32))


def fit_ols(
    embeddings: np.ndarray, targets: np.ndarray, *, where: str = "store"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """OLS with intercept, one fit per target column on the rows where it is known.

    embeddings (N, D), targets (N, P) with NaN unknown -> mean (D,), weight (P, D), bias (P,),
    rows used (P,); predictions are (x - mean) @ weight.T + bias (`LinearProbe`). Centring
    changes nothing mathematically, only the conditioning. Raises ValueError when a column has
    too few rows for D + 1 coefficients: an underdetermined fit interpolates its training set
    and predicts nothing.

    Directions whose singular value is below `RCOND` times the largest are dropped (the
    minimum-norm least-squares solution): a mean-pooled LayerNorm output can be exactly
    collinear (at initialisation its D coordinates sum to 0), and float32 rounding along such a
    direction would otherwise be fitted with coefficients of 1e7.
    """
    n, dim = embeddings.shape
    mean = embeddings.astype(np.float64).mean(axis=0) if n else np.zeros(dim)
    x = np.concatenate([embeddings - mean, np.ones((n, 1))], axis=1)  # (N, D+1) float64
    weight = np.zeros((targets.shape[1], dim))
    bias = np.zeros(targets.shape[1])
    used = np.zeros(targets.shape[1], dtype=np.int64)
    for p in range(targets.shape[1]):
        known = np.isfinite(targets[:, p])
        used[p] = known.sum()
        if used[p] <= dim + 1:
            raise ValueError(
                f"{where}: {used[p]} training subjects with phenotype {p} for {dim + 1} OLS "
                "coefficients; need more subjects (or a narrower encoder)"
            )
        coef, *_ = np.linalg.lstsq(x[known], targets[known, p].astype(np.float64), rcond=RCOND)
        weight[p], bias[p] = coef[:-1], coef[-1]
    return mean, weight, bias, used


def r2_per_column(predicted: np.ndarray, targets: np.ndarray) -> list[float | None]:
    """R² of each column over its known rows (None with fewer than two)."""
    scores: list[float | None] = []
    for p in range(targets.shape[1]):
        known = np.isfinite(targets[:, p])
        if known.sum() < 2:
            scores.append(None)
            continue
        y, yhat = targets[known, p], predicted[known, p]
        total = float(((y - y.mean()) ** 2).sum())
        scores.append(1.0 - float(((y - yhat) ** 2).sum()) / total if total > 0 else None)
    return scores


def export_with_probe(
    out: str | Path,
    *,
    encoder: nn.Module,
    store: Store | str | Path,
    source: Mapping[str, Any],
    projection: nn.Module | None = None,
    projection_spec: Mapping[str, Any] | None = None,
    batch_size: int = 32,
    overwrite: bool = False,
) -> Path:
    """Fit the OLS probe on `store`'s train split, then write the bundle to `out`.

    `encoder` is an `EcgEncoder` (its `config` dataclass becomes config.json's constructor
    arguments); `projection` the ECG projection head of an aligned run, described by
    `projection_spec` ({"kind", "kwargs"}, see `ptacl.inference.modules.PROJECTIONS`).
    """
    store = store if isinstance(store, Store) else Store.open(store)
    crop = int(encoder.config.samples)
    rows, train = embed_store(encoder, store, "train", crop=crop, batch_size=batch_size)
    targets = np.asarray(store.phenotypes[rows], dtype=np.float64)
    mean, weight, bias, used = fit_ols(train, targets, where=f"{store.root} (train split)")
    head = LinearProbe(weight.shape[1], weight.shape[0])
    head.load_state_dict(
        {
            "mean": torch.from_numpy(mean),
            "weight": torch.from_numpy(weight),
            "bias": torch.from_numpy(bias),
        }
    )

    val_rows, val = embed_store(encoder, store, "val", crop=crop, batch_size=batch_size)
    val_r2 = (
        r2_per_column(
            (val - mean) @ weight.T + bias, np.asarray(store.phenotypes[val_rows], np.float64)
        )
        if len(val_rows)
        else [None] * len(PHENOTYPES)
    )
    head_spec = {
        "kind": "linear",
        "kwargs": {"in_features": int(weight.shape[1]), "out_features": int(weight.shape[0])},
        "input": "pooled",
        "method": (
            "ordinary least squares with intercept on centred embeddings, one fit per "
            f"phenotype; singular values below {RCOND:g} x the largest dropped"
        ),
        "fitted_on": {
            "store": str(Path(store.root).resolve()),
            "split": "train",
            "subjects": dict(zip(PHENOTYPES, used.tolist())),
        },
        "validation_r2": dict(zip(PHENOTYPES, val_r2)),
        "validation_subjects": len(val_rows),
    }
    return export_bundle(
        out,
        encoder=encoder,
        head=head,
        head_spec=head_spec,
        source=source,
        projection=projection,
        projection_spec=projection_spec,
        overwrite=overwrite,
    )


def export_bundle(
    out: str | Path,
    *,
    encoder: nn.Module,
    head: nn.Module,
    head_spec: Mapping[str, Any],
    source: Mapping[str, Any],
    projection: nn.Module | None = None,
    projection_spec: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a bundle from modules already built: the encoder, its head, an optional projection."""
    if (projection is None) != (projection_spec is None):
        raise ValueError("give both projection and projection_spec, or neither")
    encoder_state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    shared_dim = None
    if projection is not None:
        with torch.no_grad():
            shared_dim = int(projection(torch.zeros(1, encoder.width)).shape[-1])
    config = {
        "model": "ptacl ECG encoder with a phenotype head",
        "ptacl_version": ptacl.__version__,
        "source": dict(source),
        "encoder": {"kind": "ecg_encoder", "kwargs": to_dict(encoder.config)},
        "projection": dict(projection_spec) if projection_spec is not None else None,
        "head": dict(head_spec),
        "embedding": {
            "dim": int(encoder.width),
            "pooling": "mean over the encoder's output tokens (after its final norm), " + COMBINE,
            "encoder_id": encoder_fingerprint(encoder_state),
            "shared_dim": shared_dim,
            "compatibility": (
                "embeddings are comparable only between outputs of the same encoder: same "
                "encoder_id. space 'encoder' is what the probe reads; space 'shared' (aligned "
                "runs only) is the ECG projection, where CMR embeddings of the same run live."
            ),
        },
    }
    tensors = {"encoder": encoder_state, "head": dict(head.state_dict())}
    if projection is not None:
        tensors["projection"] = dict(projection.state_dict())
    return write_bundle(
        out,
        config=config,
        preprocessing=preprocessing_spec(int(encoder.config.samples)),
        phenotypes=phenotypes_spec(),
        tensors=tensors,
        overwrite=overwrite,
    )
