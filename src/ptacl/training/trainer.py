"""The Lightning Trainer of every stage: precision by device, DDP, gradient clipping, checkpoints
(checkpoints/last.ckpt + best.ckpt, the run folder of `ptacl.runs`), CSV + TensorBoard logs,
progress lines, and `fit_stage`.

A stage's `fit(cfg, store, out, resume_from)` does:

    lightning.seed_everything(cfg.trainer.seed, workers=True)
    module = StageModule(to_dict(cfg))               # plain dict: checkpoints load weights_only
    trainer = build_trainer(cfg.trainer, out)
    fit_stage(trainer, module, train_set, val_set, cfg.data, resume_from)
"""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.strategies import DDPStrategy
from torch import nn
from torch.utils.data import Dataset

from ptacl.training.loaders import DataConfig, build_dataloader
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
    progress_bar: bool = True


def _on_cpu(accelerator: str) -> bool:
    return accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())


#: Narrowest encoder width at which bf16-mixed beats fp32 on a CPU with AMX-bf16: measured ECG
#: MAE train step bf16 / fp32 speed 0.48x at width 64, 1.40x at 256, 1.87x at 512 (BENCHMARKS.md).
#: Narrow models are bound by the casts and element-wise work autocast adds, not by matmuls.
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


class LastCheckpoint(Callback):
    """checkpoints/last.ckpt every `every_n_steps` optimizer steps and when training ends, so
    `--resume` continues from the latest state (ModelCheckpoint alone skips the final step)."""

    def __init__(self, path: Path, every_n_steps: int) -> None:
        self.path = Path(path)
        self.every_n_steps = every_n_steps
        self._saved_step = -1

    def _save(self, trainer: L.Trainer) -> None:
        if trainer.global_step != self._saved_step:
            trainer.save_checkpoint(self.path, weights_only=False)
            self._saved_step = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self.every_n_steps > 0 and trainer.global_step % self.every_n_steps == 0:
            self._save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)


class ResyncSchedule(Callback):
    """After a restore, set each LambdaLR's learning rate from its restored step, so a run
    resumed with a new trainer.max_steps follows the longer schedule from the first resumed
    step instead of keeping the old schedule's last value for one step."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for config in trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
                step = scheduler.last_epoch
                for group, base, fn in zip(
                    scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas
                ):
                    group["lr"] = base * fn(step)


class ProgressLines(Callback):
    """Without a progress bar (logs, `ptacl benchmark`, the demo): one plain line every
    `every_n_steps` optimizer steps with the rate, the time left and the latest training loss,
    and one after each validation, so a long stage is never silent."""

    def __init__(self, every_n_steps: int) -> None:
        self.every_n_steps = max(1, every_n_steps)
        self._start: tuple[float, int] | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = (time.perf_counter(), trainer.global_step)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        step = trainer.global_step
        if self._start is None or step % self.every_n_steps or not trainer.is_global_zero:
            return
        elapsed, done = time.perf_counter() - self._start[0], step - self._start[1]
        rate = elapsed / max(done, 1)
        left = (trainer.max_steps - step) * rate
        loss = trainer.callback_metrics.get("train/loss")
        tail = f", train/loss {float(loss):.4f}" if loss is not None else ""
        print(
            f"step {step}/{trainer.max_steps}, {rate:.2f} s/step, ~{left / 60:.1f} min left{tail}",
            flush=True,
        )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        shown = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        text = ", ".join(f"{k} {v:.4f}" for k, v in sorted(shown.items()))
        print(f"validation at step {trainer.global_step}: {text}", flush=True)


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing metrics.csv; on --resume we append to it."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = list(csv.DictReader(file).fieldnames or [])


class AppendingCSVLogger(CSVLogger):
    """CSVLogger writing metrics.csv straight into the run folder, appending across resumes."""

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def build_trainer(
    config: TrainerConfig,
    run_dir: str | Path,
    *,
    monitor: str = "val/loss",
    callbacks: Sequence[Callback] = (),
    width: int | None = None,
    feature_cache: bool = False,
) -> L.Trainer:
    """A Trainer for one stage: precision by device (and, on the CPU, by the encoder `width`:
    `resolve_precision`), DDP when several processes, gradient clipping, last.ckpt + best.ckpt
    (lowest `monitor`), CSV + TensorBoard logs, deterministic and seeded on the CPU.

    feature_cache: the module accumulates and clips itself (`ptacl.training.feature_cache`,
    manual optimization, which Lightning refuses to combine with its own of either)."""
    run_dir = Path(run_dir)
    checkpoints = run_dir / "checkpoints"
    L.seed_everything(config.seed, workers=True, verbose=False)
    on_cpu = _on_cpu(config.accelerator)
    processes = config.devices * config.num_nodes
    best = ModelCheckpoint(
        dirpath=checkpoints,
        filename="best",
        monitor=monitor,
        mode="min",
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
        enable_progress_bar=config.progress_bar,
        callbacks=[
            best,
            LastCheckpoint(checkpoints / "last.ckpt", config.checkpoint_every_n_steps),
            ResyncSchedule(),
            StepSeed(config.seed),
            LearningRateMonitor(logging_interval="step"),
            *([] if config.progress_bar else [ProgressLines(config.log_every_n_steps)]),
            *callbacks,
        ],
        logger=[AppendingCSVLogger(run_dir, name="", version=""), *_tensorboard(run_dir)],
    )


def _tensorboard(run_dir: Path) -> list[TensorBoardLogger]:
    """The TensorBoard logger when tensorboard is installed (the 'train' extra brings it);
    without it, a warning: metrics.csv holds the same curves."""
    import importlib.util

    if (
        importlib.util.find_spec("tensorboard") is None
        and importlib.util.find_spec("tensorboardX") is None
    ):
        import warnings

        from ptacl.extras import hint

        warnings.warn(
            f"tensorboard is not installed, so no TensorBoard log ({hint('tensorboard')}); "
            "metrics.csv has the same curves",
            stacklevel=3,
        )
        return []
    return [TensorBoardLogger(run_dir, name="tensorboard", version="", default_hp_metric=False)]


def fit_stage(
    trainer: L.Trainer,
    module: L.LightningModule,
    train_set: Dataset,
    val_set: Dataset,
    config: DataConfig,
    resume_from: Path | None,
) -> None:
    """`trainer.fit` on the train / val datasets (loaders from `build_dataloader`), continuing
    from `resume_from` when given; the checkpoint is read with weights_only=True."""
    trainer.fit(
        module,
        build_dataloader(train_set, config, train=True),
        build_dataloader(val_set, config, train=False),
        ckpt_path=resume_from,
        weights_only=True,
    )
