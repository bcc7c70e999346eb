import argparse
import math
import os

import lightning as L
import pytest
import torch
import yaml
from torch import nn

from ptacl.cli.common import add_run_arguments, resolve_config
from ptacl.config import ConfigError
from ptacl.models import EcgEncoder, EcgEncoderConfig
from ptacl.run_write import prepare_run_dir
from ptacl.runs import RunDirError, load_encoder, load_encoder_weights
from ptacl.training.mae import MaeRunConfig
from ptacl.training.optim import OptimConfig, build_optimizer_and_schedule, scaled_lr, warmup_cosine
from ptacl.training.trainer import TrainerConfig, build_trainer, resolve_precision

pytestmark = pytest.mark.usefixtures("one_thread")


def test_learning_rate_scales_linearly_with_the_global_batch():
    assert scaled_lr(1.5e-4, 256) == pytest.approx(1.5e-4)
    assert scaled_lr(1.5e-4, 1024) == pytest.approx(6e-4)


def test_warmup_then_cosine_by_hand():
    kw = {"warmup_steps": 4, "total_steps": 14, "min_ratio": 0.1}
    assert [warmup_cosine(s, **kw) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert warmup_cosine(4, **kw) == pytest.approx(1.0)
    assert warmup_cosine(9, **kw) == pytest.approx(0.1 + 0.9 * 0.5)  # half way down
    assert warmup_cosine(14, **kw) == pytest.approx(0.1)
    assert warmup_cosine(100, **kw) == pytest.approx(0.1)  # held at the floor


def test_optimizer_decays_only_layer_weights_and_steps_the_schedule():
    model = EcgEncoder(EcgEncoderConfig(samples=100, width=8, depth=1, heads=2))
    cfg = OptimConfig(base_lr=1e-3, weight_decay=0.05, warmup_steps=2)
    optimizer, scheduler = build_optimizer_and_schedule(model, cfg, total_steps=6, global_batch=512)
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    decayed = {id(p) for p in decay["params"]}
    assert id(model.patch_embed.weight) in decayed and id(model.blocks[0].mlp[0].weight) in decayed
    for p in (model.lead_embed, model.time_embed, model.norm.weight, model.patch_embed.bias):
        assert id(p) not in decayed
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    peak = 2e-3  # 1e-3 × 512 / 256
    seen = []
    for _ in range(6):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [peak * warmup_cosine(s, warmup_steps=2, total_steps=6) for s in range(6)]
    assert seen == pytest.approx(expected)
    assert seen[1] == pytest.approx(peak)
    assert seen[3] == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi / 4)))  # 1 of 4 down


def test_heads_train_at_their_own_scale_of_the_schedule():
    class Stage(nn.Module):  # an encoder and a fresh head, found by heads(), not by name
        def __init__(self) -> None:
            super().__init__()
            self.ecg_encoder = nn.Linear(4, 4)
            self.renamed = nn.Sequential(nn.Linear(4, 2), nn.BatchNorm1d(2))

        def encoders(self) -> dict[str, nn.Module]:
            return {"ecg": self.ecg_encoder}

        def heads(self) -> dict[str, nn.Module]:
            return {"ecg": self.renamed}

    model = Stage()
    cfg = OptimConfig(base_lr=1e-3, warmup_steps=0, head_lr_scale=10.0)
    optimizer, scheduler = build_optimizer_and_schedule(model, cfg, total_steps=4, global_batch=256)
    lrs = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert len(lrs) == len(list(model.parameters()))
    for p in model.ecg_encoder.parameters():
        assert lrs[id(p)] == pytest.approx(1e-3)
    for p in model.renamed.parameters():
        assert lrs[id(p)] == pytest.approx(1e-2)
    optimizer.step()
    scheduler.step()  # the cosine scales both alike
    expected = warmup_cosine(1, warmup_steps=0, total_steps=4)
    for group in optimizer.param_groups:
        assert group["lr"] / group["initial_lr"] == pytest.approx(expected)


