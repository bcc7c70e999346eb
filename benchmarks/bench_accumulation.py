"""Peak memory of one stage-2 training step: k micro-batches through the feature cache against
one batch of the same k·B pairs (`ptacl.training.feature_cache`).

    .venv/bin/python benchmarks/bench_accumulation.py --pairs 16 --ks 1 4
    .venv/bin/python benchmarks/bench_accumulation.py --config ptacl_regression.yaml --device cuda

Each k runs in a fresh process (the CPU peak, ru_maxrss, only grows): the model and the batch of
k·B pairs are built, then one forward + losses + backward (k = 1) or the cached version (k > 1).
Reported: the step's peak above the memory held before it (CPU: resident set; CUDA:
torch.cuda.max_memory_allocated), one JSON line per k.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_align import make_batch


def _resident_mib() -> float:
    with open("/proc/self/statm", encoding="ascii") as file:
        pages = int(file.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def one_step(config: str, pairs: int, k: int, device: str) -> dict:
    from ptacl import configs
    from ptacl.config import load_config, to_dict
    from ptacl.training.align import AlignModule, AlignRunConfig
    from ptacl.training.feature_cache import cached_backward

    torch.manual_seed(0)
    cfg = load_config(AlignRunConfig, configs.root() / config)
    module = AlignModule(to_dict(cfg)).to(device).train()
    batch = {n: v.to(device) for n, v in make_batch(module, pairs).items()}

    def embed(chunk):
        return module(chunk["ecg"], chunk["cmr"], chunk["r_peaks"])

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
    else:
        before = _resident_mib()
    if k == 1:
        module.losses(embed(batch))["loss"].backward()
    else:
        size = pairs // k
        chunks = [{n: v[i * size : (i + 1) * size] for n, v in batch.items()} for i in range(k)]
        cached_backward(embed, module.losses, chunks, model=module)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:  # ru_maxrss: KiB on Linux
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "config": config,
        "device": device,
        "pairs": pairs,
        "k": k,
        "micro_batch": pairs // k,
        "before_mib": round(before, 1),
        "step_peak_above_mib": round(peak - before, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="small/ptacl.yaml")
    parser.add_argument("--pairs", type=int, default=16, help="k·B, the same for every k")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one_step(args.config, args.pairs, args.one, args.device)), flush=True)
        return 0
    for k in args.ks:
        if args.pairs % k:
            parser.error(f"--pairs {args.pairs} is not a multiple of k={k}")
        child = [sys.executable, __file__, "--config", args.config, "--pairs", str(args.pairs)]
        child += ["--device", args.device, "--one", str(k)]
        subprocess.run(child, check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
