"""`ptacl retrieve`: the k most similar patients for one ECG file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from inference.builders import beats_ecg, bundle_for, write_cardiosoft_xml
from ptacl.cli.main import main as ptacl
from ptacl.eval.embed import Embeddings
from ptacl.inference import Predictor
from ptacl.phenotypes import PHENOTYPES


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bundle_for(tmp_path_factory, aligned=True)


def test_retrieve_prints_and_saves_the_top_k(bundle: Path, tmp_path: Path, capsys) -> None:
    ecg = write_cardiosoft_xml(tmp_path / "query.xml", beats_ecg(75, 1.0))
    predictor = Predictor(bundle)
    query = predictor.embed(ecg, space="shared")
    rng = np.random.default_rng(0)
    cmr = rng.standard_normal((20, 4))
    cmr[7] = query
    Embeddings(
        eids=np.array([f"{5000000 + i}" for i in range(20)]),
        phenotypes=rng.uniform(50, 150, (20, 10)),
        ecg=rng.standard_normal((20, 16)),
        cmr_proj=cmr,
        meta={"ecg_encoder_id": predictor.bundle.config["embedding"]["encoder_id"]},
    ).save(tmp_path / "db.npz")
    out = tmp_path / "top.csv"
    args = [
        "retrieve",
        "--model",
        str(bundle),
        "--ecg",
        str(ecg),
        "--database",
        str(tmp_path / "db.npz"),
    ]
    assert ptacl([*args, "--k", "5", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "5000007" in printed.splitlines()[1]
    table = pd.read_csv(out, dtype={"eid": str})
    assert len(table) == 5 and table["eid"][0] == "5000007"
    assert list(table.columns) == ["rank", "eid", "cosine", *PHENOTYPES]


def test_retrieve_refuses_a_foreign_database(bundle: Path, tmp_path: Path, capsys) -> None:
    ecg = write_cardiosoft_xml(tmp_path / "query.xml", beats_ecg(75, 1.0))
    Embeddings(
        eids=np.array(["1"]),
        phenotypes=np.zeros((1, 10)),
        cmr_proj=np.zeros((1, 4)),
        meta={"ecg_encoder_id": "0" * 64},
    ).save(tmp_path / "db.npz")
    args = [
        "retrieve",
        "--model",
        str(bundle),
        "--ecg",
        str(ecg),
        "--database",
        str(tmp_path / "db.npz"),
    ]
    assert ptacl(args) == 1
    assert "another ECG encoder" in capsys.readouterr().err


def test_unreadable_query(bundle: Path, tmp_path: Path, capsys) -> None:
    Embeddings(eids=np.array(["1"]), phenotypes=np.zeros((1, 10)), cmr_proj=np.zeros((1, 4))).save(
        tmp_path / "db.npz"
    )
    args = ["retrieve", "--model", str(bundle), "--ecg", str(tmp_path / "no.xml")]
    assert ptacl([*args, "--database", str(tmp_path / "db.npz")]) == 1
    assert "not found" in capsys.readouterr().err
