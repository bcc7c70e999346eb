"""Embed one split of a store with a run's encoders (or random ones) into an .npz.

    ptacl embed --model runs/align --data store --split test --out emb/test.npz
    ptacl embed --model none --seed 0 --data store --split test --out emb/random.npz

RUN is a folder from `ptacl pretrain`, `ptacl align` or `ptacl finetune`, or `none` (randomly
initialised encoders of the paper's sizes, seeded). The .npz holds eids, the mean-pooled ECG and
CMR embeddings the run can compute, projected embeddings when the run has projection heads, the
phenotypes and, with both encoders, the mean ECG-CMR local similarity matrix; no pickles.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from ptacl.cli.common import at_least_one

    parser = argparse.ArgumentParser(
        prog="ptacl embed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="run folder, or `none` for random init")
    parser.add_argument("--data", type=Path, required=True, help="prepared store")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--out", type=Path, required=True, help=".npz file to write")
    parser.add_argument("--seed", type=int, default=0, help="initialisation seed for `none`")
    parser.add_argument("--like", help="with `none`: the architecture of this run (else paper's)")
    parser.add_argument("--batch-size", type=at_least_one, default=32)
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ptacl.data.store import StoreError
    from ptacl.eval.embed import EmbedError, compute_embeddings
    from ptacl.runs import RunDirError, load_run_encoders

    try:
        encoders = load_run_encoders(args.model, seed=args.seed, like=args.like)
        emb = compute_embeddings(
            encoders,
            args.data,
            args.split,
            batch_size=args.batch_size,
            device=args.device,
            num_workers=args.num_workers,
            progress=not args.no_progress,
        )
    except (EmbedError, RunDirError, StoreError) as e:
        print(f"ptacl embed: {e}", file=sys.stderr)
        return 1
    emb.meta["seed"] = args.seed if args.model == "none" else None
    path = emb.save(args.out)
    held = ", ".join(
        k for k in ("ecg", "cmr", "ecg_proj", "cmr_proj") if getattr(emb, k) is not None
    )
    print(f"{len(emb.eids)} subjects of {args.split} ({held}) -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
