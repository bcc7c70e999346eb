"""Where a stage's metrics go (`trainer.loggers`): metrics.csv in the run folder, appended across
resumes (what `ptacl compare` and the figures read), TensorBoard when installed, and wandb,
mlflow or any Lightning logger named by its import path (`build_loggers`)."""

from __future__ import annotations

import csv
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from ptacl.training.plugins import config_entries, import_class


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing metrics.csv; on --resume we append to it."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = list(csv.DictReader(file).fieldnames or [])


class AppendingCSVLogger(CSVLogger):
    """CSVLogger writing metrics.csv straight into the run folder, appending across resumes."""

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


#: Loggers known by name: Lightning's own classes, and the keyword that points each at the run
#: folder unless the entry says otherwise. mlflow without a tracking_uri (or
#: MLFLOW_TRACKING_URI) writes a file store, RUN/mlruns, which MLflow 3 accepts only with
#: MLFLOW_ALLOW_FILE_STORE=true; a lab's server is {mlflow: {tracking_uri: ...}}.
LOGGERS = {
    "csv": ("ptacl.training.loggers:AppendingCSVLogger", {}),
    "tensorboard": ("lightning.pytorch.loggers:TensorBoardLogger", {}),
    "wandb": ("lightning.pytorch.loggers:WandbLogger", {"save_dir": "."}),
    "mlflow": ("lightning.pytorch.loggers:MLFlowLogger", {"save_dir": "mlruns"}),
}
#: The Python package each named logger needs beyond Lightning.
_LOGGER_PACKAGE = {"wandb": "wandb", "mlflow": "mlflow", "tensorboard": "tensorboard"}


def logger_class(name: str, where: str) -> tuple[type, dict[str, Any]]:
    """The class of a `trainer.loggers` entry and its run-folder defaults (`LOGGERS`)."""
    import importlib.util

    from lightning.pytorch.loggers import Logger

    from ptacl.config import ConfigError

    if ":" not in name and name not in LOGGERS:
        raise ConfigError(
            f"{where}: unknown logger {name!r}; use one of {', '.join(LOGGERS)} or a Lightning "
            "logger's import path, package.module:Class"
        )
    package = _LOGGER_PACKAGE.get(name)
    if package and name != "tensorboard" and importlib.util.find_spec(package) is None:
        raise ConfigError(f"{where}: the {name} logger needs {package}: pip install {package}")
    path, defaults = LOGGERS.get(name, (name, {}))
    return import_class(path, Logger, where), defaults


def build_loggers(entries: Sequence[str | dict[str, Any]], run_dir: Path) -> list[Any]:
    """The `trainer.loggers` entries, each constructed with its settings; named ones write into the run
    folder by default (metrics.csv, tensorboard/, wandb/, mlruns/)."""
    from ptacl.config import ConfigError

    loggers = []
    for i, (name, kwargs) in enumerate(config_entries(entries, "trainer.loggers")):
        where = f"trainer.loggers[{i}]"
        if name == "csv":
            loggers.append(AppendingCSVLogger(run_dir, name="", version="", **kwargs))
            continue
        if name == "tensorboard":
            loggers += _tensorboard(run_dir, **kwargs)
            continue
        cls, defaults = logger_class(name, where)
        settings = {k: str(run_dir / v) for k, v in defaults.items()} | kwargs
        try:
            loggers.append(cls(**settings))
        except TypeError as e:
            raise ConfigError(f"{where}: {name} does not take these settings: {e}") from None
    return loggers


def _tensorboard(run_dir: Path, **kwargs: Any) -> list[TensorBoardLogger]:
    """The TensorBoard logger when tensorboard is installed (the 'train' extra brings it);
    without it, a warning: metrics.csv holds the same curves."""
    import importlib.util

    if (
        importlib.util.find_spec("tensorboard") is None
        and importlib.util.find_spec("tensorboardX") is None
    ):
        from ptacl.extras import hint

        warnings.warn(
            f"tensorboard is not installed, so no TensorBoard log ({hint('tensorboard')}); "
            "metrics.csv has the same curves",
            stacklevel=3,
        )
        return []
    settings = {"name": "tensorboard", "version": "", "default_hp_metric": False} | kwargs
    return [TensorBoardLogger(run_dir, **settings)]
