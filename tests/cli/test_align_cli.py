"""`ptacl align` end to end on the tiny store: two optimizer steps, with and without init runs."""

from pathlib import Path

import pytest
import torch
import yaml

from ptacl import configs
from ptacl.cli.align import main
from ptacl.models import encoder_from_config
from ptacl.runs import load_encoder_weights

TINY = str(configs.root() / "tiny" / "ptacl.yaml")


def fake_mae_run(run: Path, modality: str, encoder_section: dict, seed: int) -> dict:
    """A stage-1 run folder as `ptacl pretrain` leaves it: config.yaml with `modality` and
    `encoder`, checkpoints/last.ckpt with the encoder under `mae.encoder.`."""
    torch.manual_seed(seed)
    state = encoder_from_config(encoder_section, modality).state_dict()
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(
        yaml.safe_dump({"modality": modality, "encoder": encoder_section}), encoding="utf-8"
    )
    torch.save(
        {"state_dict": {f"mae.encoder.{k}": v for k, v in state.items()}},
        run / "checkpoints" / "last.ckpt",
    )
    return state


def test_two_steps_from_scratch(tiny_store, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["--data", str(tiny_store), "--out", str(out), "--config", TINY]) == 0
    # configs/tiny freezes 1 block: without init runs that block stays random, and it is said
    err = capsys.readouterr().err
    assert "warning: no init run for the ECG and CMR encoder" in err and "freeze_blocks=0" in err
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["ecg_init"] == "" and config["loss"]["beta"] == 1.0
    assert (out / "checkpoints" / "last.ckpt").is_file()
    weights = sorted(p.name for p in (out / "weights").iterdir())  # the module's parts
    assert weights == [f"{m}_{p}.safetensors" for m in ("cmr", "ecg") for p in ("encoder", "head")]
    assert (out / "figures" / "local_similarity_latest.png").is_file()
    matrix = sorted((out / "figures").glob("local_similarity_step*.npy"))
    assert matrix and matrix[-1].name == "local_similarity_step0000002.npy"
    metrics = (out / "metrics.csv").read_text()
    for name in ("train/global", "train/local", "val/top1", "val/alignment_acc"):
        assert name in metrics
    # the checkpoint is found by the later stages' loader
    assert load_encoder_weights(out, "ecg", "last")


def test_two_steps_from_init_runs(tiny_store, tmp_path, capsys):
    ecg_section = {"samples": 500, "width": 32, "depth": 2, "heads": 2}
    cmr_section = {"width": 24, "depth": 2, "heads": 2}  # differs from configs/tiny/ptacl.yaml
    ecg_state = fake_mae_run(tmp_path / "ecg_mae", "ecg", ecg_section, seed=1)
    cmr_state = fake_mae_run(tmp_path / "cmr_mae", "cmr", cmr_section, seed=2)
    out = tmp_path / "run"
    argv = [
        "--data", str(tiny_store), "--out", str(out), "--config", TINY,
        "--ecg-init", str(tmp_path / "ecg_mae"), "--cmr-init", str(tmp_path / "cmr_mae"),
        "loss.local_space=projection",  # ECG width 32, CMR 24: compared after the heads
        "loss.beta=0.0",
    ]  # fmt: skip
    assert main(argv) == 0
    assert "warning" not in capsys.readouterr().err  # frozen blocks hold the init weights
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["ecg_encoder"]["samples"] == 500 and config["cmr_encoder"]["width"] == 24
    assert config["ecg_init"] == str(tmp_path / "ecg_mae")
    # the frozen first block still holds the init weights; the trained last block moved
    for modality, init in (("ecg", ecg_state), ("cmr", cmr_state)):
        trained = load_encoder_weights(out, modality, "last")
        torch.testing.assert_close(
            trained["blocks.0.attn.qkv.weight"], init["blocks.0.attn.qkv.weight"]
        )
        torch.testing.assert_close(trained["patch_embed.weight"], init["patch_embed.weight"])
        assert not torch.equal(trained["blocks.1.mlp.0.weight"], init["blocks.1.mlp.0.weight"])


def test_errors_name_the_problem(tiny_store, tmp_path, capsys):
    assert main(["--out", str(tmp_path / "a"), "--config", TINY]) == 2
    assert "no store given" in capsys.readouterr().err
    missing = tmp_path / "no_run"
    argv = ["--data", str(tiny_store), "--out", str(tmp_path / "b"), "--config", TINY]
    assert main([*argv, "--ecg-init", str(missing)]) == 2
    assert f"{missing}: not a run folder" in capsys.readouterr().err
    fake_mae_run(tmp_path / "cmr_mae", "cmr", {"width": 24, "depth": 2, "heads": 2}, seed=0)
    assert main([*argv, "--ecg-init", str(tmp_path / "cmr_mae")]) == 2
    assert "is a cmr run, not ecg" in capsys.readouterr().err


@pytest.mark.slow
def test_pretrain_then_align(tiny_store, tmp_path):
    """The real chain: two tiny MAE runs, then PTACL started from them."""
    from ptacl.cli.pretrain import main as pretrain

    for modality in ("ecg", "cmr"):
        config = str(configs.root() / "tiny" / f"{modality}_mae.yaml")
        argv = [modality, "--data", str(tiny_store), "--out", str(tmp_path / modality)]
        argv += ["--config", config]
        if modality == "ecg":  # 2 s crops, so that validation crops hold a complete beat
            argv.append("encoder.samples=1000")
        assert pretrain(argv) == 0
    argv = [
        "--data", str(tiny_store), "--out", str(tmp_path / "ptacl"), "--config", TINY,
        "--ecg-init", str(tmp_path / "ecg"), "--cmr-init", str(tmp_path / "cmr"),
    ]  # fmt: skip
    assert main(argv) == 0
    config = yaml.safe_load((tmp_path / "ptacl" / "config.yaml").read_text())
    assert config["ecg_encoder"]["samples"] == 1000
    assert (tmp_path / "ptacl" / "figures" / "local_similarity_latest.png").is_file()
    # --resume continues the same run from checkpoints/last.ckpt
    assert main([*argv, "--resume", "trainer.max_steps=4"]) == 0
    last = torch.load(tmp_path / "ptacl" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4
    assert (tmp_path / "ptacl" / "figures" / "local_similarity_step0000004.png").is_file()


def test_accumulation_steps_once_per_k_batches_and_resumes(tiny_store, tmp_path):
    """trainer.accumulate_grad_batches: 2 through the real command (the feature cache: manual
    optimization, its own clipping and schedule): two steps of 2 × 2 pairs, then two more on
    --resume, with training and validation metrics written."""
    argv = ["--data", str(tiny_store), "--out", str(tmp_path / "run"), "--config", TINY]
    argv += ["trainer.accumulate_grad_batches=2", "data.batch_size=2"]
    assert main(argv) == 0
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 2
    assert main([*argv, "--resume", "trainer.max_steps=4"]) == 0
    assert torch.load(last, weights_only=True)["global_step"] == 4
    metrics = (tmp_path / "run" / "metrics.csv").read_text()
    for name in ("train/global", "train/local", "train/local_valid", "val/top1"):
        assert name in metrics
