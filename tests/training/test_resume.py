"""--resume: the run's own config, conflicting settings refused before anything is written, one
process per run folder (docs/reliability.md)."""

from pathlib import Path

import pytest
import torch
import yaml

from faults import hold_lock
from ptacl import configs
from ptacl.cli.pretrain import main

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = configs.root()
TINY = ["--config", str(CONFIGS / "tiny" / "ecg_mae.yaml")]


def _run(store, out, *extra):
    return main(["ecg", "--data", str(store), "--out", str(out), *extra])


@pytest.fixture(scope="module")
def two_step_run(tiny_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "run"
    assert _run(tiny_store, out, *TINY) == 0
    return out


def test_resume_reads_the_runs_own_config(two_step_run, tmp_path):
    import shutil

    run = Path(shutil.copytree(two_step_run, tmp_path / "run"))
    # no --config, no --data: both come from run/config.yaml
    assert main(["ecg", "--out", str(run), "--resume", "trainer.max_steps=3"]) == 0
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["trainer"]["max_steps"] == 3 and config["encoder"]["width"] == 32
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3


def test_a_conflicting_resume_is_refused_before_touching_the_run(two_step_run, tiny_store, capsys):
    before = {p: p.read_bytes() for p in two_step_run.rglob("*") if p.is_file()}
    assert _run(tiny_store, two_step_run, "--resume", "encoder.width=48") == 2
    err = capsys.readouterr().err
    assert "encoder.width: run 32, now 48" in err and "start a new run" in err
    # another --config: every differing setting is named, nothing is written
    small = ["--config", str(CONFIGS / "small" / "ecg_mae.yaml")]
    assert _run(tiny_store, two_step_run, "--resume", *small) == 2
    err = capsys.readouterr().err
    assert "encoder.width: run 32, now 64" in err and "data.batch_size: run 4" in err
    after = {p: p.read_bytes() for p in two_step_run.rglob("*") if p.is_file()}
    assert after == before


def test_a_second_training_into_a_live_run_is_refused(two_step_run, tiny_store, capsys):
    holder = hold_lock(two_step_run)
    try:
        before = (two_step_run / "metrics.csv").read_bytes()
        assert _run(tiny_store, two_step_run, "--resume", "trainer.max_steps=4") == 2
        assert f"another ptacl process (pid {holder.pid})" in capsys.readouterr().err
        assert (two_step_run / "metrics.csv").read_bytes() == before
    finally:
        holder.kill()
        holder.wait()


class Killed(Exception):
    """Stands in for kill -9 right after a checkpoint."""


def test_a_killed_and_resumed_run_ends_bit_identical(tiny_store, tmp_path, monkeypatch):
    """8 training ECGs in batches of 4: 2 batches an epoch. Killed after step 3 (mid-epoch 1),
    resumed with a different number of workers, to step 7: the weights are those of a run
    never interrupted (MAE masks, augmentations, sample order all included)."""
    from ptacl.training.trainer import LastCheckpoint

    steps = ["trainer.max_steps=7", "trainer.val_every_n_steps=2"]
    assert _run(tiny_store, tmp_path / "straight", *TINY, *steps) == 0

    save = LastCheckpoint.on_train_batch_end

    def killed_after_step_3(self, trainer, *args):
        save(self, trainer, *args)
        if trainer.global_step == 3:
            raise Killed

    monkeypatch.setattr(LastCheckpoint, "on_train_batch_end", killed_after_step_3)
    with pytest.raises(Killed):
        _run(tiny_store, tmp_path / "resumed", *TINY, *steps)
    monkeypatch.undo()
    state = torch.load(tmp_path / "resumed/checkpoints/last.ckpt", weights_only=True)
    assert state["global_step"] == 3
    loader = state["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert loader == [{"epoch": 1, "batches": 1}]  # mid-epoch 1: one of its two batches done
    assert main(["ecg", "--out", str(tmp_path / "resumed"), "--resume", "data.num_workers=2"]) == 0

    def weights(run):
        return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]

    straight, resumed = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name
