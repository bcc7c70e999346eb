"""Make a bundle from a trained ECG encoder: fit the phenotype probe, describe, write.

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

Every bundle carries a model card, README.md (`ptacl.inference.card`): data origin from the
store's manifest, training command, metrics, intended use, governance, licence. Nothing written
names a path of the training machine: runs and stores are named by their base names.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import ptacl
from ptacl.atomic import output_lock
from ptacl.data.store import Store
from ptacl.eval.conformal import DEFAULT_LEVEL, check_level
from ptacl.eval.probe import RCOND
from ptacl.inference.bundle import encoder_fingerprint, write_bundle
from ptacl.inference.card import data_provenance, model_card
from ptacl.inference.crops import store_outputs
from ptacl.inference.modules import BundleModel
from ptacl.inference.plausibility import fit_ood, fit_ranges
from ptacl.models.heads import LinearProbe
from ptacl.models.registry import encoder_spec
from ptacl.phenotypes import PHENOTYPE_NAMES, PHENOTYPE_UNITS, PHENOTYPES
from ptacl.schema import ECG_FS, ECG_SAMPLES, LEADS

COMBINE = (
    "mean over ceil(S / crop) crops spread evenly from the first to the last sample "
    "(a 10-s ECG: its two non-overlapping 5-s halves); see ptacl.inference.crops"
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
) -> Plausibility:
    """Ranges from the store's train labels, OOD statistics from its train (and validation)
    embeddings; `train` = (rows, embeddings) when already computed."""
    rows, embeddings = train or embed_store(encoder, store, "train", batch_size=batch_size)
    _, held_out = embed_store(encoder, store, "val", batch_size=batch_size)
    mean, whiten, spec = fit_ood(embeddings, held_out)
    spec["fitted_on"] = {"store": Path(store.root).name, "splits": ["train", "val"]}
    targets = np.asarray(store.phenotypes[rows], dtype=np.float64)
    return Plausibility(
        ranges=fit_ranges(targets, PHENOTYPES),
        ood=spec,
        tensors={"mean": torch.from_numpy(mean), "whiten": torch.from_numpy(whiten)},
    )


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
) -> Path:
    """Fit the linear probe (`probe`: "ols", the paper's, or "ridge"; `ptacl evaluate --probe`)
    on `store`'s train split and its prediction intervals (nominal `interval_level`) on the
    val split, then write the bundle to `out`.

    `encoder` is a registered ECG encoder (its name and `config` become config.json's
    constructor arguments, `ptacl.models.registry.encoder_spec`); `projection` the ECG
    projection head of an aligned run, described by `projection_spec` ({"kind", "kwargs"},
    see `ptacl.inference.modules.PROJECTIONS`).
    `card`: `model_card` keywords (training, metrics); the data's are read from `store`.
    """
    _refuse_existing(out, overwrite)
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
    checks = plausibility_from_store(encoder, store, batch_size=batch_size, train=(rows, train))
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
) -> Path:
    """Write a bundle from modules already built: the encoder, its head, an optional projection
    and what predictions are checked against (without it: the physiological bounds only).
    `card`: keywords of `ptacl.inference.card.model_card` (data, training, metrics);
    `intervals`: intervals.json (`calibrate`; without it, predictions carry no interval)."""
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
        readme=model_card(config, phenotypes, preprocessing, intervals=intervals, **(card or {})),
        intervals=intervals,
    )


def ecg_projection_spec(head: nn.Module, width: int) -> dict[str, Any]:
    """config.json's description of an align run's ECG projection head (`PROJECTIONS`: mlp)."""
    from ptacl.models.heads import head_config_from_state

    config = head_config_from_state(head.state_dict())
    return {
        "kind": "mlp",
        "kwargs": {"width": width, "hidden": config.hidden, "dim": config.dim, "norm": config.norm},
    }


def finetune_head_spec(head: nn.Module, config: Mapping[str, Any], width: int) -> dict[str, Any]:
    """config.json's description of a fine-tune run's head (`ptacl.runs.finetune_head`)."""
    outputs = int(head.target_mean.shape[0])
    if outputs != len(PHENOTYPES):
        raise ValueError(f"the fine-tuned head has {outputs} outputs, expected {len(PHENOTYPES)}")
    head_config = config.get("head") or {}
    return {
        "kind": "attention_pool",
        "kwargs": {
            "width": width,
            "outputs": outputs,
            "heads": int(head_config.get("heads", 8)),
            "dropout": float(head_config.get("dropout", 0.0)),
        },
        "input": "tokens",
        "method": (
            "fine-tuned with attention pooling (FN+AP) on train-standardised phenotypes; "
            "predictions averaged over the crops"
        ),
        "fitted_on": {
            "store": _base_name((config.get("data") or {}).get("store")),
            "split": "train",
        },
    }


def export_run(
    run_dir: str | Path,
    out: str | Path,
    *,
    data: str | Path | None = None,
    which: str = "best",
    batch_size: int = 32,
    overwrite: bool = False,
    metrics: str | Path | None = None,
    probe: str = "ols",
    interval_level: float = DEFAULT_LEVEL,
) -> Path:
    """Bundle a training run's ECG encoder: an ECG MAE or align run with a linear probe (`probe`:
    OLS or ridge, as `ptacl evaluate --probe`) fitted on the train split of `data` (default: the
    store the run trained on), or a fine-tune run with
    its own attention-pooling head (scored on `data`'s val split when a store is at hand).
    `metrics`: the run's `metrics.json` from `ptacl evaluate`, whose test metrics (with CIs)
    go into the model card. `interval_level`: the nominal coverage of the prediction
    intervals fitted on `data`'s val split (none without a store).

    The bundle's lock (`ptacl.atomic.output_lock`) is held throughout, so a second export into
    `out` is refused at once rather than after minutes of embedding."""
    check_level(interval_level)  # before minutes of embedding
    with output_lock(Path(out)):
        _refuse_existing(out, overwrite)
        card = _run_card(Path(run_dir), metrics)
        return _export_run(
            Path(run_dir), out, data, which, batch_size, overwrite, card, probe, interval_level
        )


def _export_run(
    run_dir: Path,
    out: str | Path,
    data: str | Path | None,
    which: str,
    batch_size: int,
    overwrite: bool,
    card: dict[str, Any],
    probe: str = "ols",
    interval_level: float = DEFAULT_LEVEL,
) -> Path:
    from ptacl.runs import (
        RunDirError,
        checkpoint_state,
        finetune_head,
        load_encoder,
        projection_heads,
        read_run_config,
        run_modalities,
        run_store,
    )

    config = read_run_config(run_dir)
    if "ecg" not in run_modalities(config):
        raise RunDirError(f"{run_dir}: a CMR run has no ECG encoder to export")
    encoder = load_encoder(run_dir, "ecg", which).eval()
    store = data
    if store is None and (config.get("data") or {}).get("store"):
        store = run_store(run_dir, config)  # RunDirError naming --data when it moved
    ckpt, state = checkpoint_state(run_dir, which)
    source = {
        "run": run_dir.resolve().name,  # the name only: no path of the training machine
        "checkpoint": ckpt.name,
        "checkpoint_sha256": _file_sha256(ckpt),
    }
    if config.get("stage") == "finetune":
        head = finetune_head(state, config, int(encoder.width))
        spec = finetune_head_spec(head, config, int(encoder.width))
        checks = intervals = None
        if store:
            crop = int(encoder.samples)
            model = BundleModel(encoder, head, "tokens")
            opened = Store.open(store)
            spec["validation_r2"], spec["validation_subjects"], intervals = calibrate(
                model, opened, crop=crop, level=interval_level, batch_size=batch_size
            )
            checks = plausibility_from_store(encoder, opened, batch_size=batch_size)
            card["data"] = data_provenance(opened)
        return export_bundle(
            out,
            encoder=encoder,
            head=head,
            head_spec=spec,
            source={**source, "stage": "finetune"},
            plausibility=checks,
            overwrite=overwrite,
            card=card,
            intervals=intervals,
        )
    if not store:
        raise RunDirError(f"{run_dir}/config.yaml names no data.store; pass --data STORE")
    width = int(encoder.width)
    projection = projection_heads(state, {"ecg": width}).get("ecg")
    return export_with_probe(
        out,
        encoder=encoder,
        store=store,
        source={**source, "stage": config.get("stage") or ("align" if projection else "pretrain")},
        projection=projection,
        projection_spec=None if projection is None else ecg_projection_spec(projection, width),
        batch_size=batch_size,
        overwrite=overwrite,
        card=card,
        probe=probe,
        interval_level=interval_level,
    )


def training_command(run_dir: Path, config: Mapping[str, Any]) -> str:
    """A command that trains the run again from its resolved config.yaml (which holds every
    setting of the command that ran, init runs and store included) into a new folder."""
    modality = config.get("modality", "ecg")
    if config.get("stage") == "finetune":
        command = "ptacl finetune"
    elif "simclr" in config:
        command = f"ptacl simclr {modality}"
    elif "mae" in config:
        command = f"ptacl pretrain {modality}"
    else:
        command = "ptacl align"
    return f"{command} --config {run_dir.name}/config.yaml --out {run_dir.name}_again"


def _run_card(run_dir: Path, metrics: str | Path | None) -> dict[str, Any]:
    """Model-card keywords from a run folder: its training command and the test metrics: those
    of `ptacl evaluate` when given, else a fine-tune run's own test_metrics.json (the exported
    head's test R² with CIs). Read before minutes of embedding, so a bad path fails fast."""
    import json

    from ptacl.runs import RunDirError, read_run_config

    config = read_run_config(run_dir)
    card: dict[str, Any] = {"training": {"command": training_command(run_dir, config)}}
    if metrics is not None:
        path = Path(metrics)
        try:
            card["metrics"] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise RunDirError(f"{path}: not a readable metrics.json of ptacl evaluate ({e})") from e
        card["metrics_name"] = path.name
    elif (run_dir / "test_metrics.json").is_file():  # written by `ptacl finetune`
        try:
            own = json.loads((run_dir / "test_metrics.json").read_text(encoding="utf-8"))
            card["metrics"] = {
                "info": {
                    "source": "`ptacl finetune`",
                    "split": "test",
                    "data": _base_name((config.get("data") or {}).get("store")),
                },
                "bootstrap": {"n_boot": own.get("n_boot"), "level": 0.95},
                "regression": {"FN+AP (this run's head)": own["r2"]},
            }
            card["metrics_name"] = "test_metrics.json"
        except (OSError, ValueError, KeyError, AttributeError):
            pass  # a damaged file costs the card its test metrics, not the export
    return card


def _base_name(path: str | Path | None) -> str | None:
    return None if path in (None, "") else Path(str(path)).name


def _refuse_existing(out: str | Path, overwrite: bool) -> None:
    """Before minutes of embedding, not after (write_bundle checks again when writing)."""
    if Path(out).exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists; pass --overwrite to replace it")


def _file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()
