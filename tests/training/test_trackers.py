"""`trainer.loggers` and `trainer.callbacks`: the trackers and callbacks a lab already uses, named
in the run config and built as Lightning's own classes. Offline only: a logger defined here,
MLflow's file store when mlflow is installed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger

from ptacl import configs
from ptacl.cli.pretrain import main as pretrain

# tests/ is on sys.path (the root conftest), so the run config names these by import path.
HERE = "training.test_trackers"


class Recorder(Logger):
    """A tracker of the test's own: every metric it receives, one JSON line each, in `path`
    (a file, because the trainer imports this module by its path, apart from pytest's copy)."""

    def __init__(self, path: str, project: str = "") -> None:
        super().__init__()
        self.path = Path(path)
        self.project = project

    @property
    def name(self) -> str:
        return "recorder"

    @property
    def version(self) -> str:
        return "0"

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        with self.path.open("a") as file:
            file.write(json.dumps({"step": step, "project": self.project, **metrics}) + "\n")


class MarkEnd(Callback):
    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.path.write_text(str(trainer.global_step))


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _config(tmp_path: Path, trainer: dict[str, Any]) -> Path:
    """The tiny ECG MAE config with `trainer` settings added, as a user's YAML file."""
    data = yaml.safe_load((configs.root() / "tiny" / "ecg_mae.yaml").read_text())
    data["trainer"] |= trainer
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _train(store: Path, run: Path, config: Path, *extra: str) -> int:
    return pretrain(["ecg", "--data", str(store), "--out", str(run), "--config", str(config),
                     *extra])  # fmt: skip


def test_a_logger_and_a_callback_named_by_import_path_receive_the_run(tiny_store, tmp_path):
    """Loggers were fixed to CSV + TensorBoard, and no callback could be added."""
    seen, ended = tmp_path / "seen.jsonl", tmp_path / "ended.txt"
    config = _config(
        tmp_path,
        {
            "loggers": ["csv", {f"{HERE}:Recorder": {"path": str(seen), "project": "lab"}}],
            "callbacks": [{f"{HERE}:MarkEnd": {"path": str(ended)}}],
        },
    )
    assert _train(tiny_store, tmp_path / "run", config) == 0
    rows = [json.loads(line) for line in seen.read_text().splitlines()]
    train_steps = sorted(r["step"] for r in rows if "train/loss" in r)
    assert train_steps == [0, 1] and {r["project"] for r in rows} == {"lab"}
    assert any("val/loss" in r for r in rows)
    assert ended.read_text() == "2"
    assert (tmp_path / "run" / "metrics.csv").is_file()
    assert not (tmp_path / "run" / "tensorboard").exists()  # only the loggers asked for


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("neptune", "unknown logger 'neptune'; use one of csv, tensorboard, wandb, mlflow"),
        ("nowhere.module:Logger", "cannot import 'nowhere.module:Logger'"),
        (f"{HERE}:MarkEnd", f"{HERE}:MarkEnd is not a lightning.pytorch.loggers.logger.Logger"),
        ({"csv": 3}, "the settings of csv must be a mapping"),
    ],
)
def test_a_wrong_logger_is_one_line_before_the_run_folder_is_made(
    tiny_store, tmp_path, capsys, entry, message
):
    config = _config(tmp_path, {"loggers": [entry]})
    assert _train(tiny_store, tmp_path / "run", config) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_wandb_without_the_package_names_what_to_install(tiny_store, tmp_path, capsys):
    import importlib.util

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    config = _config(tmp_path, {"loggers": [{"wandb": {"project": "ptacl", "offline": True}}]})
    assert _train(tiny_store, tmp_path / "run", config) == 2
    assert "the wandb logger needs wandb: pip install wandb" in capsys.readouterr().err


def test_mlflow_file_store_receives_the_metrics(tiny_store, tmp_path, monkeypatch):
    """mlflow is not in an extra (mlflow-skinny alone brings 28 packages): run where it is."""
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for a database else
    config = _config(tmp_path, {"loggers": ["csv", {"mlflow": {"experiment_name": "ptacl"}}]})
    assert _train(tiny_store, tmp_path / "run", config) == 0
    client = mlflow.tracking.MlflowClient(tracking_uri=f"file:{tmp_path / 'run' / 'mlruns'}")
    (run,) = client.search_runs([client.get_experiment_by_name("ptacl").experiment_id])
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == [0, 1]
