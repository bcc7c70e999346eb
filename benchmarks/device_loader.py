"""Stage 2 fed by the real loader: is the GPU or the loader the limit?

    python benchmarks/device_loader.py --device cuda --size paper --json out.jsonl
    python benchmarks/device_loader.py --device cpu --size tiny --subjects 16 --steps 2

Writes (or reuses: safe to rerun) a random prepared store of `--subjects` paired subjects under
`--store`, then in one process, with the align preset of `--size`:

- loader: paired items/s of the training loader alone (`build_dataloader`: the real sampler,
  `--workers` processes, pinned memory on a GPU, the preset's augmentation), per worker too;
- synthetic: train-step samples/s on tensors already on the device (benchmarks/throughput.py's
  `Worker`: bf16-mixed, AdamW, clipping);
- fed: the same train steps with each batch taken from the loader and copied to the device.

Verdict: "loader-bound" when fed < 0.9 × synthetic (the steps wait for batches), else
"GPU-bound" ("device-bound" on the CPU). One JSON line per run (stdout and `--json`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from bench_loader import random_store
from throughput import Worker, config_path, sync

KEYS = ("ecg", "cmr", "r_peaks")


def store_at(root: Path, subjects: int) -> Path:
    """The random store under `root`, written once: a rerun reuses it (a half-written one from a
    killed run has no manifest, so it is written again)."""
    from ptacl.data.store import Store, StoreError

    try:
        store = Store.open(root / "store")
        if len(store) >= subjects:
            return root / "store"
    except (StoreError, FileNotFoundError, OSError):
        pass
    import shutil

    shutil.rmtree(root / "store", ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    return random_store(root, subjects)


def train_loader(store: Path, cfg: Any, batch: int, workers: int):
    from ptacl.data.datasets import PairedDataset
    from ptacl.training.loaders import DataConfig, build_dataloader

    dataset = PairedDataset(
        store,
        "train",
        train=True,
        ecg_augment=cfg.ecg_augment,
        cmr_augment=cfg.cmr_augment,
        crop=cfg.ecg_encoder.samples,
        frames=cfg.cmr_encoder.frames,
    )
    return build_dataloader(dataset, DataConfig(batch_size=batch, num_workers=workers), train=True)


def batches(loader) -> Any:
    """Batches without end (the loader's epochs one after the other)."""
    while True:
        yield from loader


def run(args: argparse.Namespace) -> dict[str, Any]:
    from ptacl.config import load_config
    from ptacl.training.align import AlignRunConfig

    cfg = load_config(AlignRunConfig, config_path("align", args.size))
    spec = {"stage": "align", "size": args.size, "batch": args.batch, "device": args.device}
    spec.update({"set": [], "precision": "bf16-mixed"})
    worker = Worker(spec)
    if args.compile:
        worker.compile()
    worker.warm_up()
    batch = worker.size
    synthetic = batch * args.steps / worker.block(args.steps)

    loader = train_loader(store_at(args.store, args.subjects), cfg, batch, args.workers)
    stream = batches(loader)
    next(stream)  # workers started, first batches in flight
    t0 = time.perf_counter()
    for _ in range(args.steps):
        next(stream)
    loader_rate = batch * args.steps / (time.perf_counter() - t0)

    synthetic_batch = worker.batch
    sync(args.device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        items = next(stream)
        worker.batch = {k: items[k].to(args.device, non_blocking=True) for k in KEYS}
        worker.step()
    sync(args.device)
    fed = batch * args.steps / (time.perf_counter() - t0)
    worker.batch = synthetic_batch
    bound = "GPU-bound" if args.device == "cuda" else "device-bound"
    return {
        "check": "loader_fed_align",
        "size": args.size,
        "device": args.device,
        "compile": args.compile,
        "batch": batch,
        "workers": args.workers,
        "steps": args.steps,
        "synthetic_samples_per_s": round(synthetic, 2),
        "loader_items_per_s": round(loader_rate, 2),
        "loader_items_per_s_per_worker": round(loader_rate / max(args.workers, 1), 2),
        "fed_samples_per_s": round(fed, 2),
        "verdict": "loader-bound" if fed < 0.9 * synthetic else bound,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--batch", type=int, help="default: the preset's (CPU paper: 8)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--subjects", type=int, default=512)
    parser.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1))
    parser.add_argument("--store", type=Path, default=Path(".device_check"))
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--json", type=Path, help="also append the JSON line here")
    args = parser.parse_args(argv)
    row = run(args)
    line = json.dumps(row)
    print(line, flush=True)
    if args.json:
        with args.json.open("a", encoding="utf-8") as file:
            file.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
