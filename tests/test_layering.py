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
