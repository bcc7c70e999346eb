"""The bundle's endpoint probabilities (endpoints.json), fitted on a prepared store at export.

    fit_endpoints(cfg, store, {"train": (rows, x), "val": ..., "test": ...})
        -> endpoints.json: per clinical endpoint of `cfg` (`ptacl.eval.endpoints`) a logistic
           model of the ECG embedding that `ptacl predict` applies (`ptacl.inference.
           endpoints`), its definition, counts, calibration and test metrics; endpoints that
           cannot be fitted under `skipped`, with their counts and why.

The model is `ptacl evaluate`'s logistic probe (`ptacl.eval.endpoint_eval.fit_logistic_probe`:
L2 logistic regression, C = 1, on standardised embeddings) fitted on the train split's
labelled subjects, then recalibrated on the val split by Platt scaling of its logit:
P = sigmoid(a · logit + b), a and b fitted on val (Platt 1999), which the probe never saw.
Why not keep the probe's own probabilities: they are fitted to the train split's logits, and
whether they hold on new subjects depends on the embedding width against the number of train
subjects, so rather than assume it, the val split fixes it and the Brier score and expected
calibration error (ECE) of both are stated, on val and on the test split (out of sample for
both). Why Platt on the logit and not isotonic regression: two parameters, which a val split
of some hundred subjects fits stably, a model that stays linear (a and b fold into the stored
weight and bias) and a ranking that stays the probe's (a > 0, so the test AUROC is the
probe's). A slope a <= 0 (the probe ranks val subjects no better than chance) is set to 0:
every ECG then gets the val prevalence, which is what the embedding is known to say.

An endpoint is fitted when the train and val splits each hold at least `cfg.min_positives`
positives and negatives; its test metrics (`ptacl.eval.endpoint_eval.scored`: AUROC, AUPRC,
Brier with bootstrap CIs, sensitivity and specificity at a threshold fixed on val) when the
test split does too, else they are "not measured" with the counts.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ptacl.eval.endpoint_eval import (
    fit_logistic_probe,
    label_counts,
    platt_model,
    probe_coefficients,
    scored,
    why_not_evaluable,
)
from ptacl.eval.endpoint_metrics import brier, expected_calibration_error
from ptacl.eval.endpoints import describe, endpoint_label, endpoint_labels
from ptacl.inference.endpoints import column_name, endpoint_probabilities
from ptacl.phenotypes import PHENOTYPES

SPLITS = ("train", "val", "test")
METHOD = (
    "the logistic probe of `ptacl evaluate` (L2 logistic regression, C = 1, on standardised "
    "ECG embeddings) fitted on the train split, recalibrated on the val split by Platt scaling "
    "of its logit; P = sigmoid((x - mean) @ weight + bias) with both folded in"
)


def fit_endpoints(
    cfg: Any,
    store: Any,
    embeddings: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    n_boot: int = 1000,
) -> dict[str, Any]:
    """endpoints.json for the enabled endpoints of `cfg` (an `EndpointsConfig`) on `store`,
    from `embeddings`: split -> (store rows (N,), ECG embeddings (N, D)) for train, val and
    test (`ptacl.export.fit.embed_store`). See the module docstring."""
    names = list(store.manifest.get("phenotypes") or PHENOTYPES)
    table = store.covariates()
    labels, counts = {}, {}
    for key, rule in cfg.rules().items():
        labels[key] = {}
        for split in SPLITS:
            rows = embeddings[split][0]
            covariates = None if table is None else table.iloc[rows].reset_index(drop=True)
            phenotypes = np.asarray(store.phenotypes[rows], np.float64)
            labels[key][split] = endpoint_labels(rule, phenotypes, names, covariates)
        counts[key] = {
            s: label_counts(out.labels, out.unlabelled) for s, out in labels[key].items()
        }
    doc: dict[str, Any] = {
        "method": METHOD,
        "input": "the ECG embedding (space 'encoder', averaged over crops) predict computes",
        "fitted_on": {"store": Path(store.root).name, "probe": "train", "calibration": "val"},
        "min_positives": cfg.min_positives,
        # the test metrics' percentile CIs (`ptacl export --n-boot`, as `ptacl evaluate`)
        "bootstrap": {"n_boot": n_boot, "seed": 0, "level": 0.95},
        "endpoints": {},
        "skipped": {},
    }
    missing = importlib.util.find_spec("sklearn") is None
    for key, rule in cfg.rules().items():
        why = why_not_evaluable({s: counts[key][s] for s in ("train", "val")}, cfg.min_positives)
        if missing:
            why = "scikit-learn is not installed (pip install 'ptacl[eval]')"
        definition = {
            "label": endpoint_label(rule),
            "rule": describe(rule),
            "basis": labels[key]["train"].basis,
            "source": rule.source,
        }
        if why is not None:
            doc["skipped"][key] = {**definition, "why": why, "counts": counts[key]}
            continue
        fitted = _fit_one(
            {s: labels[key][s].labels for s in SPLITS}, embeddings, cfg.min_positives, n_boot
        )
        doc["endpoints"][key] = {
            "column": column_name(key),
            **definition,
            "counts": counts[key],
            **fitted,
        }
    return doc


def _fit_one(
    labels: Mapping[str, np.ndarray],
    embeddings: Mapping[str, tuple[np.ndarray, np.ndarray]],
    min_positives: int,
    n_boot: int,
) -> dict[str, Any]:
    """One endpoint's model, calibration and test metrics from its (N,) labels per split
    (NaN: no label) and the splits' embeddings."""
    keep = {s: np.isfinite(labels[s]) for s in SPLITS}
    y = {s: labels[s][keep[s]].astype(int) for s in SPLITS}
    x = {s: np.asarray(embeddings[s][1], np.float64)[keep[s]] for s in SPLITS}
    mean, weight, bias = probe_coefficients(fit_logistic_probe(x["train"], y["train"]))
    logit = {s: (x[s] - mean) @ weight + bias for s in ("val", "test")}  # (N,)
    slope, intercept = _platt_on_logit(logit["val"], y["val"])
    raw = {s: endpoint_probabilities(x[s], mean[None], weight[None], np.array([bias]))[:, 0]
           for s in ("val", "test")}  # fmt: skip
    model = {"mean": mean, "weight": slope * weight, "bias": slope * bias + intercept}
    calibrated = {
        s: endpoint_probabilities(
            x[s], model["mean"][None], model["weight"][None], np.array([model["bias"]])
        )[:, 0]
        for s in ("val", "test")
    }
    calibration = {
        "method": "Platt scaling of the probe's logit on the val split",
        "slope": round(slope, 6),
        "intercept": round(intercept, 6),
        **{
            s: {
                name: {
                    "Brier": round(brier(y[s], p[s]), 4),
                    "ECE": round(expected_calibration_error(y[s], p[s]), 4),
                }
                for name, p in (("probe", raw), ("calibrated", calibrated))
            }
            for s in ("val", "test")
        },
    }
    test_short = why_not_evaluable({"test": label_counts(labels["test"], {})}, min_positives)
    boot = {"n_boot": n_boot, "seed": 0}
    test = (
        {"not measured": test_short}
        if test_short is not None
        else {
            **scored(y["val"], calibrated["val"], y["test"], calibrated["test"], boot),
            "ECE": calibration["test"]["calibrated"]["ECE"],
        }
    )
    return {
        "prevalence": {s: round(float(np.mean(y[s])), 4) for s in SPLITS},
        "calibration": calibration,
        "test": test,
        "mean": model["mean"].tolist(),
        "weight": model["weight"].tolist(),
        "bias": float(model["bias"]),
    }


def _platt_on_logit(logit: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of Platt scaling on (N,) val logits; a slope <= 0 becomes 0 with the
    intercept giving the val prevalence (see the module docstring)."""
    fitted = platt_model(logit, y)
    slope, intercept = float(fitted.coef_[0, 0]), float(fitted.intercept_[0])
    if slope > 0:
        return slope, intercept
    prevalence = float(np.mean(y))
    return 0.0, float(np.log(prevalence / (1 - prevalence)))
