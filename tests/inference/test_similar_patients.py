"""Retrieval of similar patients for one ECG: ranking, space selection, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from builders import beats_ecg

from ptacl.data.store import ECG_FS
from ptacl.inference import Predictor
from ptacl.inference.retrieve import DatabaseError, cosine_ranking, load_database, retrieve
from ptacl.phenotypes import PHENOTYPES


def write_database(path: Path, predictor: Predictor, *, encoder_id: str | None = "bundle") -> Path:
    """Five subjects; subject 'B' has exactly the query's CMR-space embedding."""
    rng = np.random.default_rng(0)
    query = predictor.embed(beats_ecg(70, 1.0), fs=ECG_FS, space="shared")
    cmr = rng.standard_normal((5, len(query)))
    cmr[1] = 3.0 * query  # same direction, other length: cosine 1
    arrays = {
        "eids": np.array(["A", "B", "C", "D", "E"]),
        "ecg": rng.standard_normal((5, 16)).astype(np.float32),
        "cmr": cmr.astype(np.float32),
        "phenotypes": rng.uniform(50, 150, (5, 10)).astype(np.float32),
    }
    if encoder_id is not None:
        ident = (
            predictor.bundle.config["embedding"]["encoder_id"]
            if encoder_id == "bundle"
            else encoder_id
        )
        arrays["encoder_id"] = np.array(ident)
    np.savez(path, **arrays)
    return path


def test_cosine_ranking_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    db = rng.standard_normal((50, 8))
    q = rng.standard_normal(8)
    order, sim = cosine_ranking(q, db, 5)
    brute = [float(q @ row / np.linalg.norm(q) / np.linalg.norm(row)) for row in db]
    assert order.tolist() == np.argsort(brute)[::-1][:5].tolist()
    np.testing.assert_allclose(sim, np.sort(brute)[::-1][:5])


def test_own_embedding_ranks_first(aligned_bundle: Path, tmp_path: Path) -> None:
    predictor = Predictor(aligned_bundle)
    database = load_database(write_database(tmp_path / "db.npz", predictor))
    table = retrieve(predictor, beats_ecg(70, 1.0), database, k=3, fs=ECG_FS)
    assert table["eid"].tolist()[0] == "B"
    assert table["cosine"][0] == pytest.approx(1.0, abs=1e-6)
    assert table["rank"].tolist() == [1, 2, 3]
    assert list(table.columns[3:]) == list(PHENOTYPES)
    assert table["cosine"].is_monotonic_decreasing


def test_other_encoder_is_refused(aligned_bundle: Path, tmp_path: Path) -> None:
    predictor = Predictor(aligned_bundle)
    database = load_database(write_database(tmp_path / "db.npz", predictor, encoder_id="f" * 64))
    with pytest.raises(DatabaseError, match="another encoder"):
        retrieve(predictor, beats_ecg(70, 1.0), database, fs=ECG_FS)


def test_without_encoder_id_warns(aligned_bundle: Path, tmp_path: Path) -> None:
    predictor = Predictor(aligned_bundle)
    database = load_database(write_database(tmp_path / "db.npz", predictor, encoder_id=None))
    with pytest.warns(UserWarning, match="no encoder_id"):
        table = retrieve(predictor, beats_ecg(70, 1.0), database, k=2, fs=ECG_FS)
    assert table["eid"][0] == "B"


def test_cmr_needs_an_aligned_bundle(
    tiny_bundle: Path, aligned_bundle: Path, tmp_path: Path
) -> None:
    database = load_database(write_database(tmp_path / "db.npz", Predictor(aligned_bundle)))
    with pytest.raises(DatabaseError, match="no ECG projection head"):
        retrieve(Predictor(tiny_bundle), beats_ecg(70, 1.0), database, fs=ECG_FS)


def test_ecg_against_ecg_uses_the_encoder_space(aligned_bundle: Path, tmp_path: Path) -> None:
    predictor = Predictor(aligned_bundle)
    database = load_database(write_database(tmp_path / "db.npz", predictor))
    table = retrieve(predictor, beats_ecg(70, 1.0), database, k=5, against="ecg", fs=ECG_FS)
    assert sorted(table["eid"]) == ["A", "B", "C", "D", "E"]


def test_pickled_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.npz"
    np.savez(path, eids=np.array(["A"], dtype=object), cmr=np.zeros((1, 4)))
    with pytest.raises(DatabaseError, match="refused"):
        load_database(path)


def test_inconsistent_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.npz"
    np.savez(path, eids=np.array(["A", "B"]), cmr=np.zeros((3, 4)))
    with pytest.raises(DatabaseError, match="'cmr' has shape"):
        load_database(path)
    with pytest.raises(DatabaseError, match="not found"):
        load_database(tmp_path / "none.npz")
