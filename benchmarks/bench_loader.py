"""DataLoader throughput: paired training samples/s with every augmentation, per worker count.

    .venv/bin/python benchmarks/bench_loader.py                     # 0, 1, 2 workers
    .venv/bin/python benchmarks/bench_loader.py --workers 0 2 4 --batches 30 --batch-size 64

The store is random (256 paired subjects, written with `write_store` into a temporary folder):
the loader's cost does not depend on the values. Two settings: the default augmentation
probabilities (what training uses) and every augmentation forced on (p = 1, the worst case).
Worker counts run interleaved, repeated, so load on a shared machine hits them alike; the CPU
time per item (one process, `time.process_time`) is printed too, as it depends little on load.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from ptacl.data.augment_cmr import CmrAugmentConfig
from ptacl.data.augment_ecg import EcgAugmentConfig
from ptacl.data.datasets import PairedDataset
from ptacl.data.store_write import write_store

ALL_ON_ECG = EcgAugmentConfig(ft_surrogate_p=1.0, jitter_p=1.0, rescale_p=1.0)
ALL_ON_CMR = CmrAugmentConfig(
    **{f.name: 1.0 for f in dataclasses.fields(CmrAugmentConfig) if f.name.endswith("_p")}
)


def random_store(root: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    eids = [str(1_000_000 + i) for i in range(n)]
    return write_store(
        root / "store",
        eids=eids,
        splits=["train"] * n,
        ecg=rng.standard_normal((n, 12, 5000), dtype=np.float32),
        cmr=rng.integers(0, 256, (n, 50, 84, 84), dtype=np.uint8),
        r_peaks=[np.arange(rng.integers(50, 500), 5000, 420) for _ in range(n)],
        phenotypes=rng.random((n, 10)),
        has_ecg=[True] * n,
        has_cmr=[True] * n,
        qc=pd.DataFrame({"eid": eids, "status": "paired"}),
    )


def samples_per_second(store: Path, workers: int, batches: int, batch_size: int, ecg, cmr) -> float:
    ds = PairedDataset(store, "train", train=True, ecg_augment=ecg, cmr_augment=cmr)
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
    )
    done, t0 = 0, None
    while done < batches + 2:
        for _ in loader:
            done += 1
            if done == 2:  # the first batches pay for worker start-up
                t0 = time.perf_counter()
            if done == batches + 2:
                break
    return batches * batch_size / (time.perf_counter() - t0)


def cpu_ms_per_item(store: Path, ecg, cmr, items: int = 200) -> float:
    """CPU time of one training item in this process: less sensitive to machine load than
    wall-clock rates, and 1000 / it is what one loader core can deliver."""
    ds = PairedDataset(store, "train", train=True, ecg_augment=ecg, cmr_augment=cmr)
    for k in range(5):
        ds[k]
    t0 = time.process_time()
    for k in range(items):
        ds[k % len(ds)]
    return (time.process_time() - t0) / items * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--subjects", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        store = random_store(Path(tmp), args.subjects)
        for label, ecg, cmr in (
            ("default probabilities", EcgAugmentConfig(), CmrAugmentConfig()),
            ("every augmentation on", ALL_ON_ECG, ALL_ON_CMR),
        ):
            runs: dict[int, list[float]] = {w: [] for w in args.workers}
            for _ in range(args.repeats):
                for w in args.workers:
                    runs[w].append(
                        samples_per_second(store, w, args.batches, args.batch_size, ecg, cmr)
                    )
            base = statistics.median(runs[args.workers[0]])
            ms = cpu_ms_per_item(store, ecg, cmr)
            print(f"paired samples/s, {label} (batch {args.batch_size}, median of {args.repeats})")
            print(f"  CPU per item: {ms:.2f} ms  (=> {1000 / ms:.0f} samples/s per loader core)")
            for w, values in runs.items():
                rate = statistics.median(values)
                per = rate / max(w, 1)
                print(
                    f"  workers={w}: {rate:8.1f} samples/s  ({per:7.1f} per process)"
                    f"  x{rate / base:.2f} vs workers={args.workers[0]}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