def test_precision_by_device():
    assert resolve_precision(TrainerConfig(accelerator="cpu")) == "32-true"
    assert resolve_precision(TrainerConfig(accelerator="gpu")) == "bf16-mixed"
    assert resolve_precision(TrainerConfig(precision="16-mixed")) == "16-mixed"


def test_trainer_on_cpu_is_deterministic_and_writes_into_the_run(tmp_path):
    trainer = build_trainer(TrainerConfig(accelerator="cpu", max_steps=5, devices=1), tmp_path)
    assert trainer.precision == "32-true"
    assert torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(False)
    assert trainer.max_steps == 5 and trainer.val_check_interval == 5  # capped at max_steps
    assert trainer.gradient_clip_val == 1.0
    paths = {type(c).__name__: c for c in trainer.callbacks}
    assert paths["BestCheckpoint"].dirpath == str(tmp_path / "checkpoints")
    assert paths["BestCheckpoint"].state_key.startswith("ModelCheckpoint{")  # older runs' key
    assert paths["LastCheckpoint"].path == tmp_path / "checkpoints" / "last.ckpt"


def test_run_dir_is_never_reused_without_resume(tmp_path):
    cfg = MaeRunConfig()
    assert prepare_run_dir(tmp_path / "run", cfg, resume=False) is None
    written = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert written["encoder"]["width"] == 512 and written["mae"]["mask_ratio"] == 0.75
    other = MaeRunConfig(optim=OptimConfig(base_lr=0.5))
    with pytest.raises(RunDirError, match=r"holds another run.*optim\.base_lr.*--overwrite"):
        prepare_run_dir(tmp_path / "run", other, resume=False)
    with pytest.raises(RunDirError, match="nothing to resume"):
        prepare_run_dir(tmp_path / "run", cfg, resume=True)
    (tmp_path / "run" / "checkpoints").mkdir()
    (tmp_path / "run" / "checkpoints" / "last.ckpt").write_bytes(b"")
    with pytest.raises(RunDirError, match=r"last.ckpt: not a readable checkpoint: no zip"):
        prepare_run_dir(tmp_path / "run", cfg, resume=True)
    torch.save({"state_dict": {}}, tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert prepare_run_dir(tmp_path / "run", cfg, resume=True).name == "last.ckpt"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match=r"holds no run.*--overwrite"):
        prepare_run_dir(tmp_path / "other", cfg, resume=False)


def test_the_same_command_again_restarts_a_run_that_died_before_its_first_checkpoint(
    tmp_path, capsys
):
    """Killed before checkpoints/last.ckpt existed, a run used to be stuck: "not empty; pass
    --resume", then "nothing to resume". The same config starts it afresh, without the dead
    run's logs; with a checkpoint it continues; --overwrite replaces another run."""
    cfg = MaeRunConfig()
    run = tmp_path / "run"
    prepare_run_dir(run, cfg, resume=False)
    (run / "metrics.csv").write_text("step,train/loss\n0,1.0\n")  # what the dead run logged
    assert prepare_run_dir(run, cfg, resume=False) is None
    assert "stopped before its first checkpoint: starting it again" in capsys.readouterr().out
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]
    (run / "checkpoints").mkdir()
    torch.save({"state_dict": {}}, run / "checkpoints" / "last.ckpt")
    assert prepare_run_dir(run, cfg, resume=False) == run / "checkpoints" / "last.ckpt"
    assert "the same run again: continuing it from last.ckpt" in capsys.readouterr().out
    # Lightning's SLURM auto-requeue leaves hpc_ckpt_N.ckpt: the newer of the two is taken
    os.utime(run / "checkpoints" / "last.ckpt", ns=(1, 1))
    torch.save({"state_dict": {}}, run / "hpc_ckpt_1.ckpt")
    assert prepare_run_dir(run, cfg, resume=False) == run / "hpc_ckpt_1.ckpt"
    (run / "hpc_ckpt_1.ckpt").write_bytes(b"")  # cut short by a full disk: said in one line
    with pytest.raises(RunDirError, match=r"hpc_ckpt_1.ckpt: not a readable checkpoint"):
        prepare_run_dir(run, cfg, resume=False)
    (run / "hpc_ckpt_1.ckpt").unlink()
    other = MaeRunConfig(optim=OptimConfig(base_lr=0.5))
    assert prepare_run_dir(run, other, resume=False, overwrite=True) is None
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]
    assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["base_lr"] == 0.5


