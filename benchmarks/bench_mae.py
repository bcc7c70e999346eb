"""Stage-1 MAE training on the CPU at the paper's sizes: samples/s and peak memory, and
`scaled_dot_product_attention` against a plain softmax(QKᵀ)V attention, side by side.

    .venv/bin/python benchmarks/bench_mae.py                       # batch 8, 5 timed steps
    .venv/bin/python benchmarks/bench_mae.py --batch 16 --steps 10 --threads 2

Each (modality, attention) case runs in a fresh subprocess, so its peak RSS (ru_maxrss) is its
own; the cases alternate (ecg sdpa, ecg plain, cmr sdpa, cmr plain) and each is repeated
`--repeats` times, so a load change on a shared machine hits both attentions alike. A training
step is forward + masked loss + backward + AdamW step on random inputs of the real shapes.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time


def run_one(modality: str, attention: str, batch: int, steps: int, threads: int) -> dict:
    import torch

    from ptacl.config import to_dict
    from ptacl.models import CmrEncoderConfig, EcgEncoderConfig
    from ptacl.training.mae import MaePretraining, MaeRunConfig

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if modality == "ecg":
        cfg = MaeRunConfig(encoder=EcgEncoderConfig(attention=attention))
        x = torch.randn(batch, 12, 2500)
    else:
        cfg = MaeRunConfig(modality="cmr", encoder=CmrEncoderConfig(attention=attention))
        x = torch.rand(batch, 1, 26, 84, 84)
    mae = MaePretraining(to_dict(cfg)).mae
    optimizer = torch.optim.AdamW(mae.parameters(), lr=1e-4)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def step() -> None:
        loss = mae(x)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # first step allocates the optimizer state and warms the allocator
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    return {
        "modality": modality,
        "attention": attention,
        "batch": batch,
        "threads": threads,
        "parameters_m": round(sum(p.numel() for p in mae.parameters()) / 1e6, 2),
        "step_s": round(seconds, 3),
        "samples_per_s": round(batch / seconds, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_before_mib": round(base_rss),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--one", nargs=2, metavar=("MODALITY", "ATTENTION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one, args.batch, args.steps, args.threads)))
        return 0

    print(f"# {time.strftime('%Y-%m-%d %H:%M %Z')}  {platform.node()}  {platform.processor()}")
    print(
        f"# batch {args.batch}, {args.steps} timed steps, {args.threads} threads, "
        f"{args.repeats} repeats (median shown)"
    )
    results: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.repeats):
        for modality in ("ecg", "cmr"):
            for attention in ("sdpa", "plain"):
                cmd = [sys.executable, __file__, "--one", modality, attention]
                cmd += ["--batch", str(args.batch), "--steps", str(args.steps)]
                cmd += ["--threads", str(args.threads)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                results.setdefault((modality, attention), []).append(json.loads(out))
    print(
        f"{'MAE':<5}{'attention':<10}{'params M':>9}{'samples/s':>11}{'step s':>8}{'peak MiB':>10}"
    )
    for (modality, attention), runs in results.items():
        rate = statistics.median(r["samples_per_s"] for r in runs)
        step = statistics.median(r["step_s"] for r in runs)
        peak = max(r["peak_rss_mib"] for r in runs)
        params = runs[0]["parameters_m"]
        print(f"{modality:<5}{attention:<10}{params:>9}{rate:>11.2f}{step:>8.3f}{peak:>10}")
    for modality in ("ecg", "cmr"):
        # ratios per repeat (each pair ran back to back), then the median
        ratios = [
            p["step_s"] / s["step_s"]
            for s, p in zip(results[(modality, "sdpa")], results[(modality, "plain")])
        ]
        memory = (
            results[(modality, "plain")][0]["peak_rss_mib"]
            / results[(modality, "sdpa")][0]["peak_rss_mib"]
        )
        print(
            f"{modality}: plain / sdpa step time {statistics.median(ratios):.2f}x "
            f"(per repeat {', '.join(f'{r:.2f}' for r in ratios)}); peak memory {memory:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
