"""The Lightning callbacks every stage's Trainer carries (`ptacl.training.trainer.build_trainer`):
last.ckpt and best.ckpt, the learning-rate schedule resynced on resume, the pipeline's share of
the cores, progress lines and the step bar; and `build_callbacks`, the extra ones a config names
(`trainer.callbacks`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ptacl.threads import read_share
from ptacl.training.plugins import config_entries, import_class


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


def build_callbacks(entries: Sequence[str | dict[str, Any]]) -> list[Callback]:
    """The `trainer.callbacks` entries, each constructed with its settings."""
    from ptacl.config import ConfigError

    out = []
    for i, (path, kwargs) in enumerate(config_entries(entries, "trainer.callbacks")):
        where = f"trainer.callbacks[{i}]"
        try:
            out.append(import_class(path, Callback, where)(**kwargs))
        except TypeError as e:
            raise ConfigError(f"{where}: {path} does not take these settings: {e}") from None
    return out
