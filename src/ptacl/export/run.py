"""Bundle a training run: `ptacl export --model RUN`.

An ECG MAE or align run gets a linear probe fitted on a store (`ptacl.export.write.
export_with_probe`); a fine-tune run keeps its own attention-pooling head, scored and
calibrated on the store when one is at hand. The run's training command and test metrics go
into the model card; its checkpoint is named by file name and hash, never by its path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from ptacl.atomic import output_lock
from ptacl.data.store import Store
from ptacl.eval.conformal import DEFAULT_LEVEL, check_level
from ptacl.export.card import data_provenance
from ptacl.export.fit import calibrate, plausibility_from_store, store_endpoints
from ptacl.export.write import export_bundle, export_with_probe, refuse_existing
from ptacl.inference.modules import BundleModel
from ptacl.phenotypes import PHENOTYPES


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
    endpoints: Any = None,
    n_boot: int = 1000,
) -> Path:
    """Bundle a training run's ECG encoder: an ECG MAE or align run with a linear probe (`probe`:
    OLS or ridge, as `ptacl evaluate --probe`) fitted on the train split of `data` (default: the
    store the run trained on), or a fine-tune run with
    its own attention-pooling head (scored on `data`'s val split when a store is at hand).
    `metrics`: the run's `metrics.json` from `ptacl evaluate`, whose test metrics (with CIs)
    go into the model card. `interval_level`: the nominal coverage of the prediction
    intervals fitted on `data`'s val split (none without a store). `endpoints`: the clinical
    endpoints (an `EndpointsConfig`; None: the shipped endpoints.yaml) whose probabilities
    are fitted on `data` (`ptacl.export.endpoint_fit`; none without a store), their test
    metrics' CIs from `n_boot` bootstrap replicates (as `ptacl evaluate --n-boot`).

    The bundle's lock (`ptacl.atomic.output_lock`) is held throughout, so a second export into
    `out` is refused at once rather than after minutes of embedding."""
    check_level(interval_level)  # before minutes of embedding
    with output_lock(Path(out)):
        refuse_existing(out, overwrite)
        card = _run_card(Path(run_dir), metrics)
        return _export_run(
            Path(run_dir),
            out,
            data,
            which,
            batch_size,
            overwrite,
            card,
            probe,
            interval_level,
            endpoints,
            n_boot,
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
    endpoints: Any = None,
    n_boot: int = 1000,
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
        checks = intervals = chances = None
        if store:
            crop = int(encoder.samples)
            model = BundleModel(encoder, head, "tokens")
            opened = Store.open(store)
            spec["validation_r2"], spec["validation_subjects"], intervals = calibrate(
                model, opened, crop=crop, level=interval_level, batch_size=batch_size
            )
            chances, embedded = store_endpoints(
                encoder, opened, endpoints, batch_size=batch_size, n_boot=n_boot
            )
            checks = plausibility_from_store(
                encoder,
                opened,
                batch_size=batch_size,
                train=embedded["train"],
                val=embedded["val"],
            )
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
            endpoints=chances,
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
        endpoints=endpoints,
        n_boot=n_boot,
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


def _file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()
