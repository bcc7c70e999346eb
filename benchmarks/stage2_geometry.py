"""Why stage 2 started on a plateau: how alike the pooled MAE features of different subjects are.

    .venv/bin/python benchmarks/stage2_geometry.py --data STORE --ecg-init RUNS/ecg_mae \
        --cmr-init RUNS/cmr_mae [--subjects 128]

For the validation subjects of STORE (the deterministic evaluation views), prints the mean
pairwise cosine similarity between subjects of (a) the mean-pooled encoder tokens of each MAE and
(b) the same features through a freshly initialised projection head, plain (Linear-ReLU-Linear)
and with the batch norm (`ptacl.models.heads`), in training mode as at the first step of
stage 2; and the spread (sd) of the ECG–CMR cosines the InfoNCE logits are made of. A mean
cosine near 1 and a spread near 0 mean every logit is about 1/τ: the loss sits at log B and its
gradient is the same for every pairing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from ptacl.data.store import Store
from ptacl.eval.embed import compute_embeddings
from ptacl.models.heads import HeadConfig, projection_head
from ptacl.runs import load_run_encoders


def mean_pairwise_cosine(z: torch.Tensor) -> float:
    unit = nn.functional.normalize(z.double(), dim=-1)
    sim = unit @ unit.T
    n = len(z)
    return float((sim.sum() - sim.diagonal().sum()) / (n * (n - 1)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--ecg-init", type=Path, required=True)
    parser.add_argument("--cmr-init", type=Path, required=True)
    parser.add_argument("--subjects", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--dim", type=int, default=32)
    args = parser.parse_args(argv)
    store = Store.open(args.data)
    pooled = {}
    for modality, run in (("ecg", args.ecg_init), ("cmr", args.cmr_init)):
        emb = compute_embeddings(load_run_encoders(run), store, "val")
        pooled[modality] = torch.from_numpy(getattr(emb, modality)[: args.subjects]).float()
    n = len(pooled["ecg"])
    print(f"{n} validation subjects of {args.data}; mean pairwise cosine between subjects")
    print("| features | ECG | CMR |\n|---|---|---|")
    print(f"| MAE pooled tokens | {mean_pairwise_cosine(pooled['ecg']):.3f} | "
          f"{mean_pairwise_cosine(pooled['cmr']):.3f} |")  # fmt: skip
    spread = {}
    for norm in ("none", "batch"):
        torch.manual_seed(0)
        config = HeadConfig(hidden=args.hidden, dim=args.dim, norm=norm)
        z = {m: projection_head(x.shape[1], config)(x) for m, x in pooled.items()}
        print(f"| through a fresh head, norm={norm} | {mean_pairwise_cosine(z['ecg']):.3f} | "
              f"{mean_pairwise_cosine(z['cmr']):.3f} |")  # fmt: skip
        cross = (
            nn.functional.normalize(z["ecg"], dim=-1) @ nn.functional.normalize(z["cmr"], dim=-1).T
        )
        spread[norm] = float(cross.std())
    print("\nsd of the ECG–CMR cosines (logit spread × τ): "
          + ", ".join(f"norm={k} {v:.4f}" for k, v in spread.items()))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
