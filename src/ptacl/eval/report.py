"""`report.md` from an evaluation's `metrics.json` content, and the sections it reads.

Tables are laid out like the paper's: Table 1 (retrieval) one block per phenotype with the
model's and a random ranking's P@1..P@15, MnR and MdR; Table 2 (regression) one row per
method with R² per phenotype. Every model number carries its bootstrap 95 % CI in brackets.
Figures are drawn by `ptacl.eval.figures` (matplotlib is imported there only, so
`import ptacl.eval` stays light).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ptacl.eval.endpoint_report import endpoint_lines
from ptacl.markdown import cell, digits_for, fmt, short, table


def _count(value: float | None) -> str:
    return "" if value is None else str(int(value))


def retrieval_protocol(exclude_self: bool) -> str:
    """Which candidates a query is ranked against, in words (every retrieval table says it)."""
    if exclude_self:
        return (
            "the query's own CMR is excluded from the database (stricter than the paper's "
            "'all patients in the CMR database')"
        )
    return (
        "the query's own CMR is included in the database, as in the paper's 'all patients in "
        "the CMR database' (it always matches, which lifts P@k and lowers the ranks)"
    )


#: A candidate that is the top-1 of more than this share of queries is a hub: the embeddings
#: have (partly) collapsed, and P@k mostly says how typical that one subject is.
HUB_SHARE_LIMIT = 0.5


def retrieval_warnings(
    model: Mapping[str, Mapping[str, Any]],
    random: Mapping[str, Mapping[str, Any]],
    collapse: Mapping[str, Any] | None = None,
    hub_limit: float = HUB_SHARE_LIMIT,
) -> list[str]:
    """Words for what makes a retrieval table misleading at a glance: a phenotype whose P@1 or
    P@10 lies below the random ranking's, and a top-1 hub share above `hub_limit`.

    model, random: {phenotype: {"P@1": ..., "P@10": ...}} (None / missing = not computed);
    collapse: `ptacl.eval.collapse.top1_collapse`'s dict (or with its share averaged)."""
    out = []
    for name, row in model.items():
        base = random.get(name, {})
        below = [
            f"{metric} {row[metric]:.3f} < {base[metric]:.3f}"
            for metric in ("P@1", "P@10")
            if row.get(metric) is not None
            and base.get(metric) is not None
            and row[metric] < base[metric]
        ]
        if below:
            out.append(f"{short(name)}: retrieval below the random ranking ({', '.join(below)})")
    collapse = collapse or {}
    share = collapse.get("top1_hub_share")
    if share is not None and share > hub_limit:
        out.append(
            f"collapse: one CMR is the top-1 candidate of {share:.0%} of the queries "
            f"({_number(collapse.get('top1_distinct'))} distinct top-1 candidates of "
            f"{_number(collapse.get('candidates'))}); the ECG embeddings point to a hub, "
            "whatever the patient"
        )
    return out


def _number(value: float | None) -> str:
    """A count, or a mean of counts over seeds."""
    if value is None:
        return "–"
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def hubness_sentence(hubness: Mapping[str, Any]) -> str:
    """One line on the ranking's hubs (`ptacl.eval.hubness.hubness_stats`)."""
    return (
        f"Hubness (k = {hubness['k']}): k-occurrence skewness {hubness['nk_skewness']:.2f} "
        "(about 0 without hubs); the biggest hub is in the top k of "
        f"{hubness['nk_max_share']:.0%} of the queries; {hubness['anti_hub_share']:.0%} of the "
        f"candidates are in nobody's. Mean unit vector norm ECG {hubness['ecg_mean_norm']:.2f}, "
        f"CMR {hubness['cmr_mean_norm']:.2f} (1: one shared direction)."
    )


def collapse_sentence(collapse: Mapping[str, Any]) -> str:
    """One line: the top-1 hub share and the distinct top-1 candidates (out of N)."""
    return (
        f"Collapse: top-1 hub share {fmt(collapse.get('top1_hub_share'))} (the share of queries "
        "whose top-1 is the most frequent top-1 candidate; 1/N for a one-to-one ranking, 1 when "
        f"fully collapsed); {_number(collapse.get('top1_distinct'))} distinct top-1 candidates "
        f"of {_number(collapse.get('candidates'))}."
    )


