"""The CMR Gaussian noise drawn with torch (now) against numpy (before), per paired item, in
one run: CPU ms per item and items/s per loader core with the default probabilities and with
every augmentation on.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_cmr_noise.py --items 100 --repeats 3

"Before" is the earlier `GaussianNoise.__call__` (numpy's Generator.standard_normal), patched
in for its turns only; turns alternate so that machine load hits both alike. One thread, one
process (`time.process_time`), as `bench_loader.py`'s CPU time per item.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_loader import ALL_ON_CMR, ALL_ON_ECG, random_store
from ptacl.data import augment_cmr
from ptacl.data.augment_cmr import CmrAugmentConfig
from ptacl.data.augment_ecg import EcgAugmentConfig
from ptacl.data.datasets import PairedDataset


def numpy_noise(self, cine: np.ndarray) -> np.ndarray:
    """GaussianNoise.__call__ before issue 25."""
    if not self.fires():
        return cine
    noise = self.rng.standard_normal(cine.shape, dtype=np.float32) * np.float32(self.sigma)
    return np.clip(cine + noise, 0.0, 1.0)


def ms_per_item(dataset: PairedDataset, items: int) -> float:
    for k in range(3):
        dataset[k]
    t0 = time.process_time()
    for k in range(items):
        dataset[k % len(dataset)]
    return (time.process_time() - t0) / items * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch_noise = augment_cmr.GaussianNoise.__call__
    with tempfile.TemporaryDirectory() as tmp:
        store = random_store(Path(tmp), 64)
        for label, ecg, cmr in (
            ("default probabilities", EcgAugmentConfig(), CmrAugmentConfig()),
            ("every augmentation on", ALL_ON_ECG, ALL_ON_CMR),
        ):
            dataset = PairedDataset(store, "train", train=True, ecg_augment=ecg, cmr_augment=cmr)
            runs: dict[str, list[float]] = {"before (numpy)": [], "now (torch)": []}
            for _ in range(args.repeats):
                for name, call in zip(runs, (numpy_noise, torch_noise)):
                    augment_cmr.GaussianNoise.__call__ = call
                    runs[name].append(ms_per_item(dataset, args.items))
            augment_cmr.GaussianNoise.__call__ = torch_noise
            before, now = (statistics.median(v) for v in runs.values())
            print(
                f"{label}: before {before:.2f} ms/item ({1000 / before:.0f} items/s per core), "
                f"now {now:.2f} ms/item ({1000 / now:.0f} items/s per core), x{before / now:.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
