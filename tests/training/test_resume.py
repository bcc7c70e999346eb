"""--resume: the run's own config, conflicting settings refused before anything is written, one
process per run folder (docs/reliability.md)."""

from pathlib import Path

import pytest
import torch
import yaml

from faults import hold_lock
from ptacl.cli.pretrain import main

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).parents[2] / "configs"
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
