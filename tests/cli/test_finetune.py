import json

import numpy as np
import pytest
import torch

from ptacl.cli.finetune import main
from ptacl.cli.pretrain import main as pretrain

TINY = [
    "data.batch_size=4",
    "data.num_workers=0",
    "head.heads=2",
    "optim.warmup_steps=1",
    "trainer.max_steps=4",
    "trainer.val_every_n_steps=2",
    "trainer.checkpoint_every_n_steps=2",
    "trainer.log_every_n_steps=1",
    "trainer.sanity_val_steps=0",
    "trainer.accelerator=cpu",
    "trainer.progress_bar=false",
]
TINY_ENCODER = [
    "ecg_encoder.samples=500",
    "ecg_encoder.width=32",
    "ecg_encoder.depth=2",
    "ecg_encoder.heads=2",
]


@pytest.fixture(scope="module")
def ecg_mae_run(tiny_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("mae") / "ecg"
    code = pretrain(
        [
            "ecg",
            "--data",
            str(tiny_store),
            "--config",
            "tiny/ecg_mae.yaml",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return out


def _the_bundle_predicts_the_scored_test_predictions(run, store_path, bundle) -> None:
    """The exported head predicts the test ECG as test_predictions.npz says it was scored (a
    10-s ECG and a 500-sample crop: ten crops, averaged in both)."""
    from ptacl.cli.export import main as export
    from ptacl.data.store import Store
    from ptacl.embedding.crops import run_over_crops
    from ptacl.inference import Predictor

    assert export(["--model", str(run), "--out", str(bundle)]) == 0
    store = Store.open(store_path)
    row = int(store.indices("test", ecg=True)[0])
    ecg = np.asarray(store.ecg[row], dtype=np.float32)[:, : store.subjects["ecg_length"][row]]
    predictor = Predictor(bundle)
    deployed = run_over_crops(predictor.model, [ecg], [ecg.shape[-1]], predictor.crop)
    with np.load(run / "test_predictions.npz", allow_pickle=False) as data:
        np.testing.assert_allclose(deployed["phenotypes"], data["predicted"], rtol=1e-4)


def test_finetune_from_random_init_writes_test_predictions(tiny_store, tmp_path):
    out = tmp_path / "ft"
    args = ["--model", "none", "--data", str(tiny_store), "--out", str(out), "--n-boot", "10"]
    assert main(args + TINY + TINY_ENCODER) == 0
    assert (out / "checkpoints" / "best.ckpt").is_file()
    with np.load(out / "test_predictions.npz", allow_pickle=False) as data:
        assert data["eids"].tolist() == ["2000011"]  # the tiny store's one test ECG
        assert data["predicted"].shape == data["true"].shape == (1, 10)
        assert np.isfinite(data["predicted"]).all()
    metrics = json.loads((out / "test_metrics.json").read_text())
    assert len(metrics["r2"]) == 10
    _the_bundle_predicts_the_scored_test_predictions(out, tiny_store, tmp_path / "bundle")
    lvedv = metrics["r2"]["LVEDV (mL)"]
    assert lvedv["n"] == 1 and lvedv["R2"] is None  # R² is undefined for one subject: null


def test_finetune_starts_from_the_runs_encoder(tiny_store, ecg_mae_run, tmp_path):
    from ptacl.runs import load_encoder_weights, read_run_config

    out = tmp_path / "ft"
    args = ["--model", str(ecg_mae_run), "--data", str(tiny_store), "--out", str(out)]
    assert main([*args, "--n-boot", "5", *TINY, "trainer.max_steps=2", "optim.base_lr=0"]) == 0
    config = read_run_config(out)
    assert config["ecg_encoder"] == read_run_config(ecg_mae_run)["encoder"]  # architecture kept
    # With a zero learning rate the fine-tuned encoder is still exactly the pretrained one.
    before, after = load_encoder_weights(ecg_mae_run, "ecg"), load_encoder_weights(out, "ecg")
    assert before.keys() == after.keys()
    for key in before:
        torch.testing.assert_close(after[key], before[key])


def test_finetune_refuses_a_run_without_an_ecg_encoder(tiny_store, tmp_path, capsys):
    run = tmp_path / "cmr_run"
    run.mkdir()
    (run / "config.yaml").write_text("modality: cmr\nencoder: {}\n")
    assert main(["--model", str(run), "--data", str(tiny_store), "--out", str(tmp_path / "o")]) == 2
    assert "holds no ECG encoder" in capsys.readouterr().err


def test_supervised_cmr_baseline_trains_a_cmr_encoder(tiny_store, tmp_path):
    from ptacl.runs import load_run_encoders

    out = tmp_path / "sup_cmr"
    args = ["--modality", "cmr", "--model", "none", "--data", str(tiny_store), "--out", str(out)]
    assert main([*args, "--config", "tiny/finetune.yaml", "--n-boot", "10"]) == 0
    with np.load(out / "test_predictions.npz", allow_pickle=False) as data:
        assert data["eids"].tolist() == ["2000010"]  # the tiny store's one test CMR (no ECG)
        assert data["predicted"].shape == (1, 10) and np.isfinite(data["predicted"]).all()
    metrics = json.loads((out / "test_metrics.json").read_text())
    assert metrics["input"] == "CMR" and len(metrics["r2"]) == 10
    encoders = load_run_encoders(out)  # what `ptacl evaluate --model` would see
    assert encoders.modalities == ("cmr",) and encoders.kind == "finetune"
    assert encoders.cmr.width == 32


def test_cmr_finetune_starts_from_a_cmr_mae_run(tiny_store, tmp_path):
    from ptacl.runs import load_encoder_weights, read_run_config

    mae = tmp_path / "cmr_mae"
    config = ["--config", "tiny/cmr_mae.yaml"]
    assert pretrain(["cmr", "--data", str(tiny_store), "--out", str(mae), *config]) == 0
    out = tmp_path / "ft"
    args = ["--modality", "cmr", "--model", str(mae), "--data", str(tiny_store), "--out", str(out)]
    assert main([*args, "--n-boot", "5", *TINY, "trainer.max_steps=2", "optim.base_lr=0"]) == 0
    assert read_run_config(out)["cmr_encoder"] == read_run_config(mae)["encoder"]
    before, after = load_encoder_weights(mae, "cmr"), load_encoder_weights(out, "cmr")
    assert before.keys() == after.keys()
    for key in before:
        torch.testing.assert_close(after[key], before[key])
    # an ECG fine-tune of a CMR-only run is refused, naming the modality
    assert main(["--model", str(mae), "--data", str(tiny_store), "--out", str(tmp_path / "x")]) == 2
