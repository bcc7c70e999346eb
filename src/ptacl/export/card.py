"""The model card every bundle carries (README.md, in the Hugging Face model-card layout).

It says what a user must know before trusting or passing on the weights: what the model is,
what data it was trained on (the store manifest's `origin`: synthetic, UK Biobank or unknown),
the training command, the metrics (the head's validation R² always; test metrics with bootstrap
CIs when `ptacl export --metrics` names the `metrics.json` of `ptacl evaluate`), the prediction
intervals' nominal and measured coverage, each endpoint probability's definition, source,
prevalence, test AUROC and Brier score with CIs and calibration, intended use and limits,
governance and licence. Paths appear as base names only: a bundle must not carry
the layout of the training machine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ptacl.data.discover import ORIGIN_SYNTHETIC as SYNTHETIC
from ptacl.data.discover import ORIGIN_UKB as UK_BIOBANK

PTACL_REFERENCE = (
    "Selivanov, Müller, Turgut, Stolt-Ansó, Rückert: Patient and Temporal Alignment "
    "Contrastive Learning (PTACL), MICCAI 2025"
)


def data_provenance(store: Any) -> dict[str, Any]:
    """What the card says of the training data, from a prepared store's manifest."""
    manifest = dict(getattr(store, "manifest", {}) or {})
    return {
        "store": Path(store.root).name,
        "origin": manifest.get("origin", "unknown"),
        "evidence": manifest.get(
            "evidence", "the store's manifest records none: prepared before ptacl recorded it"
        ),
        "subjects": manifest.get("subjects"),
        "paired": manifest.get("paired"),
        "ecg_only": manifest.get("ecg_only"),
        "splits": manifest.get("splits"),
        "with_phenotypes": manifest.get("with_phenotypes"),
        "ukb_instance": manifest.get("ukb_instance"),
    }


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _count(value: Any) -> str:
    """A count as a whole number: JSON may hand 24 back as 24.0, which is not '24.000'."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return _fmt(value)


def _head_method(head: Mapping[str, Any]) -> str | None:
    """The label `ptacl evaluate` gives the bundle's own head in metrics.json: 'LP (ols)',
    'LP (ridge)' or 'FN+AP' (a prefix of it); None when the head's kind is unknown."""
    kind = head.get("kind")
    if kind == "linear":
        return "LP (ridge)" if "ridge" in str(head.get("method", "")) else "LP (ols)"
    return "FN+AP" if kind == "attention_pool" else None


def _ci(bounds: Any) -> str:
    if not isinstance(bounds, list | tuple) or len(bounds) != 2 or None in bounds:
        return "n/a"
    return f"[{_fmt(bounds[0])}, {_fmt(bounds[1])}]"


def _test_metrics(
    metrics: Mapping[str, Any] | None, name: str | None, own: str | None = None
) -> list[str]:
    """The test metrics section; with `own` (`_head_method`) only the regression rows of the
    bundle's own head, since a linear-probe bundle does not predict with the FN+AP head."""
    if not metrics:
        return [
            "No test-set metrics were given at export. Score the run with `ptacl evaluate` and "
            "export with `--metrics EVAL/metrics.json` to have them here, with CIs.",
        ]
    info = metrics.get("info") or {}
    boot = metrics.get("bootstrap") or {}
    level = boot.get("level", 0.95)
    made = [info.get("source", "`ptacl evaluate`")]
    made += [f"ptacl {info['ptacl']}"] if info.get("ptacl") else []
    made += [str(info["date"])] if info.get("date") else []
    lines = [
        f"From `{name or 'metrics.json'}` ({', '.join(made)}) on the "
        f"**{info.get('split', 'test')}** split of store `{Path(str(info.get('data', '?'))).name}`; "
        f"{int(100 * level)} % CIs: percentile bootstrap over subjects "
        f"({boot.get('n_boot', '?')} replicates).",
    ]
    regression = {
        m: t for m, t in (metrics.get("regression") or {}).items() if isinstance(t, Mapping)
    }
    if own is not None and any(m.startswith(own) for m in regression):
        other = [m for m in regression if not m.startswith(own)]
        regression = {m: t for m, t in regression.items() if m.startswith(own)}
        if other:
            lines += ["", f"Left out: {', '.join(other)}, scored with another head than this "
                          "bundle's."]  # fmt: skip
    for method, table in regression.items():
        lines += ["", f"R² of phenotype regression, {method}:", ""]
        lines += ["| phenotype | R² | CI | n |", "|---|---|---|---|"]
        for phenotype, row in table.items():
            if isinstance(row, Mapping):
                r2, ci, n = row.get("R2"), row.get("ci"), row.get("n")
                lines.append(f"| {phenotype} | {_fmt(r2)} | {_ci(ci)} | {_count(n)} |")
    retrieval = metrics.get("retrieval")
    if isinstance(retrieval, Mapping) and retrieval.get("model"):
        lines += [
            "",
            f"Similar-patient retrieval ({retrieval.get('protocol', '')}; a match lies within "
            f"±{retrieval.get('match_sd', 0.5)} SD):",
            "",
            "| phenotype | P@1 | CI | random P@1 | MdR |",
            "|---|---|---|---|---|",
        ]
        ci = retrieval.get("model_ci") or {}
        random = retrieval.get("random") or {}
        for phenotype, row in retrieval["model"].items():
            lines.append(
                f"| {phenotype} | {_fmt(row.get('P@1'))} | {_ci((ci.get(phenotype) or {}).get('P@1'))} "
                f"| {_fmt((random.get(phenotype) or {}).get('P@1'))} | {_fmt(row.get('MdR'), 1)} |"
            )
    return lines