def retrieval_table(retrieval: Mapping[str, Any]) -> str:
    """Markdown Table 1 from the `retrieval` section of metrics.json."""
    columns = [f"P@{k}" for k in retrieval["ks"]] + ["MnR", "MdR"]
    rows = []
    for name, row in retrieval["model"].items():
        ci = retrieval.get("model_ci", {}).get(name, {})
        cells = [cell(row.get(c), ci.get(c), digits_for(c)) for c in columns]
        rows.append([short(name), "model", *cells, _count(row.get("queries")),
                     _count(row.get("no_match"))])  # fmt: skip
        base = retrieval.get("random", {}).get(name)
        if base is not None:
            rows.append(["", "random", *(fmt(base.get(c), digits_for(c)) for c in columns), "", ""])
    return table(["phenotype", "ranking", *columns, "queries", "no match"], rows)


def regression_table(regression: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown Table 2: one row per method (e.g. 'LP (ols)', 'FN+AP'), R² per phenotype.

    `regression` maps a method label to {phenotype: {"R2": float, "ci": [lo, hi], "n": int}}.
    """
    phenotypes = list(next(iter(regression.values())).keys()) if regression else []
    rows = [
        [method, *(cell(values[p].get("R2"), values[p].get("ci")) for p in phenotypes)]
        for method, values in regression.items()
    ]
    return table(["method", *(short(p) for p in phenotypes)], rows)


def interval_lines(intervals: Mapping[str, Mapping[str, Any]], split: str) -> list[str]:
    """Report lines per method: the conformal interval fitted on val, its coverage and mean
    width on the scored split (`ptacl.eval.evaluate.interval_section`)."""
    lines = []
    for method, spec in intervals.items():
        lines += [f"## Prediction intervals — {method} ({split} split)", ""]
        if "skipped" in spec:
            lines += [f"Not computed: {spec['skipped']}.", ""]
            continue
        lines += [
            f"Nominal coverage {100 * spec['level']:g} %; {spec['method']}.",
            "",
        ]
        measured = spec.get(split) or {}
        rows = []
        for phenotype, fit in spec["columns"].items():
            got = measured.get(phenotype) or {}
            coverage = got.get("coverage")
            rows.append(
                [
                    short(phenotype),
                    fmt(fit["half_width"]) if fit["half_width"] is not None else "unbounded",
                    str(fit["n"]),
                    "n/a" if coverage is None else f"{100 * coverage:.1f} %",
                    fmt(got.get("mean_width")) if got.get("mean_width") is not None else "n/a",
                    str(got.get("n", 0)),
                ]
            )
        header = ["phenotype", "half-width", "val n", "coverage", "mean width", f"{split} n"]
        lines += [table(header, rows), ""]
    return lines


def write_report(out_dir: Path, metrics: Mapping[str, Any], figures: Mapping[str, Path]) -> Path:
    """Write `out_dir/report.md` from metrics.json content and figure paths (relative links)."""
    out_dir = Path(out_dir)
    info = metrics.get("info", {})
    lines = [f"# Evaluation of `{info.get('model', '?')}`", ""]
    for key in ("model", "kind", "data", "split", "subjects", "date", "ptacl", "command"):
        if key in info:
            lines.append(f"- {key}: `{info[key]}`")
    boot = metrics.get("bootstrap", {})
    if boot:
        lines.append(
            f"- 95 % CIs in brackets: percentile bootstrap, {boot.get('n_boot')} replicates, "
            f"seed {boot.get('seed')}; test subjects resampled (for retrieval: the queries, "
            "against the full database). No CI for MdR: a median of integer ranks is an integer, "
            "and its bootstrap interval collapses onto one value (e.g. [7.00, 7.00]); read MnR's"
        )
    lines.append("")
    retrieval = metrics.get("retrieval")
    lines.append("## Table 1 — similar-patient retrieval (ECG query → CMR database)")
    lines.append("")
    if retrieval:
        lines += [
            f"**Protocol: {retrieval_protocol(retrieval.get('exclude_self', True))}.**",
            "",
            f"A retrieved subject matches when its phenotype lies within ±{retrieval['match_sd']}"
            " SD (SD over the evaluated subjects, ddof 1) of the query's. MnR/MdR:"
            " mean/median rank of the first match, over queries that have one (`no match` counts"
            " the others). Random: exact expectation of a random ranking (MdR from one seeded"
            " draw).",
            "",
            f"Embeddings compared: {retrieval.get('space', 'mean-pooled encoder tokens')}.",
            "",
            f"Ranking: {retrieval.get('ranking', 'cosine similarity')}.",
            "",
            retrieval_table(retrieval),
            "",
        ]
        if retrieval.get("collapse"):
            lines += [collapse_sentence(retrieval["collapse"]), ""]
        if retrieval.get("hubness"):
            lines += [hubness_sentence(retrieval["hubness"]), ""]
        for warning in retrieval.get("warnings", []):
            lines += [f"**Warning — {warning}.**", ""]
    else:
        lines += [f"Not computed: {metrics.get('retrieval_skipped', 'no retrieval')}.", ""]
    split = info.get("split", "test")
    source = info.get("probe_input", "ECG")  # CMR for a CMR-only run (the imaging upper bound)
    lines += [f"## Table 2 — phenotype regression from the {source} (R², {split} split)", ""]
    regression = metrics.get("regression", {})
    if regression:
        lines += [regression_table(regression), ""]
        for warning in metrics.get("warnings", []):
            lines.append(f"**Warning — {warning}.**")
            lines.append("")
        for method, note in metrics.get("regression_notes", {}).items():
            lines.append(f"- {method}: {note}")
        lines.append("")
    else:
        lines += ["Not computed.", ""]
    lines += interval_lines(metrics.get("intervals") or {}, split)
    lines += endpoint_lines(metrics.get("endpoints"), split, source)
    if figures:
        lines += ["## Figures", ""]
        for caption, path in figures.items():
            # relative to the report itself, so the links work wherever the folder is opened from
            rel = Path(os.path.relpath(Path(path).resolve(), Path(out_dir).resolve()))
            lines += [f"### {caption}", "", f"![{caption}]({rel.as_posix()})", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _records(table: Any) -> dict[str, dict[str, Any]]:
    """DataFrame -> {row: {column: value}} with NaN as None (valid JSON)."""
    out: dict[str, dict[str, Any]] = {}
    for name, row in table.iterrows():
        out[str(name)] = {
            str(c): (None if isinstance(v, float) and math.isnan(v) else _plain(v))
            for c, v in row.items()
        }
    return out


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _intervals(lo: Any, hi: Any) -> dict[str, dict[str, list[float | None]]]:
    lo_r, hi_r = _records(lo), _records(hi)
    return {n: {c: [lo_r[n][c], hi_r[n][c]] for c in lo_r[n]} for n in lo_r}


def retrieval_section(
    point: Any,
    lo: Any,
    hi: Any,
    random: Any,
    *,
    ks: Sequence[int],
    match_sd: float,
    exclude_self: bool,
    space: str,
    collapse: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The `retrieval` section of metrics.json from the tables of `ptacl.eval`; `collapse` is
    `ptacl.eval.collapse.top1_collapse`'s dict. Holds `warnings` (see `retrieval_warnings`)."""
    section = {
        "ks": list(ks),
        "match_sd": match_sd,
        "exclude_self": exclude_self,
        "protocol": retrieval_protocol(exclude_self),
        "space": space,
        "model": _records(point),
        "model_ci": _intervals(lo, hi),
        "random": _records(random),
    }
    if collapse is not None:
        section["collapse"] = dict(collapse)
    section["warnings"] = retrieval_warnings(section["model"], section["random"], collapse)
    return section


def regression_section(point: Any, lo: Any, hi: Any) -> dict[str, dict[str, Any]]:
    """{phenotype: {"R2", "n", "ci": [lo, hi]}} for one method of Table 2."""
    records, ci = _records(point), _intervals(lo, hi)
    return {name: {**row, "ci": ci[name]["R2"]} for name, row in records.items()}
