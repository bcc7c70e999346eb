"""The ECG-criteria baseline of the endpoints: criteria read from a store, imputation, and its
row in the endpoint section, the report and the benchmark's endpoint table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ptacl.data.store import Store
from ptacl.data.store_write import write_store
from ptacl.ecg.criteria import CRITERIA, ecg_criteria
from ptacl.eval.ecg_criteria import impute_train_median, store_criteria
from ptacl.eval.endpoint_eval import CRITERIA as ROW
from ptacl.eval.endpoint_eval import PROBE, endpoints_section
from ptacl.eval.endpoint_report import endpoint_lines
from ptacl.eval.endpoints import load_endpoints
from ptacl.phenotypes import PHENOTYPES
from ptacl.schema import LEADS

pytest.importorskip("sklearn")
SPLITS = {"train": 80, "val": 40, "test": 40}
LVEF = PHENOTYPES.index("LVEF (%)")
FS, RR = 500, 400  # samples: a beat every 0.8 s


def _recording(qrs_ms: float, gains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(12, 5000) ECG of triangular QRS complexes `qrs_ms` wide (R at the middle, lead k
    `gains[k]` tall, a small S after it) and its R-peak samples."""
    t = np.arange(5000) / FS * 1000.0  # ms
    onsets = np.arange(200, 4600, RR) / FS * 1000.0
    beat = np.zeros_like(t)
    for onset in onsets:
        beat += np.interp(t - onset, [0, qrs_ms / 2, 0.8 * qrs_ms, qrs_ms],
                          [0, 1.0, -0.2, 0], left=0, right=0)  # fmt: skip
    return gains[:, None] * beat[None, :], np.rint((onsets + qrs_ms / 2) * FS / 1000).astype(int)


def _store(root, flat=(3, 90)):
    """160 subjects whose QRS widens as LVEF falls (as in a failing ventricle); the rows in
    `flat` have a flat ECG (nothing measurable), row 2 an ECG cut to 6 s."""
    rng = np.random.default_rng(1)
    n = sum(SPLITS.values())
    pheno = rng.normal(100, 10, (n, len(PHENOTYPES)))
    pheno[:, LVEF] = rng.normal(55, 8, n)
    ecg = np.zeros((n, len(LEADS), 5000), np.float32)
    peaks, lengths = [], np.full(n, 5000)
    for i in range(n):
        width = 90.0 + 2.0 * (60.0 - pheno[i, LVEF]) + rng.normal(0, 6)
        ecg[i], p = _recording(width, rng.uniform(0.3, 1.5, len(LEADS)))
        peaks.append(p)
    for i in flat:
        ecg[i] = 0.0
    ecg[2, :, 3000:] = 0.0
    lengths[2] = 3000
    eids = [str(700 + i) for i in range(n)]
    path = write_store(
        root / "store", eids=eids, splits=[s for s, k in SPLITS.items() for _ in range(k)],
        ecg=ecg, cmr=np.zeros((n, 2, 4, 4), np.uint8), r_peaks=peaks, phenotypes=pheno,
        has_ecg=[True] * n, has_cmr=[True] * n, qc=pd.DataFrame({"eid": eids}),
        ecg_lengths=lengths,
    )  # fmt: skip
    return Store.open(path)


def test_store_criteria_are_each_recordings_own_and_nan_where_flat(tmp_path):
    store = _store(tmp_path)
    rows = np.array([0, 2, 3, 100])
    values = store_criteria(store, rows)
    assert values.shape == (4, len(CRITERIA))
    for got, row in zip(values, rows):
        length = int(store.subjects["ecg_length"][row])
        peaks = store.peaks(row)
        want = ecg_criteria(np.asarray(store.ecg[row, :, :length], np.float64),
                            peaks[peaks < length], FS, LEADS)  # fmt: skip
        np.testing.assert_array_equal(got, [want[k] for k in CRITERIA])
    assert np.isfinite(values[[0, 3]]).all()
    assert np.isfinite(values[1]).all()  # row 2 measured on its 6 s, not on the padding
    assert np.isfinite(values[2, 0]) and np.isnan(values[2, 1:]).all()  # flat: only the rate


