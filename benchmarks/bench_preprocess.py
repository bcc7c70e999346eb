"""Time of each reading and preprocessing stage per subject, side by side in one run.

    .venv/bin/ptacl synth --out /tmp/cohort --subjects 200 --seed 0
    .venv/bin/python benchmarks/bench_preprocess.py /tmp/cohort [--subjects 40 --repeats 3]

Stages, in the order `ptacl prepare` runs them: read_ecg (CardioSoft XML), validate_ecg (which
detects the R peaks), preprocess_ecg, read_cmr (4-D NIfTI + seg), preprocess_cmr. Every
repeat runs all stages subject by subject, so load on a shared machine hits them alike; the
report is the median over repeats of ms per subject and each stage's share of the total.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from ptacl.cmr import preprocess_cmr
from ptacl.ecg import preprocess_ecg
from ptacl.io import read_cmr, read_ecg
from ptacl.qc import validate_ecg

STAGES = ("read_ecg", "validate_ecg", "preprocess_ecg", "read_cmr", "preprocess_cmr")


def run_once(ecg_files: list[Path], cmr_files: list[Path]) -> dict[str, float]:
    spent = dict.fromkeys(STAGES, 0.0)
    for ecg_path, cmr_path in zip(ecg_files, cmr_files):
        t0 = time.perf_counter()
        record = read_ecg(ecg_path)
        t1 = time.perf_counter()
        validate_ecg(record.signal, record.fs, record.source)
        t2 = time.perf_counter()
        preprocess_ecg(record.signal, record.fs)
        t3 = time.perf_counter()
        cine = read_cmr(cmr_path)
        t4 = time.perf_counter()
        preprocess_cmr(cine)
        t5 = time.perf_counter()
        for stage, (a, b) in zip(STAGES, [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5)]):
            spent[stage] += b - a
    return {k: 1000 * v / len(ecg_files) for k, v in spent.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "cohort", type=Path, nargs="?", help="output folder of `ptacl synth` (default: synthesise)"
    )
    parser.add_argument("--subjects", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.cohort is None:  # `make bench` runs every script without arguments
        from ptacl.synth.cohort import generate_cohort

        args.cohort = Path(tempfile.mkdtemp(prefix="ptacl_bench_preprocess_"))
        generate_cohort(args.cohort, args.subjects, seed=0, overwrite=True, progress=False)
    ecg_files = sorted((args.cohort / "ecg").glob("*_20205_*.xml"))[: args.subjects]
    eids = [p.name.split("_")[0] for p in ecg_files]
    cmr_files = [args.cohort / "cmr" / eid / "sa.nii.gz" for eid in eids]
    runs = [run_once(ecg_files, cmr_files) for _ in range(args.repeats)]
    median = {k: statistics.median(r[k] for r in runs) for k in STAGES}
    total = sum(median.values())
    print(f"{len(ecg_files)} subjects x {args.repeats} repeats, ms per subject (median):")
    for stage in STAGES:
        print(f"  {stage:<15} {median[stage]:8.1f} ms  {100 * median[stage] / total:5.1f} %")
    print(f"  {'total':<15} {total:8.1f} ms  -> {1000 / total:.1f} subjects/s on one core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
