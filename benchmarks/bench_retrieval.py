"""Retrieval metrics on N x N random embeddings: wall time and peak memory.

    .venv/bin/python benchmarks/bench_retrieval.py                    # 6,000 and 100,000
    .venv/bin/python benchmarks/bench_retrieval.py --n 6000 --dim 512 --chunk-size 512
    .venv/bin/python benchmarks/bench_retrieval.py --n 6000 --before /tmp/base/src  # old vs new

With `--before SRC` each size also runs on the code under SRC (e.g. `git archive REV src | tar
-x -C /tmp/base`), before the current code, and the two metric tables must be equal (exactly:
the same floats); the line says `"equal": true`.

Each size runs in a fresh subprocess so its peak RSS (ru_maxrss) is its own. Phenotypes are
ten standard-normal columns with 5 % NaN, as in a real table; embeddings are random, so the
first match often lies beyond the top-K and the exact fallback is exercised at its real rate.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def run_one(n: int, dim: int, chunk_size: int | None, threads: int) -> dict:
    import numpy as np
    import pandas as pd
    import torch

    from ptacl.eval.random_baseline import random_retrieval_baseline
    from ptacl.eval.retrieval import retrieval_metrics

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    ecg = rng.standard_normal((n, dim), dtype=np.float32)
    cmr = rng.standard_normal((n, dim), dtype=np.float32)
    y = rng.standard_normal((n, 10))
    y[rng.random(y.shape) < 0.05] = np.nan
    pheno = pd.DataFrame(y, columns=[f"p{i}" for i in range(10)])
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    table = retrieval_metrics(ecg, cmr, pheno, chunk_size=chunk_size)
    seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    random_retrieval_baseline(pheno)
    baseline_seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "n": n,
        "dim": dim,
        "chunk_size": chunk_size,
        "threads": threads,
        "seconds": round(seconds, 2),
        "baseline_seconds": round(baseline_seconds, 3),
        "peak_rss_mib": round(peak),
        "inputs_rss_mib": round(base_rss),
        "mean_P@1": round(float(table["P@1"].mean()), 4),
        "mean_MnR": round(float(table["MnR"].mean()), 3),
        "table": table.to_json(orient="split", double_precision=15),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[6000, 100_000])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--chunk-size", type=int, default=None, help="default: 256 MiB blocks")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--before", help="also run the code under this src folder, compare")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_one(args.n[0], args.dim, args.chunk_size, args.threads)))
        return 0
    for n in args.n:
        cmd = [sys.executable, __file__, "--child", "--n", str(n), "--dim", str(args.dim)]
        cmd += ["--threads", str(args.threads)]
        if args.chunk_size:
            cmd += ["--chunk-size", str(args.chunk_size)]
        runs = {}
        for code in (["before"] if args.before else []) + ["now"]:
            env = dict(os.environ)
            if code == "before":
                env["PYTHONPATH"] = os.pathsep.join([args.before, env.get("PYTHONPATH", "")])
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
            runs[code] = json.loads(out.strip().splitlines()[-1])
        line = runs["now"]
        if args.before:
            line["before_seconds"] = runs["before"]["seconds"]
            line["before_peak_rss_mib"] = runs["before"]["peak_rss_mib"]
            line["equal"] = runs["before"]["table"] == line["table"]
        del line["table"]
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
