"""Exact resume: a run killed and resumed ends with the weights of a run never interrupted.

Three sources of randomness decide a training step, and each is made a function of where the
run is rather than of what ran before in this process:

- **Which items, in which order**: `EpochSampler` draws epoch e's order from (seed, e) alone;
  `ResumableLoader` reports (epoch, batches handed out) to Lightning, which saves it in every
  checkpoint and hands it back on resume, so the resumed epoch continues with the batch the
  interrupted run would have drawn next (otherwise Lightning restarts the epoch and warns
  "your dataloader is not resumable").
- **How each item is augmented**: the sampler yields (epoch, index); the datasets reseed their
  augmentations from (seed, epoch, index) for that item (`ptacl.data.datasets`), whichever
  worker draws it and however many workers there are.
- **The model's own draws** (MAE masks, dropout): `StepSeed` reseeds torch from (seed, rank,
  step, batch) before every training batch, so validation, checkpointing or a restart in
  between do not shift them.

On the same machine and software, the weights then match bit for bit
(tests/training/test_resume.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, Sampler


class EpochSampler(Sampler[tuple[int, int]]):
    """A shuffled order of `size` items per epoch, drawn from (seed, epoch) alone; yields
    (epoch, index) so the dataset can seed the item's augmentation from it.

    Lightning calls `set_epoch` at the start of every epoch; `resume` skips the items a
    resumed epoch has already trained on (for its next pass only).
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0
        self.start = 0

    def __len__(self) -> int:
        return self.size

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self.start = epoch, 0

    def resume(self, epoch: int, start: int) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, start = self.epoch, self.start
        self.start = 0
        order = np.random.default_rng([self.seed, epoch]).permutation(self.size)
        for k in order[start:]:
            yield epoch, int(k)


class ResumableLoader(DataLoader):
    """A training DataLoader over an `EpochSampler` whose position Lightning checkpoints.

    Its state is (epoch, batches handed out in that epoch), counted where the batches leave the
    loader, so batches that workers prefetched but training never saw are not counted.
    Lightning finds `state_dict` / `load_state_dict` on the loader, saves the state in each
    checkpoint and restores it before the first batch of a resumed fit.
    """

    def __iter__(self) -> Iterator[Any]:
        sampler = self.sampler
        if not isinstance(sampler, EpochSampler):
            yield from super().__iter__()  # Lightning wrapped it (DDP): no resume position
            return
        epoch, done = sampler.epoch, sampler.start // self.batch_size
        self._position = (epoch, done)
        for batch in super().__iter__():
            done += 1
            self._position = (epoch, done)
            yield batch

    def state_dict(self) -> dict[str, int]:
        epoch, done = getattr(self, "_position", (getattr(self.sampler, "epoch", 0), 0))
        return {"epoch": epoch, "batches": done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if not isinstance(self.sampler, EpochSampler) or not state:
            return
        epoch, done = int(state["epoch"]), int(state["batches"])
        if done >= len(self):  # saved after its epoch's last batch: the next epoch begins
            epoch, done = epoch + 1, 0
        self.sampler.resume(epoch, done * self.batch_size)
        self._position = (epoch, done)


def step_seed(seed: int, rank: int, step: int, batch: int) -> int:
    """A torch seed for one training batch, from where the run is."""
    return int(np.random.SeedSequence([seed, rank, step, batch]).generate_state(1)[0])


class StepSeed(Callback):
    """Reseed torch before every training batch from (seed, rank, global step, batch index)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        torch.manual_seed(step_seed(self.seed, trainer.global_rank, trainer.global_step, batch_idx))
