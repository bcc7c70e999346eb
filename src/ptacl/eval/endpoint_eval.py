"""The clinical endpoints of `ptacl evaluate`: from frozen embeddings and from FN+AP's predictions.

    endpoints_section(cfg, store, names, probe=(train, val, test), finetune_dir=DIR,
                      criteria=True)
        -> metrics.json's "endpoints": definitions, and per method and endpoint the counts,
           prevalence, AUROC / AUPRC / Brier / sensitivity / specificity [value, lo, hi],
           the threshold and a reliability table; or "not evaluable" with the counts.

- Logistic probe (`LP (logistic)`): L2 logistic regression (C = 1) on standardised frozen
  embeddings, fitted on the train split's labelled subjects; its probabilities are used as
  they come (fitted on the labels' own prevalence, no reweighting, so they are calibrated to it).
- FN+AP: the fine-tuned model's *predicted phenotype* turned into the label's own scale
  (`ptacl.eval.endpoints.margin`: indexed to BSA by sex when the label is) and calibrated into a
  probability on the validation split (Platt scaling: a logistic regression on log margin).
- ECG criteria (`ECG criteria (logistic)`): the clinician's baseline, the same logistic model
  on the classic criteria measured on each recording of the store (`ptacl.eval.ecg_criteria`:
  Sokolow-Lyon, Cornell, QRS duration, rate, Q waves, ...), every subject with an ECG; a
  criterion that cannot be measured takes the train split's median (counted in the section's
  "ecg_criteria").
In all, the sensitivity/specificity threshold is fixed on the validation split (Youden's J)
and applied unchanged to the test split, where every metric is measured. An endpoint with
fewer than `min_positives` positives or negatives in a split it needs is not evaluable: its
counts are reported instead (not an error).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ptacl.eval.endpoint_metrics import metrics_with_ci, reliability, youden_threshold
from ptacl.eval.endpoints import (
    EndpointRule,
    describe,
    endpoint_label,
    endpoint_labels,
    margin,
)

PROBE = "LP (logistic)"
FINETUNE = "FN+AP"
CRITERIA = "ECG criteria (logistic)"
#: Keys of the section that are not a method's results.
NOT_METHODS = ("min_positives", "definitions", "skipped", "ecg_criteria")


@dataclass(frozen=True)
class SplitData:
    """One split's subjects: eids (N,), true phenotypes (N, P), and model inputs: embeddings
    (N, D) for the probe, predicted phenotypes (N, P) for FN+AP."""

    eids: np.ndarray
    truth: np.ndarray
    inputs: np.ndarray


def store_covariates(store: Any, eids: np.ndarray) -> pd.DataFrame | None:
    """The store's covariates of `eids` in their order (None: the store has none)."""
    table = store.covariates()
    if table is None:
        return None
    row = pd.Series(np.arange(len(store.subjects)), index=store.subjects["eid"].astype(str))
    return table.iloc[row.loc[[str(e) for e in eids]].to_numpy()].reset_index(drop=True)


def label_counts(labels: np.ndarray, unlabelled: dict[str, int]) -> dict[str, Any]:
    return {
        "positives": int(np.nansum(labels == 1)),
        "negatives": int(np.nansum(labels == 0)),
        "unlabelled": dict(unlabelled),
    }


def why_not_evaluable(counts: dict[str, dict[str, Any]], min_positives: int) -> str | None:
    """Why an endpoint cannot be evaluated with these per-split counts, or None."""
    short = [
        f"{split}: {c['positives']} positives, {c['negatives']} negatives"
        for split, c in counts.items()
        if min(c["positives"], c["negatives"]) < min_positives
    ]
    if not short:
        return None
    return f"fewer than {min_positives} positives or negatives ({'; '.join(short)})"


def fit_logistic_probe(x_train: np.ndarray, y_train: np.ndarray) -> Any:
    """The fitted probe: an L2 logistic regression (C = 1) on standardised (N, D) `x_train`
    with (N,) labels 0 / 1 (a scikit-learn pipeline; `probe_coefficients` reads it out)."""
    from ptacl.extras import require

    require("sklearn", "the endpoints' logistic probe")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    return model.fit(np.asarray(x_train, np.float64), np.asarray(y_train, int))


def logistic_probe(
    x_train: np.ndarray, y_train: np.ndarray, *x_eval: np.ndarray
) -> list[np.ndarray]:
    """P(positive) of each `x_eval` from `fit_logistic_probe(x_train, y_train)` (see the
    module docstring)."""
    model = fit_logistic_probe(x_train, y_train)
    return [model.predict_proba(np.asarray(x, np.float64))[:, 1] for x in x_eval]


