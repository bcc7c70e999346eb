"""`ptacl prepare` throughput: subjects/s by worker count, and before/after a change, side by side.

    .venv/bin/python benchmarks/bench_prepare.py                    # synth cohort of 64 subjects
    .venv/bin/python benchmarks/bench_prepare.py --cohort DIR --workers 1 2 --repeats 3
    .venv/bin/python benchmarks/bench_prepare.py --cohort DIR --workers 1 --before OLD/src

DIR holds ecg/, cmr/ and phenotypes.csv (as `ptacl synth` writes them); without --cohort one is
synthesised into a temporary folder first. `--before` times a second copy of ptacl too (a
`src` folder, e.g. from `git archive OLD src | tar -x`) against the one this script imports.
Each run is a fresh subprocess, so its peak RSS (main process, and the largest worker) is its
own; runs alternate (code, then worker count), so machine load hits them alike. Reported: the
median subjects/s, CPU seconds per subject (user + system, workers included: less sensitive
to other jobs on the machine than wall time), the ratio to the first row, and whether every
run wrote the same store bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _cpu_seconds() -> float:
    own, children = (
        resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _digest(store: Path) -> str:
    """sha256 over the store's files (names and bytes, in name order)."""
    h = hashlib.sha256()
    for path in sorted(store.iterdir()):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def run_one(cohort: Path, out: Path, workers: int) -> dict:
    import ptacl
    from ptacl.data.prepare import prepare_store

    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    result = prepare_store(
        cohort / "ecg",
        cohort / "cmr",
        cohort / "phenotypes.csv",
        out,
        workers=workers,
        overwrite=True,
        progress=False,
    )
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    seen = sum(result.counts[s] for s in ("paired", "ecg_only", "cmr_only", "rejected"))
    return {
        "ptacl": str(Path(ptacl.__file__).parents[1]),
        "workers": workers,
        "subjects": seen,
        "seconds": seconds,
        "subjects_per_s": seen / seconds,
        "cpu_s_per_subject": cpu / seen,
        "counts": result.counts,
        "store_sha256": _digest(out),
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
    parser.add_argument("--before", type=Path, help="a ptacl src folder to time against this one")
    parser.add_argument("--run-one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_one is not None:
        print(json.dumps(run_one(args.cohort, args.out, args.run_one)))
        return 0
    import ptacl

    codes = {"this": Path(ptacl.__file__).resolve().parents[1]}
    if args.before is not None:
        codes = {"before": args.before.resolve(), "after": codes["this"]}
    keys = [(code, w) for code in codes for w in args.workers]
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        cohort = args.cohort or synthesise(Path(tmp) / "cohort", args.subjects)
        runs: dict[tuple[str, int], list[dict]] = {key: [] for key in keys}
        for _ in range(args.repeats):
            for code, w in keys:
                cmd = [sys.executable, __file__, "--cohort", str(cohort), "--run-one", str(w)]
                cmd += ["--out", str(Path(tmp) / "store")]
                env = {**os.environ, "PYTHONPATH": str(codes[code])}
                done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
                run = json.loads(done.stdout.strip().splitlines()[-1])
                if Path(run["ptacl"]).resolve() != codes[code]:
                    raise SystemExit(f"{code}: imported ptacl from {run['ptacl']}")
                runs[code, w].append(run)
                loads.append(os.getloadavg()[0])
    first = runs[keys[0]][0]
    print(f"cohort: {cohort if args.cohort else 'synthesised'}; counts {first['counts']}")
    for code, path in codes.items():
        print(f"  {code}: {path}")
    print(f"load average (1 min) during the runs: {min(loads):.1f} to {max(loads):.1f}")
    base = statistics.median(r["subjects_per_s"] for r in runs[keys[0]])
    for (code, w), rs in runs.items():
        rate = statistics.median(r["subjects_per_s"] for r in rs)
        cpu = statistics.median(r["cpu_s_per_subject"] for r in rs)
        each = ", ".join(f"{r['subjects_per_s']:.2f}" for r in rs)
        print(
            f"  {code:>6} workers={w}: {rate:6.2f} subjects/s  x{rate / base:.2f} vs "
            f"{keys[0][0]} workers={keys[0][1]}; {1000 * cpu:5.1f} CPU-ms/subject "
            f"(median of {len(rs)}: {each}; "
            f"peak RSS main {max(r['peak_rss_mib'] for r in rs):.0f} MiB, worker "
            f"{max(r['worker_peak_rss_mib'] for r in rs):.0f} MiB)"
        )
    digests = {r["store_sha256"] for rs in runs.values() for r in rs}
    print(f"store bytes: {'identical in every run' if len(digests) == 1 else 'DIFFER'} {digests}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
