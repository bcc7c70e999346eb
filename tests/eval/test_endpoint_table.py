"""The benchmark's endpoint table, read back from evaluations' metrics.json (written here)."""

from __future__ import annotations

import json

from ptacl.benchmark.methods import select_methods
from ptacl.benchmark.tables import write_tables

DEFINITIONS = {"lvsd": {"label": "LVEF < 50 %"}, "hfref": {"label": "LVEF <= 40 %"}}


def _result(auroc, positives=8):
    return {"evaluable": True, "AUROC": [auroc, auroc - 0.1, auroc + 0.1],
            "counts": {"test": {"positives": positives, "negatives": 30}}}  # fmt: skip


def _rare(positives):
    return {"evaluable": False, "why": "few", "counts": {"test": {"positives": positives}}}


def _write(path, endpoints):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"regression": {}, "endpoints": endpoints}))


def test_endpoint_table_beside_table_2_over_seeds(tmp_path):
    methods = select_methods(["random", "ptacl"])
    for seed, auc in enumerate([0.7, 0.8]):
        section = {"definitions": DEFINITIONS, "min_positives": 10,
                   "LP (logistic)": {"lvsd": _result(auc), "hfref": _rare(seed)},
                   "FN+AP": {"skipped": "no val predictions"}}  # fmt: skip
        _write(tmp_path / f"seed{seed}/eval/ptacl/metrics.json", section)
        # the retrieval-setting run is no row of it, as it is no row of Table 2
        _write(tmp_path / f"seed{seed}/eval/ptacl_retrieval/metrics.json", section)
    random = {
        "definitions": DEFINITIONS,
        "LP (logistic)": {"lvsd": _result(0.5), "hfref": _rare(1)},
    }
    _write(tmp_path / "seed0/eval/random/metrics.json", random)
    text = write_tables(tmp_path, [0, 1], methods, "# header")
    endpoints = text.split("## Clinical endpoints from the ECG")[1]
    assert "| input | method | scoring | LVEF < 50 % | LVEF <= 40 % |" in endpoints
    # mean ± sd over the two seeds, the bootstrap bounds averaged
    assert "| ECG | PTACL | LP (logistic) | 0.750 ± 0.071 [0.650, 0.850] | not evaluable " \
           "(test positives 0, 1) |" in endpoints  # fmt: skip
    assert "| ECG | random init | LP (logistic) | 0.500 [0.400, 0.600] |" in endpoints
    assert endpoints.count("| PTACL |") == 1 and "FN+AP" not in endpoints.split("## The paper")[0]
