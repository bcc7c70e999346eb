"""Endpoint labels from phenotypes: the cited thresholds, indexing to BSA, missing inputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ptacl.config import ConfigError
from ptacl.eval.endpoints import (
    EndpointRule,
    bsa_mosteller,
    describe,
    endpoint_label,
    endpoint_labels,
    load_endpoints,
    margin,
)
from ptacl.phenotypes import PHENOTYPES

NAMES = list(PHENOTYPES)


def _table(column: str, values: list[float]) -> np.ndarray:
    out = np.full((len(values), len(NAMES)), 100.0)
    out[:, NAMES.index(column)] = values
    return out


def test_shipped_thresholds_are_the_cited_ones():
    cfg = load_endpoints()
    # ESC 2021 HF guideline: HFrEF <= 40 %, HFmrEF 41-49 %: "below 50" and "at most 40"
    assert (cfg.lvsd.phenotype, cfg.lvsd.op, cfg.lvsd.threshold) == ("LVEF (%)", "<", 50.0)
    assert (cfg.hfref.phenotype, cfg.hfref.op, cfg.hfref.threshold) == ("LVEF (%)", "<=", 40.0)
    # Petersen et al. 2017 (UK Biobank CMR): LVM/BSA 53 +- 9 g/m² men, 42 +- 7 women; + 1.96 SD
    assert cfg.lvh.male_per_bsa == pytest.approx(53 + 1.96 * 9, abs=0.05)
    assert cfg.lvh.female_per_bsa == pytest.approx(42 + 1.96 * 7, abs=0.05)
    assert cfg.lvh.phenotype == "LVM (g)" and cfg.lv_dilation.phenotype == "LVEDV (mL)"
    for rule in cfg.rules().values():
        assert "et al" in rule.source  # every rule names its source
    assert list(cfg.rules()) == ["lvsd", "hfref", "lvh", "lv_dilation"]


def test_overrides_and_a_bad_phenotype():
    cfg = load_endpoints(overrides=["hfref.enabled=false", "min_positives=3"])
    assert "hfref" not in cfg.rules() and cfg.min_positives == 3
    with pytest.raises(ConfigError, match="LVXX"):
        load_endpoints(overrides=["lvsd.phenotype=LVXX"])
    with pytest.raises(ConfigError, match="unknown key"):
        load_endpoints(overrides=["lvsd.cutoff=3"])


def test_a_label_follows_an_overridden_threshold():
    """`lvsd.threshold=40` kept the label "LVEF < 50 %" in reports, endpoints.json and
    predict's columns: the shipped labels are filled in from the rule."""
    cfg = load_endpoints()
    assert endpoint_label(cfg.lvsd) == "LV systolic dysfunction (LVEF < 50 %)"
    assert endpoint_label(cfg.hfref) == "reduced EF (LVEF <= 40 %)"
    cfg = load_endpoints(overrides=["lvsd.threshold=40", "hfref.op=<", "hfref.threshold=35.5"])
    assert endpoint_label(cfg.lvsd) == "LV systolic dysfunction (LVEF < 40 %)"
    assert endpoint_label(cfg.hfref) == "reduced EF (LVEF < 35.5 %)"
    sexes = "LVM/BSA {op} {male_per_bsa} (men), {female_per_bsa} (women)"
    cfg = load_endpoints(overrides=[f"lvh.label={sexes}", "lvh.male_per_bsa=72"])
    assert endpoint_label(cfg.lvh) == "LVM/BSA > 72 (men), 55.7 (women)"
    assert endpoint_label(EndpointRule(label="")) == "LVEF (%) < 50"  # none: the rule itself


def test_a_label_that_states_another_threshold_is_refused():
    """A label written out by hand cannot be filled in: one that no longer says the rule's
    threshold or operator is refused, naming the placeholders."""
    hand = "lvsd.label=LVSD (LVEF < 50 %)"
    assert endpoint_label(load_endpoints(overrides=[hand]).lvsd) == "LVSD (LVEF < 50 %)"
    with pytest.raises(ConfigError, match=r"endpoints.lvsd.label: .* says < 50, but the rule"):
        load_endpoints(overrides=[hand, "lvsd.threshold=40"])
    with pytest.raises(ConfigError, match=r"says <= 50.*\{threshold\}"):
        load_endpoints(overrides=["lvsd.label=LVSD (LVEF ≤ 50 %)"])  # the rule is < 50
    with pytest.raises(ConfigError, match=r"endpoints.lvsd.label .*cannot be filled in"):
        load_endpoints(overrides=["lvsd.label=LVEF {cutoff} %"])
    load_endpoints(overrides=["lvsd.label=ESC 2021 LVSD", "lvsd.threshold=40"])  # no comparison


def test_lvef_labels_at_and_around_the_thresholds():
    cfg = load_endpoints()
    phen = _table("LVEF (%)", [49.9, 50.0, 40.0, 40.1, 65.0, math.nan])
    lvsd = endpoint_labels(cfg.lvsd, phen, NAMES)
    np.testing.assert_array_equal(lvsd.labels, [1, 0, 1, 1, 0, np.nan])
    hfref = endpoint_labels(cfg.hfref, phen, NAMES)
    np.testing.assert_array_equal(hfref.labels, [0, 0, 1, 0, 0, np.nan])  # <= 40: inclusive
    assert lvsd.unlabelled == {"no LVEF (%)": 1}  # counted, not dropped
    assert lvsd.basis == "unindexed, both sexes"


def test_mosteller_bsa():
    # 180 cm, 80 kg: sqrt(180 * 80 / 3600) = 2.0 m²
    assert bsa_mosteller(180.0, 80.0) == pytest.approx(2.0)
    assert np.isnan(bsa_mosteller(np.nan, 80.0))


def test_lvh_indexed_and_sex_specific_with_covariates():
    cfg = load_endpoints()
    # every subject BSA 2.0 m²: 130 g -> 65 g/m², above the women's 55.7, below the men's 70.6
    covariates = pd.DataFrame(
        {
            "sex": [1, 0, 1, np.nan, 0],
            "height_cm": [180.0, 180.0, 180.0, 180.0, np.nan],
            "weight_kg": [80.0, 80.0, 80.0, 80.0, 80.0],
        }
    )
    phen = _table("LVM (g)", [130.0, 130.0, 150.0, 130.0, 130.0])
    out = endpoint_labels(cfg.lvh, phen, NAMES, covariates)
    np.testing.assert_array_equal(out.labels, [0, 1, 1, np.nan, np.nan])
    assert out.unlabelled == {"no sex, height or weight": 2}
    assert out.basis.startswith("indexed to BSA")


def test_without_covariates_the_unindexed_fallback_is_used_and_said():
    cfg = load_endpoints()
    phen = _table("LVM (g)", [130.0, 160.0])
    for covariates in (None, pd.DataFrame({"sex": [np.nan] * 2, "height_cm": [np.nan] * 2,
                                           "weight_kg": [np.nan] * 2})):  # fmt: skip
        out = endpoint_labels(cfg.lvh, phen, NAMES, covariates)
        np.testing.assert_array_equal(out.labels, [0, 1])  # LVM > 152 g
        assert "fallback" in out.basis and out.unlabelled == {}


def test_margin_is_the_label_as_a_score():
    rule = EndpointRule(phenotype="LVEF (%)", op="<", threshold=50.0)
    ratio, _ = margin(rule, np.array([25.0, 50.0, 100.0]))
    np.testing.assert_allclose(ratio, [2.0, 1.0, 0.5])  # > 1: past the threshold
    assert describe(rule) == "LVEF (%) < 50"
