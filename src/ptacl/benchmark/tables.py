"""The benchmark's tables: tables.md and results.json from the collected results.

Side-by-side tables (mean ± sd over seeds [bootstrap CI]), with the paper's UK Biobank figures
beside ours, labelled as reference only: Table 2 (phenotype regression), Table 1 (retrieval,
beside the random ranking) and the paper's comparisons paired by subject and seed.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from ptacl.benchmark.methods import Method
from ptacl.benchmark.results import collect_results, paired_comparisons, short_name
from ptacl.markdown import DASH, digits_for, mean_sd, mean_sd_ci
from ptacl.markdown import table as md_table
from ptacl.phenotypes import PHENOTYPES

# The paper's Table 2 (UK Biobank; LVEDV, LVEF, LVM, RVEDV R²), for reference beside ours.
PAPER_R2: dict[tuple[str, str, str], tuple[float, float, float, float]] = {
    ("CMR", "MAE", "LP"): (0.809, 0.489, 0.824, 0.799),
    ("CMR", "supervised", "FN"): (0.814, 0.470, 0.823, 0.801),
    ("ECG", "random init", "LP"): (0.0, 0.0, 0.0, 0.0),
    ("ECG", "SimCLR", "LP"): (0.278, 0.085, 0.343, 0.308),
    ("ECG", "MAE", "LP"): (0.439, 0.218, 0.524, 0.466),
    ("ECG", "supervised", "FN"): (0.458, 0.198, 0.516, 0.481),
    ("ECG", "PTACL without SMP", "LP"): (0.359, 0.114, 0.406, 0.381),
    ("ECG", "PTACL with CosSim++ local loss", "LP"): (0.509, 0.252, 0.614, 0.537),
    ("ECG", "Global only", "LP"): (0.507, 0.258, 0.612, 0.534),
    ("ECG", "PTACL", "LP"): (0.514, 0.255, 0.616, 0.540),
    ("ECG", "PTACL", "FN+AP"): (0.544, 0.283, 0.645, 0.568),
}

PAPER_COLUMNS = ("LVEDV", "LVEF", "LVM", "RVEDV")


def intervals_note(results: dict) -> str:
    """What the numbers and the two kinds of spread in tables.md are, in words."""
    boots = results.get("bootstrap", [])
    if len(boots) == 1 and boots[0].get("n_boot"):
        level = boots[0].get("level") or 0.95
        how = f"percentile bootstrap, {boots[0]['n_boot']} replicates, {level:.0%}"
    elif boots:
        how = "percentile bootstrap; **the evaluations used different settings** " + ", ".join(
            f"{b.get('n_boot')} replicates" for b in boots
        )
    else:
        how = "percentile bootstrap"
    return (
        "Cells: mean ± sd over seeds (the spread from training), then in brackets the "
        f"bootstrap 95 % CI over the test subjects ({how}; each seed's evaluation has its own, "
        "and the bracket is their bounds averaged over seeds: the uncertainty of one run's "
        "test set). One seed: its value and its CI. Ranks (MnR, MdR) with 2 decimals; MdR has no "
        "CI: a median of integer ranks is an integer, and its bootstrap interval collapses onto "
        "one value (e.g. [7.00, 7.00]), so MnR's CI is the rank's uncertainty to read. The "
        "random ranking has no CI: its P@k and MnR are exact expectations."
    )


PAPER_NOTE = (
    "Columns `UKB paper …`: the paper's own Table 2 R² (Selivanov et al. 2025), measured on "
    "UK Biobank (27,951 training and 5,991 test subjects with real paired ECG and CMR; "
    "paper-size models). They are **reference "
    "figures only, not comparable** with a synthetic cohort's or a small preset's numbers: "
    "they show what the method reaches at scale, not what these runs should match."
)


def table2_markdown(results: dict, phenotypes: Sequence[str] | None = None) -> str:
    """Table 2: R² per phenotype, mean ± sd over seeds with the bootstrap CI, then the paper's
    UK Biobank figures (labelled as such, for reference)."""
    names = list(phenotypes or [short_name(p) for p in PHENOTYPES])
    head = ["input", "method", "eval", "seeds", *names, *(f"UKB paper {c}" for c in PAPER_COLUMNS)]
    rows = []
    for key, runs in results["regression"].items():
        cis = results.get("regression_ci", {}).get(key, [{}] * len(runs))
        cells = [*key, str(len(runs))]
        cells += [
            mean_sd_ci([r.get(n, math.nan) for r in runs], [c.get(n) for c in cis]) for n in names
        ]
        paper = PAPER_R2.get(key)
        cells += [f"{v:.3f}" for v in paper] if paper else [DASH] * len(PAPER_COLUMNS)
        rows.append(cells)
    lines = [PAPER_NOTE, "", md_table(head, rows)]
    # An under-determined OLS probe interpolates its training set: its R² means nothing, and a
    # table must not show it as if it did (`ptacl evaluate` warned about each of these).
    flagged = results.get("warnings", {})
    if flagged:
        lines += ["", "**Warning: these rows' R² are not meaningful** (from `ptacl evaluate`):"]
        for key, messages in flagged.items():
            lines += [f"- {' / '.join(key)}: {msg}" for msg in messages]
    return "\n".join(lines)


def table1_markdown(results: dict, phenotypes: Sequence[str] | None = None) -> str:
    """Table 1: retrieval per phenotype and method (P@k, MnR, MdR), mean ± sd over seeds with
    the bootstrap CI (none for the random ranking: an exact expectation), from the
    retrieval-setting runs (σ = 0, τ_global = τ_local = 0.07), under the protocol they were
    evaluated with; then each method's collapse figures and, in words, `table1_warnings`."""
    blocks = dict(results["retrieval"])
    if results["random_retrieval"]:
        blocks = {"random ranking": results["random_retrieval"], **blocks}
    if not blocks:
        return "(no retrieval results)"
    from ptacl.eval.report import retrieval_protocol  # here: ptacl.eval imports torch

    protocols = results.get("retrieval_exclude_self", [])
    if len(protocols) > 1:  # a folder evaluated partly with --include-self
        protocol = (
            "**Warning: these runs were evaluated with different protocols (the query's own CMR "
            "excluded in some, included in others); the rows are not comparable.**"
        )
    else:
        protocol = f"Protocol: {retrieval_protocol(protocols[0])}." if protocols else ""
    first = next(iter(blocks.values()))[0]
    names = list(phenotypes or first.keys())
    metrics = [m for m in next(iter(first.values())) if m.startswith("P@") or m in ("MnR", "MdR")]
    rows = []
    for name in names:
        for label, runs in blocks.items():
            cis = results.get("retrieval_ci", {}).get(label, [{}] * len(runs))
            cells = [name, label]
            for metric in metrics:
                seeds = [
                    (r[name][metric], c.get(name, {}).get(metric))
                    for r, c in zip(runs, cis)
                    if name in r and r[name].get(metric) is not None
                ]
                cells.append(
                    mean_sd_ci([v for v, _ in seeds], [c for _, c in seeds], digits_for(metric))
                )
            rows.append(cells)
    lines = [protocol, "", md_table(["phenotype", "method", *metrics], rows)]
    collapse = results.get("retrieval_collapse", {})
    if collapse:
        lines += [
            "",
            "Collapse, over all queries whatever the phenotype: the top-1 hub share is the share "
            "of queries whose top-1 is the most frequent top-1 candidate (1/N for a one-to-one "
            "ranking, 1 when every query gets the same CMR); N is the database size.",
            "",
        ]
        rows = [
            [
                label,
                str(len(runs)),
                mean_sd([r.get("top1_hub_share") for r in runs]),
                mean_sd([r.get("top1_distinct") for r in runs], 1),
                mean_sd([r.get("candidates") for r in runs], 0),
            ]
            for label, runs in collapse.items()
        ]
        head = ["method", "seeds", "top-1 hub share", "distinct top-1 candidates", "N"]
        lines.append(md_table(head, rows))
    warnings = table1_warnings(results)
    if warnings:
        lines += ["", "**Warning: these retrieval results are not what they seem** (means over "
                  "seeds):"]  # fmt: skip
        lines += [f"- {w}" for w in warnings]
    return "\n".join(lines)


