"""Fine-tune a run's ECG (or CMR) encoder with an attention-pooling head on the phenotypes.

    ptacl finetune --model RUN --data STORE --out RUN_FT [--config YAML] [--resume] [key=value ...]
    ptacl finetune --model none --data STORE --out RUN_FT      (supervised, from random init)
    ptacl finetune --modality cmr --model none|RUN ...         (the same with a CMR encoder)

Full fine-tuning on the train split, standardised targets (train mean and SD, NaN masked out
of the loss), early stopping on the validation loss (`patience` validations), then the best
checkpoint predicts the test split: RUN_FT/test_predictions.npz (eids, true, predicted, in the
phenotypes' units) and RUN_FT/test_metrics.json (R² per phenotype with bootstrap 95 % CIs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from ptacl.cli.common import add_run_arguments

    parser = argparse.ArgumentParser(
        prog="ptacl finetune",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="run with such an encoder, or `none`")
    parser.add_argument(
        "--modality", choices=["ecg", "cmr"], default="ecg", help="which encoder (default ecg)"
    )
    parser.add_argument("--data", type=Path, help="prepared store (or data.store in the config)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates for CIs")
    add_run_arguments(parser)
    return parser


def source_encoder_config(model: str, modality: str = "ecg") -> dict | None:
    """The `modality` encoder section of run `model`'s config.yaml (None for `none`)."""
    from ptacl.config import ConfigError
    from ptacl.runs import encoder_section, read_run_config

    if model == "none":
        return None
    section = encoder_section(read_run_config(model), modality)
    if section is None:
        raise ConfigError(
            f"{model}/config.yaml: this run holds no {modality.upper()} encoder to fine-tune"
        )
    return section


def with_source_encoder(cfg):
    """`cfg` with the encoder architecture of its source run (the weights must fit it)."""
    from ptacl.config import from_dict
    from ptacl.models import default_config

    section = source_encoder_config(cfg.model, cfg.modality)
    if section is None:
        return cfg
    key = f"{cfg.modality}_encoder"
    config_cls = type(default_config(cfg.modality))  # the section's `name` may pick another
    return dataclasses.replace(cfg, **{key: from_dict(config_cls, section, f"{cfg.model} {key}")})


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)
    import contextlib

    from ptacl.atomic import OutputBusy
    from ptacl.cli.common import resolve_config
    from ptacl.config import ConfigError
    from ptacl.data.store import Store, StoreError
    from ptacl.runs import RunDirError, prepare_run_dir, run_lock
    from ptacl.training.finetune import FinetuneConfig

    with contextlib.ExitStack() as stack:
        try:
            extra = [f"model={args.model}", f"modality={args.modality}"]
            if args.data is not None:
                extra.append(f"data.store={args.data}")
            cfg = with_source_encoder(resolve_config(FinetuneConfig, args, extra))
            if not cfg.data.store:
                raise ConfigError("no store given: pass --data STORE (or set data.store)")
            store = Store.open(cfg.data.store)
            stack.enter_context(run_lock(args.out))  # held until training ends
            resume_from = prepare_run_dir(args.out, cfg, args.resume)
        except (ConfigError, StoreError, RunDirError, OutputBusy) as e:
            print(f"ptacl finetune: {e}", file=sys.stderr)
            return 2
        return run_finetune(cfg, store, Path(args.out), resume_from, n_boot=args.n_boot)


def run_finetune(cfg, store, out: Path, resume_from: Path | None, *, n_boot: int = 1000) -> int:
    """Train, early-stop, then score the best checkpoint on the test split."""
    import lightning as L
    import numpy as np
    from lightning.pytorch.callbacks import EarlyStopping

    from ptacl.config import to_dict
    from ptacl.data.datasets import CmrDataset, EcgDataset
    from ptacl.eval.bootstrap import r2_ci
    from ptacl.eval.probe import r2_per_phenotype
    from ptacl.eval.report import regression_section
    from ptacl.runs import checkpoint_state, load_encoder_weights
    from ptacl.training.finetune import FinetuneModule, predict_split, target_statistics
    from ptacl.training.loaders import build_dataloader
    from ptacl.training.trainer import build_trainer

    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    names = list(store.manifest.get("phenotypes", []))
    modality, what = cfg.modality, cfg.modality.upper()
    train_rows = store.indices("train", **{modality: True})
    mean, sd = target_statistics(np.asarray(store.phenotypes[train_rows]))
    module = FinetuneModule(to_dict(cfg), mean.tolist(), sd.tolist())
    if cfg.model != "none" and resume_from is None:
        module.encoder.load_state_dict(load_encoder_weights(cfg.model, modality))
    if modality == "ecg":
        crop = cfg.ecg_encoder.samples
        augment = cfg.augment if cfg.augment.enabled else None
        train_set = EcgDataset(
            store, "train", train=True, augment=augment, crop=crop, seed=cfg.trainer.seed
        )
        val_set = EcgDataset(store, "val", train=False, augment=None, crop=crop)
        test_set = EcgDataset(store, "test", train=False, augment=None, crop=crop)
    else:
        frames = cfg.cmr_encoder.frames
        augment = cfg.cmr_augment if cfg.cmr_augment.enabled else None
        train_set = CmrDataset(
            store, "train", train=True, augment=augment, frames=frames, seed=cfg.trainer.seed
        )
        val_set = CmrDataset(store, "val", train=False, augment=None, frames=frames)
        test_set = CmrDataset(store, "test", train=False, augment=None, frames=frames)
    if len(val_set) == 0:
        print(f"ptacl finetune: {store.root}: no {what} in the val split", file=sys.stderr)
        return 2
    print(
        f"FN+AP from {cfg.model}: {len(train_set)} train / {len(val_set)} val / "
        f"{len(test_set)} test {what}s from {store.root}",
        flush=True,
    )
    stop = EarlyStopping(monitor="val/loss", mode="min", patience=cfg.patience)
    width = (cfg.ecg_encoder if cfg.modality == "ecg" else cfg.cmr_encoder).width
    trainer = build_trainer(cfg.trainer, out, width=width, callbacks=[stop])
    trainer.fit(
        module,
        build_dataloader(train_set, cfg.data, train=True),
        build_dataloader(val_set, cfg.data, train=False),
        ckpt_path=resume_from,
        weights_only=True,
    )
    if not trainer.is_global_zero:
        return 0
    ckpt, state = checkpoint_state(out)  # best, or last when no validation ran
    module.load_state_dict(state)
    if len(test_set) == 0:
        print(f"ptacl finetune: {store.root}: no {what} in the test split; not scored")
        return 0
    eids, truth, pred = predict_split(module, test_set, batch_size=cfg.data.batch_size)
    np.savez(
        out / "test_predictions.npz",
        eids=eids,
        true=truth.astype(np.float32),
        predicted=pred.astype(np.float32),
        phenotype_names=np.asarray(names, dtype=str),
    )
    point = r2_per_phenotype(truth, pred, names)
    lo, hi = r2_ci(truth, pred, names, n_boot=n_boot, seed=cfg.trainer.seed)
    metrics = {
        "input": what,
        "checkpoint": str(ckpt),
        "stopped_at_step": int(trainer.global_step),
        "n_boot": n_boot,
        "r2": regression_section(point, lo, hi),
    }
    (out / "test_metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    print(point.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"test R² -> {out / 'test_metrics.json'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
