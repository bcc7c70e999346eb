"""Optional dependencies: which `pip install 'ptacl[...]'` extra brings each one.

The core install is what `ptacl.load(bundle).predict(file)` needs (torch, numpy, scipy, pandas,
PyYAML, einops, PyWavelets, safetensors, defusedxml, tqdm, pydicom). Everything else is
imported only by the modules that use it (training modules import Lightning at their top; the
readers, the probe and the R-peak comparison import theirs through `require`), and a missing one
fails naming the extra to install (`require`, and `ptacl.cli.main` for a command), not with a
bare ModuleNotFoundError deep in a traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: The extras of pyproject.toml and the importable modules each brings (train and all include
#: formats, as pyproject.toml says).
EXTRAS: dict[str, tuple[str, ...]] = {
    "formats": ("wfdb", "nibabel", "isal", "h5py"),
    "train": ("lightning", "pytorch_lightning", "tensorboard", "matplotlib", "wfdb", "nibabel"),
    "eval": ("sklearn", "matplotlib", "neurokit2"),
    "synth": ("nibabel", "matplotlib"),
}
#: Module -> the smallest extra that installs it.
EXTRA_OF: dict[str, str] = {
    "wfdb": "formats",
    "nibabel": "formats",
    "h5py": "formats",
    "lightning": "train",
    "pytorch_lightning": "train",
    "tensorboard": "train",
    "matplotlib": "train",
    "sklearn": "eval",
    "neurokit2": "eval",
}
#: `ptacl` command -> the extra it needs beyond the core.
COMMAND_EXTRA: dict[str, str] = {
    "prepare": "formats",
    "pretrain": "train",
    "simclr": "train",
    "align": "train",
    "finetune": "train",
    "export": "train",
    "embed": "train",
    "evaluate": "all",
    "compare": "eval",
    "benchmark": "all",
    "synth": "synth",
}


class MissingExtra(ModuleNotFoundError):
    """An optional dependency is not installed; the message names the extra that brings it."""


def hint(module: str, command: str | None = None) -> str:
    """The pip line that installs `module` (a top-level package of `EXTRA_OF`): the extra of
    `command` when that brings the module, else the module's own smallest extra."""
    root = module.split(".")[0]
    extra = COMMAND_EXTRA.get(command or "")
    if extra != "all" and root not in EXTRAS.get(extra or "", ()):
        extra = EXTRA_OF.get(root, "all")
    return f"pip install 'ptacl[{extra}]'"


def require(module: str, what: str) -> ModuleType:
    """Import `module`, or raise MissingExtra saying what needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtra(
            f"{what} needs {module.split('.')[0]}, which is not installed: {hint(module)}"
        ) from err
