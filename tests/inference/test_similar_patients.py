"""Retrieval of similar patients for one ECG: ranking, space selection, same-model checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from builders import beats_ecg

from ptacl.eval.embed import Embeddings, EmbedError
from ptacl.inference import Predictor
from ptacl.inference.retrieve import DatabaseError, cosine_ranking, load_database, retrieve
from ptacl.phenotypes import PHENOTYPES
from ptacl.schema import ECG_FS


def write_database(path: Path, predictor: Predictor, **meta) -> Path:
    """Five subjects as `ptacl embed` writes them; subject 'B' has exactly the query's
    projected embedding (times 3: cosine ignores length)."""
    rng = np.random.default_rng(0)
    query = predictor.embed(beats_ecg(70, 1.0), fs=ECG_FS, space="shared")
    cmr_proj = rng.standard_normal((5, len(query)))
    cmr_proj[1] = 3.0 * query
    return Embeddings(
        eids=np.array(["A", "B", "C", "D", "E"]),
        phenotypes=rng.uniform(50, 150, (5, 10)).astype(np.float32),
        ecg=rng.standard_normal((5, 16)),
        cmr=rng.standard_normal((5, 16)),
        ecg_proj=rng.standard_normal((5, len(query))),
        cmr_proj=cmr_proj,
        meta=meta,
    ).save(path)


def same_model(predictor: Predictor) -> dict[str, str]:
    return {"ecg_encoder_id": predictor.bundle.config["embedding"]["encoder_id"]}


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
    database = load_database(
        write_database(tmp_path / "db.npz", predictor, **same_model(predictor))
    )
    table = retrieve(predictor, beats_ecg(70, 1.0), database, k=3, fs=ECG_FS)
    assert table["eid"].tolist()[0] == "B"
    assert table["cosine"][0] == pytest.approx(1.0, abs=1e-6)
    assert table["rank"].tolist() == [1, 2, 3]
    assert list(table.columns[3:]) == list(PHENOTYPES)
    assert table["cosine"].is_monotonic_decreasing


def test_other_encoder_is_refused(aligned_bundle: Path, tmp_path: Path) -> None:
    predictor = Predictor(aligned_bundle)
    database = load_database(
        write_database(tmp_path / "db.npz", predictor, ecg_encoder_id="f" * 64)
    )
    with pytest.raises(DatabaseError, match="another ECG encoder"):
        retrieve(predictor, beats_ecg(70, 1.0), database, fs=ECG_FS)


def test_other_run_or_no_identity_warns(aligned_bundle: Path, tmp_path: Path) -> None:
    predictor = Predictor(aligned_bundle)
    database = load_database(write_database(tmp_path / "a.npz", predictor, model="/runs/other"))
    with pytest.warns(UserWarning, match="from run /runs/other"):
        table = retrieve(predictor, beats_ecg(70, 1.0), database, k=2, fs=ECG_FS)
    assert table["eid"][0] == "B"
    database = load_database(write_database(tmp_path / "b.npz", predictor))
    with pytest.warns(UserWarning, match="only the widths"):
        retrieve(predictor, beats_ecg(70, 1.0), database, k=2, fs=ECG_FS)


def test_cmr_needs_an_aligned_bundle(
    tiny_bundle: Path, aligned_bundle: Path, tmp_path: Path
) -> None:
    database = load_database(write_database(tmp_path / "db.npz", Predictor(aligned_bundle)))
    with pytest.raises(DatabaseError, match="no ECG projection head"):
        retrieve(Predictor(tiny_bundle), beats_ecg(70, 1.0), database, fs=ECG_FS)


def test_ecg_against_ecg_uses_the_encoder_space(
    tiny_bundle: Path, aligned_bundle: Path, tmp_path: Path
) -> None:
    predictor = Predictor(tiny_bundle)
    path = write_database(tmp_path / "db.npz", Predictor(aligned_bundle), **same_model(predictor))
    table = retrieve(
        predictor, beats_ecg(70, 1.0), load_database(path), k=5, against="ecg", fs=ECG_FS
    )
    assert sorted(table["eid"]) == ["A", "B", "C", "D", "E"]


def test_width_mismatch_is_refused(aligned_bundle: Path, tmp_path: Path) -> None:
    predictor = Predictor(aligned_bundle)
    Embeddings(eids=np.array(["A"]), phenotypes=np.zeros((1, 10)), cmr_proj=np.zeros((1, 7))).save(
        tmp_path / "db.npz"
    )
    with pytest.raises(DatabaseError, match="width 7"):
        retrieve(predictor, beats_ecg(70, 1.0), load_database(tmp_path / "db.npz"), fs=ECG_FS)


def test_pickled_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.npz"
    np.savez(path, eids=np.array(["A"], dtype=object), cmr=np.zeros((1, 4)))
    with pytest.raises(EmbedError, match="without pickles"):
        load_database(path)
