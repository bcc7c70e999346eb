import numpy as np
import pytest

from ptacl.cli.embed import main
from ptacl.eval.embed import Embeddings, EmbedError


def test_embed_random_init_writes_a_pickle_free_npz(tiny_store, tmp_path):
    out = tmp_path / "emb.npz"
    assert main(["--model", "none", "--data", str(tiny_store), "--split", "val", "--out",
                 str(out), "--no-progress"]) == 0  # fmt: skip
    with np.load(out, allow_pickle=False) as data:
        assert data["ecg"].shape == (2, 512) and data["cmr"].shape == (2, 512)
        assert data["eids"].tolist() == ["2000007", "2000008"]  # the paired val subjects
        assert data["phenotypes"].shape == (2, 10)
        assert data["alignment"].shape == (13, 13)
    emb = Embeddings.load(out)
    assert emb.meta["kind"] == "none" and emb.meta["seed"] == 0
    # Same seed, same encoders, same embeddings; another seed differs.
    again = tmp_path / "again.npz"
    main(["--model", "none", "--data", str(tiny_store), "--split", "val", "--out", str(again),
          "--no-progress"])  # fmt: skip
    np.testing.assert_array_equal(Embeddings.load(again).ecg, emb.ecg)
    other = tmp_path / "other.npz"
    main(["--model", "none", "--seed", "1", "--data", str(tiny_store), "--split", "val",
          "--out", str(other), "--no-progress"])  # fmt: skip
    assert not np.allclose(Embeddings.load(other).ecg, emb.ecg)


def test_embed_reports_a_missing_run(tiny_store, tmp_path, capsys):
    assert main(["--model", str(tmp_path / "nope"), "--data", str(tiny_store), "--out",
                 str(tmp_path / "x.npz")]) == 1  # fmt: skip
    assert "not a run folder" in capsys.readouterr().err


def test_embeddings_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, eids=np.array(["1", "2"]))
    with pytest.raises(EmbedError, match=r"bad\.npz: missing array 'phenotypes'"):
        Embeddings.load(bad)


def test_embed_a_single_modality_run_keeps_only_its_modality(tiny_store, tmp_path):
    from ptacl.cli.pretrain import main as pretrain

    run = tmp_path / "ecg_mae"
    args = ["ecg", "--data", str(tiny_store), "--config", "tiny/ecg_mae.yaml"]
    assert pretrain([*args, "--out", str(run)]) == 0
    out = tmp_path / "emb.npz"
    assert main(["--model", str(run), "--data", str(tiny_store), "--split", "test", "--out",
                 str(out), "--no-progress"]) == 0  # fmt: skip
    emb = Embeddings.load(out)
    assert emb.meta["kind"] == "pretrain-ecg"
    assert emb.ecg.shape == (1, 32) and emb.cmr is None and emb.alignment is None
    assert emb.eids.tolist() == ["2000011"]  # the test split's ECG-only subject counts here
