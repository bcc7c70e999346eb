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
    from ptacl.training.callbacks import LastCheckpoint

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


# ----------------------------------------------------------- hostile checkpoints, full disk


class Payload:
    """A pickled object that would print if unpickled (weights_only refuses it)."""

    def __reduce__(self):
        return (print, ("PAYLOAD RAN",))


def _copy(run: Path, to: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, to))


def _ptacl_one_line(capsys, *argv: str) -> tuple[int, str]:
    """Run the real `ptacl` entry point; return its exit code and its one stderr line."""
    from ptacl.cli.main import main as ptacl

    code = ptacl(list(argv))
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert "Traceback" not in captured.err and "PAYLOAD RAN" not in captured.out
    assert len(lines) == 1, captured.err
    return code, lines[0]


def test_a_full_disk_while_checkpointing_keeps_the_last_good_checkpoint(
    two_step_run, tmp_path, monkeypatch, capsys
):
    """Once a truncated last.ckpt (written in place) and a traceback."""
    from faults import fill_disk

    run = _copy(two_step_run, tmp_path / "run")
    before = (run / "checkpoints" / "last.ckpt").read_bytes()
    fill_disk(monkeypatch, run / "checkpoints", after=4096)
    code, line = _ptacl_one_line(
        capsys, "pretrain", "ecg", "--out", str(run), "--resume", "trainer.max_steps=3"
    )
    assert code == 1
    assert f"{run / 'checkpoints'}: no space left on the device: writing " in line
    assert " MB (" in line and "GB free on" in line and "kept whole" in line
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == before
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    monkeypatch.undo()  # the disk has room again: the same resume goes on from step 2
    assert main(["ecg", "--out", str(run), "--resume", "trainer.max_steps=3"]) == 0


def test_resume_from_a_truncated_checkpoint_says_so_and_points_at_best(
    two_step_run, tmp_path, capsys
):
    run = _copy(two_step_run, tmp_path / "run")
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    code, line = _ptacl_one_line(capsys, "pretrain", "ecg", "--out", str(run), "--resume")
    assert code == 2
    assert f"cannot resume: {last}: not a readable checkpoint" in line
    assert f"the previous checkpoint {run / 'checkpoints' / 'best.ckpt'} (step 2)" in line
    (run / "checkpoints" / "best.ckpt").unlink()
    code, line = _ptacl_one_line(capsys, "pretrain", "ecg", "--out", str(run), "--resume")
    assert code == 2 and "no other readable checkpoint" in line


def test_resume_from_a_pickled_checkpoint_is_refused_in_one_line(two_step_run, tmp_path, capsys):
    run = _copy(two_step_run, tmp_path / "run")
    torch.save({"state_dict": {}, "extra": Payload()}, run / "checkpoints" / "last.ckpt")
    code, line = _ptacl_one_line(capsys, "pretrain", "ecg", "--out", str(run), "--resume")
    assert code == 2 and "not a readable checkpoint: UnpicklingError" in line


def test_resume_with_a_config_that_no_longer_fits_the_weights(two_step_run, tmp_path, capsys):
    """config.yaml edited after training (width 32 -> 48): once torch's size-mismatch
    traceback from inside Lightning."""
    run = _copy(two_step_run, tmp_path / "run")
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["encoder"]["width"] = 48
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    code, line = _ptacl_one_line(capsys, "pretrain", "ecg", "--out", str(run), "--resume")
    assert code == 2
    assert f"{run}/config.yaml: does not match the checkpoint's weights: size mismatch" in line
