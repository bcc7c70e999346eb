import re

import pandas as pd
import pytest
import torch
import yaml

from ptacl import configs
from ptacl.cli.pretrain import main
from ptacl.config import load_config
from ptacl.runs import load_encoder
from ptacl.training.mae import MaeRunConfig


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run far faster on one thread than on two contended ones (OpenMP spin)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


CONFIGS = configs.root()


def _run(store, out, modality, *extra):
    args = [modality, "--data", str(store), "--out", str(out)]
    return main([*args, "--config", str(CONFIGS / "tiny" / f"{modality}_mae.yaml"), *extra])


@pytest.mark.parametrize("modality", ["ecg", "cmr"])
def test_two_step_run_fills_the_run_folder(tiny_store, tmp_path, modality, capsys):
    assert _run(tiny_store, tmp_path / "run", modality) == 0
    run = tmp_path / "run"
    out = capsys.readouterr().out
    assert "M parameters" in out
    # without a progress bar, plain progress lines (what a pipeline's log shows)
    assert re.search(r"step 2/2, [\d.]+ s/step, ~0\.0 min left, train/loss [\d.]+", out), out
    assert re.search(r"validation at step 2: .*val/loss [\d.]+", out), out
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["modality"] == modality and config["data"]["store"] == str(tiny_store)
    for name in ("checkpoints/last.ckpt", "checkpoints/best.ckpt", "metrics.csv"):
        assert (run / name).is_file(), name
    assert (run / "figures" / "reconstruction_step0000002.png").stat().st_size > 1000
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["train/loss"].notna().sum() == 2 and metrics["val/loss"].notna().sum() == 1
    assert (run / "tensorboard").is_dir()
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 2
    encoder = load_encoder(run, modality)
    assert encoder.width == config["encoder"]["width"]
    # the same command again continues its own run (here: already finished); another run
    # into the same folder is refused rather than mixed in
    assert _run(tiny_store, run, modality) == 0
    assert "the same run again: continuing it from last.ckpt" in capsys.readouterr().out
    assert _run(tiny_store, run, modality, "optim.base_lr=0.5") == 2
    err = capsys.readouterr().err
    assert "holds another run" in err and "optim.base_lr" in err and "--overwrite" in err


def test_resume_continues_at_the_same_step_and_learning_rate(tiny_store, tmp_path):
    more = ["trainer.max_steps=4", "trainer.val_every_n_steps=4", "optim.warmup_steps=2"]
    assert _run(tiny_store, tmp_path / "straight", "ecg", *more) == 0
    assert _run(tiny_store, tmp_path / "resumed", "ecg", "trainer.max_steps=2", *more[1:]) == 0
    assert _run(tiny_store, tmp_path / "resumed", "ecg", "--resume", *more) == 0

    def by_step(run):
        metrics = pd.read_csv(run / "metrics.csv")
        lr = metrics.dropna(subset=["lr-AdamW/pg1"]).set_index("step")["lr-AdamW/pg1"]
        return lr, metrics.dropna(subset=["train/loss"])["step"].tolist()

    lr_straight, steps_straight = by_step(tmp_path / "straight")
    lr_resumed, steps_resumed = by_step(tmp_path / "resumed")
    assert steps_straight == steps_resumed == [0, 1, 2, 3]  # appended, no step repeated
    assert lr_resumed.loc[[2, 3]].tolist() == pytest.approx(lr_straight.loc[[2, 3]].tolist())
    ckpt = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 4
    # AdamW's own step count proves its moments were restored, not started afresh
    adam_steps = {float(s["step"]) for s in ckpt["optimizer_states"][0]["state"].values()}
    assert adam_steps == {4.0}


def test_clear_errors(tiny_store, tmp_path, capsys):
    assert main(["ecg", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]) == 2
    assert "not a prepared store" in capsys.readouterr().err
    assert _run(tiny_store, tmp_path / "r", "ecg", "encoder.widht=3") == 2
    assert "widht" in capsys.readouterr().err
    assert _run(tiny_store, tmp_path / "r2", "ecg", "--resume") == 2
    assert "nothing to resume" in capsys.readouterr().err
    args = ["cmr", "--data", str(tiny_store), "--out", str(tmp_path / "r3")]
    assert main([*args, "--config", "tiny/ecg_mae.yaml"]) == 2  # a config of the other modality
    assert "'modality=cmr' contradicts the file's modality: 'ecg'" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*_mae.yaml")), ids=lambda p: p.name)
def test_every_shipped_mae_config_loads(path):
    modality = yaml.safe_load(path.read_text())["modality"]
    cfg = load_config(MaeRunConfig, path)
    if path.parent == CONFIGS:  # the paper-size files say what the defaults are
        assert cfg == MaeRunConfig(modality=modality)


def test_a_batch_larger_than_the_train_split_is_one_line_naming_the_fix(
    tiny_store, tmp_path, capsys
):
    # the tiny store's train split holds 8 ECGs
    assert _run(tiny_store, tmp_path / "run", "ecg", "data.batch_size=128") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "8 training items, fewer than data.batch_size 128" in err
    assert "add data.batch_size=8" in err
