"""Import layering: reading runs, evaluation, export and inference never need the training stack.

Only `ptacl.training` (the Lightning stages) and `ptacl.cli` (the commands that run them) may
import `ptacl.training`; Lightning and TensorBoard are imported nowhere else either. Checked on
the source with `ast`, so a new import anywhere in a module (top level or inside a function)
breaks the test, not only one that happens to run.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import ptacl

SRC = Path(ptacl.__file__).parent
ALLOWED = ("training", "cli")  # packages under ptacl that may import the training stack


def imported_modules(source: str, package: str) -> set[str]:
    """Absolute names of every module `source` (a module of `package`) imports, anywhere in it,
    relative imports resolved."""
    parts = package.split(".")
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = parts[: len(parts) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}  # `from x import sub`
    return names


def module_imports(path: Path) -> set[str]:
    package = ".".join(["ptacl", *path.relative_to(SRC).parent.parts])
    return imported_modules(path.read_text(encoding="utf-8"), package)


def outside_training() -> list[Path]:
    paths = [p for p in sorted(SRC.rglob("*.py")) if p.relative_to(SRC).parts[0] not in ALLOWED]
    assert len(paths) > 40  # the walk found the package
    return paths


def test_nothing_outside_training_and_cli_imports_training() -> None:
    offenders = {
        str(path.relative_to(SRC)): sorted(
            m
            for m in module_imports(path)
            if m == "ptacl.training" or m.startswith("ptacl.training.")
        )
        for path in outside_training()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_nothing_outside_training_and_cli_imports_lightning_or_tensorboard() -> None:
    heavy = ("lightning", "pytorch_lightning", "tensorboard", "tensorboardX")
    offenders = {
        str(path.relative_to(SRC)): sorted(
            m for m in module_imports(path) if m.split(".")[0] in heavy
        )
        for path in outside_training()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_checker_sees_relative_and_nested_imports() -> None:
    """The walks above would pass vacuously if they missed an import form."""
    source = (
        "import torch\n"
        "def f():\n"
        "    from ..training import trainer\n"
        "    from . import probe\n"
        "    import lightning.pytorch as pl\n"
    )
    found = imported_modules(source, "ptacl.eval")
    assert {"torch", "ptacl.training", "ptacl.training.trainer", "lightning.pytorch"} <= found
    assert "ptacl.eval.probe" in found


HELP = """
import json, sys
from ptacl.cli.main import _commands, main

for command in ["", *_commands()]:
    try:
        main([command, "--help"] if command else ["--help"])
    except SystemExit:
        pass
heavy = {"torch", "lightning", "numpy", "pandas", "matplotlib"}
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & heavy)))
"""


def test_help_imports_no_heavy_library() -> None:
    """`ptacl --help` and `ptacl <command> --help` build parsers only: no torch, Lightning,
    numpy, pandas or matplotlib (they are imported after parsing), so help is quick."""
    result = subprocess.run(
        [sys.executable, "-c", HELP], capture_output=True, text=True, check=True, timeout=300
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


# --- the data layers: schema <- io <- ecg/cmr <- qc <- data ----------------------------------

#: a lower layer (a ptacl package or module) -> the ptacl packages it must not import ("*": any)
BELOW: dict[str, set[str]] = {
    "schema": {"*"},
    "phenotypes": {"*"},
    "io": {"data", "ecg", "cmr", "qc", "models", "training", "eval", "inference", "cli"},
    "ecg": {"data", "qc", "models", "training", "eval", "inference", "cli"},
    "cmr": {"data", "qc", "models", "training", "eval", "inference", "cli"},
    "qc": {"data", "models", "training", "eval", "inference", "cli"},
}


def ptacl_packages(path: Path) -> set[str]:
    """The top-level ptacl packages ('io', 'data', ...) the module at `path` imports."""
    return {m.split(".")[1] for m in module_imports(path) if m.startswith("ptacl.")}


@pytest.mark.parametrize("package", sorted(BELOW))
def test_lower_layers_import_nothing_above_them(package: str) -> None:
    """The readers, preprocessing and QC get leads and sizes from ptacl.schema, never from the
    store, so no folder-level circle (io -> data -> io) can come back."""
    folder = SRC / package
    paths = sorted(folder.rglob("*.py")) if folder.is_dir() else [SRC / f"{package}.py"]
    assert paths and all(p.is_file() for p in paths)
    forbidden = BELOW[package]
    wrong = {}
    for path in paths:
        imported = ptacl_packages(path) - {package}
        bad = imported if "*" in forbidden else imported & forbidden
        if bad:
            wrong[str(path.relative_to(SRC))] = sorted(bad)
    assert wrong == {}, f"ptacl.{package} imports layers above it"


def test_the_layer_check_sees_imports_inside_functions() -> None:
    """The rule above would pass vacuously if function-level imports were missed."""
    assert "cmr" in ptacl_packages(SRC / "data" / "prepare.py")
    assert "qc" in ptacl_packages(SRC / "inference" / "predictor.py")  # imported in a method


def test_io_holds_no_quality_control() -> None:
    """io/ reads; judging (validate_ecg, check_labels) lives in ptacl.qc."""
    import ptacl.io
    import ptacl.io.phenotypes

    assert not hasattr(ptacl.io, "validate_ecg") and not hasattr(ptacl.io, "validate_record")
    assert not hasattr(ptacl.io.phenotypes, "check_labels")
    assert not (SRC / "io" / "validate.py").exists()
