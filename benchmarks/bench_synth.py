"""Throughput of `ptacl synth`: subjects per second with 1 and with 2 workers, side by side.

    .venv/bin/python benchmarks/bench_synth.py --subjects 16

Both runs generate the same subjects (same seed) into temporary folders, one after the other in
the same process, so the ratio is meaningful even on a loaded machine. Also reports the bytes
written per subject.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from ptacl.synth.cohort import generate_cohort


def _bytes_per_subject(root: Path, n: int) -> dict[str, float]:
    def total(pattern: str) -> int:
        return sum(p.stat().st_size for p in root.glob(pattern) if p.is_file())

    return {
        "sa.nii.gz": total("cmr/*/sa.nii.gz") / n,
        "seg_sa.nii.gz": total("cmr/*/seg_sa.nii.gz") / n,
        "ecg xml": total("ecg/*.xml") / n,
        "all": total("**/*") / n,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
          f"{platform.processor() or platform.machine()}, {args.subjects} subjects")  # fmt: skip
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in args.workers:
            out = Path(tmp) / f"w{workers}"
            start = time.perf_counter()
            generate_cohort(out, args.subjects, args.seed, workers=workers, progress=False)
            seconds = time.perf_counter() - start
            rates[workers] = args.subjects / seconds
            print(f"workers={workers}: {seconds:6.1f} s  {rates[workers]:.2f} subjects/s")
        sizes = _bytes_per_subject(out, args.subjects)
    base = rates[args.workers[0]]
    for workers, rate in rates.items():
        print(f"workers={workers}: speed-up x{rate / base:.2f} over workers={args.workers[0]}")
    print("MB per subject: " + ", ".join(f"{k} {v / 1e6:.2f}" for k, v in sizes.items()))
    per_2000 = 2000 / max(rates.values()) / 60
    print(f"2,000 subjects at the best rate: {per_2000:.0f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
