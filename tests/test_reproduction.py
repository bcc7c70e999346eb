"""Benchmark tables read back from evaluation folders (no training: metrics.json written here)."""

import json

from ptacl.reproduction import METHODS, collect_results, table2_markdown

R2 = {"LVEDV (mL)": {"R2": 0.5, "n": 10, "ci": [0.4, 0.6]}}


def _write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))


def test_supervised_cmr_and_underdetermined_probes_are_read_back(tmp_path):
    methods = [m for m in METHODS if m.key in ("ecg_mae", "cmr_mae", "sup_cmr")]
    warning = "LP (ols): 33 training subjects for 32 features + 1 intercept: under-determined"
    _write(tmp_path / "seed0/eval/ecg_mae/metrics.json", {"regression": {"LP (ols)": R2}})
    _write(
        tmp_path / "seed0/eval/cmr_mae/metrics.json",
        {"regression": {"LP (ols)": R2}, "warnings": [warning]},
    )
    _write(tmp_path / "seed0/runs/sup_cmr/test_metrics.json", {"r2": R2})
    results = collect_results(tmp_path, [0], methods)
    assert results["regression"][("CMR", "supervised", "FN")] == [{"LVEDV": 0.5}]
    assert results["regression"][("CMR", "MAE", "LP")] == [{"LVEDV": 0.5}]
    assert results["warnings"] == {("CMR", "MAE", "LP"): [f"seed 0: {warning}"]}
    table = table2_markdown(results, ["LVEDV"])
    assert "| CMR | supervised | FN | 1 | 0.500 | 0.814 |" in table  # the paper's figure beside
    assert "not meaningful" in table and f"CMR / MAE / LP: seed 0: {warning}" in table
    assert "ECG / MAE" not in table  # only the flagged row
