"""The endpoints in report.md and their reliability figure (from metrics.json's "endpoints")."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ptacl.eval.endpoint_eval import CRITERIA, NOT_METHODS
from ptacl.markdown import table

METRICS = ("AUROC", "AUPRC", "Brier", "sensitivity", "specificity")


def _cell(value: list[float | None] | None) -> str:
    if not value or value[0] is None:
        return "—"
    lo, hi = value[1], value[2]
    bounds = f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else ""
    return f"{value[0]:.3f}{bounds}"


def _methods(section: Mapping[str, Any]) -> list[str]:
    return [k for k in section if k not in NOT_METHODS]


def criteria_note(notes: Mapping[str, Any]) -> str:
    """One line on the ECG-criteria baseline: its features, units, and what was imputed."""
    if "skipped" in notes:
        return f"Not computed: {notes['skipped']}."
    missing = notes.get("recordings_with_an_unmeasured_criterion", {})
    which = ", ".join(
        f"{name} ({sum(by_split.values())})"
        for name, by_split in notes.get("unmeasured", {}).items()
    )
    imputed = (
        f"Recordings with a criterion that could not be measured (imputed with the train "
        f"median): {', '.join(f'{s} {n}' for s, n in missing.items())}; by criterion: {which}."
        if which
        else "Every criterion was measured on every recording."
    )
    return (
        f"{notes['model']}; criteria: {', '.join(notes['features'])} "
        f"(`ptacl.ecg.criteria`), {notes['units']}. {imputed}"
    )


def endpoint_lines(
    section: Mapping[str, Any] | None, split: str = "test", source: str = "ECG"
) -> list[str]:
    """The report's endpoint section: definitions, then one table per method (the test
    split's metrics with 95 % bootstrap CIs) and what could not be evaluated, with counts."""
    if not section:
        return []
    lines = [f"## Clinical endpoints from the {source} ({split} split)", ""]
    if "skipped" in section:
        return [*lines, f"Not computed: {section['skipped']}.", ""]
    for key, d in section["definitions"].items():
        lines.append(
            f"- **{d['label']}** (`{key}`): {d['rule']}; basis: {d['basis']}. {d['source']}"
        )
    lines += [
        "",
        "Threshold for sensitivity/specificity fixed on the val split (Youden's J); AUPRC's "
        "chance level is the prevalence. Brier: mean squared error of the probability (lower "
        "is better).",
        "",
    ]
    for method in _methods(section):
        results = section[method]
        lines += [f"### {method}", ""]
        if "skipped" in results:
            lines += [f"Not computed: {results['skipped']}.", ""]
            continue
        if method == CRITERIA and "ecg_criteria" in section:
            lines += [criteria_note(section["ecg_criteria"]), ""]
        rows, notes = [], []
        for key, r in results.items():
            label = section["definitions"][key]["label"]
            if not r.get("evaluable"):
                notes.append(f"- {label}: not evaluable, {r['why']}")
                continue
            n = r["counts"][split]
            prevalence = (
                f"{r['prevalence']:.3f} ({n['positives']}/{n['positives'] + n['negatives']})"
            )
            rows.append([label, prevalence, *(_cell(r.get(m)) for m in METRICS)])
        if rows:
            lines += [table(["endpoint", "prevalence", *METRICS], rows), ""]
        lines += [*notes, ""] if notes else []
    return lines


def plot_reliability(section: Mapping[str, Any], path: Path) -> Path | None:
    """Observed share of positives against mean predicted probability per bin, one panel per
    method, a line per evaluable endpoint (the diagonal: perfect calibration); None when no
    endpoint was evaluable."""
    from ptacl.eval.figures import panel_grid, save_figure

    methods = [
        m for m in _methods(section)
        if any(r.get("evaluable") for r in section[m].values() if isinstance(r, dict))
    ]  # fmt: skip
    if not methods:
        return None
    plt, fig, axes = panel_grid(len(methods))
    for ax, method in zip(axes, methods):
        for key, r in section[method].items():
            if isinstance(r, dict) and r.get("evaluable"):
                bins = r["reliability"]
                ax.plot(bins["predicted"], bins["observed"], "o-", label=key, markersize=3)
        ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("predicted probability")
        ax.set_ylabel("observed share")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return save_figure(plt, fig, path)
