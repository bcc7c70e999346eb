"""One process of a short `align` fit, for tests/training/test_multinode.py: run under
`torchrun --nnodes 2 --nproc-per-node 1` (one process per simulated node, gloo on localhost) or
as a plain script (one process). Rank 0 writes the training loss of every optimizer step,
averaged over the processes, to <out>/losses.json.

    python multinode_align.py OUT NODES BATCH ACCUMULATE HEAD_NORM
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ptacl import configs
from ptacl.config import load_config, to_dict
from ptacl.training.align import AlignModule, AlignRunConfig
from ptacl.training.trainer import build_trainer

ITEMS = 24  # one epoch: 3 steps of 2 micro-batches of 2 per process, 2 processes


class Pairs(Dataset):
    """Fixed random pairs with two complete beats in the 1000-sample crop of configs/tiny."""

    def __init__(self, frames: int, size: int) -> None:
        g = torch.Generator().manual_seed(1)
        self.ecg = torch.randn(ITEMS, 12, 1000, generator=g)
        self.cmr = torch.rand(ITEMS, 1, frames, size, size, generator=g)
        self.r_peaks = torch.full((8,), -1)
        self.r_peaks[:3] = torch.tensor([100, 450, 800])

    def __len__(self) -> int:
        return ITEMS

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"ecg": self.ecg[i], "cmr": self.cmr[i], "r_peaks": self.r_peaks}


class LossCurve(L.Callback):
    """Each optimizer step's training loss, averaged over processes (each process's loss covers
    its rows against the whole global batch, so the mean is the one-process loss)."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:  # a micro-batch before the k-th
            return
        loss = loss.detach().clone()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(loss)
            loss /= dist.get_world_size()
        self.losses.append(float(loss))


def dealt_order(size: int, processes: int, per_process: int, seed: int) -> list[int]:
    """The items as Lightning deals them under DDP (a shuffled DistributedSampler seeded with the
    run's seed, epoch 0), each global batch in rank order: read by one process with batches of
    processes × per_process, the same global batches."""
    shards = [
        list(DistributedSampler(range(size), processes, rank, shuffle=True, seed=seed))
        for rank in range(processes)
    ]
    return [i for start in range(0, size // processes, per_process)
            for shard in shards for i in shard[start : start + per_process]]  # fmt: skip


def main(out: Path, nodes: int, batch: int, accumulate: int, norm: str) -> None:
    overrides = [
        f"data.batch_size={batch}",
        f"trainer.num_nodes={nodes}",
        f"trainer.accumulate_grad_batches={accumulate}",
        "trainer.devices=1",
        "trainer.max_steps=3",
        "trainer.val_every_n_steps=100",
        "trainer.checkpoint_every_n_steps=0",
        "freeze_blocks=0",
        f"head.norm={norm}",
    ]
    cfg = load_config(AlignRunConfig, configs.root() / "tiny" / "ptacl.yaml", overrides)
    torch.manual_seed(0)
    module = AlignModule(to_dict(cfg))
    curve = LossCurve()
    trainer = build_trainer(
        cfg.trainer,
        out / "run",
        callbacks=[curve],
        feature_cache=not module.automatic_optimization,
    )
    pairs = Pairs(cfg.cmr_encoder.frames, cfg.cmr_encoder.size)
    # under DDP Lightning swaps in its DistributedSampler; one process reads the same batches
    order = None if nodes > 1 else dealt_order(ITEMS, 2, batch // 2, cfg.trainer.seed)
    trainer.fit(module, DataLoader(pairs, batch_size=batch, sampler=order))
    if trainer.is_global_zero:
        (out / "losses.json").write_text(json.dumps(curve.losses))


if __name__ == "__main__":
    out, nodes, batch, accumulate, norm = sys.argv[1:6]
    main(Path(out), int(nodes), int(batch), int(accumulate), norm)
