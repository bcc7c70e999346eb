"""Run folders as a researcher uses them: moved with their store, read from another working
directory, killed (SIGTERM, as SLURM does) and started again, shared with colleagues (umask)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from inference.builders import beats_ecg, write_cardiosoft_xml
from ptacl.cli.main import main as ptacl

TINY = ["--config", "tiny/ecg_mae.yaml"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run far faster on one thread than on two contended ones (OpenMP spin)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_run_moved_with_its_store_is_read_from_any_folder(
    tiny_store, tmp_path, monkeypatch, capsys
):
    """Trained as the README says (`--data store`, relative), the run recorded `data.store:
    store`, so `ptacl export` from any other folder failed with "not a prepared store"."""
    shutil.copytree(tiny_store, tmp_path / "project" / "store")
    monkeypatch.chdir(tmp_path / "project")
    steps = ["trainer.max_steps=4"]  # last.ckpt at step 4 holds the validation of step 2
    assert ptacl(["pretrain", "ecg", "--data", "store", "--out", "runs/mae", *TINY, *steps]) == 0
    shutil.move(tmp_path / "project", tmp_path / "moved")  # run folder and store together
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    run = "../moved/runs/mae"
    capsys.readouterr()
    assert ptacl(["export", "--model", run, "--out", "bundle", "--probe", "ridge"]) == 0, (
        capsys.readouterr().err
    )
    assert (Path("bundle") / "config.json").is_file()
    # --resume continues it from here, without --data, keeping its best score (Lightning drops
    # it when the checkpoint folder moved, and a poorer validation would replace best.ckpt)
    best = _best_state(run)
    more = ["trainer.max_steps=5", "trainer.val_every_n_steps=5"]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert ptacl(["pretrain", "ecg", "--out", run, "--resume", *more]) == 0
    assert not [w for w in seen if "dirpath has changed" in str(w.message)]
    assert torch.load(f"{run}/checkpoints/last.ckpt", weights_only=True)["global_step"] == 5
    after = _best_state(run)
    assert after["best_model_score"] <= best["best_model_score"]
    assert after["best_model_path"] == str(Path(run).resolve() / "checkpoints" / "best.ckpt")
    # a store moved away from its run: one line naming --data, then --data works
    shutil.move(tmp_path / "moved" / "store", tmp_path / "store_now_here")
    capsys.readouterr()
    assert ptacl(["export", "--model", run, "--out", "b2", "--probe", "ridge"]) == 1
    err = capsys.readouterr().err
    assert "the store it trained on is not at" in err and "pass --data" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    data = ["--data", str(tmp_path / "store_now_here")]
    assert ptacl(["export", "--model", run, "--out", "b2", "--probe", "ridge", *data]) == 0


def _best_state(run: str) -> dict:
    """best.ckpt's ModelCheckpoint state within the run's last.ckpt."""
    states = torch.load(f"{run}/checkpoints/last.ckpt", weights_only=True)["callbacks"]
    (state,) = [v for k, v in states.items() if k.startswith("ModelCheckpoint{")]
    return state


def _train_command(store: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "ptacl", "pretrain", "ecg", "--data", str(store), "--out",
            str(out), *TINY, "trainer.max_steps=30", "trainer.val_every_n_steps=30",
            "trainer.checkpoint_every_n_steps=1000"]  # fmt: skip


def test_the_same_command_after_sigterm_continues_where_it_stopped(tiny_store, tmp_path):
    """A SLURM job is requeued by running its command again after SIGTERM. That command used
    to be refused ("not empty; pass --resume"); and no checkpoint was written on SIGTERM, so
    without a periodic one before it the run restarted from nothing. Now the same command
    continues from the step where SIGTERM stopped it."""
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    with (tmp_path / "first.err").open("w") as err:
        first = subprocess.Popen(
            _train_command(tiny_store, run), stdout=subprocess.PIPE, stderr=err, text=True, env=env
        )
        for line in first.stdout:
            if line.startswith("step 3/30"):
                first.send_signal(signal.SIGTERM)
                break
        first.stdout.read()
        assert first.wait(timeout=120) == 143  # 128 + SIGTERM: not taken for finished
    stopped = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert 3 <= stopped < 30
    assert "stopped by SIGTERM at step" in (tmp_path / "first.err").read_text()
    again = subprocess.run(
        _train_command(tiny_store, run), capture_output=True, text=True, env=env, timeout=300
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{run}: the same run again: continuing it from last.ckpt" in again.stdout
    steps = pd.read_csv(run / "metrics.csv").dropna(subset=["train/loss"])["step"].tolist()
    assert steps == list(range(30))  # every step once: continued, not restarted


def _finetune_command(store: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "ptacl", "finetune", "--model", "none", "--data", str(store),
            "--out", str(out), "--config", "tiny/finetune.yaml", "--n-boot", "5",
            "trainer.max_steps=6", "trainer.val_every_n_steps=3", "data.num_workers=1"]  # fmt: skip


def _signal_group_at_step(command: list[str], sig: int, step: int, err: Path) -> int:
    """Run `command` in a process group of its own and send `sig` to the whole group (as SLURM
    and a terminal's Ctrl-C do: the DataLoader workers get it too) once `step` is logged."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    with err.open("w") as stderr:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                env=env, start_new_session=True)  # fmt: skip
        for line in proc.stdout:
            if line.startswith(f"step {step}/"):
                os.killpg(proc.pid, sig)
                break
        proc.stdout.read()
        return proc.wait(timeout=120)


@pytest.mark.parametrize(
    ("sig", "code", "said"),
    [
        (signal.SIGTERM, 143, "stopped by SIGTERM at step"),
        pytest.param(
            signal.SIGINT, 130, "ptacl finetune: interrupted", marks=pytest.mark.slow
        ),  # the same path; SIGTERM's is the one a scheduler takes
    ],
    ids=["sigterm", "ctrl-c"],
)
def test_a_fine_tune_with_loader_workers_stops_in_one_line_and_the_rerun_continues(
    tiny_store, tmp_path, sig, code, said
):
    """SIGTERM to the process group of `ptacl finetune` with DataLoader workers (a SLURM time
    limit) killed the workers first: torch raised "DataLoader worker is killed by signal" in
    the training process and the command printed a traceback and "a bug in ptacl" (exit 70).
    Ctrl-C exited 1 with no word from ptacl. Now: one line, 143 (SIGTERM) or 130 (Ctrl-C), the
    run folder unlocked, and the same command continues the run to its end."""
    run, err = tmp_path / "run", tmp_path / "first.err"
    assert _signal_group_at_step(_finetune_command(tiny_store, run), sig, 3, err) == code
    text = err.read_text()
    assert said in text
    assert "bug in ptacl" not in text and "Traceback" not in text
    assert not (tmp_path / ".run.lock").exists()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    again = subprocess.run(
        _finetune_command(tiny_store, run), capture_output=True, text=True, env=env, timeout=300
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{run}: the same run again: continuing it from last.ckpt" in again.stdout
    assert (run / "test_metrics.json").is_file()
    steps = pd.read_csv(run / "metrics.csv").dropna(subset=["train/loss"])["step"].tolist()
    assert steps[-1] == 5 and set(steps) == set(range(6))


@pytest.fixture(params=[0o022, 0o077], ids=["umask022", "umask077"])
def umask(request):
    """The umask set for the test and restored after it. fsspec (Lightning's checkpoint writer)
    reads the umask once per process and caches it; a real process keeps one umask, so the
    cache is cleared here, where one process runs under two."""
    from fsspec.implementations.local import get_umask

    old = os.umask(request.param)
    get_umask.cache_clear()
    yield request.param
    os.umask(old)
    get_umask.cache_clear()


def test_every_output_is_as_readable_as_the_umask_allows(tmp_path, umask, capsys):
    """With umask 022 a bundle came out drwx------ and predictions.csv -rw-------: a colleague
    or a service account could not read them."""
    from stores import write_tiny_store

    store = write_tiny_store(tmp_path / "store")  # the writer `ptacl prepare` uses
    run, bundle, csv = tmp_path / "run", tmp_path / "bundle", tmp_path / "predictions.csv"
    assert ptacl(["pretrain", "ecg", "--data", str(store), "--out", str(run), *TINY]) == 0
    assert ptacl(["export", "--model", str(run), "--out", str(bundle), "--probe", "ridge"]) == 0
    xml = write_cardiosoft_xml(tmp_path / "1000001_20205_2_0.xml", beats_ecg(60, 1.0))
    args = ["--model", str(bundle), "--ecg", str(xml), "--out", str(csv), "--no-progress"]
    ptacl(["predict", *args])  # 1 when a row has a warning (a tiny model's implausible value)
    evaluation = tmp_path / "eval"
    args = ["--model", str(run), "--data", str(store), "--out", str(evaluation)]
    ptacl(["evaluate", *args, "--n-boot", "5", "--no-progress", "--probe", "ridge"])
    capsys.readouterr()
    folders = [store, run, run / "checkpoints", bundle, evaluation]
    files = [store / "manifest.json", run / "config.yaml", run / "checkpoints" / "last.ckpt"]
    files += [bundle / "config.json", csv, evaluation / "metrics.json"]
    modes = {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777) for p in folders + files}
    expected = {str(p.relative_to(tmp_path)): oct(0o777 & ~umask) for p in folders}
    expected |= {str(p.relative_to(tmp_path)): oct(0o666 & ~umask) for p in files}
    assert modes == expected
    assert yaml.safe_load((run / "config.yaml").read_text())["modality"] == "ecg"
