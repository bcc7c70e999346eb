"""The inference bundle's format: its files and their names, and the one writer of it.

Layout of a bundle folder::

    manifest.json        format name and version, sha256 and size of every file below
    README.md            the model card: data origin, training command, metrics, intended
                         use, governance, licence (`ptacl.export.card`)
    config.json          model kind, ECG encoder constructor arguments, the head, embedding space
    preprocessing.json   sampling rate, samples, crop, how crops are combined, leads, DWT settings
    phenotypes.json      the head's outputs in order: columns, names, units, and `ranges`: per
                         column the physiological bounds and the training labels' range
                         (`ptacl.inference.plausibility`; bundles before it have no ranges)
    weights.safetensors  `encoder.*` the ECG encoder's state dict, `projection.*` the ECG
                         projection head of an aligned run (absent otherwise), `head.*` the linear
                         probe (`mean` (D,), `weight` (P, D), `bias` (P,), float64) or the
                         fine-tuned attention-pooling head with its target mean and SD, `ood.*`
                         the train embeddings' `mean` (D,) and `whiten` (D, D) for the
                         out-of-distribution score (threshold in config.json `ood`; optional)
    intervals.json       per phenotype the half-width of the head's conformal prediction
                         interval, its nominal level, and the coverage measured on the test
                         split at export (`ptacl.eval.conformal`; optional: bundles before it
                         have none, and predict without interval columns)
    endpoints.json       per clinical endpoint a calibrated logistic model of the embedding
                         (`mean`, `weight` (D,), `bias`), its definition and its measured
                         calibration, and the endpoints skipped with their counts
                         (`ptacl.inference.endpoints`; optional: bundles before it have none,
                         and predict without `P(...)` columns)

The read side, which verifies all of this before a byte is trusted, is `ptacl.inference.bundle`;
the writer sits beside the format so the two cannot drift apart.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import ptacl
from ptacl.atomic import atomic_folder
from ptacl.errors import PtaclError

BUNDLE_FORMAT = "ptacl-bundle"
BUNDLE_VERSION = 1
WEIGHTS = "weights.safetensors"
#: The model card (optional for reading: bundles before it have none).
README = "README.md"
JSON_FILES = ("config.json", "preprocessing.json", "phenotypes.json")
#: The prediction intervals (optional for reading: bundles before them have none).
INTERVALS = "intervals.json"
#: The endpoint probabilities (optional for reading: bundles before them have none).
ENDPOINTS = "endpoints.json"
#: Parts of the weights file, by key prefix.
PARTS = ("encoder", "projection", "head", "ood")
#: The safetensors metadata key holding the architecture config.json described at export.
ARCHITECTURE_KEY = "ptacl_architecture"


class BundleError(PtaclError, ValueError):
    """A bundle that is missing, tampered with, unsafe or inconsistent; the message names the file."""


@dataclass(frozen=True)
class Bundle:
    """A verified bundle read into memory; build its modules with `ptacl.inference.modules`."""

    root: Path
    manifest: dict[str, Any]
    config: dict[str, Any]
    preprocessing: dict[str, Any]
    phenotypes: dict[str, Any]
    tensors: dict[str, dict[str, torch.Tensor]]  # part -> state dict without the prefix
    intervals: dict[str, Any] | None = None  # intervals.json; None for bundles before it
    endpoints: dict[str, Any] | None = None  # endpoints.json; None for bundles before it

    @property
    def columns(self) -> list[str]:
        """Output column names with units, e.g. 'LVEDV (mL)', in the head's order."""
        return list(self.phenotypes["columns"])


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encoder_fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over an encoder's tensors (names, dtypes, shapes, values), independent of file format.

    Two embedding sets are comparable only if made by the same encoder; storing this id beside
    them (the bundle's `config.json` has it) lets `ptacl retrieve` check that instead of trusting.
    """
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def write_bundle(
    out: str | Path,
    *,
    config: Mapping[str, Any],
    preprocessing: Mapping[str, Any],
    phenotypes: Mapping[str, Any],
    tensors: Mapping[str, Mapping[str, torch.Tensor]],
    overwrite: bool = False,
    readme: str | None = None,
    intervals: Mapping[str, Any] | None = None,
    endpoints: Mapping[str, Any] | None = None,
) -> Path:
    """Write a bundle atomically (a temporary sibling folder renamed at the end).

    `tensors` maps a part of `PARTS` to its state dict; keys are stored as `part.name`.
    `readme`: the model card (`ptacl.export.card`), hashed in the manifest like the rest;
    `intervals`: intervals.json (`ptacl.eval.conformal.fit_intervals` and its coverage);
    `endpoints`: endpoints.json (`ptacl.export.endpoint_fit.fit_endpoints`).
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists; pass --overwrite to replace it")
    unknown = set(tensors) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown weight parts {sorted(unknown)}; expected some of {PARTS}")
    flat: dict[str, torch.Tensor] = {}
    for part, state in tensors.items():
        for name, tensor in state.items():
            # safetensors refuses shared or strided storage; a fresh contiguous copy is exact.
            flat[f"{part}.{name}"] = tensor.detach().to("cpu").contiguous().clone()

    from safetensors.torch import save as save_safetensors

    documents = {
        "config.json": dict(config),
        "preprocessing.json": dict(preprocessing),
        "phenotypes.json": dict(phenotypes),
    }
    contents = {name: json.dumps(doc, indent=2).encode() for name, doc in documents.items()}
    if intervals is not None:
        # allow_nan=False: an unbounded interval is null, never non-JSON Infinity
        contents[INTERVALS] = json.dumps(dict(intervals), indent=2, allow_nan=False).encode()
    if endpoints is not None:
        contents[ENDPOINTS] = json.dumps(dict(endpoints), indent=2, allow_nan=False).encode()
    metadata = {"format": BUNDLE_FORMAT, ARCHITECTURE_KEY: json.dumps(architecture(config))}
    contents[WEIGHTS] = save_safetensors(flat, metadata=metadata)
    if readme is not None:
        contents[README] = readme.encode("utf-8")
    manifest = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "ptacl_version": ptacl.__version__,
        "files": {
            name: {"sha256": sha256_bytes(data), "bytes": len(data)}
            for name, data in sorted(contents.items())
        },
    }
    contents["manifest.json"] = json.dumps(manifest, indent=2).encode()

    with atomic_folder(out, overwrite=overwrite) as tmp:
        for name, data in contents.items():
            (tmp / name).write_bytes(data)
    return out


def architecture(config: Mapping[str, Any]) -> dict[str, Any]:
    """What in config.json decides the computation (encoder, projection, head constructors);
    recorded in the weights file at export and compared on load."""
    head = config.get("head")
    head = head if isinstance(head, Mapping) else {}
    return {
        "encoder": config.get("encoder"),
        "projection": config.get("projection"),
        "head": {k: head.get(k) for k in ("kind", "kwargs", "input")},
    }