def _mean_of(runs: Sequence[dict], metrics: Sequence[str]) -> dict[str, dict[str, float]]:
    """{phenotype: {metric: mean over seeds}} of per-seed retrieval rows, None-free."""
    out: dict[str, dict[str, float]] = {}
    for name in runs[0] if runs else ():
        for metric in metrics:
            vals = [r[name][metric] for r in runs if r.get(name, {}).get(metric) is not None]
            if vals:
                out.setdefault(name, {})[metric] = statistics.mean(vals)
    return out


def table1_warnings(results: dict) -> list[str]:
    """`ptacl.eval.report.retrieval_warnings` of each Table 1 method, on the means over seeds
    the table shows: P@1 or P@10 below the random ranking's, a top-1 hub share above 0.5."""
    from ptacl.eval.report import retrieval_warnings

    pk = ("P@1", "P@10")
    random = _mean_of(results["random_retrieval"], pk)
    out = []
    for label, runs in results["retrieval"].items():
        seeds = results.get("retrieval_collapse", {}).get(label, [])
        seeds = [r for r in seeds if r.get("top1_hub_share") is not None]
        keys = ("top1_hub_share", "top1_distinct", "candidates")
        collapse = {k: statistics.mean(r[k] for r in seeds) for k in keys} if seeds else None
        out += [f"{label}: {w}" for w in retrieval_warnings(_mean_of(runs, pk), random, collapse)]
    return out


