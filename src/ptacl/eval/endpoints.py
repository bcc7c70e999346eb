"""Clinical endpoints: binary targets derived from CMR phenotypes by cited thresholds.

Inputs: a (N, P) phenotype array with its column names and, optionally, a covariate table (sex,
height, weight; `ptacl.io.covariates`). Output per endpoint: labels 1 / 0 / NaN (no label: an
input missing), the basis the threshold was applied on, and how many subjects got no label and
why. Pure functions; the thresholds live in the shipped `configs/endpoints.yaml`.

Each endpoint compares one phenotype with a threshold. Where the cohort has covariates and the
rule has sex-specific thresholds indexed to body-surface area (BSA, Mosteller 1987, N Engl J
Med 317:1098: sqrt(height cm x weight kg / 3600) m²), the phenotype is divided by the subject's
BSA and compared with their sex's threshold; a subject missing sex, height or weight then gets
no label (counted). A cohort without covariates uses the rule's unindexed, sex-agnostic
`threshold` for everyone (a fallback, and said so in `basis`): mixing the two bases within one
cohort would make one label mean two things.

`margin` is the same comparison as a continuous score (value / threshold, or threshold / value
for a "below" rule; > 1 means past the threshold), so a model's *predicted* phenotype gives a
score on the label's own scale (`ptacl evaluate --finetune`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np

#: The covariate columns (UK Biobank field 31 sex: 0 female, 1 male; 50 standing height, cm;
#: 21002 weight, kg), as `ptacl.io.covariates` reads them and the store keeps them.
COVARIATES = ("sex", "height_cm", "weight_kg")


@dataclass(frozen=True)
class EndpointRule:
    """One binary endpoint: `phenotype` `op` threshold (see the module docstring)."""

    enabled: bool = True
    # how tables, bundles and predict name it (`endpoint_label`), e.g. "LVEF {op} {threshold} %":
    # {op}, {threshold}, {male_per_bsa}, {female_per_bsa} are filled in from the rule
    label: str = ""
    phenotype: str = "LVEF (%)"  # a column of ptacl.phenotypes.PHENOTYPES
    op: Literal["<", "<=", ">", ">="] = "<"
    threshold: float = 50.0  # unindexed, both sexes: the cohort-without-covariates fallback
    male_per_bsa: float | None = None  # indexed (per m² BSA) thresholds, by sex
    female_per_bsa: float | None = None
    source: str = ""  # the citation, carried into metrics.json

    @property
    def indexed(self) -> bool:
        return self.male_per_bsa is not None and self.female_per_bsa is not None

    @property
    def below(self) -> bool:
        return self.op in ("<", "<=")


@dataclass(frozen=True)
class EndpointsConfig:
    """The endpoints `ptacl evaluate` reports (`configs/endpoints.yaml`, dotted overrides such
    as `lvh.enabled=false` or `min_positives=5`)."""

    # below this many positives (or negatives) in a split an endpoint is "not evaluable"
    min_positives: int = 10
    lvsd: EndpointRule = field(default_factory=EndpointRule)
    hfref: EndpointRule = field(default_factory=EndpointRule)
    lvh: EndpointRule = field(default_factory=EndpointRule)
    lv_dilation: EndpointRule = field(default_factory=EndpointRule)

    def rules(self) -> dict[str, EndpointRule]:
        """The enabled endpoints by key, in the config's order."""
        rules = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "min_positives"}
        return {key: rule for key, rule in rules.items() if rule.enabled}


def load_endpoints(path: str | Path | None = None, overrides: list[str] | tuple = ()) -> Any:
    """The shipped `endpoints.yaml` (or `path`) with dotted `overrides` as an EndpointsConfig;
    ConfigError for an unknown key, a bad value or a phenotype ptacl does not know."""
    from ptacl import configs
    from ptacl.config import ConfigError, load_config, load_yaml
    from ptacl.phenotypes import PHENOTYPES

    shipped = load_yaml(configs.path("endpoints.yaml"))
    cfg = load_config(EndpointsConfig, path, overrides, base=shipped)
    for key, rule in cfg.rules().items():
        if rule.phenotype not in PHENOTYPES:
            raise ConfigError(
                f"endpoints.{key}.phenotype: {rule.phenotype!r} is not one of {PHENOTYPES}"
            )
        try:
            wrong = label_conflict(rule)
        except ConfigError as err:
            raise ConfigError(f"endpoints.{key}.{err}") from None
        if wrong is not None:
            raise ConfigError(
                f"endpoints.{key}.label: {wrong}; write {{op}} and {{threshold}} (or "
                f"{{male_per_bsa}}, {{female_per_bsa}}) in the label to have them filled in "
                f"from the rule, or set {key}.label to match it"
            )
    return cfg


#: The placeholders a label may hold, filled in from its rule (`endpoint_label`).
LABEL_FIELDS = ("op", "threshold", "male_per_bsa", "female_per_bsa")
#: A comparison written in a label: its operator and number, checked against the rule.
_COMPARISON = re.compile(r"(<=|>=|≤|≥|<|>)\s*(\d+(?:\.\d+)?)")


