"""Data loaders of the training stages: shuffled, seeded and resumable for training, ordered for
validation (`ptacl.training.resume` says how a resumed run continues mid-epoch)."""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from ptacl.data.augment_cmr import CmrAugmentConfig
from ptacl.data.augment_ecg import EcgAugmentConfig
from ptacl.training.resume import EpochSampler, ResumableLoader

#: modality -> the config of its datasets' augmentations (a stage-1 run config's `augment`)
AUGMENT_CONFIGS: dict[str, type[EcgAugmentConfig | CmrAugmentConfig]] = {
    "ecg": EcgAugmentConfig,
    "cmr": CmrAugmentConfig,
}


@dataclass(frozen=True)
class DataConfig:
    store: str = ""  # the prepared store (`--data`)
    batch_size: int = 64  # per device
    num_workers: int = 4


def _fitting_batch(items: int) -> int:
    """The largest power of two that is at most `items` (at least 1): a batch that fits."""
    return 1 << max(items, 1).bit_length() - 1


def check_batch(train_set: Dataset, config: DataConfig) -> None:
    """ConfigError (a user's setting: commands print it in one line) when the training split
    holds fewer items than one batch."""
    if len(train_set) < config.batch_size:
        from ptacl.config import ConfigError

        raise ConfigError(
            f"{config.store}: {len(train_set)} training items, fewer than data.batch_size "
            f"{config.batch_size}; add data.batch_size={_fitting_batch(len(train_set))} to the "
            "command, or use a config sized for this cohort (e.g. --config demo/... or tiny/...)"
        )


def build_dataloader(
    dataset: Dataset, config: DataConfig, *, train: bool, seed: int | None = None
) -> DataLoader:
    """Shuffled, full batches for training; ordered, every item for validation. Under DDP
    Lightning swaps in a DistributedSampler itself.

    Training batches come from a `ResumableLoader` over an `EpochSampler` seeded with `seed`
    (default: `torch.initial_seed()`, i.e. the trainer's seed, which every stage sets with
    `seed_everything` first), so a resumed run continues mid-epoch exactly where it stopped.
    """
    if train:
        check_batch(dataset, config)
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
        worker_init_fn=_worker_init if config.num_workers > 0 else None,
    )


def _worker_init(worker_id: int) -> None:
    """A DataLoader worker ignores SIGTERM. A scheduler's `kill` (SLURM, `kill -- -PGID`)
    reaches the whole process group: a worker killed by it made torch raise "DataLoader worker
    is killed by signal" in the training process, mid-step, instead of the clean stop after the
    step that SIGTERM gives (`ptacl.training.trainer.fit_stage`); the training process then
    ends its workers itself, and a worker whose parent died exits on its own (torch's watchdog).
    Then Lightning's own worker seeding, which it adds only to a loader without an init."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.environ.get("PL_SEED_WORKERS") == "1":  # `seed_everything(..., workers=True)`
        from lightning.fabric.utilities.seed import pl_worker_init_function

        pl_worker_init_function(worker_id)


class StageData(L.LightningDataModule):
    """A stage's train and val datasets, as Lightning's DataModule: each stage's subclass
    (`MaeData`, `SimclrData`, `AlignData`, `FinetuneData`) builds its two sets, in its
    __init__ so that a batch larger than the training split is refused before any training
    starts."""

    def __init__(self, train_set: Dataset, val_set: Dataset, config: DataConfig) -> None:
        super().__init__()
        self.train_set, self.val_set, self.config = train_set, val_set, config

    def check(self) -> None:
        """`check_batch` of the training set (call once the val split is known not empty)."""
        check_batch(self.train_set, self.config)

    def usable(self, command: str, store: Path | str, what: str) -> bool:
        """False, with one line on stderr (`command`: `store`: no `what` in the val split), when
        the val split is empty; else `check` (ConfigError when a batch does not fit) and True."""
        if len(self.val_set) == 0:
            print(f"{command}: {store}: no {what} in the val split", file=sys.stderr)
            return False
        self.check()
        return True

    def train_dataloader(self) -> DataLoader:
        return build_dataloader(self.train_set, self.config, train=True)

    def val_dataloader(self) -> DataLoader:
        return build_dataloader(self.val_set, self.config, train=False)


def modality_dataset(
    store: Any,
    modality: str,
    split: str,
    *,
    train: bool,
    augment: Any,
    encoder: Any,
    seed: int = 0,
) -> Dataset:
    """The one-modality dataset of a split: `EcgDataset` cropped to the encoder's `samples`, or
    `CmrDataset` of its `frames`."""
    from ptacl.data.datasets import CmrDataset, EcgDataset

    if modality == "ecg":
        return EcgDataset(
            store, split, train=train, augment=augment, crop=encoder.samples, seed=seed
        )
    return CmrDataset(store, split, train=train, augment=augment, frames=encoder.frames, seed=seed)
