"""What a person watching a training sees: the step total, the rate and the time left at every
size (the paper configs leave `trainer.progress_bar` on), validation results, and no
third-party noise."""

from __future__ import annotations

import logging
import re
import sys

import pytest
import torch

from ptacl.cli.pretrain import main as pretrain

# the tiny config with the paper configs' default: progress_bar on
ARGS = ["--config", "tiny/ecg_mae.yaml", "trainer.progress_bar=true", "trainer.max_steps=4"]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _train(store, out) -> int:
    return pretrain(["ecg", "--data", str(store), "--out", str(out), *ARGS])


def test_a_log_gets_step_lines_with_the_time_left(tiny_store, tmp_path, capsys):
    """With progress_bar on, a log (SLURM, a pipeline) got Lightning's epoch bar ("Epoch 661:
    0/1"): no step total, no time left, no plain line."""
    assert _train(tiny_store, tmp_path / "run") == 0
    out = capsys.readouterr().out
    assert re.search(r"^step 2/4, [\d.]+ s/step, ~[\d.]+ min left, train/loss", out, re.M), out
    assert re.search(r"^validation at step 4: .*val/loss", out, re.M), out
    assert "Epoch" not in out


def test_a_terminal_gets_one_bar_over_the_runs_steps(tiny_store, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert _train(tiny_store, tmp_path / "run") == 0
    out = capsys.readouterr().out
    assert re.search(r"training: 100%.*\| 4/4 \[[\d:]+<00:00", out), out  # total and time left
    assert "validation at step 4: val/loss" in out
    assert "Epoch" not in out and not re.search(r"^step \d", out, re.M)  # the bar, not lines


def test_no_third_party_noise(tiny_store, tmp_path, caplog, recwarn):
    """Every run showed Lightning's "💡 Tip: ... litlogger" and torch's FutureWarning about the
    LeafSpec that Lightning builds; a small cohort, that an epoch is shorter than the logging
    interval (false: metrics are logged by step); a resumed run, that its checkpoint folder is
    not empty."""
    caplog.set_level(logging.INFO)
    run = tmp_path / "run"
    assert pretrain(["ecg", "--data", str(tiny_store), "--out", str(run), *ARGS,
                     "trainer.log_every_n_steps=3"]) == 0  # fmt: skip
    assert (run / "metrics.csv").read_text().count("\n") > 1  # logged, across epochs of 2
    assert pretrain(["ecg", "--out", str(run), "--resume", *ARGS[2:3], "trainer.max_steps=5",
                     "trainer.log_every_n_steps=3"]) == 0  # fmt: skip
    assert "Tip" not in caplog.text and "litlogger" not in caplog.text
    assert "Restored all states" in caplog.text  # Lightning's useful lines are kept
    known = "LeafSpec|is not empty|smaller than the logging interval"
    noise = [str(w.message) for w in recwarn if re.search(known, str(w.message))]
    assert noise == []
