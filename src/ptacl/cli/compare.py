"""Put several evaluated runs side by side: one Markdown table per metric.

    ptacl compare eval/random eval/mae eval/ptacl --out comparison.md [--metrics P@1 MdR]
    ptacl compare eval/* --labels random MAE PTACL --out comparison.md

Each DIR is an `ptacl evaluate` output folder (its metrics.json). Retrieval tables: one row per
run (and the row "random ranking (expected)" of the first run that has one), one column per phenotype. The
regression table: one row per run and method (LP, FN+AP), R² per phenotype. Cells carry the
bootstrap 95 % CI; the last column is the plain mean over phenotypes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ptacl.markdown import cell, digits_for, fmt, mean_of_all, short, table

#: The row of the random ranking's expected values (no CI: an expectation, not a sample).
RANDOM_RANKING = "random ranking (expected)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ptacl compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dirs", type=Path, nargs="+", help="`ptacl evaluate` output folders")
    parser.add_argument("--out", type=Path, required=True, help="Markdown file to write")
    parser.add_argument("--labels", nargs="+", help="row labels (default: folder names)")
    parser.add_argument(
        "--metrics", nargs="+", default=["P@1", "P@5", "MdR"], help="retrieval metrics to show"
    )
    return parser


def _load(path: Path) -> dict[str, Any]:
    file = path / "metrics.json"
    if not file.is_file():
        raise FileNotFoundError(f"{path}: no metrics.json; run `ptacl evaluate --out {path}`")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{file}: not valid JSON ({e})") from e


def compare_markdown(runs: list[tuple[str, dict[str, Any]]], metrics: list[str]) -> str:
    """The comparison document for (label, metrics.json content) pairs."""
    lines = ["# Comparison", ""]
    lines += [f"- {label}: `{m.get('info', {}).get('model', '?')}` "
              f"({m.get('info', {}).get('kind', '?')}, split {m.get('info', {}).get('split', '?')},"
              f" data `{m.get('info', {}).get('data', '?')}`)" for label, m in runs]  # fmt: skip
    lines.append("")
    with_retrieval = [(label, m["retrieval"]) for label, m in runs if m.get("retrieval")]
    if with_retrieval:
        phenotypes = list(with_retrieval[0][1]["model"])
        head = ["run", *(short(p) for p in phenotypes), "mean"]
        for metric in metrics:
            digits = digits_for(metric)
            rows = []
            for label, r in with_retrieval:
                values = [r["model"].get(p, {}).get(metric) for p in phenotypes]
                cis = [r.get("model_ci", {}).get(p, {}).get(metric) for p in phenotypes]
                cells = [cell(v, c, digits) for v, c in zip(values, cis)]
                rows.append([label, *cells, mean_of_all(values, digits)])
            random = with_retrieval[0][1].get("random", {})
            if random:
                values = [random.get(p, {}).get(metric) for p in phenotypes]
                # not "random": the random-init run is often labelled so beside it
                rows.append([RANDOM_RANKING, *(fmt(v, digits) for v in values),
                             mean_of_all(values, digits)])  # fmt: skip
            lines += [f"## Retrieval {metric} (ECG query → CMR database)", "", table(head, rows)]
            lines.append("")
    rows = [(label, method, values) for label, m in runs for method, values in m.get("regression", {}).items()]  # fmt: skip
    if rows:
        phenotypes = list(rows[0][2])
        lines += ["## Phenotype regression R² from the ECG", ""]
        body = []
        for label, method, values in rows:
            r2 = [values.get(p, {}).get("R2") for p in phenotypes]
            cells = [cell(v, values.get(p, {}).get("ci")) for v, p in zip(r2, phenotypes)]
            body.append([label, method, *cells, mean_of_all(r2)])
        lines += [table(["run", "method", *(short(p) for p in phenotypes), "mean"], body), ""]
    splits = {m.get("info", {}).get("data") for _, m in runs}
    if len(splits) > 1:
        lines += ["Note: these runs were evaluated on different stores; rows do not compare.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    labels = args.labels or [d.name for d in args.dirs]
    if len(labels) != len(args.dirs):
        print(f"ptacl compare: {len(labels)} labels for {len(args.dirs)} folders", file=sys.stderr)
        return 2
    try:
        runs = [(label, _load(d)) for label, d in zip(labels, args.dirs)]
    except (FileNotFoundError, ValueError) as e:
        print(f"ptacl compare: {e}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(compare_markdown(runs, args.metrics), encoding="utf-8")
    print(f"{len(runs)} runs -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