def paired_markdown(rows: Sequence[dict], phenotypes: Sequence[str] = PAPER_COLUMNS) -> str:
    """The paired comparisons as a table, for the paper's phenotype columns."""
    head = ["comparison", "metric", "phenotype", "A − B [95 % CI]", "p", "MDE", "seeds × subjects",
            "per seed"]  # fmt: skip
    table = [
        [
            r["comparison"],
            r["metric"],
            r["phenotype"],
            f"{r['estimate']:+.3f} [{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}]",
            f"{r['p']:.2g}",
            f"{r['mde']:.3f}",
            f"{len(r['seeds'])} × {r['subjects']}",
            " / ".join(f"{v:+.3f}" for v in r["per_seed"]),
        ]
        for r in rows
        if r["phenotype"] in phenotypes
    ]
    note = (
        "A − B on the same test subjects within each seed, averaged over seeds. The 95 % CI "
        "holds both the test subjects (a subject bootstrap shared by all seeds) and the "
        "seeds (their random effect, estimated from the per-seed differences); p is two-sided; "
        "MDE is the smallest true difference this protocol detects with 80 % power at "
        "α = 0.05 (`ptacl.eval.paired`). With one seed the interval holds the subjects only."
    )
    return note + "\n\n" + (md_table(head, table) if table else "(no comparison had both arms)")


def _endpoint_evaluations(
    out: Path, seeds: Sequence[int], methods: Sequence[Method]
) -> dict[tuple[str, str], list[Path]]:
    """The Table 2 (regression-setting) evaluations whose endpoints the endpoint table reads."""
    return {
        (m.input, m.label): [out / f"seed{s}" / "eval" / m.key / "metrics.json" for s in seeds]
        for m in methods
        if m.evaluate and m.setting == "regression"
    }


def write_tables(out: Path, seeds: Sequence[int], methods: Sequence[Method], header: str) -> str:
    """Collect the evaluations under `out` into tables.md and results.json; returns the text."""
    from ptacl.eval.endpoint_table import endpoint_markdown

    results = collect_results(out, seeds, methods)
    paired = paired_comparisons(out, seeds)
    text = "\n\n".join(
        [
            header,
            intervals_note(results),
            "## Table 2: phenotype regression, R² on the test split (mean ± sd over seeds "
            "[bootstrap 95 % CI]); PTACL runs in the regression setting (σ = 0.1, τ_global 0.1, "
            "τ_local 1.0)",
            table2_markdown(results),
            "## Table 1: similar-patient retrieval, ECG query → CMR database (mean ± sd over "
            "seeds [bootstrap 95 % CI]); PTACL and Global only in the retrieval setting (σ = 0, "
            "τ_global = τ_local = 0.07)",
            table1_markdown(results),
            "## Clinical endpoints from the ECG: test AUROC (mean ± sd over seeds [bootstrap "
            "95 % CI]); thresholds and bases in each evaluation's report.md",
            endpoint_markdown(_endpoint_evaluations(out, seeds, methods)),
            "## The paper's comparisons, paired by subject and seed",
            paired_markdown(paired),
        ]
    )
    (out / "tables.md").write_text(text + "\n", encoding="utf-8")
    plain = {
        "regression": [
            {
                "input": k[0],
                "method": k[1],
                "eval": k[2],
                "seeds": v,
                "ci": results["regression_ci"][k],
            }
            for k, v in results["regression"].items()
        ],
        "retrieval": results["retrieval"],
        "retrieval_ci": results["retrieval_ci"],  # label -> per-seed bootstrap 95 % CIs
        "bootstrap": results["bootstrap"],
        "random_retrieval": results["random_retrieval"],
        "retrieval_exclude_self": results["retrieval_exclude_self"],  # [true]: own CMR excluded
        "retrieval_collapse": results["retrieval_collapse"],  # label -> per-seed hub share, ...
        "retrieval_warnings": table1_warnings(results),
        "paired": paired,  # A − B by subject and seed: estimate, ci, p, mde, per_seed
    }
    (out / "results.json").write_text(json.dumps(plain, indent=2), encoding="utf-8")
    return text
