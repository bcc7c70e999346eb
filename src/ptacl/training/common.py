"""Training infrastructure shared by every stage (MAE, contrastive alignment, fine-tuning).

A stage's CLI does, in order:

    parser = command_parser("ptacl stage", __doc__); add_run_arguments(parser)
    args = parser.parse_intermixed_args(argv)
    return run_command("ptacl stage", args, StageConfig, fit)   # resolves, opens, prepares

and its `fit(cfg, store, out, resume_from)`:

    lightning.seed_everything(cfg.trainer.seed, workers=True)
    module = StageModule(to_dict(cfg))               # plain dict: checkpoints load weights_only
    trainer = build_trainer(cfg.trainer, out)
    trainer.fit(module, train_loader, val_loader, ckpt_path=resume_from, weights_only=True)

and inside the module, `configure_optimizers` returns
`stage_optimizers(self, cfg.optim, cfg.data.batch_size)`.

Run folder: config.yaml (resolved), checkpoints/{last,best}.ckpt, metrics.csv, hparams.yaml,
tensorboard/, figures/ (stage-specific). Encoders are found in checkpoints by key prefix: a stage
module keeps them in attributes named `ecg_encoder` / `cmr_encoder`; an MAE run keeps its one
encoder under `mae.encoder` (see `load_encoder_weights`).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.strategies import DDPStrategy
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ptacl.config import ConfigError, load_config, save_config, to_dict
from ptacl.data.store import Store, StoreError
from ptacl.training.resume import EpochSampler, ResumableLoader, StepSeed

T = TypeVar("T")


@dataclass(frozen=True)
class OptimConfig:
    base_lr: float = 1.5e-4  # per 256 samples of global batch (He et al. 2022)
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 1000
    min_lr_ratio: float = 0.0  # the cosine ends at base lr × this
    # The freshly initialised heads (projection heads, the fine-tune head: HEAD_MODULES) train at
    # base lr × this. Decision: 1 in the paper presets; a fresh head beside a pretrained encoder
    # may need more (configs/demo, configs/medium say why where they raise it).
    head_lr_scale: float = 1.0


@dataclass(frozen=True)
class DataConfig:
    store: str = ""  # the prepared store (`--data`)
    batch_size: int = 64  # per device
    num_workers: int = 4


@dataclass(frozen=True)
class TrainerConfig:
    max_steps: int = 50_000
    val_every_n_steps: int = 1000
    val_batches: int = 0  # 0: the whole validation split
    checkpoint_every_n_steps: int = 1000  # last.ckpt; also written when training ends
    log_every_n_steps: int = 50
    sanity_val_steps: int = 2
    grad_clip: float = 1.0  # max gradient norm; 0 turns clipping off
    accumulate_grad_batches: int = 1
    accelerator: str = "auto"
    # auto: bf16-mixed on a GPU; on the CPU bf16-mixed only where it pays (`resolve_precision`)
    precision: str = "auto"
    compile: bool = False  # torch.compile the encoders' transformer blocks (`compile_blocks`)
    devices: int = 1
    num_nodes: int = 1
    seed: int = 0
    progress_bar: bool = True


class RunDirError(RuntimeError):
    """A run folder that cannot be used as asked (not empty without --resume, nothing to resume)."""


# ----------------------------------------------------------------------------- optimisation


def scaled_lr(base_lr: float, global_batch: int) -> float:
    """The linear scaling rule: lr = base_lr × global batch / 256."""
    return base_lr * global_batch / 256


def warmup_cosine(
    step: int, *, warmup_steps: int, total_steps: int, min_ratio: float = 0.0
) -> float:
    """Learning-rate multiplier at optimizer step `step`: linear from 0 to 1 over the warm-up,
    then half a cosine down to `min_ratio` at `total_steps` (held there afterwards)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


#: Top-level attributes of the stage modules that hold freshly initialised heads.
HEAD_MODULES = ("head", "ecg_head", "cmr_head", "projection")


