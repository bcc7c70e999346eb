"""The lower layers stay below: schema <- io <- ecg/cmr <- qc <- data <- training/eval/inference.

Read from the source with `ast` (every import, also those inside functions), so a circle
between folders fails here and not as a confusing ImportError at some later import order.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ptacl

ROOT = Path(ptacl.__file__).parent

#: package (a folder or a module of ptacl) -> top-level ptacl packages it must not import
FORBIDDEN: dict[str, set[str]] = {
    "schema": {"*"},
    "phenotypes": {"*"},
    "io": {"data", "ecg", "cmr", "qc", "models", "training", "eval", "inference", "cli"},
    "ecg": {"data", "qc", "models", "training", "eval", "inference", "cli"},
    "cmr": {"data", "qc", "models", "training", "eval", "inference", "cli"},
    "qc": {"data", "models", "training", "eval", "inference", "cli"},
}


def ptacl_imports(path: Path) -> set[str]:
    """Top-level ptacl packages imported anywhere in the module at `path` ('io', 'data', ...)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = path.relative_to(ROOT.parent).with_suffix("").parts
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = list(package[: len(package) - node.level])
                names = [".".join([*base, *([node.module] if node.module else [])])]
                if not node.module:
                    names = [".".join([*base, alias.name]) for alias in node.names]
            else:
                names = [node.module or ""]
                if node.module == "ptacl":  # from ptacl import io
                    names = [f"ptacl.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "ptacl" and len(parts) > 1:
                found.add(parts[1])
    return found


def modules_of(package: str) -> list[Path]:
    folder = ROOT / package
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [ROOT / f"{package}.py"]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_import_nothing_above_them(package):
    forbidden = FORBIDDEN[package]
    wrong = {}
    for path in modules_of(package):
        imported = ptacl_imports(path) - {package}
        bad = imported if "*" in forbidden else imported & forbidden
        if bad:
            wrong[str(path.relative_to(ROOT))] = sorted(bad)
    assert not wrong, f"ptacl.{package} imports layers above it: {wrong}"


def test_the_checker_sees_imports_inside_functions():
    """The rule above would pass vacuously if function-level imports were missed."""
    assert "cmr" in ptacl_imports(ROOT / "data" / "prepare.py")
    assert "qc" in ptacl_imports(ROOT / "inference" / "predictor.py")  # imported in a method


def test_io_holds_no_quality_control():
    """io/ reads; judging (validate_ecg, check_labels) lives in ptacl.qc."""
    import ptacl.io
    import ptacl.io.phenotypes

    assert not hasattr(ptacl.io, "validate_ecg") and not hasattr(ptacl.io, "validate_record")
    assert not hasattr(ptacl.io.phenotypes, "check_labels")
    assert not (ROOT / "io" / "validate.py").exists()
