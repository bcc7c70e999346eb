"""Stage 2: joint global + local contrastive training of the ECG and CMR encoders (PTACL).

    ptacl align --data STORE --ecg-init RUN --cmr-init RUN --out RUN [--config YAML]
                [--devices N] [--num-nodes N] [--resume|--overwrite] [key=value ...]

--ecg-init / --cmr-init are stage-1 runs (`ptacl pretrain`): their encoder architecture and
weights start this stage. Without them the encoders start from random weights (the paper's
"without SMP" ablation, which trains them whole: pass freeze_blocks=0, else a warning).
Shipped configs (`--config NAME`): ptacl_regression.yaml (σ = 0.1, τ 0.1 / 1.0, the
default), ptacl_retrieval.yaml (σ = 0, τ 0.07 / 0.07), global.yaml (β = 0).
Trains on the paired subjects of the train split, validates on the val split; each validation
writes figures/local_similarity_*.png (the paper's Figure 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _flatten(section: dict[str, Any], prefix: str) -> list[str]:
    """{'width': 512, 'patch': [2, 12, 12]} -> ['prefix.width=512', 'prefix.patch=[2, 12, 12]']
    (JSON values are YAML, which the override parser reads)."""
    import json

    return [f"{prefix}.{key}={json.dumps(value)}" for key, value in section.items()]


def _init_overrides(args: argparse.Namespace, config_init: dict[str, str]) -> list[str]:
    """The init runs as overrides: their paths and their encoder sections (the weights fit only
    that architecture), applied after --config and before the command line's key=value."""
    from ptacl.config import ConfigError
    from ptacl.runs import encoder_section, read_run_config

    extra: list[str] = []
    for modality in ("ecg", "cmr"):
        run = getattr(args, f"{modality}_init") or config_init.get(modality) or ""
        if not run:
            continue
        extra.append(f"{modality}_init={run}")
        run_config = read_run_config(run)
        if run_config.get("modality") not in (None, modality):
            raise ConfigError(
                f"{run}: --{modality}-init is a {run_config.get('modality')} run, not {modality}"
            )
        section = encoder_section(run_config, modality)
        if not section:
            raise ConfigError(f"{run}/config.yaml: no encoder section to start from")
        extra += _flatten(section, f"{modality}_encoder")
    return extra


def main(argv: list[str] | None = None) -> int:
    # Imported here so `ptacl --help` stays quick.
    from ptacl.cli.common import add_run_arguments, command_parser, run_command

    parser = command_parser("ptacl align", __doc__)
    parser.add_argument("--ecg-init", type=Path, help="stage-1 ECG MAE run folder")
    parser.add_argument("--cmr-init", type=Path, help="stage-1 CMR MAE run folder")
    add_run_arguments(parser)
    args = parser.parse_intermixed_args(argv)

    from ptacl.config import load_config
    from ptacl.training.align import AlignRunConfig

    def init_overrides() -> list[str]:
        # the init runs may also be named in the YAML / overrides (ecg_init=..., cmr_init=...)
        first = load_config(AlignRunConfig, args.config, args.overrides)
        return _init_overrides(args, {"ecg": first.ecg_init, "cmr": first.cmr_init})

    return run_command("ptacl align", args, AlignRunConfig, _fit, overrides=init_overrides)


def _fit(cfg, store, out: Path, resume_from: Path | None) -> int:
    import lightning as L

    from ptacl.config import to_dict
    from ptacl.data.datasets import PairedDataset
    from ptacl.runs import RunDirError, load_encoder_weights
    from ptacl.training.align import AlignModule, LocalSimilarityFigure, parameter_counts
    from ptacl.training.trainer import build_trainer, fit_stage

    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)

    def dataset(split: str, train: bool) -> PairedDataset:
        return PairedDataset(
            store,
            split,
            train=train,
            ecg_augment=cfg.ecg_augment,
            cmr_augment=cfg.cmr_augment,
            crop=cfg.ecg_encoder.samples,
            frames=cfg.cmr_encoder.frames,
            seed=cfg.trainer.seed,
        )

    train_set, val_set = dataset("train", True), dataset("val", False)
    if len(val_set) == 0:
        print(f"ptacl align: {store.root}: no paired subjects in the val split", file=sys.stderr)
        return 2
    # Kept as configured (an explicit setting is not overridden behind the user's back), but said
    # loudly: frozen blocks of a random encoder stay random, which is not the paper's "without
    # SMP" ablation (`ptacl benchmark` trains that one with freeze_blocks=0).
    uninit = [m.upper() for m in ("ecg", "cmr") if not getattr(cfg, f"{m}_init")]
    if cfg.freeze_blocks and uninit:
        print(
            f"ptacl align: warning: no init run for the {' and '.join(uninit)} encoder, yet "
            f"freeze_blocks={cfg.freeze_blocks} freezes its first blocks and embeddings at their "
            "random weights; pass freeze_blocks=0 to train it whole (the paper's 'without SMP')",
            file=sys.stderr,
        )
    module = AlignModule(to_dict(cfg))
    for modality, run in (("ecg", cfg.ecg_init), ("cmr", cfg.cmr_init)):
        if run and resume_from is None:  # on resume the checkpoint holds the weights
            encoder = getattr(module, f"{modality}_encoder")
            try:
                encoder.load_state_dict(load_encoder_weights(run, modality))
            except (RunDirError, RuntimeError) as e:
                print(
                    f"ptacl align: {run}: cannot start the {modality} encoder: {e}", file=sys.stderr
                )
                return 2
    counts = parameter_counts(module)
    loss = cfg.loss
    print(
        f"PTACL: trainable ECG encoder {counts['ecg_encoder'] / 1e6:.2f} M, CMR encoder "
        f"{counts['cmr_encoder'] / 1e6:.2f} M, heads {counts['heads'] / 1e6:.2f} M "
        f"(first {cfg.freeze_blocks} blocks frozen); β={loss.beta}, σ={loss.sigma}, "
        f"τ_global={loss.temperature_global}, τ_local={loss.temperature_local}, "
        f"local={loss.local_loss} on {loss.local_space}; init: ECG "
        f"{cfg.ecg_init or 'random'}, CMR {cfg.cmr_init or 'random'}; "
        f"{len(train_set)} train / {len(val_set)} val pairs from {store.root}",
        flush=True,
    )
    label = "global only" if loss.beta == 0 else f"PTACL σ={loss.sigma}"
    # best.ckpt by the validation *global* loss, for Global only and PTACL alike: the patient-level
    # alignment is what evaluation and export use, and in the retrieval setting (τ_local 0.07) the
    # local term would otherwise pick a checkpoint whose global alignment had already overfitted.
    trainer = build_trainer(
        cfg.trainer,
        out,
        monitor="val/global",
        width=max(cfg.ecg_encoder.width, cfg.cmr_encoder.width),
        callbacks=[LocalSimilarityFigure(Path(out) / "figures", label)],
        feature_cache=not module.automatic_optimization,
    )
    fit_stage(trainer, module, train_set, val_set, cfg.data, resume_from)
    print(f"run folder: {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
