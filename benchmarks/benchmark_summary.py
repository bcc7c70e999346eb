"""Summarise a multi-seed `ptacl benchmark` folder for RESULTS.md: the paper's comparisons as
paired differences by seed, within-seed bootstrap CIs beside the between-seed spread, and the
temporal alignment (Figure 2) of both arms.

    python benchmarks/benchmark_summary.py DIR [--phenotypes LVEDV LVEF LVM RVEDV]

Reads DIR/results.json (written by `ptacl benchmark`: per-seed results and bootstrap CIs over
the test subjects), DIR/seed*/eval/*/metrics.json (mean test alignment matrices) and DIR/seed*/runs/*/metrics.csv
(validation alignment accuracy). Prints markdown; invents nothing: a missing run is a '–'.

Why paired by seed: every method of one seed shares the seed's MAEs and test split, so the
difference of two methods within a seed cancels what the seed does to both; its spread over
seeds says whether an ordering is stable, which the methods' own mean ± sd cannot show.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from pathlib import Path

import numpy as np

# (label, (input, method, eval) of A, of B): Table 2 comparisons, A − B in LP R².
R2_PAIRS = (
    ("PTACL − Global only", ("ECG", "PTACL", "LP"), ("ECG", "Global only", "LP")),
    ("Global only − ECG MAE", ("ECG", "Global only", "LP"), ("ECG", "MAE", "LP")),
    ("ECG MAE − ECG SimCLR", ("ECG", "MAE", "LP"), ("ECG", "SimCLR", "LP")),
    ("CMR MAE − ECG MAE", ("CMR", "MAE", "LP"), ("ECG", "MAE", "LP")),
    ("CMR MAE − PTACL", ("CMR", "MAE", "LP"), ("ECG", "PTACL", "LP")),
    ("ECG MAE − random init", ("ECG", "MAE", "LP"), ("ECG", "random init", "LP")),
    ("PTACL − random init", ("ECG", "PTACL", "LP"), ("ECG", "random init", "LP")),
    ("PTACL FN+AP − PTACL LP", ("ECG", "PTACL", "FN+AP"), ("ECG", "PTACL", "LP")),
    ("ECG supervised FN − ECG random init LP", ("ECG", "supervised", "FN"),
     ("ECG", "random init", "LP")),
    ("CMR supervised FN − CMR random init LP", ("CMR", "supervised", "FN"),
     ("CMR", "random init", "LP")),
)  # fmt: skip


def short(name: str) -> str:
    return name.split(" (")[0]


def mean_sd(values: list[float]) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def seeds_of(out: Path) -> list[int]:
    return sorted(int(p.name[4:]) for p in out.glob("seed*") if p.name[4:].isdigit())


def metrics_json(out: Path, seed: int, key: str) -> dict | None:
    path = out / f"seed{seed}" / "eval" / key / "metrics.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def ci_half_width(row: dict, pheno: str) -> str:
    """Mean over seeds of the 95 % bootstrap CI's half-width (over test subjects), from the
    per-seed CIs `ptacl benchmark` writes beside each Table 2 row of results.json."""
    widths = [(ci[pheno][1] - ci[pheno][0]) / 2 for ci in row.get("ci", []) if ci and ci.get(pheno)]
    return f"±{statistics.mean(widths):.3f}" if widths else "–"


def table2(results: dict, phenos: list[str]) -> str:
    head = ["input", "method", "eval", "seeds", *phenos]
    lines = [
        "R² on the test subjects: mean ± sd over seeds; below each, the mean half-width of the "
        "95 % bootstrap CI over test subjects within a seed.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in results["regression"]:
        key = (row["input"], row["method"], row["eval"])
        cells = [*key, str(len(row["seeds"]))]
        for p in phenos:
            value = mean_sd([s.get(p, math.nan) for s in row["seeds"]])
            cells.append(f"{value} ({ci_half_width(row, p)})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_r2(results: dict, phenos: list[str]) -> str:
    rows = {(r["input"], r["method"], r["eval"]): r["seeds"] for r in results["regression"]}
    head = ["comparison (A − B), LP R² unless named", *phenos, "seeds with A > B"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, a, b in R2_PAIRS:
        if a not in rows or b not in rows:
            continue
        n = min(len(rows[a]), len(rows[b]))
        cells, wins = [label], []
        for p in phenos:
            diffs = [rows[a][i].get(p, math.nan) - rows[b][i].get(p, math.nan) for i in range(n)]
            per_seed = ", ".join(f"{d:+.3f}" for d in diffs)
            cells.append(f"{mean_sd(diffs)} [{per_seed}]")
            wins.append(sum(d > 0 for d in diffs))
        cells.append(" / ".join(f"{w}/{n}" for w in wins))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table1(results: dict, phenos: list[str], metrics: list[str]) -> str:
    blocks = {"random ranking": results.get("random_retrieval", []), **results["retrieval"]}
    head = ["method", "phenotype", *metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, per_seed in blocks.items():
        for p in phenos:
            cells = [label, p]
            for m in metrics:
                cells.append(mean_sd([s[p][m] for s in per_seed if p in s and m in s[p]]))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_retrieval(results: dict, phenos: list[str], metrics: list[str]) -> str:
    ret = results["retrieval"]
    pairs = [("PTACL − Global only", "PTACL", "Global only")]
    if results.get("random_retrieval"):
        ret = {**ret, "random ranking": results["random_retrieval"]}
        pairs += [("PTACL − random", "PTACL", "random ranking"),
                  ("Global only − random", "Global only", "random ranking")]  # fmt: skip
    head = ["comparison", "phenotype", *metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, a, b in pairs:
        if a not in ret or b not in ret:
            continue
        n = min(len(ret[a]), len(ret[b]))
        for p in phenos:
            cells = [label, p]
            for m in metrics:
                diffs = [ret[a][i][p][m] - ret[b][i][p][m] for i in range(n)]
                cells.append(f"{mean_sd(diffs)} [{', '.join(f'{d:+.3f}' for d in diffs)}]")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def best_val_alignment(run: Path) -> tuple[float, float] | None:
    """(val/alignment_acc ±1, exact) at the validation with the lowest val/global, the step
    whose weights best.ckpt keeps (`ptacl align` selects by the validation global loss)."""
    path = run / "metrics.csv"
    if not path.is_file():
        return None
    best = None
    with path.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row.get("val/global") and row.get("val/alignment_acc"):
                g = float(row["val/global"])
                if best is None or g < best[0]:
                    best = (g, float(row["val/alignment_acc"]),
                            float(row["val/alignment_acc_exact"]))  # fmt: skip
    return None if best is None else best[1:]


def alignment(out: Path, seeds: list[int]) -> str:
    """Figure 2 in numbers: validation alignment accuracy of the kept checkpoint, and on the
    test set's mean ECG×CMR local similarity matrix the diagonal minus off-diagonal mean and the
    share of ECG steps whose most similar CMR frame is within ±1 (chance: ~3/T)."""
    head = ["run", "val acc ±1", "val acc exact", "test diag − off-diag", "test row-argmax ±1"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in ("global", "ptacl", "global_retrieval", "ptacl_retrieval", "ptacl_cossim",
                "ptacl_nosmp"):  # fmt: skip
        val, exact, contrast, argmax = [], [], [], []
        for seed in seeds:
            acc = best_val_alignment(out / f"seed{seed}" / "runs" / key)
            if acc:
                val.append(acc[0])
                exact.append(acc[1])
            metrics = metrics_json(out, seed, key)
            if metrics and "alignment" in metrics:
                a = metrics["alignment"]
                matrix = np.asarray(a["matrix"], dtype=float)
                contrast.append(a["diagonal_mean"] - a["off_diagonal_mean"])
                t = matrix.shape[0]
                hits = np.abs(matrix.argmax(axis=1) - np.arange(t)) <= 1
                argmax.append(float(hits.mean()))
        if val or contrast:
            lines.append(f"| {key} | {mean_sd(val)} | {mean_sd(exact)} | "
                         f"{mean_sd(contrast)} | {mean_sd(argmax)} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="a `ptacl benchmark` folder")
    parser.add_argument("--phenotypes", nargs="+", default=["LVEDV", "LVEF", "LVM", "RVEDV"])
    parser.add_argument("--metrics", nargs="+", default=["P@1", "P@10", "MnR"])
    args = parser.parse_args(argv)
    results = json.loads((args.out / "results.json").read_text(encoding="utf-8"))
    seeds = seeds_of(args.out)
    print(f"## {args.out}: seeds {seeds}\n")
    print("### Table 2 (regression-setting runs)\n")
    print(table2(results, args.phenotypes), "\n")
    print("### Paired differences by seed, R² (mean ± sd over seeds [per seed])\n")
    print(paired_r2(results, args.phenotypes), "\n")
    print("### Table 1 (retrieval-setting runs)\n")
    print(table1(results, args.phenotypes, args.metrics), "\n")
    print("### Paired differences by seed, retrieval\n")
    print(paired_retrieval(results, args.phenotypes, args.metrics), "\n")
    print("### Temporal alignment (Figure 2)\n")
    print(alignment(args.out, seeds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
