"""Endpoints of an evaluation: probe and FN+AP sections, counts, not-evaluable endpoints."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ptacl.data.store import Store
from ptacl.data.store_write import write_store
from ptacl.eval.endpoint_eval import (
    FINETUNE,
    PROBE,
    endpoints_section,
    finetune_splits,
    platt,
)
from ptacl.eval.endpoint_report import endpoint_lines, plot_reliability
from ptacl.eval.endpoints import load_endpoints
from ptacl.phenotypes import PHENOTYPES

pytest.importorskip("sklearn")
SPLITS = {"train": 80, "val": 40, "test": 40}
LVEF, LVM = PHENOTYPES.index("LVEF (%)"), PHENOTYPES.index("LVM (g)")


def _store(root, covariates=True, seed=0):
    """160 subjects whose 'embedding' (returned) carries LVEF and LVM with noise."""
    rng = np.random.default_rng(seed)
    n = sum(SPLITS.values())
    pheno = rng.normal(100, 10, (n, len(PHENOTYPES)))
    pheno[:, LVEF] = rng.normal(55, 8, n)  # about a quarter below 50 %
    pheno[:, LVM] = rng.normal(100, 25, n)
    pheno[5, LVEF] = np.nan  # no label for this train subject: counted
    sex = (rng.random(n) < 0.5).astype(float)
    cov = pd.DataFrame({"sex": sex, "height_cm": rng.normal(172, 8, n),
                        "weight_kg": rng.normal(78, 10, n)})  # fmt: skip
    cov.loc[7, "sex"] = np.nan
    eids = [str(100 + i) for i in range(n)]
    splits = [s for s, k in SPLITS.items() for _ in range(k)]
    store = write_store(
        root / "store", eids=eids, splits=splits,
        ecg=np.zeros((n, 12, 50), np.float16), cmr=np.zeros((n, 2, 4, 4), np.uint8),
        r_peaks=[np.array([], int)] * n, phenotypes=pheno, has_ecg=[True] * n,
        has_cmr=[True] * n, qc=pd.DataFrame({"eid": eids}),
        covariates=cov if covariates else None,
    )  # fmt: skip
    x = np.c_[np.nan_to_num(pheno[:, [LVEF, LVM]], nan=55.0), rng.normal(0, 1, (n, 6))]
    x[:, :2] += rng.normal(0, 5, (n, 2))
    return Store.open(store), x


def _probe_inputs(store, x):
    out = []
    for split in SPLITS:
        rows = store.indices(split)
        out.append(SimpleNamespace(eids=store.subjects["eid"].to_numpy()[rows],
                                   phenotypes=store.phenotypes[rows], ecg=x[rows]))  # fmt: skip
    return tuple(out)


def test_probe_endpoints_with_counts_and_a_rare_one(tmp_path):
    store, x = _store(tmp_path)
    cfg = load_endpoints(overrides=["min_positives=5"])
    section = endpoints_section(cfg, store, "ecg", _probe_inputs(store, x), None,
                                {"n_boot": 50, "seed": 0})  # fmt: skip
    assert section["definitions"]["lvh"]["basis"].startswith("indexed to BSA")
    lvsd = section[PROBE]["lvsd"]
    assert lvsd["evaluable"] is True
    n = lvsd["counts"]["test"]
    assert lvsd["prevalence"] == pytest.approx(n["positives"] / (n["positives"] + n["negatives"]),
                                               abs=1e-4)  # fmt: skip
    assert lvsd["counts"]["train"]["unlabelled"] == {"no LVEF (%)": 1}
    assert lvsd["AUROC"][0] > 0.75  # the embedding carries LVEF
    assert lvsd["AUROC"][1] <= lvsd["AUROC"][0] <= lvsd["AUROC"][2]
    assert lvsd["threshold_rule"] == "Youden's J on the val split"
    assert sum(lvsd["reliability"]["n"]) == n["positives"] + n["negatives"]
    # LVEF <= 40 % at 55 +- 8: about 3 % prevalence, too rare: counts, no error
    hfref = section[PROBE]["hfref"]
    assert hfref["evaluable"] is False and "fewer than 5 positives" in hfref["why"]
    # sex unknown for subject 7 (train): no indexed label for it
    assert section[PROBE]["lvh"]["counts"]["train"]["unlabelled"] == {"no sex, height or weight": 1}
    lines = "\n".join(endpoint_lines(section))
    assert (
        "## Clinical endpoints" in lines and "not evaluable" in lines and "| LV systolic" in lines
    )
    assert plot_reliability(section, tmp_path / "rel.png").is_file()
    # a CMR-only run (the imaging upper bound) says where its endpoints come from
    assert (
        endpoint_lines(section, "test", "CMR")[0]
        == "## Clinical endpoints from the CMR (test split)"
    )


def test_without_covariates_the_fallback_basis_is_reported(tmp_path):
    store, _ = _store(tmp_path, covariates=False)
    section = endpoints_section(load_endpoints(), store, "ecg", None, None, {"n_boot": 5})
    assert "fallback" in section["definitions"]["lvh"]["basis"]
    assert PROBE not in section and FINETUNE not in section


def _write_predictions(folder, split, eids, truth, pred):
    np.savez(folder / f"{split}_predictions.npz", eids=np.asarray(eids), true=truth,
             predicted=pred, phenotype_names=np.asarray(PHENOTYPES))  # fmt: skip


def test_finetune_endpoints_from_the_predicted_phenotype(tmp_path):
    store, _ = _store(tmp_path)
    run = tmp_path / "ft"
    run.mkdir()
    assert finetune_splits(run) == ({}, "the fine-tune wrote no val_predictions.npz")
    rng = np.random.default_rng(1)
    for split in ("val", "test"):
        rows = store.indices(split)
        truth = np.asarray(store.phenotypes[rows], np.float64)
        _write_predictions(run, split, store.subjects["eid"].to_numpy(str)[rows], truth,
                           truth + rng.normal(0, 4, truth.shape))  # fmt: skip
    cfg = load_endpoints(overrides=["min_positives=5"])
    section = endpoints_section(cfg, store, "ecg", None, run, {"n_boot": 20})
    lvsd = section[FINETUNE]["lvsd"]
    assert lvsd["evaluable"] and lvsd["AUROC"][0] > 0.8 and "train" not in lvsd["counts"]
    assert 0 <= lvsd["Brier"][0] < lvsd["prevalence"]  # better than saying the prevalence


def test_platt_scaling_is_monotone_and_calibrated_on_val():
    rng = np.random.default_rng(0)
    score = np.exp(rng.normal(0, 0.3, 400))
    y = (rng.random(400) < 1 / (1 + np.exp(-8 * np.log(score)))).astype(int)
    (p,) = platt(score, y, np.array([0.5, 1.0, 2.0]))
    assert p[0] < p[1] < p[2] and p[1] == pytest.approx(0.5, abs=0.1)