def endpoint_label(rule: EndpointRule) -> str:
    """How reports, metrics.json, a bundle's endpoints.json and predict's columns name the
    endpoint: its `label` with {op}, {threshold}, {male_per_bsa} and {female_per_bsa} filled
    in from the rule, so an overridden threshold is the one the label says (`describe(rule)`
    when it has none). ConfigError for another placeholder."""
    if not rule.label:
        return describe(rule)
    values = {name: getattr(rule, name) for name in LABEL_FIELDS}
    values = {k: v if k == "op" else _number(v) for k, v in values.items()}
    try:
        return rule.label.format(**values)
    except (KeyError, IndexError, ValueError) as err:
        from ptacl.config import ConfigError

        raise ConfigError(
            f"label {rule.label!r} cannot be filled in ({type(err).__name__}: {err}): its "
            f"placeholders are {', '.join('{' + name + '}' for name in LABEL_FIELDS)}, and "
            "a literal brace is written twice"
        ) from None


def label_conflict(rule: EndpointRule) -> str | None:
    """Why the rule's label (as `endpoint_label` writes it) contradicts the rule, or None: a
    comparison in it ("< 50") whose operator is not the rule's or whose number is none of its
    thresholds, as a label written out by hand keeps after `threshold` was overridden."""
    text = endpoint_label(rule)
    thresholds = [
        t for t in (rule.threshold, rule.male_per_bsa, rule.female_per_bsa) if t is not None
    ]
    for op, number in _COMPARISON.findall(text):
        op = {"≤": "<=", "≥": ">="}.get(op, op)
        if op != rule.op or not any(math.isclose(float(number), t) for t in thresholds):
            return f"{text!r} says {op} {number}, but the rule is {describe(rule)}"
    return None


def bsa_mosteller(height_cm: np.ndarray, weight_kg: np.ndarray) -> np.ndarray:
    """Body-surface area in m² (Mosteller 1987): sqrt(height cm x weight kg / 3600); NaN in,
    NaN out."""
    return np.sqrt(np.asarray(height_cm, np.float64) * np.asarray(weight_kg, np.float64) / 3600.0)


def has_covariates(covariates: Any) -> bool:
    """Whether a covariate table (a DataFrame with COVARIATES columns, or None) knows any
    subject's sex, height and weight: what decides the indexed basis for a cohort."""
    if covariates is None or not all(c in covariates.columns for c in COVARIATES):
        return False
    return bool(covariates[list(COVARIATES)].notna().all(axis=1).any())


@dataclass(frozen=True)
class EndpointLabels:
    """Labels of one endpoint: (N,) 1.0 / 0.0 / NaN (no label) and how they were made."""

    labels: np.ndarray
    basis: str  # "indexed to BSA, sex-specific" or "unindexed, both sexes (no covariates)"
    unlabelled: dict[str, int]  # reason -> subjects without a label


def margin(
    rule: EndpointRule, values: np.ndarray, covariates: Any = None
) -> tuple[np.ndarray, str]:
    """(N,) the phenotype `values` past the rule's threshold as a ratio (> 1: past it; NaN where
    an input is missing) and the basis used (the module docstring says which and why)."""
    values = np.asarray(values, np.float64)
    if rule.indexed and has_covariates(covariates):
        sex = covariates["sex"].to_numpy(np.float64)
        bsa = bsa_mosteller(covariates["height_cm"], covariates["weight_kg"])
        with np.errstate(invalid="ignore"):
            threshold = np.where(sex == 1, rule.male_per_bsa, np.nan)
            threshold = np.where(sex == 0, rule.female_per_bsa, threshold)
        values, basis = values / bsa, "indexed to BSA (Mosteller), sex-specific"
    else:
        threshold = np.full(values.shape, rule.threshold)
        basis = "unindexed, both sexes" + (" (no covariates: the fallback)" if rule.indexed else "")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = threshold / values if rule.below else values / threshold
    return ratio, basis


def endpoint_labels(
    rule: EndpointRule, phenotypes: np.ndarray, names: list[str], covariates: Any = None
) -> EndpointLabels:
    """Labels of `rule` for (N, P) `phenotypes` (columns `names`), `covariates` row-aligned
    (a DataFrame with COVARIATES columns, NaN unknown; None: none). A subject whose phenotype
    (or, on the indexed basis, sex, height or weight) is unknown gets NaN, counted by reason."""
    values = np.asarray(phenotypes, np.float64)[:, names.index(rule.phenotype)]
    ratio, basis = margin(rule, values, covariates)
    strict = rule.op in ("<", ">")
    with np.errstate(invalid="ignore"):
        # value op threshold, written on the ratio: exactly at the threshold the ratio is 1
        past = ratio > 1 if strict else ratio >= 1
    labels = np.where(np.isfinite(ratio), past.astype(np.float64), np.nan)
    unlabelled = {}
    missing_value = ~np.isfinite(values)
    if missing_value.any():
        unlabelled[f"no {rule.phenotype}"] = int(missing_value.sum())
    missing_covariate = np.isnan(labels) & ~missing_value
    if missing_covariate.any():
        unlabelled["no sex, height or weight"] = int(missing_covariate.sum())
    return EndpointLabels(labels=labels, basis=basis, unlabelled=unlabelled)


def describe(rule: EndpointRule) -> str:
    """'LVEF (%) < 50' or 'LVM (g)/BSA > 71 (men), 56 (women) g/m²; unindexed fallback > 152'."""
    if not rule.indexed:
        return f"{rule.phenotype} {rule.op} {_number(rule.threshold)}"
    return (
        f"{rule.phenotype}/BSA {rule.op} {_number(rule.male_per_bsa)} (men), "
        f"{_number(rule.female_per_bsa)} (women) per m²; without covariates "
        f"{rule.op} {_number(rule.threshold)}"
    )


def _number(value: float | None) -> str:
    return "?" if value is None or not math.isfinite(value) else f"{value:g}"
