"""Data loaders of the training stages: shuffled, seeded and resumable for training, ordered for
validation (`ptacl.training.resume` says how a resumed run continues mid-epoch)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

from ptacl.training.resume import EpochSampler, ResumableLoader


@dataclass(frozen=True)
class DataConfig:
    store: str = ""  # the prepared store (`--data`)
    batch_size: int = 64  # per device
    num_workers: int = 4


def _fitting_batch(items: int) -> int:
    """The largest power of two that is at most `items` (at least 1): a batch that fits."""
    return 1 << max(items, 1).bit_length() - 1


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
        from ptacl.config import ConfigError  # a user's setting: commands print it in one line

        raise ConfigError(
            f"{config.store}: {len(dataset)} training items, fewer than data.batch_size "
            f"{config.batch_size}; add data.batch_size={_fitting_batch(len(dataset))} to the "
            "command, or use a config sized for this cohort (e.g. --config demo/... or tiny/...)"
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
