"""The Lightning Trainer of every stage: precision by device, DDP, gradient clipping, checkpoints
(checkpoints/last.ckpt + best.ckpt, the run folder of `ptacl.runs`), loggers and callbacks
named in the config (`build_loggers`, `build_callbacks`), progress lines, and `fit_stage`.

A stage's `fit(cfg, store, out, resume_from)` (one per file: `ptacl.training.mae`, `simclr`,
`align`, `finetune`) does:

    data = StageData(...)                            # its LightningDataModule
    trainer = build_trainer(cfg.trainer, out)        # seeds everything, once
    module = StageModule(to_dict(cfg))               # plain dict: checkpoints load weights_only
    fit_stage(trainer, module, data, resume_from)
"""

from __future__ import annotations

import csv
import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import (
    Callback,
    LearningRateMonitor,
    ModelCheckpoint,
    TQDMProgressBar,
)
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import nn

from ptacl.threads import THREADS_FILE_ENV, read_share
from ptacl.training.checkpoint_io import AtomicCheckpointIO
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

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        # Lightning stops on SIGTERM (a SLURM time limit or preemption, `kill`) between two
        # steps: the state is whole, so the same command run again continues from here.
        if isinstance(exception, SIGTERMException):
            self._save(trainer)


class BestCheckpoint(ModelCheckpoint):
    """checkpoints/best.ckpt whose saved state follows its run folder. Lightning drops the best
    score when the checkpoint's dirpath differs from the current one, so a run folder moved and
    then resumed would let its first validation, however poor, replace best.ckpt."""

    @property
    def state_key(self) -> str:
        # Lightning keys a callback's state by its class name: keep ModelCheckpoint's, so runs
        # checkpointed before this class existed restore their best score too
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old = state_dict.get("dirpath")
        if old and self.dirpath and old != self.dirpath:
            new = self.dirpath

            def moved(path: Any) -> Any:
                inside = isinstance(path, str) and path.startswith(old + "/")
                return new + path[len(old) :] if inside else path

            state_dict = {
                **state_dict,
                "dirpath": new,
                "best_k_models": {moved(k): v for k, v in state_dict["best_k_models"].items()},
                **{
                    key: moved(state_dict.get(key))
                    for key in ("best_model_path", "kth_best_model_path", "last_model_path")
                },
            }
        super().load_state_dict(state_dict)


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