def test_impute_with_the_train_median():
    train = np.array([[1.0, np.nan, np.nan], [3.0, 4.0, np.nan], [np.nan, 6.0, np.nan]])
    test = np.array([[np.nan, np.nan, np.nan], [7.0, 8.0, 9.0]])
    (train_f, test_f), medians = impute_train_median(train, test)
    np.testing.assert_array_equal(medians, [2.0, 5.0, 0.0])  # never measured in train: 0
    np.testing.assert_array_equal(test_f, [[2.0, 5.0, 0.0], [7.0, 8.0, 9.0]])
    np.testing.assert_array_equal(train_f[2], [2.0, 6.0, 0.0])
    assert not np.isnan(train).all(axis=0)[0]  # the input is not changed


def test_the_criteria_row_scores_the_endpoints_and_counts_what_was_imputed(tmp_path):
    store = _store(tmp_path)
    cfg = load_endpoints(overrides=["min_positives=5"])
    boot = {"n_boot": 50, "seed": 0}
    section = endpoints_section(cfg, store, "ecg", None, None, boot, criteria=True)
    assert PROBE not in section  # no probe given: only the criteria
    lvsd = section[ROW]["lvsd"]
    assert lvsd["evaluable"] and lvsd["threshold_rule"] == "Youden's J on the val split"
    assert lvsd["AUROC"][0] > 0.8  # the QRS width carries LVEF
    assert set(lvsd["counts"]) == {"train", "val", "test"}
    notes = section["ecg_criteria"]
    assert notes["features"] == list(CRITERIA)
    assert notes["subjects"] == SPLITS
    # rows 3 (train) and 90 (val) are flat: all but the rate unmeasured, imputed
    assert notes["recordings_with_an_unmeasured_criterion"] == {"train": 1, "val": 1, "test": 0}
    assert notes["unmeasured"]["qrs_ms"] == {"train": 1, "val": 1, "test": 0}
    assert "heart_rate_bpm" not in notes["unmeasured"]
    text = "\n".join(endpoint_lines(section))
    assert f"### {ROW}" in text and "imputed with the train median" in text
    assert "per-lead z units" in text
    without = endpoints_section(cfg, store, "ecg", None, None, boot)
    assert ROW not in without and "ecg_criteria" not in without


def test_the_benchmark_table_has_the_criteria_once_per_seed(tmp_path):
    from ptacl.benchmark.methods import select_methods
    from ptacl.benchmark.tables import write_tables

    definitions = {"lvsd": {"label": "LVEF < 50 %"}}

    def result(auroc):
        return {"evaluable": True, "AUROC": [auroc, auroc - 0.1, auroc + 0.1],
                "counts": {"test": {"positives": 8, "negatives": 30}}}  # fmt: skip

    for seed, auroc in enumerate([0.6, 0.7]):
        for key in ("random", "ptacl"):  # every method's evaluation of a seed holds the row
            path = tmp_path / f"seed{seed}/eval/{key}/metrics.json"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps({"regression": {}, "endpoints": {
                "definitions": definitions, "ecg_criteria": {"features": ["qrs_ms"]},
                PROBE: {"lvsd": result(0.5)}, ROW: {"lvsd": result(auroc)}}}))  # fmt: skip
    text = write_tables(tmp_path, [0, 1], select_methods(["random", "ptacl"]), "# header")
    endpoints = text.split("## Clinical endpoints from the ECG")[1].split("## The paper")[0]
    assert endpoints.count("ECG criteria") == 1
    assert "| ECG | ECG criteria | logistic on the criteria | 0.650 ± 0.071 [0.550, 0.750] |" in (
        endpoints
    )
