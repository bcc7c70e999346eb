"""The read side of a bundle's endpoint probabilities (endpoints.json): check it, apply it.

    models = endpoint_models(doc)                 # columns, means (E, D), weights (E, D), biases (E,)
    p = endpoint_probabilities(embedding, *models[1:])   # (N, E) in [0, 1]

endpoints.json (written by `ptacl.export.endpoint_fit`) holds, per clinical endpoint fitted at
export, a logistic model of the ECG embedding (space 'encoder', crop-averaged, what the linear
probe reads): P = sigmoid((x - mean) @ weight + bias), the probe's standardisation and its
calibration on the val split already folded into `mean`, `weight` and `bias`. Its predict
column is `P(<key>)`, e.g. `P(lvsd)`; the definition, source and measured calibration of each
are in the same file and in the model card. Endpoints too rare to fit are listed under
`skipped` with their counts and give no column. Pure numpy: the core install needs no
scikit-learn to apply it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def column_name(key: str) -> str:
    """The predict column of endpoint `key`: 'P(lvsd)'."""
    return f"P({key})"


def check_endpoints(doc: Any, where: str, dim: int) -> str | None:
    """Why `doc` is not an endpoints.json a (N, `dim`) embedding can be scored with, or None:
    an 'endpoints' table whose entries each have a unique 'P(...)' column, `dim` finite
    numbers in 'mean' and 'weight' and a finite 'bias'. `where` prefixes the reason."""
    table = doc.get("endpoints") if isinstance(doc, Mapping) else None
    if not isinstance(table, Mapping):
        return f"{where}: has no 'endpoints' table"
    seen: set[str] = set()
    for key, entry in table.items():
        if not isinstance(entry, Mapping):
            return f"{where}: endpoint {key!r} is not a table"
        column = entry.get("column")
        if column != column_name(str(key)) or column in seen:
            return f"{where}: endpoint {key!r} has column {column!r}, expected {column_name(key)!r}"
        seen.add(column)
        for name in ("mean", "weight"):
            values = entry.get(name)
            if not isinstance(values, list) or len(values) != dim or not all(map(_finite, values)):
                size = len(values) if isinstance(values, list) else type(values).__name__
                return (
                    f"{where}: endpoint {key!r} {name} must be {dim} finite numbers (the "
                    f"embedding's width), got {size}"
                )
        if not _finite(entry.get("bias")):
            return f"{where}: endpoint {key!r} bias {entry.get('bias')!r} is not a finite number"
    return None


def _finite(value: Any) -> bool:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return ok and math.isfinite(value)


def endpoint_models(
    doc: Mapping[str, Any],
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(columns, means (E, D), weights (E, D), biases (E,)) of a checked endpoints.json."""
    entries = list(doc["endpoints"].values())
    dim = len(entries[0]["mean"]) if entries else 0
    means = np.array([e["mean"] for e in entries], np.float64).reshape(len(entries), dim)
    weights = np.array([e["weight"] for e in entries], np.float64).reshape(len(entries), dim)
    biases = np.array([e["bias"] for e in entries], np.float64)
    return [e["column"] for e in entries], means, weights, biases


def endpoint_probabilities(
    embedding: np.ndarray, means: np.ndarray, weights: np.ndarray, biases: np.ndarray
) -> np.ndarray:
    """(N, E) probabilities sigmoid((x - mean_e) @ weight_e + bias_e) of (N, D) embeddings x
    for E endpoints (means, weights (E, D), biases (E,)); float64."""
    x = np.asarray(embedding, np.float64)  # (N, D)
    # each endpoint centres x on its own train mean, as its probe was fitted
    logit = np.einsum("ned,ed->ne", x[:, None, :] - means, weights) + biases  # (N, E)
    return 0.5 * (1.0 + np.tanh(0.5 * logit))  # the logistic function, without overflow