def probe_coefficients(model: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """(mean (D,), weight (D,), bias) of a `fit_logistic_probe` model with the standardisation
    folded in: its logit is (x - mean) @ weight + bias, for (N, D) raw embeddings x."""
    scaler, logistic = model[0], model[-1]
    weight = logistic.coef_[0] / scaler.scale_  # scale_ is 1 for a constant feature
    return scaler.mean_.astype(np.float64), weight.astype(np.float64), float(logistic.intercept_[0])


def platt_model(feature: np.ndarray, y: np.ndarray) -> Any:
    """P(positive) = sigmoid(a feature + b) fitted on (N,) `feature` and labels `y`, nearly
    unpenalised (C = 1e4): one slope `coef_` and one intercept `intercept_`."""
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(feature, np.float64)[:, None]
    return LogisticRegression(C=1e4, max_iter=5000).fit(x, np.asarray(y, int))


def platt(score_val: np.ndarray, y_val: np.ndarray, *score_eval: np.ndarray) -> list[np.ndarray]:
    """Platt scaling: P(positive) = sigmoid(a log(score) + b), fitted on the validation split
    (scores are positive margins; their log makes "twice past the threshold" and "half way"
    symmetric). Nearly unpenalised (`platt_model`): one slope and one intercept."""

    def feature(s: np.ndarray) -> np.ndarray:
        return np.log(np.clip(np.asarray(s, np.float64), 1e-6, None))[:, None]

    model = platt_model(feature(score_val)[:, 0], y_val)
    return [model.predict_proba(feature(s))[:, 1] for s in score_eval]


def scored(y_val, p_val, y_test, p_test, boot: dict[str, Any]) -> dict[str, Any]:
    """Every test metric of probabilities `p_test`, the threshold fixed on (y_val, p_val)."""
    threshold = youden_threshold(y_val, p_val)
    return {
        "prevalence": round(float(np.mean(y_test)), 4),
        "threshold": round(threshold, 6),
        "threshold_rule": "Youden's J on the val split",
        **metrics_with_ci(y_test, p_test, threshold, **boot),
        "reliability": reliability(y_test, p_test),
    }


def _endpoint(
    rule: EndpointRule,
    names: list[str],
    splits: dict[str, SplitData],
    covariates: dict[str, pd.DataFrame | None],
    fit: str,
    min_positives: int,
    boot: dict[str, Any],
) -> dict[str, Any]:
    """One endpoint by one method (`fit`: PROBE or FINETUNE) over `splits` (train for the
    probe, val, test)."""
    labelled = {s: endpoint_labels(rule, d.truth, names, covariates[s]) for s, d in splits.items()}
    counts = {s: label_counts(out.labels, out.unlabelled) for s, out in labelled.items()}
    section: dict[str, Any] = {"counts": counts}
    why = why_not_evaluable(counts, min_positives)
    if why is not None:
        return {**section, "evaluable": False, "why": why}
    keep = {s: np.isfinite(out.labels) for s, out in labelled.items()}
    y = {s: labelled[s].labels[keep[s]] for s in splits}
    if fit == PROBE:
        x = {s: d.inputs[keep[s]] for s, d in splits.items()}
        p_val, p_test = logistic_probe(x["train"], y["train"], x["val"], x["test"])
    else:
        column = names.index(rule.phenotype)
        score = {
            s: margin(rule, d.inputs[:, column], covariates[s])[0][keep[s]]
            for s, d in splits.items()
        }
        usable = {s: np.isfinite(v) for s, v in score.items()}
        if not all(u.all() for u in usable.values()):  # a prediction's covariate missing
            return {**section, "evaluable": False, "why": "a prediction without its covariates"}
        p_val, p_test = platt(score["val"], y["val"], score["val"], score["test"])
    return {**section, "evaluable": True, **scored(y["val"], p_val, y["test"], p_test, boot)}


def method_section(
    cfg: Any,
    store: Any,
    names: list[str],
    splits: dict[str, SplitData],
    fit: str,
    boot: dict[str, Any],
) -> dict[str, Any]:
    """{endpoint key: its section} of one method, every enabled endpoint of `cfg`."""
    covariates = {s: store_covariates(store, d.eids) for s, d in splits.items()}
    return {
        key: _endpoint(rule, names, splits, covariates, fit, cfg.min_positives, boot)
        for key, rule in cfg.rules().items()
    }


def definitions(cfg: Any, store: Any, names: list[str]) -> dict[str, Any]:
    """What each enabled endpoint is: label, rule, the basis this store allows, source."""
    every = np.asarray(store.phenotypes, np.float64)
    covariates = store.covariates()
    return {
        key: {
            "label": endpoint_label(rule),
            "rule": describe(rule),
            "basis": endpoint_labels(rule, every, names, covariates).basis,
            "source": rule.source,
        }
        for key, rule in cfg.rules().items()
    }


def finetune_splits(run_dir: Path) -> tuple[dict[str, SplitData], str]:
    """FN+AP's val and test predictions as `ptacl finetune` wrote them ({} and why not)."""
    splits = {}
    for split in ("val", "test"):
        path = Path(run_dir) / f"{split}_predictions.npz"
        if not path.is_file():
            return {}, f"the fine-tune wrote no {path.name}"
        with np.load(path, allow_pickle=False) as data:
            if "eids" not in data:
                return {}, f"{path.name} holds no eids"
            splits[split] = SplitData(
                data["eids"].astype(str),
                data["true"].astype(np.float64),
                data["predicted"].astype(np.float64),
            )
    return splits, ""


def criteria_splits(
    store: Any, measure: Any = None, units: str | None = None
) -> tuple[dict[str, SplitData], dict[str, Any]]:
    """Every split's subjects with an ECG, their ECG criteria as inputs (NaN imputed with the
    train split's medians), and what the section records about them ({} and why not).
    `measure(store, rows) -> (N, F)` criteria: the store's own recordings by default
    (`ptacl.eval.ecg_criteria.store_criteria`, in `UNITS`); `units` says what another is in."""
    from ptacl.ecg.criteria import CRITERIA as FEATURES
    from ptacl.eval.ecg_criteria import UNITS, impute_train_median, store_criteria

    measure = measure or store_criteria
    rows = {split: store.indices(split, ecg=True) for split in ("train", "val", "test")}
    empty = [split for split, r in rows.items() if len(r) == 0]
    if empty:
        return {}, {"skipped": f"no ECG in the {empty[0]} split"}
    raw = {split: measure(store, r) for split, r in rows.items()}
    (train, val, test), medians = impute_train_median(raw["train"], raw["val"], raw["test"])
    eids = store.subjects["eid"].astype(str).to_numpy()
    phenotypes = np.asarray(store.phenotypes, np.float64)
    splits = {
        split: SplitData(eids[rows[split]], phenotypes[rows[split]], x)
        for split, x in (("train", train), ("val", val), ("test", test))
    }
    unmeasured = {
        name: {split: int(np.isnan(raw[split][:, j]).sum()) for split in raw}
        for j, name in enumerate(FEATURES)
    }
    notes = {
        "features": list(FEATURES),
        "units": units or UNITS,
        "subjects": {split: len(r) for split, r in rows.items()},
        "unmeasured": {k: v for k, v in unmeasured.items() if any(v.values())},
        "recordings_with_an_unmeasured_criterion": {
            split: int(np.isnan(x).any(axis=1).sum()) for split, x in raw.items()
        },
        "imputation": "the train split's median of the criterion",
        "train_medians": {name: round(float(m), 4) for name, m in zip(FEATURES, medians)},
        "model": "L2 logistic regression (C = 1) on the standardised criteria, as the LP's",
    }
    return splits, notes


def endpoints_section(
    cfg: Any,
    store: Any,
    modality: str,
    probe: tuple[Any, Any, Any] | None,
    finetune_dir: Path | None,
    boot: dict[str, Any],
    *,
    criteria: bool = False,
    measure: Any = None,
    units: str | None = None,
) -> dict[str, Any]:
    """metrics.json's "endpoints": `probe` is the LP's (train, val or None, test) embeddings
    (`ptacl.eval.embed.Embeddings`, their `modality` array the input); `finetune_dir` a
    finished fine-tune's folder (None: no FN+AP); `criteria`: the ECG-criteria baseline too
    (its notes under "ecg_criteria"; `measure` and `units` as `criteria_splits`')."""
    names = list(store.manifest.get("phenotypes", []))
    section: dict[str, Any] = {
        "min_positives": cfg.min_positives,
        "definitions": definitions(cfg, store, names),
    }
    if probe is not None:
        train, val, test = probe
        if val is None:
            section[PROBE] = {"skipped": "no val embeddings to fix the threshold on"}
        else:
            splits = {
                split: SplitData(e.eids, e.phenotypes.astype(np.float64), getattr(e, modality))
                for split, e in (("train", train), ("val", val), ("test", test))
            }
            section[PROBE] = method_section(cfg, store, names, splits, PROBE, boot)
    if finetune_dir is not None:
        splits, why = finetune_splits(finetune_dir)
        section[FINETUNE] = (
            method_section(cfg, store, names, splits, FINETUNE, boot)
            if splits
            else {"skipped": why}
        )
    if criteria:
        splits, notes = criteria_splits(store, measure, units)
        section["ecg_criteria"] = notes
        section[CRITERIA] = (
            method_section(cfg, store, names, splits, PROBE, boot) if splits else dict(notes)
        )
    return section
