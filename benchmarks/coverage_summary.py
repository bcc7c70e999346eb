"""Interval coverage and endpoint AUROCs of a `ptacl benchmark` folder, per method and seed.

    .venv/bin/python benchmarks/coverage_summary.py --bench DIR [--endpoint lvsd] [--band 0.02]

Reads DIR/seed*/eval/<method>/metrics.json (written by `ptacl evaluate`) and prints
1. per method the endpoint's AUROC [95 % CI] of the logistic probe per seed and their mean;
2. per method and phenotype the test coverage of the LP's split-conformal interval per seed,
   its mean over seeds and the mean width;
3. how many (method, phenotype, seed) cells fall within ±band of nominal, against the share
   that *exactly calibrated* split-conformal intervals would reach with these split sizes:
   the coverage of one interval is Beta(k, n_val + 1 - k) with k = ceil((n_val + 1) * level)
   (Vovk 2012; Angelopoulos & Bates 2021, section 3.2), and its test estimate a binomial
   share of n_test on top; simulated, not assumed normal.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def calibrated_share(n_val: int, n_test: int, level: float, band: float, draws: int = 200_000,
                     seed: int = 0) -> tuple[float, float]:  # fmt: skip
    """(share of exactly calibrated split-conformal intervals whose test coverage lies within
    level ± band, sd of that test coverage) for a calibration split of n_val and a test of n_test."""
    rng = np.random.default_rng(seed)
    k = math.ceil((n_val + 1) * level - 1e-9)
    true = rng.beta(k, n_val + 1 - k, size=draws)
    measured = rng.binomial(n_test, true) / n_test
    return float(np.mean(np.abs(measured - level) <= band + 1e-12)), float(measured.std())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, required=True)
    parser.add_argument("--endpoint", default="lvsd")
    parser.add_argument("--band", type=float, default=0.02)
    args = parser.parse_args(argv)
    seeds = sorted(p for p in args.bench.glob("seed*") if (p / "eval").is_dir())
    methods = sorted({m.name for s in seeds for m in (s / "eval").iterdir() if m.is_dir()})
    metrics = {
        (s.name, m): json.loads((s / "eval" / m / "metrics.json").read_text())
        for s in seeds
        for m in methods
        if (s / "eval" / m / "metrics.json").is_file()
    }
    print(f"# {args.bench}: seeds {[s.name for s in seeds]}\n")
    print(f"## {args.endpoint}: AUROC [95 % CI] of the logistic probe, test split\n")
    print(f"| method | {' | '.join(s.name for s in seeds)} | mean |")
    print(f"|---|{'---|' * (len(seeds) + 1)}")
    for m in methods:
        cells, values = [], []
        for s in seeds:
            entry = metrics.get((s.name, m), {}).get("endpoints", {}).get("LP (logistic)", {})
            auroc = entry.get(args.endpoint, {}).get("AUROC")
            cells.append(f"{auroc[0]:.3f} [{auroc[1]:.3f}, {auroc[2]:.3f}]" if auroc else "–")
            values += [auroc[0]] if auroc else []
        mean = f"{np.mean(values):.3f}" if values else "–"
        print(f"| {m} | {' | '.join(cells)} | {mean} |")

    print("\n## Test coverage of the LP's conformal intervals (per seed; mean; mean width)\n")
    inside, total, sizes = 0, 0, set()
    for m in methods:
        rows = {}
        for s in seeds:
            spec = metrics.get((s.name, m), {}).get("intervals", {}).get("LP (ols)")
            if not spec:
                continue
            level = spec["level"]
            for column, cell in spec["test"].items():
                rows.setdefault(column, {})[s.name] = cell
                sizes.add((spec["columns"][column]["n"], cell["n"], level))
                inside += abs(cell["coverage"] - level) <= args.band + 1e-12
                total += 1
        if not rows:
            continue
        print(f"### {m}\n\n| phenotype | {' | '.join(s.name for s in seeds)} | mean | width |")
        print(f"|---|{'---|' * (len(seeds) + 2)}")
        for column, by_seed in rows.items():
            cov = [c["coverage"] for c in by_seed.values()]
            shown = [f"{100 * by_seed[s.name]['coverage']:.1f} %" if s.name in by_seed else "–"
                     for s in seeds]  # fmt: skip
            width = np.mean([c["mean_width"] for c in by_seed.values()])
            print(f"| {column} | {' | '.join(shown)} | {100 * np.mean(cov):.1f} % | {width:.2f} |")
        print()
    if total:
        print(f"Cells within ±{100 * args.band:.0f} points of nominal: {inside} of {total} "
              f"({100 * inside / total:.0f} %).")  # fmt: skip
        for n_val, n_test, level in sorted(sizes):
            share, sd = calibrated_share(n_val, n_test, level, args.band)
            print(f"Exactly calibrated intervals with n_val {n_val}, n_test {n_test}: "
                  f"{100 * share:.0f} % of cells within the band (sd of one measured coverage "
                  f"{100 * sd:.1f} points).")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
