"""`ptacl retrieve`: the k most similar patients for one ECG file."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli.test_export import align_run, mae_run
from inference.builders import beats_ecg, bundle_for, probe_store_for, write_cardiosoft_xml
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


def test_same_run_embedded_and_exported_retrieves_without_warning(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, capsys
) -> None:
    """The normal path: `ptacl embed` and `ptacl export` of one run, then `ptacl retrieve`
    (from another working directory than the run was named in). A run of other weights
    is refused by the encoder id both commands write."""
    import ptacl as api

    store = probe_store_for(tmp_path_factory)
    run = align_run(tmp_path / "runs" / "ptacl", store)
    other = mae_run(tmp_path / "runs" / "ecg_mae", store)
    ecg = write_cardiosoft_xml(tmp_path / "query.xml", beats_ecg(75, 1.0))
    for model, bundle, npz in ((run, "bundle", "db.npz"), (other, "other_bundle", "other.npz")):
        assert ptacl(["export", "--model", str(model), "--out", str(tmp_path / bundle)]) == 0
        embed = ["embed", "--model", str(model), "--data", str(store), "--split", "test"]
        assert ptacl([*embed, "--out", str(tmp_path / npz), "--no-progress"]) == 0
    capsys.readouterr()
    # against the ECGs: this align run (as test_export writes it) holds no CMR encoder
    query = ["retrieve", "--ecg", str(ecg), "--k", "3", "--against", "ecg"]
    same = [*query, "--model", str(tmp_path / "bundle"), "--database", str(tmp_path / "db.npz")]
    assert ptacl(same) == 0
    assert "warning" not in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = api.retrieve(tmp_path / "bundle", ecg, tmp_path / "db.npz", k=3, against="ecg")
    assert len(table) == 3 and table["cosine"].is_monotonic_decreasing
    foreign = [*query, "--model", str(tmp_path / "bundle"), "--database"]
    assert ptacl([*foreign, str(tmp_path / "other.npz")]) == 1
    assert "another ECG encoder" in capsys.readouterr().err


def test_a_database_from_before_the_encoder_id_is_matched_by_run_name(
    bundle: Path, tmp_path: Path
) -> None:
    """The bundle records only its run's folder name; a database naming that run by a path
    (as `ptacl embed` records it) is the same run, another name warns."""
    import ptacl as api

    predictor = Predictor(bundle)
    name = predictor.bundle.config["source"]["run"]
    rng = np.random.default_rng(0)
    for model, warns in ((f"runs/{name}", False), ("runs/elsewhere", True)):
        Embeddings(
            eids=np.array(["1", "2"]),
            phenotypes=rng.uniform(50, 150, (2, 10)),
            cmr_proj=rng.standard_normal((2, 4)),
            meta={"model": model},
        ).save(tmp_path / "db.npz")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            api.retrieve(predictor, beats_ecg(75, 1.0), tmp_path / "db.npz", k=1, fs=500)
        assert any("comparable only if" in str(w.message) for w in caught) == warns, model
