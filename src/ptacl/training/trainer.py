"""The Lightning Trainer of every stage (`build_trainer`): precision by device, DDP, gradient
clipping, the callbacks (`ptacl.training.callbacks`: checkpoints/last.ckpt + best.ckpt in the run
folder of `ptacl.runs`, progress lines) and the loggers (`ptacl.training.loggers`), and
`fit_stage`, which runs it.

A stage's `fit(cfg, store, out, resume_from)` (one per file: `ptacl.training.mae`, `simclr`,
`align`, `finetune`) does:

    data = StageData(...)                            # its LightningDataModule
    trainer = build_trainer(cfg.trainer, out)        # seeds everything, once
    module = StageModule(to_dict(cfg))               # plain dict: checkpoints load weights_only
    fit_stage(trainer, module, data, resume_from)
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import nn

from ptacl.errors import Stopped
from ptacl.threads import THREADS_FILE_ENV
from ptacl.training.callbacks import (
    BestCheckpoint,
    LastCheckpoint,
    ProgressLines,
    ResyncSchedule,
    StepProgressBar,
    ThreadShare,
    build_callbacks,
)
from ptacl.training.checkpoint_io import AtomicCheckpointIO
from ptacl.training.loggers import build_loggers, logger_class
from ptacl.training.plugins import config_entries, import_class
from ptacl.training.resume import StepSeed


@dataclass(frozen=True)
class TrainerConfig:
    max_steps: int = 50_000
    val_every_n_steps: int = 1000
    val_batches: int = 0  # 0: the whole validation split
    checkpoint_every_n_steps: int = 1000  # last.ckpt; also written when training ends
    log_every_n_steps: int = 50
    sanity_val_steps: int = 2
    grad_clip: float = 1.0  # max gradient norm; 0 turns clipping off
    # align and SimCLR: one contrastive batch of k·B (`ptacl.training.feature_cache`)
    accumulate_grad_batches: int = 1
    accelerator: str = "auto"
    # auto: bf16-mixed on a GPU; on the CPU bf16-mixed only where it pays (`resolve_precision`)
    precision: str = "auto"
    compile: bool = False  # torch.compile the encoders' transformer blocks (`compile_blocks`)
    devices: int = 1
    num_nodes: int = 1
    seed: int = 0
    # In a terminal a bar over the run's steps (total, s/step, time left); in a log, and with
    # false, a plain line every log_every_n_steps. Validation results are printed either way.
    progress_bar: bool = True
    # Where metrics go (`build_loggers`): csv, tensorboard, wandb, mlflow, or any Lightning
    # logger as "package.module:Class"; an entry with settings is a one-key mapping,
    # {wandb: {project: ptacl}}. metrics.csv is what `ptacl compare` and the figures read.
    loggers: tuple[str | dict[str, Any], ...] = ("csv", "tensorboard")
    # Extra Lightning callbacks, "package.module:Class" or {"package.module:Class": {kwargs}}.
    callbacks: tuple[str | dict[str, Any], ...] = ()


def _on_cpu(accelerator: str) -> bool:
    return accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())


#: Narrowest encoder width at which bf16-mixed beats fp32 on a CPU with AMX-bf16 (the ECG MAE
#: train step measured at widths 64, 256 and 512: BENCHMARKS.md, "Training throughput"). Narrow
#: models are bound by the casts and element-wise work autocast adds, not by matmuls.
CPU_BF16_MIN_WIDTH = 256


def cpu_has_amx_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (Intel AMX: the `amx_bf16` flag in
    /proc/cpuinfo). The bf16 gains in BENCHMARKS.md were measured with AMX; without it
    (avx512_bf16 alone, or not Linux) `auto` keeps fp32 (decision: not measured here)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            flags = next((line for line in file if line.startswith("flags")), "")
    except OSError:
        return False
    return "amx_bf16" in flags.split()


def resolve_precision(config: TrainerConfig, width: int | None = None) -> str:
    """trainer.precision, with "auto" resolved: bf16-mixed on a GPU; on the CPU bf16-mixed when
    it has AMX-bf16 and the encoder `width` is at least CPU_BF16_MIN_WIDTH, else 32-true."""
    if config.precision != "auto":
        return config.precision
    if not _on_cpu(config.accelerator):
        return "bf16-mixed"
    fast = width is not None and width >= CPU_BF16_MIN_WIDTH and cpu_has_amx_bf16()
    return "bf16-mixed" if fast else "32-true"


def compile_blocks(*modules: nn.Module) -> None:
    """torch.compile, in place, every transformer `Block` inside `modules` (trainer.compile).

    The blocks hold almost all of a step's FLOPs and have static shapes; the code around them
    (random masking, R-peak gathers) would only add graph breaks and recompilations. In-place
    `nn.Module.compile` keeps the state-dict keys, so checkpoints are the same either way, and
    blocks of one shape share one compiled graph.
    """
    from ptacl.models.vit import Block

    for module in modules:
        for block in module.modules():
            if isinstance(block, Block):
                block.compile()


def ddp_strategy(accumulate_grad_batches: int = 1) -> DDPStrategy:
    """DDP for several processes. gradient_as_bucket_view: the gradients are views into the
    all-reduce buckets (no copy in and out, less memory). static_graph: within a run every step
    uses the same parameters (the config fixes β; frozen blocks have no gradient and DDP ignores
    them), so DDP can skip its per-step search for unused parameters and overlap the all-reduce
    with the backward from the first step on. Not with gradient accumulation: static_graph with
    no_sync() fails an internal assert or stops all-reducing (pytorch/pytorch#143580, a fix
    still open in pytorch/pytorch#187732)."""
    return DDPStrategy(gradient_as_bucket_view=True, static_graph=accumulate_grad_batches == 1)


def check_plugins(config: TrainerConfig) -> None:
    """Resolve every `trainer.loggers` and `trainer.callbacks` class, so a typo or a missing
    package is a one-line ConfigError before the run folder is touched."""
    for i, (name, _) in enumerate(config_entries(config.loggers, "trainer.loggers")):
        logger_class(name, f"trainer.loggers[{i}]")
    for i, (path, _) in enumerate(config_entries(config.callbacks, "trainer.callbacks")):
        import_class(path, Callback, f"trainer.callbacks[{i}]")


def build_trainer(
    config: TrainerConfig,
    run_dir: str | Path,
    *,
    monitor: str = "val/loss",
    mode: str = "min",
    callbacks: Sequence[Callback] = (),
    width: int | None = None,
    feature_cache: bool = False,
) -> L.Trainer:
    """A Trainer for one stage: precision by device (and, on the CPU, by the encoder `width`:
    `resolve_precision`), DDP when several processes, gradient clipping, last.ckpt + best.ckpt
    (lowest `monitor`, highest with mode="max"), the `trainer.loggers` (CSV + TensorBoard by
    default) and `trainer.callbacks`, deterministic and seeded on the CPU.

    feature_cache: the module accumulates and clips itself (`ptacl.training.feature_cache`,
    manual optimization, which Lightning refuses to combine with its own of either)."""
    run_dir = Path(run_dir)
    checkpoints = run_dir / "checkpoints"
    L.seed_everything(config.seed, workers=True, verbose=False)
    on_cpu = _on_cpu(config.accelerator)
    processes = config.devices * config.num_nodes
    bar = config.progress_bar and sys.stderr.isatty()  # a log file gets plain lines instead
    best = BestCheckpoint(
        dirpath=checkpoints,
        filename="best",
        monitor=monitor,
        mode=mode,
        save_top_k=1,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    return L.Trainer(
        default_root_dir=run_dir,
        max_steps=config.max_steps,
        val_check_interval=min(config.val_every_n_steps, config.max_steps),
        check_val_every_n_epoch=None,  # validate by steps, across epoch boundaries
        limit_val_batches=config.val_batches or None,
        num_sanity_val_steps=config.sanity_val_steps,
        log_every_n_steps=config.log_every_n_steps,
        gradient_clip_val=None if feature_cache else config.grad_clip or None,
        accumulate_grad_batches=1 if feature_cache else config.accumulate_grad_batches,
        accelerator=config.accelerator,
        precision=resolve_precision(config, width),
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=ddp_strategy(config.accumulate_grad_batches) if processes > 1 else "auto",
        # the projection heads' batch norms see the global batch, as the global loss does; not
        # on the CPU, where torch's SyncBatchNorm refuses to run ("only work with GPU modules")
        sync_batchnorm=processes > 1 and not on_cpu,
        deterministic=True if on_cpu else None,
        benchmark=False if on_cpu else None,
        enable_progress_bar=bar,
        plugins=[AtomicCheckpointIO()],  # a full disk keeps the last good checkpoint whole
        callbacks=[
            best,
            LastCheckpoint(checkpoints / "last.ckpt", config.checkpoint_every_n_steps),
            ResyncSchedule(),
            StepSeed(config.seed),
            LearningRateMonitor(logging_interval="step"),
            *([StepProgressBar()] if bar else []),
            ProgressLines(config.log_every_n_steps, steps=not bar),
            *([ThreadShare(Path(share))] if (share := os.environ.get(THREADS_FILE_ENV)) else []),
            *callbacks,
            *build_callbacks(config.callbacks),
        ],
        logger=build_loggers(config.loggers, run_dir),
    )


#: torch's FutureWarning for the LeafSpec that Lightning's own code builds on every run.
_LEAFSPEC = r"`isinstance\(treespec, LeafSpec\)` is deprecated"


class _NoTips(logging.Filter):
    """Drops Lightning's advertisement on every Trainer ("💡 Tip: ... try installing
    litlogger"): noise between a user and their progress lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_NoTips())


def fit_stage(
    trainer: L.Trainer,
    module: L.LightningModule,
    data: L.LightningDataModule,
    resume_from: Path | None,
) -> None:
    """`trainer.fit` on a stage's DataModule (`ptacl.training.loaders.StageData`), continuing
    from `resume_from` when given; the checkpoint is read with weights_only=True. A checkpoint
    whose weights do not fit the module (config.yaml edited after training) raises RunDirError.
    Stopped by SIGTERM, it raises `ptacl.errors.Stopped` (one line, exit status 143, not
    Lightning's 0, so a scheduler or a pipeline does not take the run for finished); stopped by
    Ctrl-C, KeyboardInterrupt (exit status 130; Lightning's own is a bare exit status 1). A fit
    that ends writes the run's weights/ (`ptacl.run_weights`)."""
    try:
        with warnings.catch_warnings():
            # Lightning itself calls torch's deprecated LeafSpec on every run: not ours to fix
            warnings.filterwarnings("ignore", _LEAFSPEC, FutureWarning)
            # false for step-based training: metrics are logged every N steps across epochs
            warnings.filterwarnings("ignore", r"The number of training batches .* is smaller")
            if resume_from is not None:  # of course it is: it holds the run being continued
                warnings.filterwarnings("ignore", r"Checkpoint directory .* is not empty")
            trainer.fit(module, datamodule=data, ckpt_path=resume_from, weights_only=True)
    except SIGTERMException:
        if not trainer.is_global_zero:  # rank 0 says it, once
            raise SystemExit(143) from None
        raise Stopped(
            f"stopped by SIGTERM at step {trainer.global_step}/{trainer.max_steps}",
            trainer.default_root_dir,
            "run the same command again to continue",
        ) from None
    except SystemExit as stop:
        # Lightning's answer to Ctrl-C, after its graceful shutdown: sys.exit(1)
        if isinstance(stop.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        raise
    except RuntimeError as err:
        if resume_from is None or "Error(s) in loading state_dict" not in str(err):
            raise
        from ptacl.runs import weights_mismatch

        raise weights_mismatch(err, f"{trainer.default_root_dir}/config.yaml") from None
    if trainer.is_global_zero:  # the parts the module declares, one file each
        from ptacl.run_weights import write_weights

        write_weights(trainer.default_root_dir, module)
