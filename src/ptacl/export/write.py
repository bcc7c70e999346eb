"""Write a bundle from modules already built, or fit the probe on a store and write it.

`export_with_probe` fits the head (`ptacl.export.fit`) and writes; `export_bundle` writes what
it is given: config.json, preprocessing.json, phenotypes.json, intervals.json and the weights
through `ptacl.inference.bundle_format.write_bundle`, the format the read side loads.

Every bundle carries a model card, README.md (`ptacl.export.card`): data origin from the
store's manifest, training command, metrics, intended use, governance, licence. Nothing written
names a path of the training machine: runs and stores are named by their base names.
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
from ptacl.data.store import Store
from ptacl.eval.conformal import DEFAULT_LEVEL
from ptacl.eval.probe import RCOND
from ptacl.export.card import data_provenance, model_card
from ptacl.export.fit import (
    Plausibility,
    calibrate,
    embed_store,
    fit_probe,
    plausibility_from_store,
    store_endpoints,
)
from ptacl.inference.bundle_format import encoder_fingerprint, write_bundle
from ptacl.inference.modules import BundleModel
from ptacl.inference.plausibility import fit_ranges
from ptacl.models.registry import encoder_spec
from ptacl.phenotypes import PHENOTYPE_NAMES, PHENOTYPE_UNITS, PHENOTYPES
from ptacl.schema import ECG_FS, ECG_SAMPLES, LEADS

COMBINE = (
    "mean over ceil(S / crop) crops spread evenly from the first to the last sample "
    "(a 10-s ECG: its two non-overlapping 5-s halves); see ptacl.embedding.crops"
)


def preprocessing_spec(crop: int) -> dict[str, Any]:
    """What `ptacl predict` does to a recording before the encoder, as plain JSON."""
    from ptacl.ecg import preprocess_ecg

    defaults = inspect.signature(preprocess_ecg).parameters
    return {
        "function": "ptacl.ecg.preprocess_ecg",
        "validation": "ptacl.qc.validate_ecg",
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
    card: Mapping[str, Any] | None = None,
    probe: str = "ols",
    interval_level: float = DEFAULT_LEVEL,
    endpoints: Any = None,
    n_boot: int = 1000,
) -> Path:
    """Fit the linear probe (`probe`: "ols", the paper's, or "ridge"; `ptacl evaluate --probe`)
    on `store`'s train split and its prediction intervals (nominal `interval_level`) on the
    val split, and the endpoint probabilities of `endpoints` (an `EndpointsConfig`; None: the
    shipped endpoints.yaml) on train and val (`ptacl.export.endpoint_fit`; their test CIs from
    `n_boot` bootstrap replicates), then write the bundle to `out`.

    `encoder` is a registered ECG encoder (its name and `config` become config.json's
    constructor arguments, `ptacl.models.registry.encoder_spec`); `projection` the ECG
    projection head of an aligned run, described by `projection_spec` ({"kind", "kwargs"},
    see `ptacl.inference.modules.PROJECTIONS`).
    `card`: `model_card` keywords (training, metrics); the data's are read from `store`.
    """
    refuse_existing(out, overwrite)
    store = store if isinstance(store, Store) else Store.open(store)
    crop = int(encoder.samples)
    rows, train = embed_store(encoder, store, "train", batch_size=batch_size)
    targets = np.asarray(store.phenotypes[rows], dtype=np.float64)
    head, used = fit_probe(train, targets, where=f"{store.root} (train split)", method=probe)
    r2, n_val, intervals = calibrate(
        BundleModel(encoder, head, "pooled"),
        store,
        crop=crop,
        level=interval_level,
        batch_size=batch_size,
    )
    chances, embedded = store_endpoints(
        encoder,
        store,
        endpoints,
        batch_size=batch_size,
        embedded={"train": (rows, train)},
        n_boot=n_boot,
    )
    checks = plausibility_from_store(
        encoder, store, batch_size=batch_size, train=(rows, train), val=embedded["val"]
    )
    head_spec = {
        "kind": "linear",
        "kwargs": {"in_features": int(train.shape[1]), "out_features": int(targets.shape[1])},
        "input": "pooled",
        "method": (
            "ordinary least squares with intercept on centred embeddings, one fit per "
            f"phenotype; singular values below {RCOND:g} x the largest dropped "
            "(the linear probe of `ptacl evaluate`)"
            if probe == "ols"
            else "ridge on standardised embeddings, one fit per phenotype, penalty by "
            "leave-one-out (RidgeCV), folded into one linear map (`ptacl evaluate --probe ridge`)"
        ),
        "fitted_on": {
            "store": Path(store.root).name,
            "split": "train",
            "subjects": dict(zip(PHENOTYPES, used.tolist())),
        },
        "validation_r2": r2,
        "validation_subjects": n_val,
    }
    return export_bundle(
        out,
        encoder=encoder,
        head=head,
        head_spec=head_spec,
        source=source,
        projection=projection,
        projection_spec=projection_spec,
        plausibility=checks,
        overwrite=overwrite,
        card={**(card or {}), "data": data_provenance(store)},
        intervals=intervals,
        endpoints=chances,
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
    plausibility: Plausibility | None = None,
    overwrite: bool = False,
    card: Mapping[str, Any] | None = None,
    intervals: Mapping[str, Any] | None = None,
    endpoints: Mapping[str, Any] | None = None,
) -> Path:
    """Write a bundle from modules already built: the encoder, its head, an optional projection
    and what predictions are checked against (without it: the physiological bounds only).
    `card`: keywords of `ptacl.export.card.model_card` (data, training, metrics);
    `intervals`: intervals.json (`calibrate`; without it, predictions carry no interval);
    `endpoints`: endpoints.json (`store_endpoints`; without it, no endpoint probabilities)."""
    if (projection is None) != (projection_spec is None):
        raise ValueError("give both projection and projection_spec, or neither")
    encoder_state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    name, kwargs = encoder_spec(encoder)  # what `ptacl.load` rebuilds it from
    shared_dim = None
    if projection is not None:
        with torch.no_grad():
            shared_dim = int(projection(torch.zeros(1, encoder.width)).shape[-1])
    config = {
        "model": "ptacl ECG encoder with a phenotype head",
        "ptacl_version": ptacl.__version__,
        "source": dict(source),
        "encoder": {"kind": "ecg_encoder", "name": name, "kwargs": kwargs},
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
                "runs only) is the ECG projection head applied to the crop-averaged embedding, "
                "where the same run's projected CMR embeddings (`ptacl embed`: cmr_proj) live."
            ),
        },
    }
    tensors = {"encoder": encoder_state, "head": dict(head.state_dict())}
    if projection is not None:
        tensors["projection"] = dict(projection.state_dict())
    phenotypes = phenotypes_spec()
    if plausibility is not None:
        phenotypes["ranges"] = plausibility.ranges
        config["ood"] = plausibility.ood
        tensors["ood"] = plausibility.tensors
    else:
        phenotypes["ranges"] = fit_ranges(np.zeros((0, len(PHENOTYPES))), PHENOTYPES)
    preprocessing = preprocessing_spec(int(encoder.samples))
    return write_bundle(
        out,
        config=config,
        preprocessing=preprocessing,
        phenotypes=phenotypes,
        tensors=tensors,
        overwrite=overwrite,
        readme=model_card(
            config,
            phenotypes,
            preprocessing,
            intervals=intervals,
            endpoints=endpoints,
            **(card or {}),
        ),
        intervals=intervals,
        endpoints=endpoints,
    )


def refuse_existing(out: str | Path, overwrite: bool) -> None:
    """Before minutes of embedding, not after (write_bundle checks again when writing)."""
    if Path(out).exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists; pass --overwrite to replace it")
