import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from ptacl import configs
from ptacl.cli.embed import main as embed_main
from ptacl.cli.simclr import main
from ptacl.config import load_config
from ptacl.runs import load_encoder, load_encoder_weights
from ptacl.training.mae import MaeRunConfig
from ptacl.training.simclr import SimclrRunConfig

CONFIGS = configs.root()


def _run(store, out, modality, *extra):
    args = [modality, "--data", str(store), "--out", str(out)]
    return main([*args, "--config", str(CONFIGS / "tiny" / f"simclr_{modality}.yaml"), *extra])


@pytest.mark.parametrize("modality", ["ecg", "cmr"])
def test_two_step_run_gives_a_run_folder_that_embeds_like_a_pretrain_run(
    tiny_store, tmp_path, modality, capsys
):
    run = tmp_path / "run"
    assert _run(tiny_store, run, modality) == 0
    assert f"{modality.upper()} SimCLR: encoder" in capsys.readouterr().out
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["modality"] == modality and config["stage"] == "simclr"
    assert config["data"]["store"] == str(tiny_store)
    for name in ("checkpoints/last.ckpt", "checkpoints/best.ckpt", "metrics.csv"):
        assert (run / name).is_file(), name
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["train/loss"].notna().sum() == 2 and metrics["val/loss"].notna().sum() == 1
    assert np.isfinite(metrics["train/loss"].dropna()).all()
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2

    weights = load_encoder_weights(run, modality)
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    key = next(iter(weights))
    torch.testing.assert_close(weights[key], state[f"{modality}_encoder.{key}"])
    assert load_encoder(run, modality).width == config["encoder"]["width"]

    out = tmp_path / "emb.npz"
    assert embed_main(["--model", str(run), "--data", str(tiny_store), "--split", "val",
                       "--out", str(out), "--no-progress"]) == 0  # fmt: skip
    with np.load(out, allow_pickle=False) as data:
        assert data[modality].shape == (2, config["encoder"]["width"])
        assert np.isfinite(data[modality]).all()
        # the SimCLR projection head is dropped, not mistaken for a stage-2 head
        assert f"{modality}_proj" not in data.files
        assert ({"ecg", "cmr"} - {modality}).isdisjoint(data.files)

    # another run into the same folder is refused rather than mixed in
    assert _run(tiny_store, run, modality, "optim.base_lr=0.5") == 2
    assert "--overwrite" in capsys.readouterr().err


def test_resume_continues_from_the_last_step(tiny_store, tmp_path):
    run = tmp_path / "run"
    assert _run(tiny_store, run, "ecg", "trainer.max_steps=1") == 0
    assert _run(tiny_store, run, "ecg", "--resume", "trainer.max_steps=3") == 0
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    steps = pd.read_csv(run / "metrics.csv").dropna(subset=["train/loss"])["step"].tolist()
    assert steps == [0, 1, 2]  # appended, no step repeated


def test_clear_errors(tiny_store, tmp_path, capsys):
    assert main(["ecg", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]) == 2
    assert "not a prepared store" in capsys.readouterr().err
    assert _run(tiny_store, tmp_path / "r", "cmr", "loss.temprature=0.2") == 2
    assert "temprature" in capsys.readouterr().err
    assert _run(tiny_store, tmp_path / "r", "ecg", "augment.enabled=false") == 2
    assert "two views identical" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing written for a refused config


@pytest.mark.parametrize(
    "path", sorted(CONFIGS.rglob("simclr_*.yaml")), ids=lambda p: str(p.relative_to(CONFIGS))
)
def test_every_shipped_simclr_config_loads_with_the_mae_encoder_sizes(path):
    modality = yaml.safe_load(path.read_text())["modality"]
    cfg = load_config(SimclrRunConfig, path)
    assert cfg.stage == "simclr"
    mae = load_config(MaeRunConfig, path.parent / f"{modality}_mae.yaml")
    assert cfg.encoder == mae.encoder
