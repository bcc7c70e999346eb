"""The user's path with the real commands: synth -> prepare -> pretrain -> align / finetune ->
export -> predict, embed -> retrieve. Minutes on two cores, hence slow (run with `-m slow`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ptacl import configs
from ptacl.cli.main import main as ptacl
from ptacl.phenotypes import PHENOTYPES

pytestmark = pytest.mark.slow

TINY = configs.root() / "tiny"
QUIET = [
    "trainer.max_steps=2",
    "trainer.val_every_n_steps=2",
    "trainer.sanity_val_steps=0",
    "trainer.accelerator=cpu",
    "trainer.progress_bar=false",
    "data.batch_size=4",
    "data.num_workers=0",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e2e")
    cohort, store = root / "cohort", root / "store"
    assert ptacl(["synth", "--out", str(cohort), "--subjects", "80", "--quiet"]) == 0
    prepare = ["prepare", "--ecg", str(cohort / "ecg"), "--cmr", str(cohort / "cmr")]
    prepare += ["--phenotypes", str(cohort / "phenotypes.csv"), "--out", str(store), "--quiet"]
    assert ptacl(prepare) == 0
    for modality in ("ecg", "cmr"):
        args = ["pretrain", modality, "--data", str(store), "--out", str(root / f"{modality}_mae")]
        assert ptacl([*args, "--config", str(TINY / f"{modality}_mae.yaml")]) == 0
    align = ["align", "--data", str(store), "--out", str(root / "align")]
    align += ["--config", str(TINY / "ptacl.yaml"), "--ecg-init", str(root / "ecg_mae")]
    assert ptacl([*align, "--cmr-init", str(root / "cmr_mae")]) == 0
    finetune = ["finetune", "--model", str(root / "ecg_mae"), "--data", str(store)]
    finetune += ["--out", str(root / "finetune"), "--n-boot", "10", "head.heads=2", *QUIET]
    assert ptacl(finetune) == 0
    return root


@pytest.mark.parametrize("run", ["ecg_mae", "align", "finetune"])
def test_export_then_predict(runs: Path, run: str, tmp_path: Path) -> None:
    from pydicom import examples

    bundle = tmp_path / "bundle"
    assert ptacl(["export", "--model", str(runs / run), "--out", str(bundle)]) == 0
    xmls = sorted((runs / "cohort" / "ecg").glob("*.xml"))[:3]
    files = [Path(examples.get_path("waveform")), *xmls, tmp_path / "missing.xml"]
    out = tmp_path / "predictions.csv"
    code = ptacl(["predict", "--model", str(bundle), "--ecg", *map(str, files), "--out", str(out)])
    assert code == 1  # the missing file
    table = pd.read_csv(out, dtype={"eid": str})
    assert table["status"][:4].tolist() == ["ok"] * 4, table["status"].tolist()
    assert table["status"][4].startswith("error: ") and "not found" in table["status"][4]
    values = table.loc[:3, list(PHENOTYPES)].to_numpy(float)
    assert np.isfinite(values).all()
    # Trained for two steps, the model knows little; its probe must still land in adult ranges.
    assert ((values[:, 0] > 30) & (values[:, 0] < 400)).all(), values[:, 0]  # LVEDV (mL)
    assert ((values[:, 3] > 10) & (values[:, 3] < 95)).all(), values[:, 3]  # LVEF (%)


def test_retrieve_against_the_runs_cmr_embeddings(runs: Path, tmp_path: Path) -> None:
    bundle, database = tmp_path / "bundle", tmp_path / "test.npz"
    assert ptacl(["export", "--model", str(runs / "align"), "--out", str(bundle)]) == 0
    embed = ["embed", "--model", str(runs / "align"), "--data", str(runs / "store")]
    assert ptacl([*embed, "--split", "test", "--out", str(database), "--no-progress"]) == 0
    query = sorted((runs / "cohort" / "ecg").glob("*.xml"))[0]
    out = tmp_path / "top.csv"
    args = ["retrieve", "--model", str(bundle), "--ecg", str(query), "--database", str(database)]
    assert ptacl([*args, "--k", "5", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert len(table) == 5 and table["cosine"].is_monotonic_decreasing
    config = json.loads((bundle / "config.json").read_text())
    assert config["embedding"]["shared_dim"] == 16  # configs/tiny/ptacl.yaml head.dim
