"""`ptacl evaluate` reports the clinical endpoints: probe and FN+AP, into metrics.json and
report.md; a bad endpoint config is refused in one line before any work."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ptacl.cli.evaluate import main
from ptacl.cli.pretrain import main as pretrain
from ptacl.data.store_write import write_store
from ptacl.phenotypes import PHENOTYPES

pytest.importorskip("sklearn")
FT = [f"--finetune-set={kv}" for kv in (
    "trainer.max_steps=2", "trainer.val_every_n_steps=2", "trainer.accelerator=cpu",
    "trainer.progress_bar=false", "trainer.sanity_val_steps=0", "data.batch_size=8",
    "data.num_workers=0", "head.heads=2")]  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """90 paired subjects (50 train, 20 val, 20 test) whose ECG amplitude follows LVEF, with
    sex, height and weight."""
    rng = np.random.default_rng(5)
    n = 90
    pheno = rng.normal(100, 15, (n, len(PHENOTYPES))).astype(np.float32)
    lvef = rng.normal(53, 8, n)
    pheno[:, PHENOTYPES.index("LVEF (%)")] = lvef
    time = np.arange(5000) / 500
    amplitude = (lvef[:, None, None] - 20) / 30
    ecg = amplitude * np.sin(2 * np.pi * 1.2 * time) + 0.1 * rng.standard_normal((n, 12, 5000))
    eids = [str(5_000_000 + i) for i in range(n)]
    covariates = pd.DataFrame({"sex": rng.integers(0, 2, n).astype(float),
                               "height_cm": rng.normal(172, 8, n), "weight_kg": rng.normal(78, 9, n)})  # fmt: skip
    return write_store(
        tmp_path_factory.mktemp("endpoints") / "store",
        eids=eids, splits=["train"] * 50 + ["val"] * 20 + ["test"] * 20,
        ecg=ecg, cmr=np.zeros((n, 50, 84, 84), np.uint8),
        r_peaks=[np.arange(200, 5000, 400)] * n, phenotypes=pheno,
        has_ecg=[True] * n, has_cmr=[True] * n, qc=pd.DataFrame({"eid": eids}),
        covariates=covariates,
    )  # fmt: skip


def test_evaluate_writes_the_endpoint_section(store, tmp_path):
    run = tmp_path / "ecg_mae"
    assert pretrain(["ecg", "--data", str(store), "--out", str(run), "--config",
                     "tiny/ecg_mae.yaml"]) == 0  # fmt: skip
    out = tmp_path / "eval"
    args = ["--model", str(run), "--data", str(store), "--out", str(out), "--probe", "ridge",
            "--n-boot", "20", "--no-progress", "--endpoints-set", "min_positives=3",
            "--finetune", *FT]  # fmt: skip
    assert main(args) == 0
    endpoints = json.loads((out / "metrics.json").read_text())["endpoints"]
    assert endpoints["definitions"]["lvh"]["basis"].startswith("indexed to BSA")
    lvsd = endpoints["LP (logistic)"]["lvsd"]
    assert lvsd["evaluable"] and set(lvsd["counts"]) == {"train", "val", "test"}
    assert all(lvsd[m][0] is not None for m in ("AUROC", "AUPRC", "Brier"))
    assert endpoints["LP (logistic)"]["hfref"]["evaluable"] is False  # too rare: counted
    # FN+AP's scores are calibrated on the val predictions the fine-tune now writes
    assert (out / "finetune" / "val_predictions.npz").is_file()
    assert (
        endpoints["FN+AP"]["lvsd"]["evaluable"]
        and "train" not in endpoints["FN+AP"]["lvsd"]["counts"]
    )
    # the clinician's baseline: the ECG criteria of every recording, the same logistic model
    criteria = endpoints["ECG criteria (logistic)"]["lvsd"]
    assert criteria["evaluable"] and all(criteria[m][0] is not None for m in ("AUROC", "Brier"))
    assert endpoints["ecg_criteria"]["subjects"] == {"train": 50, "val": 20, "test": 20}
    report = (out / "report.md").read_text()
    assert "## Clinical endpoints from the ECG (test split)" in report and "### FN+AP" in report
    assert "### ECG criteria (logistic)" in report
    assert (out / "figures" / "endpoint_reliability.png").is_file()


def test_a_bad_endpoint_override_is_refused_in_one_line(store, tmp_path, capsys):
    args = ["--model", "none", "--data", str(store), "--out", str(tmp_path / "e"),
            "--endpoints-set", "lvsd.phenotype=EF"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ptacl evaluate: endpoints.lvsd.phenotype: 'EF'")
    assert not (tmp_path / "e").exists()
