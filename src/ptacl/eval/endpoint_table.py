"""The endpoint table of `ptacl benchmark`'s tables.md: AUROC per method and endpoint over seeds.

    endpoint_markdown({("ECG", "MAE"): [seed0/eval/ecg_mae/metrics.json, ...], ...})

Reads the "endpoints" section `ptacl evaluate` wrote into each evaluation (`ptacl.eval.
endpoint_eval`): one row per method and way of scoring (LP (logistic) on the frozen embedding,
FN+AP from the fine-tuned model's predicted phenotype), and once the clinician's ECG-criteria
baseline (`ptacl.eval.ecg_criteria`), one column per endpoint; a cell is the
test AUROC, mean ± sd over the seeds where it was evaluable, with the mean of their bootstrap
95 % CIs, and how many seeds that is; an endpoint never evaluable says so with its test
positives. Missing evaluations are skipped, never invented.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ptacl.eval.endpoint_eval import CRITERIA, NOT_METHODS
from ptacl.markdown import table

#: The table's row of the ECG-criteria baseline (input, method, scoring): one per seed, from
#: whichever method's evaluation of that seed has it (every evaluation of a seed scores the
#: same criteria of the same store).
CRITERIA_ROW = ("ECG", "ECG criteria", "logistic on the criteria")


def collect_endpoints(evaluations: Mapping[tuple[str, str], Sequence[Path]]) -> dict[str, Any]:
    """{"definitions": {key: label}, "rows": {(input, method, scoring): {key: [per-seed
    endpoint section]}}} from the evaluations' metrics.json files that exist."""
    definitions: dict[str, str] = {}
    rows: dict[tuple[str, str, str], dict[str, list[dict]]] = {}
    criteria: dict[int, dict[str, dict]] = {}  # seed position -> the first method's results
    for (modality, label), paths in evaluations.items():
        for seed, path in enumerate(paths):
            if not Path(path).is_file():
                continue
            section = json.loads(Path(path).read_text(encoding="utf-8")).get("endpoints") or {}
            for key, d in section.get("definitions", {}).items():
                definitions.setdefault(key, d.get("label", key))
            for scoring, results in section.items():
                if scoring in NOT_METHODS or "skipped" in results:
                    continue
                if scoring == CRITERIA:  # the same store's criteria in every method's evaluation
                    criteria.setdefault(seed, results)
                    continue
                row = rows.setdefault((modality, label, scoring), {})
                for key, result in results.items():
                    row.setdefault(key, []).append(result)
    for seed in sorted(criteria):
        row = rows.setdefault(CRITERIA_ROW, {})
        for key, result in criteria[seed].items():
            row.setdefault(key, []).append(result)
    return {"definitions": definitions, "rows": rows}


def _cell(runs: Sequence[dict]) -> str:
    done = [r for r in runs if r.get("evaluable") and r.get("AUROC", [None])[0] is not None]
    if not done:
        positives = [r["counts"]["test"]["positives"] for r in runs if "counts" in r]
        return f"not evaluable (test positives {', '.join(map(str, positives))})"
    values = np.array([r["AUROC"][0] for r in done])
    lows = [r["AUROC"][1] for r in done if r["AUROC"][1] is not None]
    highs = [r["AUROC"][2] for r in done if r["AUROC"][2] is not None]
    spread = f" ± {values.std(ddof=1):.3f}" if len(values) > 1 else ""
    ci = f" [{np.mean(lows):.3f}, {np.mean(highs):.3f}]" if lows and highs else ""
    seeds = f" ({len(done)} of {len(runs)} seeds)" if len(done) < len(runs) else ""
    return f"{values.mean():.3f}{spread}{ci}{seeds}"


def endpoint_markdown(evaluations: Mapping[tuple[str, str], Sequence[Path]]) -> str:
    """The endpoint table (see the module docstring), or a sentence when nothing was found."""
    found = collect_endpoints(evaluations)
    if not found["rows"]:
        return "No evaluation with clinical endpoints found."
    keys = list(found["definitions"])
    head = ["input", "method", "scoring", *(found["definitions"][k] for k in keys)]
    body = [
        [modality, label, scoring, *(_cell(row.get(k, [])) for k in keys)]
        for (modality, label, scoring), row in found["rows"].items()
    ]
    return table(head, body)