def test_command_line_overrides_in_order(tmp_path):
    parser = argparse.ArgumentParser()
    parser.add_argument("modality")
    add_run_arguments(parser)
    yaml_path = tmp_path / "c.yaml"
    yaml_path.write_text("trainer: {max_steps: 7, devices: 2}\noptim: {base_lr: 1.0}\n")
    args = parser.parse_intermixed_args(
        ["ecg", "--out", "r", "--config", str(yaml_path), "optim.base_lr=0.5", "--num-nodes", "3"]
    )
    cfg = resolve_config(MaeRunConfig, args)
    assert (cfg.trainer.max_steps, cfg.trainer.devices, cfg.trainer.num_nodes) == (7, 2, 3)
    assert cfg.optim.base_lr == 0.5
    args = parser.parse_intermixed_args(["ecg", "--out", "r", "--devices", "4", "optim.nope=1"])
    with pytest.raises(ConfigError, match="nope"):
        resolve_config(MaeRunConfig, args)


class _Holder(L.LightningModule):
    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.ecg_encoder = encoder


def test_load_encoder_weights_only_from_a_checkpoint(tmp_path):
    cfg = MaeRunConfig(encoder=EcgEncoderConfig(samples=100, width=8, depth=1, heads=2))
    prepare_run_dir(tmp_path, cfg, resume=False)
    torch.manual_seed(0)
    encoder = EcgEncoder(cfg.encoder)
    # what a Lightning checkpoint holds under "state_dict": an MAE run's keys, then another stage's
    (tmp_path / "checkpoints").mkdir()
    mae_state = {f"mae.encoder.{k}": v for k, v in encoder.state_dict().items()}
    torch.save({"state_dict": mae_state}, tmp_path / "checkpoints" / "last.ckpt")
    weights = load_encoder_weights(tmp_path, "ecg")  # best.ckpt missing: falls back to last
    assert weights.keys() == encoder.state_dict().keys()
    loaded = load_encoder(tmp_path, "ecg")
    x = torch.randn(2, 12, 100)
    assert torch.equal(loaded.forward_features(x), encoder.forward_features(x))
    with pytest.raises(RunDirError, match="no cmr encoder"):
        load_encoder_weights(tmp_path, "cmr")
    torch.save(
        {"state_dict": _Holder(encoder).state_dict()}, tmp_path / "checkpoints" / "best.ckpt"
    )
    assert load_encoder_weights(tmp_path, "ecg").keys() == encoder.state_dict().keys()
    # a checkpoint that would need unpickling arbitrary objects is refused
    torch.save(
        {"state_dict": mae_state, "x": argparse.Namespace(a=1)},
        tmp_path / "checkpoints" / "best.ckpt",
    )
    with pytest.raises(Exception, match=r"[Ww]eights only"):
        load_encoder_weights(tmp_path, "ecg")


def test_a_run_made_before_a_setting_existed_still_continues(tmp_path):
    """config.yaml of a run made before trainer.loggers / trainer.callbacks existed lacks them;
    it ran with their defaults, so neither --resume nor the same command is refused."""
    cfg = MaeRunConfig()
    run = tmp_path / "run"
    prepare_run_dir(run, cfg, resume=False)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    del saved["trainer"]["loggers"], saved["trainer"]["callbacks"]
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    (run / "checkpoints").mkdir()
    torch.save({"state_dict": {}}, run / "checkpoints" / "last.ckpt")
    assert prepare_run_dir(run, cfg, resume=True).name == "last.ckpt"
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    assert prepare_run_dir(run, cfg, resume=False).name == "last.ckpt"
    # a setting the run did have is still compared
    other = MaeRunConfig(trainer=TrainerConfig(callbacks=("x.y:Z",)))
    with pytest.raises(RunDirError, match=r"trainer\.callbacks: run \[\], now \['x\.y:Z'\]"):
        prepare_run_dir(run, other, resume=True)