class ThreadShare(Callback):
    """Follow the share of the cores a pipeline gives this run (`ptacl.threads`), read before
    every training step (a file of a few bytes): a run left alone takes the idle cores."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_batch_start(self, *args: Any) -> None:
        threads = read_share(self.path)
        if threads is not None and threads != torch.get_num_threads():
            torch.set_num_threads(threads)


class ProgressLines(Callback):
    """Without a terminal (logs, SLURM, `ptacl benchmark`, the demo) or with
    `trainer.progress_bar: false`: one plain line every `every_n_steps` optimizer steps with
    the rate, the time left and the latest training loss; and, always, one after each
    validation (through the bar when there is one), so a long stage is never silent."""

    def __init__(self, every_n_steps: int, *, steps: bool = True) -> None:
        self.every_n_steps = max(1, every_n_steps)
        self.steps = steps
        self._start: tuple[float, int] | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = (time.perf_counter(), trainer.global_step)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        step = trainer.global_step
        if not self.steps or self._start is None or step % self.every_n_steps:
            return
        if not trainer.is_global_zero:
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
        line = f"validation at step {trainer.global_step}: {text}"
        bar = trainer.progress_bar_callback
        if isinstance(bar, TQDMProgressBar) and bar.is_enabled:
            bar.print(line)  # above the bar, not through it
        else:
            print(line, flush=True)


class StepProgressBar(TQDMProgressBar):
    """In a terminal: one bar over the run's optimizer steps, `training: 1234/20000
    [10:17<2:36:00, 0.50s/step, train/loss=…]`. Lightning's own bar counts the batches of an
    epoch, which for a small cohort reads "Epoch 661: 0/1": no total, no time left."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        bar = self.train_progress_bar
        bar.reset(total=trainer.max_steps)
        bar.initial = bar.n = trainer.global_step  # a resumed run's rate counts its own steps
        bar.unit = "step"
        bar.set_description("training")

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        pass  # one bar for the whole run, not one per epoch

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *_: Any) -> None:
        bar = self.train_progress_bar
        if self._should_update(trainer.global_step, trainer.max_steps) and not bar.disable:
            bar.n = trainer.global_step
            bar.set_postfix(self.get_metrics(trainer, pl_module))  # refreshes the bar


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


#: Loggers known by name: Lightning's own classes, and the keyword that points each at the run
#: folder unless the entry says otherwise. mlflow without a tracking_uri (or
#: MLFLOW_TRACKING_URI) writes a file store, RUN/mlruns, which MLflow 3 accepts only with
#: MLFLOW_ALLOW_FILE_STORE=true; a lab's server is {mlflow: {tracking_uri: ...}}.
LOGGERS = {
    "csv": ("ptacl.training.trainer:AppendingCSVLogger", {}),
    "tensorboard": ("lightning.pytorch.loggers:TensorBoardLogger", {}),
    "wandb": ("lightning.pytorch.loggers:WandbLogger", {"save_dir": "."}),
    "mlflow": ("lightning.pytorch.loggers:MLFlowLogger", {"save_dir": "mlruns"}),
}
#: The Python package each named logger needs beyond Lightning.
_LOGGER_PACKAGE = {"wandb": "wandb", "mlflow": "mlflow", "tensorboard": "tensorboard"}


def _entries(entries: Sequence[str | dict[str, Any]], where: str) -> list[tuple[str, dict]]:
    """(name or import path, kwargs) of each `trainer.loggers` / `trainer.callbacks` entry."""
    from ptacl.config import ConfigError

    out = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            out.append((entry, {}))
        elif isinstance(entry, dict) and len(entry) == 1:
            ((name, kwargs),) = entry.items()
            if not isinstance(kwargs, dict | None):
                raise ConfigError(f"{where}[{i}]: the settings of {name} must be a mapping")
            out.append((str(name), dict(kwargs or {})))
        else:
            raise ConfigError(
                f"{where}[{i}]: expected a name or a one-key mapping {{NAME: {{settings}}}}, "
                f"got {entry!r}"
            )
    return out


def import_class(path: str, base: type, where: str) -> type:
    """The class named "package.module:Class", which must subclass `base`; ConfigError in one
    line otherwise (a typo, a package that is not installed, the wrong kind of class)."""
    import importlib

    from ptacl.config import ConfigError

    module, _, name = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(f"{where}: cannot import {path!r} ({e})") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"{where}: {path} is not a {base.__module__}.{base.__name__}")
    return cls


def _logger_class(name: str, where: str) -> tuple[type, dict[str, Any]]:
    """The class of a `trainer.loggers` entry and its run-folder defaults (`LOGGERS`)."""
    import importlib.util

    from lightning.pytorch.loggers import Logger

    from ptacl.config import ConfigError

    if ":" not in name and name not in LOGGERS:
        raise ConfigError(
            f"{where}: unknown logger {name!r}; use one of {', '.join(LOGGERS)} or a Lightning "
            "logger's import path, package.module:Class"
        )
    package = _LOGGER_PACKAGE.get(name)
    if package and name != "tensorboard" and importlib.util.find_spec(package) is None:
        raise ConfigError(f"{where}: the {name} logger needs {package}: pip install {package}")
    path, defaults = LOGGERS.get(name, (name, {}))
    return import_class(path, Logger, where), defaults


def check_plugins(config: TrainerConfig) -> None:
    """Resolve every `trainer.loggers` and `trainer.callbacks` class, so a typo or a missing
    package is a one-line ConfigError before the run folder is touched."""
    for i, (name, _) in enumerate(_entries(config.loggers, "trainer.loggers")):
        _logger_class(name, f"trainer.loggers[{i}]")
    for i, (path, _) in enumerate(_entries(config.callbacks, "trainer.callbacks")):
        import_class(path, Callback, f"trainer.callbacks[{i}]")


def build_loggers(config: TrainerConfig, run_dir: Path) -> list[Any]:
    """The `trainer.loggers`, each constructed with its settings; named ones write into the run
    folder by default (metrics.csv, tensorboard/, wandb/, mlruns/)."""
    from ptacl.config import ConfigError

    loggers = []
    for i, (name, kwargs) in enumerate(_entries(config.loggers, "trainer.loggers")):
        where = f"trainer.loggers[{i}]"
        if name == "csv":
            loggers.append(AppendingCSVLogger(run_dir, name="", version="", **kwargs))
            continue
        if name == "tensorboard":
            loggers += _tensorboard(run_dir, **kwargs)
            continue
        cls, defaults = _logger_class(name, where)
        settings = {k: str(run_dir / v) for k, v in defaults.items()} | kwargs
        try:
            loggers.append(cls(**settings))
        except TypeError as e:
            raise ConfigError(f"{where}: {name} does not take these settings: {e}") from None
    return loggers


def build_callbacks(config: TrainerConfig) -> list[Callback]:
    """The `trainer.callbacks`, each constructed with its settings."""
    from ptacl.config import ConfigError

    out = []
    for i, (path, kwargs) in enumerate(_entries(config.callbacks, "trainer.callbacks")):
        where = f"trainer.callbacks[{i}]"
        try:
            out.append(import_class(path, Callback, where)(**kwargs))
        except TypeError as e:
            raise ConfigError(f"{where}: {path} does not take these settings: {e}") from None
    return out


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
            *build_callbacks(config),
        ],
        logger=build_loggers(config, run_dir),
    )


def _tensorboard(run_dir: Path, **kwargs: Any) -> list[TensorBoardLogger]:
    """The TensorBoard logger when tensorboard is installed (the 'train' extra brings it);
    without it, a warning: metrics.csv holds the same curves."""
    import importlib.util

    if (
        importlib.util.find_spec("tensorboard") is None
        and importlib.util.find_spec("tensorboardX") is None
    ):
        from ptacl.extras import hint

        warnings.warn(
            f"tensorboard is not installed, so no TensorBoard log ({hint('tensorboard')}); "
            "metrics.csv has the same curves",
            stacklevel=3,
        )
        return []
    settings = {"name": "tensorboard", "version": "", "default_hp_metric": False} | kwargs
    return [TensorBoardLogger(run_dir, **settings)]


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
    Stopped by SIGTERM, it says so in one line and exits with status 143 (128 + SIGTERM), not
    Lightning's 0, so a scheduler or a pipeline does not take the run for finished. A fit that
    ends writes the run's weights/ (`ptacl.run_weights`)."""
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
        if trainer.is_global_zero:
            print(
                f"stopped by SIGTERM at step {trainer.global_step}/{trainer.max_steps}; "
                f"{trainer.default_root_dir}: run the same command again to continue",
                file=sys.stderr,
                flush=True,
            )
        raise SystemExit(143) from None
    except RuntimeError as err:
        if resume_from is None or "Error(s) in loading state_dict" not in str(err):
            raise
        from ptacl.runs import weights_mismatch

        raise weights_mismatch(err, f"{trainer.default_root_dir}/config.yaml") from None
    if trainer.is_global_zero:  # the parts the module declares, one file each
        from ptacl.run_weights import write_weights

        write_weights(trainer.default_root_dir, module)