def _decays(module: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Weights of linear and convolution layers decay; biases, norms and embeddings do not."""
    decay, seen = [], set()
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d):
            if layer.weight.requires_grad:
                decay.append(layer.weight)
                seen.add(id(layer.weight))
    rest = [p for p in module.parameters() if p.requires_grad and id(p) not in seen]
    return decay, rest


def _head_parameters(module: nn.Module) -> set[int]:
    return {
        id(p)
        for name, child in module.named_children()
        if name in HEAD_MODULES
        for p in child.parameters()
    }


def build_optimizer_and_schedule(
    model: nn.Module, config: OptimConfig, *, total_steps: int, global_batch: int
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the trainable parameters, with a per-step warm-up + cosine schedule and the
    peak learning rate scaled with the global batch (`scaled_lr`)."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps} (set trainer.max_steps)")
    decay, no_decay = _decays(model)
    lr = scaled_lr(config.base_lr, global_batch)
    heads = _head_parameters(model) if config.head_lr_scale != 1.0 else set()
    groups = []
    for params, weight_decay in ((decay, config.weight_decay), (no_decay, 0.0)):
        body = [p for p in params if id(p) not in heads]
        groups.append({"params": body, "weight_decay": weight_decay})
        if heads:
            head = [p for p in params if id(p) in heads]
            groups.append(
                {"params": head, "weight_decay": weight_decay, "lr": lr * config.head_lr_scale}
            )
    # fused: one pass over each parameter instead of ~10 element-wise kernels (several launches
    # per tensor on CUDA; on this CPU a 20 M-parameter step took 0.04-0.17 s fused, 0.7-2.0 s
    # by default, which was a third of a paper-size bf16 ECG MAE step). CPU and CUDA have it.
    devices = {p.device.type for group in groups for p in group["params"]}
    fused = True if devices and devices <= {"cpu", "cuda"} else None
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=tuple(config.betas), fused=fused)
    # A fused AdamW announces that it unscales fp16 gradients itself, and for such optimizers
    # Lightning's mixed precision refuses gradient clipping (even in bf16, where nothing is
    # scaled). Saying no makes a GradScaler (16-mixed) unscale first, as for any optimizer; the
    # fused step then sees plain gradients. Clipping then works in every precision.
    optimizer._step_supports_amp_scaling = False

    def multiplier(step: int) -> float:  # a plain function: LambdaLR then saves no closure
        return warmup_cosine(
            step,
            warmup_steps=config.warmup_steps,
            total_steps=total_steps,
            min_ratio=config.min_lr_ratio,
        )

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)


def lightning_optimizers(optimizer: torch.optim.Optimizer, scheduler: Any) -> dict[str, Any]:
    """What `configure_optimizers` returns for a schedule stepped after every optimizer step."""
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def global_batch_size(trainer: L.Trainer, batch_size: int) -> int:
    """Samples per optimizer step over all processes."""
    return batch_size * trainer.world_size * trainer.accumulate_grad_batches


def stage_optimizers(
    module: L.LightningModule, config: OptimConfig, batch_size: int
) -> dict[str, Any]:
    """A stage module's `configure_optimizers`: AdamW with warm-up + cosine over the trainer's
    max_steps, the peak learning rate scaled with the global batch (`batch_size` per device)."""
    optimizer, scheduler = build_optimizer_and_schedule(
        module,
        config,
        total_steps=module.trainer.max_steps,
        global_batch=global_batch_size(module.trainer, batch_size),
    )
    return lightning_optimizers(optimizer, scheduler)


# ----------------------------------------------------------------------------- data


def build_dataloader(
    dataset: Dataset, config: DataConfig, *, train: bool, seed: int | None = None
) -> DataLoader:
    """Shuffled, full batches for training; ordered, every item for validation. Under DDP
    Lightning swaps in a DistributedSampler itself.

    Training batches come from a `ResumableLoader` over an `EpochSampler` seeded with `seed`
    (default: `torch.initial_seed()`, i.e. the trainer's seed, which every stage sets with
    `seed_everything` first), so a resumed run continues mid-epoch exactly where it stopped.
    """
    if train and len(dataset) < config.batch_size:
        raise ValueError(
            f"{config.store}: {len(dataset)} training items, fewer than data.batch_size "
            f"{config.batch_size}; lower the batch size"
        )
    loader = ResumableLoader if train else DataLoader
    sampler = None
    if train:
        sampler = EpochSampler(len(dataset), torch.initial_seed() if seed is None else seed)
    return loader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        drop_last=train,
        num_workers=config.num_workers,
        persistent_workers=config.num_workers > 0,
        pin_memory=torch.cuda.is_available(),
    )


# ----------------------------------------------------------------------------- trainer


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
) -> L.Trainer:
    """A Trainer for one stage: precision by device (and, on the CPU, by the encoder `width`:
    `resolve_precision`), DDP when several processes, gradient clipping, last.ckpt + best.ckpt
    (lowest `monitor`), CSV + TensorBoard logs, deterministic and seeded on the CPU."""
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
        gradient_clip_val=config.grad_clip or None,
        accumulate_grad_batches=config.accumulate_grad_batches,
        accelerator=config.accelerator,
        precision=resolve_precision(config, width),
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=ddp_strategy(config.accumulate_grad_batches) if processes > 1 else "auto",
        # the projection heads' batch norms see the global batch, as the global loss does
        sync_batchnorm=processes > 1,
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


# ----------------------------------------------------------------------------- run folder


def _rank() -> int:
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if name in os.environ:
            return int(os.environ[name])
    return 0


#: Settings a resumed run may change: they steer how long and how visibly it runs, not what it
#: computes (trainer.max_steps extends the schedule, see `ResyncSchedule`; data.num_workers
#: cannot change a batch, see `ptacl.training.resume`). Any other difference is refused.
RESUMABLE = (
    "trainer.max_steps",
    "trainer.val_every_n_steps",
    "trainer.val_batches",
    "trainer.checkpoint_every_n_steps",
    "trainer.log_every_n_steps",
    "trainer.sanity_val_steps",
    "trainer.progress_bar",
    "trainer.compile",  # the same computation, compiled or not
    "data.num_workers",
)


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flat(value, f"{prefix}{key}."))
    return {k.rstrip("."): v for k, v in out.items()}


def config_conflicts(saved: dict[str, Any], config: Any) -> list[str]:
    """Keys (dotted) outside `RESUMABLE` whose values differ between a run's saved config.yaml
    and `config`, each as "key: run A, now B"."""
    now = _flat(yaml.safe_load(yaml.safe_dump(to_dict(config), sort_keys=False)))
    before = _flat(saved)
    out = []
    for key in sorted(set(now) | set(before)):
        a, b = before.get(key), now.get(key)
        if key == "data.store" and a and b and Path(a).resolve() == Path(b).resolve():
            continue
        if key not in RESUMABLE and a != b:
            out.append(f"{key}: run {a!r}, now {b!r}")
    return out


def prepare_run_dir(out: str | Path, config: Any, resume: bool) -> Path | None:
    """Make the run folder and write the resolved `config.yaml`; return the checkpoint to
    resume from (None for a fresh run).

    A non-empty folder is refused unless `resume` (a run must never mix with, or overwrite,
    another); `resume` needs checkpoints/last.ckpt and a config that agrees with the run's
    config.yaml outside `RESUMABLE`, checked before anything is written (a config.yaml
    rewritten by a refused resume would no longer describe the checkpoints). config.yaml is
    replaced atomically. Only process 0 writes: Lightning's DDP launcher re-runs the command
    once per process. Hold `ptacl.atomic.output_lock(out)` around this and the training.
    """
    out = Path(out)
    last = out / "checkpoints" / "last.ckpt"
    path = out / "config.yaml"
    if resume:
        if not last.is_file():
            raise RunDirError(f"{out}: nothing to resume, {last} does not exist")
        if path.is_file():
            conflicts = config_conflicts(read_run_config(out), config)
            if conflicts:
                raise RunDirError(
                    f"{out}: --resume with settings that differ from the run's config.yaml, "
                    f"which its checkpoints were made with: {'; '.join(conflicts)}. Only "
                    f"{', '.join(RESUMABLE)} may change on resume; start a new run otherwise"
                )
    elif _rank() == 0 and out.exists() and any(out.iterdir()):
        raise RunDirError(
            f"{out}: the run folder is not empty; pass --resume to continue that run, "
            "or choose another --out"
        )
    if _rank() == 0:
        from ptacl.atomic import atomic_file

        out.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as tmp:
            save_config(config, tmp)
    return last if resume else None


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The resolved config.yaml of a run, as a plain dict."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise RunDirError(f"{run_dir}: not a run folder (no config.yaml)")
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def load_encoder_weights(
    run_dir: str | Path, modality: str, which: str = "best"
) -> dict[str, torch.Tensor]:
    """The `modality` encoder's state dict from a run's checkpoint (`which`: best or last;
    best falls back to last when no validation has run). Loaded with weights_only=True."""
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoints" / f"{which}.ckpt"
    if which == "best" and not ckpt.is_file():
        ckpt = run_dir / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        raise RunDirError(f"{run_dir}: no checkpoint ({ckpt.name}) in {ckpt.parent}")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    prefixes = [f"{modality}_encoder."]
    if read_run_config(run_dir).get("modality") == modality:
        prefixes.append("mae.encoder.")
    for prefix in prefixes:
        weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if weights:
            return weights
    raise RunDirError(
        f"{ckpt}: holds no {modality} encoder (no keys under {' or '.join(prefixes)})"
    )


def load_encoder(run_dir: str | Path, modality: str, which: str = "best") -> nn.Module:
    """The run's `modality` encoder, built from its config.yaml and loaded with its weights."""
    from ptacl.models import encoder_from_config

    weights = load_encoder_weights(run_dir, modality, which)  # raises if the run has none
    config = read_run_config(run_dir)
    section = config.get(f"{modality}_encoder")
    if section is None and config.get("modality") == modality:
        section = config.get("encoder")
    if section is None:
        raise RunDirError(f"{run_dir}/config.yaml: no `{modality}_encoder` or `encoder` section")
    encoder = encoder_from_config(section, modality, f"{run_dir}/config.yaml")
    encoder.load_state_dict(weights)
    return encoder


# ----------------------------------------------------------------------------- command line


def command_parser(prog: str, doc: str, *, modality: bool = False) -> argparse.ArgumentParser:
    """A training command's parser: described by the first paragraph of `doc` (the module
    docstring), with the positional `modality` (ecg|cmr) when asked, and `--data`. Add the
    command's own options, then `add_run_arguments`."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=doc.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if modality:
        parser.add_argument("modality", choices=["ecg", "cmr"])
    parser.add_argument("--data", type=Path, help="prepared store (or data.store in the config)")
    return parser


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """--out, --config, --devices, --num-nodes, --resume and trailing key=value overrides.
    Parse with `parser.parse_intermixed_args` so overrides may follow the options."""
    parser.add_argument("--out", type=Path, required=True, help="run folder (created)")
    parser.add_argument("--config", type=Path, help="YAML config (default: built-in defaults)")
    parser.add_argument("--devices", type=int, help="processes per node (sets trainer.devices)")
    parser.add_argument("--num-nodes", type=int, help="nodes (sets trainer.num_nodes)")
    parser.add_argument("--resume", action="store_true", help="continue from checkpoints/last.ckpt")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. optim.base_lr=1e-4")


def resolve_config(cls: type[T], args: argparse.Namespace, extra: Sequence[str] = ()) -> T:
    """Defaults <- --config YAML <- --devices/--num-nodes <- `extra` <- key=value overrides.

    With --resume and no --config, the run's own config.yaml takes the place of --config.
    """
    overrides = list(extra)
    path = args.config
    if path is None and getattr(args, "resume", False):
        saved = Path(args.out) / "config.yaml"
        path = saved if saved.is_file() else None
    if args.devices is not None:
        overrides.append(f"trainer.devices={args.devices}")
    if args.num_nodes is not None:
        overrides.append(f"trainer.num_nodes={args.num_nodes}")
    return load_config(cls, path, [*overrides, *args.overrides])


def run_command(
    prog: str,
    args: argparse.Namespace,
    config_cls: type[T],
    fit: Callable[[T, Store, Path, Path | None], int],
    *,
    overrides: Callable[[], Sequence[str]] | None = None,
    check: Callable[[T], None] | None = None,
) -> int:
    """The body of a training command, after parsing: resolve the config (`resolve_config`
    with `--data` and then `overrides()` as extra overrides), require a store, `check` it, open
    the store, prepare the run folder, then return `fit(cfg, store, args.out, resume_from)`.

    `overrides` and `check` may raise ConfigError. A ConfigError, StoreError or RunDirError
    is printed to stderr as "<prog>: <reason>" and returns exit code 2, and so is a run folder
    that another process is training into (its lock is held from here to the end of `fit`).
    """
    from ptacl.atomic import OutputBusy

    with contextlib.ExitStack() as stack:
        try:
            extra = [f"data.store={args.data}"] if args.data is not None else []
            if overrides is not None:
                extra += overrides()
            cfg = resolve_config(config_cls, args, extra)
            if not cfg.data.store:
                raise ConfigError("no store given: pass --data STORE (or set data.store)")
            if check is not None:
                check(cfg)
            store = Store.open(cfg.data.store)
            stack.enter_context(run_lock(args.out))
            resume_from = prepare_run_dir(args.out, cfg, args.resume)
        except (ConfigError, StoreError, RunDirError, OutputBusy) as e:
            print(f"{prog}: {e}", file=sys.stderr)
            return 2
        return fit(cfg, store, args.out, resume_from)


def run_lock(out: str | Path) -> contextlib.AbstractContextManager:
    """The run folder's lock (`ptacl.atomic.output_lock`), taken by process 0 only: the other
    DDP processes are its own children, re-running the command."""
    from ptacl.atomic import output_lock

    return output_lock(Path(out)) if _rank() == 0 else contextlib.nullcontext()


__all__ = [
    "DataConfig",
    "LastCheckpoint",
    "OptimConfig",
    "ResyncSchedule",
    "RunDirError",
    "TrainerConfig",
    "add_run_arguments",
    "build_dataloader",
    "build_optimizer_and_schedule",
    "build_trainer",
    "command_parser",
    "compile_blocks",
    "cpu_has_amx_bf16",
    "ddp_strategy",
    "fit_stage",
    "global_batch_size",
    "lightning_optimizers",
    "load_encoder",
    "load_encoder_weights",
    "prepare_run_dir",
    "read_run_config",
    "resolve_config",
    "resolve_precision",
    "run_command",
    "run_lock",
    "scaled_lr",
    "stage_optimizers",
    "to_dict",
    "warmup_cosine",
]