def _pct(value: Any) -> str:
    return "n/a" if not isinstance(value, int | float) else f"{100 * value:.1f} %"


def _intervals(intervals: Mapping[str, Any] | None) -> list[str]:
    """The prediction-interval section: nominal level, method, and per phenotype the
    half-width with the coverage and mean width measured on the test split at export."""
    lines = ["### Prediction intervals", ""]
    if not intervals:
        return [*lines, "None: exported without a store, so `ptacl predict` gives no interval."]
    level = intervals.get("level")
    test = intervals.get("test") or {}
    lines += [
        f"Nominal coverage **{_pct(level)}**; method: {intervals.get('method', '?')}. "
        "`ptacl predict` writes `<phenotype> lower` and `<phenotype> upper`. Coverage holds on "
        "average over patients like the validation split's, not for each patient; an empty "
        "half-width means too few validation subjects for that level (an unbounded interval).",
        "",
        "| phenotype | half-width | val n | test coverage | test mean width | test n |",
        "|---|---|---|---|---|---|",
    ]
    for column, entry in (intervals.get("columns") or {}).items():
        measured = test.get(column) or {}
        lines.append(
            f"| {column} | {_fmt(entry.get('half_width'))} | {_count(entry.get('n'))} "
            f"| {_pct(measured.get('coverage'))} | {_fmt(measured.get('mean_width'))} "
            f"| {_count(measured.get('n'))} |"
        )
    return lines


