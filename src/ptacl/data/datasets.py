"""Datasets over a prepared store: ECG, CMR and paired items as dicts of fixed-size tensors.

Every item has the same shapes, so torch's default collate stacks a batch:
    EcgDataset    {"ecg": (12, crop) float32, "r_peaks": (32,) int64, "phenotypes": (10,)
                   float32 (NaN unknown), "eid": str, "index": int (row in the store)}
    CmrDataset    {"cmr": (1, frames, 84, 84) float32 in [0, 1], "phenotypes", "eid", "index"}
    PairedDataset the union of both, over subjects that have both modalities.

Training items (`train=True` with an augmentation config) are random: a random ECG crop inside
the valid `ecg_length` (R peaks shifted with it) and the configured augmentations. Otherwise items
are deterministic: the first `crop` samples and the frames 0, 2, 4, ... (end-diastole first).

Seeding: each dataset owns its generators. A training loader's `EpochSampler` hands out keys
(epoch, k), and item k is then augmented from (seed, epoch, k) alone: the same in any worker,
with any number of workers, and after a resume mid-epoch (`ptacl.training.resume`). A plain
int key k keeps the stream: seeded from `seed` in the main process, reseeded once inside a
DataLoader worker from (seed, the worker's torch seed), so workers differ from each other, yet
a run is repeatable under `torch.manual_seed`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from ptacl.data.augment_cmr import CmrAugment, CmrAugmentConfig
from ptacl.data.augment_ecg import EcgAugment, EcgAugmentConfig, crop_ecg, pad_peaks
from ptacl.data.store import Store


class _StoreDataset(Dataset):
    """Rows of one split of a store holding the requested modalities; reopened in workers."""

    def __init__(
        self, store: Store | str | Path, split: str | None, *, ecg: bool, cmr: bool, seed: int
    ) -> None:
        self.store = store if isinstance(store, Store) else Store.open(store)
        self.split = split
        self.rows = self.store.indices(split, ecg=ecg, cmr=cmr)
        self._eids = self.store.subjects["eid"].astype(str).to_numpy()
        self.seed = seed
        self._seeded_for: int | None = None
        self.reseed(None)

    def __len__(self) -> int:
        return len(self.rows)

    # Pickling (spawn-started workers) must not copy the memory-mapped arrays: reopen by path.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["store"] = str(self.store.root)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state["store"] = Store.open(state["store"])
        self.__dict__.update(state)

    def reseed(self, worker_seed: int | None) -> None:
        """Reseed the augmentations from (seed, worker_seed); None: the main process."""
        entropy = [self.seed] if worker_seed is None else [self.seed, worker_seed]
        self._set_random_state(np.random.SeedSequence(entropy))
        self._seeded_for = worker_seed

    def _set_random_state(self, seq: np.random.SeedSequence) -> None:
        raise NotImplementedError

    def _check_worker_seed(self) -> None:
        info = get_worker_info()
        if info is not None and info.seed != self._seeded_for:
            self.reseed(info.seed)

    def seed_item(self, epoch: int, k: int) -> None:
        """Seed the augmentations of item k in `epoch` from (seed, epoch, k) alone."""
        self._check_worker_seed()  # first, so the once-per-worker reseed cannot undo this
        self._set_random_state(np.random.SeedSequence([self.seed, int(epoch), int(k)]))

    def _row(self, key: int | tuple[int, int]) -> int:
        """The store row of item `key`: k, or (epoch, k) from an `EpochSampler` (which also
        seeds the item's augmentations, see the module docstring)."""
        if isinstance(key, tuple):
            epoch, k = key
            self.seed_item(epoch, k)
        else:
            self._check_worker_seed()
            k = key
        return int(self.rows[int(k)])

    def _common(self, i: int) -> dict[str, Any]:
        return {
            "phenotypes": torch.from_numpy(np.array(self.store.phenotypes[i], dtype=np.float32)),
            "eid": str(self._eids[i]),
            "index": int(i),
        }


class _EcgItems:
    """The ECG half of an item, shared by EcgDataset and PairedDataset."""

    def __init__(self, store: Store, train: bool, augment: EcgAugmentConfig | None, crop: int):
        self.crop = crop
        self.lengths = store.subjects["ecg_length"].to_numpy(dtype=np.int64)
        random = train and augment is not None and augment.enabled
        self.augment = EcgAugment(augment, crop=crop) if random else None

    def __call__(self, store: Store, i: int) -> dict[str, torch.Tensor]:
        length = int(self.lengths[i])
        ecg = store.ecg[i, :, :length]  # (12, length) float16, memory-mapped
        peaks = store.peaks(i)
        if self.augment is not None:
            ecg, peaks = self.augment(ecg, peaks, length)
        else:
            ecg, peaks = crop_ecg(ecg, peaks, 0, self.crop)
        return {
            "ecg": torch.from_numpy(np.ascontiguousarray(ecg, dtype=np.float32)),
            "r_peaks": torch.from_numpy(pad_peaks(peaks)),
        }


class _CmrItems:
    """The CMR half of an item, shared by CmrDataset and PairedDataset."""

    def __init__(self, train: bool, augment: CmrAugmentConfig | None, frames: int):
        random = train and augment is not None and augment.enabled
        config = augment if random else CmrAugmentConfig(enabled=False)
        self.augment = CmrAugment(config, frames=frames)

    def __call__(self, store: Store, i: int) -> dict[str, torch.Tensor]:
        cine = self.augment(store.cmr[i])  # (frames, H, W) float32 in [0, 1]
        return {"cmr": torch.from_numpy(np.ascontiguousarray(cine))[None]}


class EcgDataset(_StoreDataset):
    """ECGs of one split (None: all), paired or ECG-only subjects alike."""

    def __init__(
        self,
        store: Store | str | Path,
        split: str | None,
        *,
        train: bool,
        augment: EcgAugmentConfig | None,
        crop: int = 2500,
        seed: int = 0,
    ) -> None:
        store = store if isinstance(store, Store) else Store.open(store)
        self._ecg = _EcgItems(store, train, augment, crop)
        super().__init__(store, split, ecg=True, cmr=False, seed=seed)

    def _set_random_state(self, seq: np.random.SeedSequence) -> None:
        if self._ecg.augment is not None:
            self._ecg.augment.set_random_state(seq)

    def __getitem__(self, k: int | tuple[int, int]) -> dict[str, Any]:
        i = self._row(k)
        return {**self._ecg(self.store, i), **self._common(i)}


class CmrDataset(_StoreDataset):
    """Cine CMRs of one split (None: all), paired or CMR-only subjects alike."""

    def __init__(
        self,
        store: Store | str | Path,
        split: str | None,
        *,
        train: bool,
        augment: CmrAugmentConfig | None,
        frames: int = 26,
        seed: int = 0,
    ) -> None:
        store = store if isinstance(store, Store) else Store.open(store)
        self._cmr = _CmrItems(train, augment, frames)
        super().__init__(store, split, ecg=False, cmr=True, seed=seed)

    def _set_random_state(self, seq: np.random.SeedSequence) -> None:
        self._cmr.augment.set_random_state(seq)

    def __getitem__(self, k: int | tuple[int, int]) -> dict[str, Any]:
        i = self._row(k)
        return {**self._cmr(self.store, i), **self._common(i)}


class PairedDataset(_StoreDataset):
    """Subjects with both an ECG and a CMR (what stage 2 and evaluation use)."""

    def __init__(
        self,
        store: Store | str | Path,
        split: str | None,
        *,
        train: bool,
        ecg_augment: EcgAugmentConfig | None,
        cmr_augment: CmrAugmentConfig | None,
        crop: int = 2500,
        frames: int = 26,
        seed: int = 0,
    ) -> None:
        store = store if isinstance(store, Store) else Store.open(store)
        self._ecg = _EcgItems(store, train, ecg_augment, crop)
        self._cmr = _CmrItems(train, cmr_augment, frames)
        super().__init__(store, split, ecg=True, cmr=True, seed=seed)

    def _set_random_state(self, seq: np.random.SeedSequence) -> None:
        ecg_seq, cmr_seq = seq.spawn(2)
        if self._ecg.augment is not None:
            self._ecg.augment.set_random_state(ecg_seq)
        self._cmr.augment.set_random_state(cmr_seq)

    def __getitem__(self, k: int | tuple[int, int]) -> dict[str, Any]:
        i = self._row(k)
        return {**self._ecg(self.store, i), **self._cmr(self.store, i), **self._common(i)}
