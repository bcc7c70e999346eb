"""`ptacl prepare` throughput: subjects/s with 1 and 2 worker processes, side by side.

    .venv/bin/python benchmarks/bench_prepare.py                    # synth cohort of 64 subjects
    .venv/bin/python benchmarks/bench_prepare.py --cohort DIR --workers 1 2 --repeats 3

DIR holds ecg/, cmr/ and phenotypes.csv (as `ptacl synth` writes them); without --cohort one is
synthesised into a temporary folder first. Each run is a fresh subprocess, so its peak RSS
(main process, and the largest worker) is its own; worker counts alternate, so machine load
hits them alike. Reported: the median subjects/s and the ratio to the first worker count.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_one(cohort: Path, out: Path, workers: int) -> dict:
    from ptacl.data.prepare import prepare_store

    t0 = time.perf_counter()
    result = prepare_store(
        cohort / "ecg",
        cohort / "cmr",
        cohort / "phenotypes.csv",
        out,
        workers=workers,
        overwrite=True,
        progress=False,
    )
    seconds = time.perf_counter() - t0
    seen = sum(result.counts[s] for s in ("paired", "ecg_only", "cmr_only", "rejected"))
    return {
        "workers": workers,
        "subjects": seen,
        "seconds": seconds,
        "subjects_per_s": seen / seconds,
        "counts": result.counts,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def synthesise(out: Path, subjects: int) -> Path:
    from ptacl.cli.synth import main as synth

    if synth(["--out", str(out), "--subjects", str(subjects), "--seed", "0", "--quiet"]) != 0:
        raise SystemExit("ptacl synth failed")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, help="raw cohort folder (default: synthesise)")
    parser.add_argument("--subjects", type=int, default=64, help="size of a synthesised cohort")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--run-one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_one is not None:
        print(json.dumps(run_one(args.cohort, args.out, args.run_one)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        cohort = args.cohort or synthesise(Path(tmp) / "cohort", args.subjects)
        runs: dict[int, list[dict]] = {w: [] for w in args.workers}
        for _ in range(args.repeats):
            for w in args.workers:
                cmd = [sys.executable, __file__, "--cohort", str(cohort), "--run-one", str(w)]
                cmd += ["--out", str(Path(tmp) / "store")]
                done = subprocess.run(cmd, check=True, capture_output=True, text=True)
                runs[w].append(json.loads(done.stdout.strip().splitlines()[-1]))
    first = runs[args.workers[0]][0]
    print(f"cohort: {cohort if args.cohort else 'synthesised'}; counts {first['counts']}")
    base = statistics.median(r["subjects_per_s"] for r in runs[args.workers[0]])
    for w, rs in runs.items():
        rate = statistics.median(r["subjects_per_s"] for r in rs)
        print(
            f"  workers={w}: {rate:6.2f} subjects/s  x{rate / base:.2f} vs workers="
            f"{args.workers[0]}  (median of {len(rs)}; peak RSS main "
            f"{max(r['peak_rss_mib'] for r in rs):.0f} MiB, worker "
            f"{max(r['worker_peak_rss_mib'] for r in rs):.0f} MiB)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