def _endpoints(doc: Mapping[str, Any] | None) -> list[str]:
    """The endpoint-probability section: method, per endpoint its definition, basis,
    prevalence, test AUROC and Brier with CIs and the calibration measured on val and test;
    the endpoints skipped, with why."""
    lines = ["### Endpoint probabilities", ""]
    if not doc:
        return [*lines, "None: exported without a store, so `ptacl predict` gives none."]
    fitted, skipped = doc.get("endpoints") or {}, doc.get("skipped") or {}
    lines += [
        f"Method: {doc.get('method', '?')}. `ptacl predict` writes one column per endpoint, "
        "`P(<key>)`: the probability from the ECG alone (no sex, height or weight is asked for, "
        "even where the label is indexed to body size); a research estimate, not a diagnosis.",
        "",
    ]
    if fitted and (boot := doc.get("bootstrap")):  # not said by bundles exported before
        lines += [
            f"Test CIs: 95 % percentile bootstrap over the test subjects "
            f"({boot.get('n_boot', '?')} replicates).",
            "",
        ]
    if fitted:
        lines += [
            "| column | endpoint | basis | prevalence train / val / test | test AUROC | "
            "test Brier | test ECE (probe → calibrated) | val ECE (probe → calibrated) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for entry in fitted.values():
            test, cal = entry.get("test") or {}, entry.get("calibration") or {}
            prevalence = entry.get("prevalence") or {}
            ece = {
                s: f"{_fmt(((cal.get(s) or {}).get('probe') or {}).get('ECE'))} → "
                f"{_fmt(((cal.get(s) or {}).get('calibrated') or {}).get('ECE'))}"
                for s in ("test", "val")
            }
            lines.append(
                f"| `{entry.get('column')}` | {entry.get('label')}: {entry.get('rule')} "
                f"| {entry.get('basis')} "
                f"| {' / '.join(_pct(prevalence.get(s)) for s in ('train', 'val', 'test'))} "
                f"| {_with_ci(test.get('AUROC'), test.get('not measured'))} "
                f"| {_with_ci(test.get('Brier'), test.get('not measured'))} "
                f"| {ece['test']} | {ece['val']} |"
            )
        lines += ["", "Sources:", ""]
        lines += [f"- `{e.get('column')}`: {e.get('source') or 'n/a'}" for e in fitted.values()]
    if skipped:
        lines += ["", "Not fitted (no column in `ptacl predict`):", ""]
        lines += [f"- {key} ({e.get('label')}): {e.get('why')}" for key, e in skipped.items()]
    return lines


def _with_ci(metric: Any, missing: Any) -> str:
    """'0.812 [0.750, 0.870]' from a [value, lo, hi] list; why not when not measured."""
    if not isinstance(metric, list | tuple) or len(metric) != 3:
        return f"not measured ({missing})" if missing else "n/a"
    return f"{_fmt(metric[0])} {_ci(metric[1:])}"


def _governance(origin: str) -> tuple[str, list[str]]:
    """(licence line, governance paragraphs) for the training data's origin."""
    if origin == SYNTHETIC:
        return (
            "Apache-2.0, as ptacl: trained on synthetic data only.",
            [
                "Trained only on a cohort generated by `ptacl synth`: no participant data went "
                "in, so the weights may be shared with the code. The synthetic physiology is "
                "a phantom: what this model predicts says nothing about real hearts.",
            ],
        )
    lines = [
        "UK Biobank treats trained model weights as derived individual-level data. Weights "
        "trained on its data stay within the approved application they were made under: do "
        "not publish them or pass them to anyone outside that application without UK "
        "Biobank's approval, and return derived data and results to UK Biobank as the "
        "application's terms require. The model card itself holds no participant data.",
    ]
    if origin != UK_BIOBANK:
        lines.insert(
            0,
            "The origin of the training data was not recorded. Treat these weights as derived "
            "from that data: share them only as its terms allow. If it was UK Biobank:",
        )
    return (
        "The code is Apache-2.0; the weights are derived data of the training cohort and are "
        "not licensed for redistribution.",
        lines,
    )


def model_card(
    config: Mapping[str, Any],
    phenotypes: Mapping[str, Any],
    preprocessing: Mapping[str, Any],
    *,
    data: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    metrics_name: str | None = None,
    intervals: Mapping[str, Any] | None = None,
    endpoints: Mapping[str, Any] | None = None,
) -> str:
    """README.md for a bundle (see the module docstring). `data`: `data_provenance(store)`;
    `training`: {"command", "stage", "checkpoint"}; `metrics`: `ptacl evaluate`'s metrics.json;
    `intervals`: the bundle's intervals.json (`ptacl.export.fit.calibrate`); `endpoints`: its
    endpoints.json (`ptacl.export.endpoint_fit`)."""
    data = dict(data or {})
    training = dict(training or {})
    origin = str(data.get("origin") or "unknown")
    licence, governance = _governance(origin)
    encoder = (config.get("encoder") or {}).get("kwargs") or {}
    encoder_name = (config.get("encoder") or {}).get("name", "ecg_vit")  # older: no name
    head = config.get("head") or {}
    source = config.get("source") or {}
    columns = list(phenotypes.get("columns") or [])
    front = [
        "---",
        "library_name: ptacl",
        "license: apache-2.0" if origin == SYNTHETIC else "license: other",
        "tags: [ecg, cardiac-mri, contrastive-learning, research-only]",
        f"training_data_origin: {origin}",
        "---",
    ]
    lines = [
        *front,
        "",
        f"# ptacl ECG model: {config.get('model', 'ECG encoder with a phenotype head')}",
        "",
        "## Model details",
        "",
        f"- Method: PTACL ({PTACL_REFERENCE}); stage `{source.get('stage', '?')}`, "
        f"exported with ptacl {config.get('ptacl_version', '?')}.",
        "- ECG encoder: "
        + ("transformer" if encoder_name == "ecg_vit" else f"registered encoder `{encoder_name}`")
        + ", "
        + ", ".join(f"{k} {v}" for k, v in encoder.items() if not isinstance(v, dict | list)),
        f"- Head: {head.get('kind', '?')} ({head.get('method', '')}) → {len(columns)} outputs: "
        + ", ".join(columns),
        f"- Embedding: {(config.get('embedding') or {}).get('dim', '?')}-d, encoder id "
        f"`{str((config.get('embedding') or {}).get('encoder_id', '?'))[:16]}…`.",
        f"- Input: 12-lead resting ECG, {preprocessing.get('fs', '?')} Hz, up to "
        f"{preprocessing.get('samples', '?')} samples, leads {', '.join(preprocessing.get('leads', []))}.",
        "",
        "## Training data",
        "",
        f"- Origin: **{origin}** ({data.get('evidence', 'no store given at export')}).",
    ]
    if data.get("store"):
        splits = data.get("splits") or {}
        lines += [
            f"- Store `{data['store']}`: {_count(data.get('subjects'))} subjects "
            f"({_count(data.get('paired'))} with ECG and CMR, {_count(data.get('ecg_only'))} "
            f"ECG only), {_count(data.get('with_phenotypes'))} with phenotypes; splits "
            + ", ".join(f"{k} {_count(v)}" for k, v in splits.items())
            + ".",
        ]
    if data.get("ukb_instance") is not None:
        lines.append(f"- UK Biobank visit (instance) read: {data['ukb_instance']}.")
    lines += [
        "",
        "## Training procedure",
        "",
        (
            f"- Reproduce: `{training['command']}` (the run's resolved config.yaml holds every "
            "setting of the command that trained it; that command line itself is not recorded)."
            if training.get("command")
            else "- Training command: not recorded."
        ),
        f"- Checkpoint: {source.get('checkpoint', 'n/a')}"
        + (
            f", sha256 `{source['checkpoint_sha256']}`." if source.get("checkpoint_sha256") else "."
        ),
        "",
        "## Evaluation",
        "",
    ]
    r2 = head.get("validation_r2")
    if r2:
        lines += [
            f"R² of this bundle's head on the validation split "
            f"({_count(head.get('validation_subjects', '?'))} subjects; point estimates):",
            "",
            "| phenotype | R² |",
            "|---|---|",
            *(f"| {c} | {_fmt(v)} |" for c, v in r2.items()),
            "",
        ]
    lines += _test_metrics(metrics, metrics_name, _head_method(head))
    lines += ["", *_intervals(intervals)]
    lines += ["", *_endpoints(endpoints)]
    lines += [
        "",
        "## Uses",
        "",
        "Intended: research on what resting 12-lead ECGs carry of cardiac structure and "
        "function: embeddings for retrieval and study, phenotype estimates compared at cohort "
        "level, methods work on PTACL.",
        "",
        "Out of scope: **this is not a medical device.** Not for diagnosis, screening, "
        "treatment or any decision about a person, and not validated for clinical use.",
        "",
        "## Limitations",
        "",
        "- Valid only for inputs like the training data (adults at rest, 10-s 12-lead ECGs "
        "recorded and preprocessed as in `preprocessing.json`); `ptacl predict` flags values "
        "beyond the training range and ECGs unlike the training ECGs, but a plausible-looking "
        "output can still be wrong.",
        "- Phenotype estimates carry the error shown above; R² describes a cohort, not one "
        "person's prediction.",
        "- The cohort's demographics and devices bound where the model can be trusted.",
        "",
        "## Governance",
        "",
        "\n\n".join(governance),
        "",
        "## Licence",
        "",
        licence,
        "",
        "## How to use",
        "",
        "```python",
        "import ptacl",
        "",
        'model = ptacl.load("path/to/this/bundle")',
        'model.predict("1000037_20205_2_0.xml")  # {"LVEDV (mL)": ..., ...}',
        "```",
        "",
    ]
    return "\n".join(lines)
