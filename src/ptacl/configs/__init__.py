"""The shipped configs, as package data so that an installed wheel has them too.

    ecg_mae.yaml, cmr_mae.yaml, ...   the paper's sizes (a GPU and a real cohort)
    demo/*.yaml                       `ptacl demo` and the demo/medium benchmark presets
    small/*.yaml, tiny/*.yaml         the small preset; seconds on a CPU (tests, `--preset tiny`)

`--config` of every command takes a file path or one of these names (`tiny/ptacl.yaml`, or
without `.yaml`): a file that exists wins, so a user's own `ecg_mae.yaml` is never shadowed.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["names", "path", "root"]


def root() -> Path:
    """The folder of the shipped configs. A real folder: the paths are handed to subprocesses
    (`ptacl benchmark` steps) and written into run configs, so a zipped install cannot serve."""
    folder = files(__name__)
    if not isinstance(folder, Path):
        raise RuntimeError(f"ptacl's configs are not on the file system ({folder}); install "
                           "ptacl unzipped (pip does)")  # fmt: skip
    return folder


def names() -> list[str]:
    """Every shipped config by name, e.g. ['cmr_mae.yaml', ..., 'tiny/ptacl.yaml']."""
    base = root()
    return sorted(p.relative_to(base).as_posix() for p in base.rglob("*.yaml"))


def path(name: str | Path) -> Path:
    """The shipped config `name` ('tiny/ptacl.yaml' or 'tiny/ptacl'); KeyError lists them all."""
    text = Path(name).as_posix()
    text = text if text.endswith((".yaml", ".yml")) else f"{text}.yaml"
    if text in names():
        return root() / text
    raise KeyError(f"{name}: no such file, nor a shipped config ({', '.join(names())})")
