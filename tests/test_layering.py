"""Import layering: one-way from schema at the bottom to the commands at the top (`LAYERS`).

Every module imports only its own layer and those below; only `ptacl.training` (the Lightning
stages) and `ptacl.cli` (the commands that run them) import `ptacl.training`, and Lightning and
TensorBoard are imported nowhere else either. Checked on the source with `ast`, so a new import
anywhere in a module (top level, inside a function, under TYPE_CHECKING) breaks the test, not
only one that happens to run.
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


# --- the whole order, bottom to top ----------------------------------------------------------

#: The layers of ptacl, lowest first. A module may import its own layer and the layers below it,
#: never one above (type-only imports under TYPE_CHECKING count too: a type from above is a
#: dependency on above). `import ptacl` itself (the root package, for `__version__`) is allowed
#: anywhere: it imports nothing until `ptacl.load` or `ptacl.retrieve` is called.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "schema", "phenotypes", "extras", "threads"),  # names, constants, the error base
    ("atomic", "config", "configs", "markdown"),  # safe writes, typed configs, tables
    ("io",),  # raw files -> arrays (leads and sizes from schema, never from the store)
    ("ecg", "cmr"),  # preprocessing
    ("qc",),  # judging records and labels
    ("synth",),  # the synthetic cohort, whose marker prepare recognises
    ("data",),  # the prepared store, its datasets, prepare
    ("models", "losses"),
    ("embedding",),  # an ECG embedded over its crops; the embeddings file
    ("inference",),  # the read side of bundles: what the core install needs
    ("runs", "run_weights", "run_write", "stage_config"),  # run folders: read, weights, written;
    # a stage's config with its init runs' architecture (all without Lightning)
    ("eval",),  # retrieval, probes, reports
    ("export",),  # the write side of bundles: probe fit, intervals, model card
    ("benchmark",),  # the benchmark, the demo and their job scheduler (benchmark/pipeline.py)
    ("training",),  # the Lightning stages
    ("cli", "__init__", "__main__"),  # the commands and the public facade
)
LEVEL = {unit: level for level, units in enumerate(LAYERS) for unit in units}


def unit_of(path: Path, root: Path = SRC) -> str:
    """The layer unit of a module: its top-level package under ptacl, or its own name."""
    first = path.relative_to(root).parts[0]
    return first.removesuffix(".py")


def layer_violations(root: Path = SRC) -> dict[str, list[str]]:
    """{module path: the units above its own layer that it imports} for every module under
    `root` (a ptacl source tree); a unit missing from LAYERS counts as above everything."""
    wrong = {}
    for path in sorted(root.rglob("*.py")):
        package = ".".join(["ptacl", *path.relative_to(root).parent.parts])
        imported = {
            m.split(".")[1]
            for m in imported_modules(path.read_text(encoding="utf-8"), package)
            if m.startswith("ptacl.")
        }
        level = LEVEL.get(unit_of(path, root), len(LAYERS))
        above = sorted(u for u in imported if LEVEL.get(u, len(LAYERS)) > level)
        if above:
            wrong[str(path.relative_to(root))] = above
    return wrong


def ptacl_packages(path: Path) -> set[str]:
    """The top-level ptacl packages ('io', 'data', ...) the module at `path` imports."""
    return {m.split(".")[1] for m in module_imports(path) if m.startswith("ptacl.")}


def test_every_module_imports_only_its_own_layer_and_below() -> None:
    assert layer_violations() == {}


#: Inside a package, the files split out of one (issue 22) import one way too: the parts below
#: never import the file that assembles them. Each tuple is a level, lowest first; a file not
#: named here is not constrained by this.
INNER: dict[str, tuple[tuple[str, ...], ...]] = {
    "training": (("plugins",), ("callbacks", "loggers"), ("trainer",)),
    "data": (("splits", "store"), ("qc_csv", "process", "store_write"), ("prepare",)),
    "inference": (("bundle_format",), ("bundle",)),
    "eval": (("ranking", "figures"), ("retrieval", "collapse", "endpoint_report"), ("report",)),
}


def test_the_parts_split_out_of_a_file_import_one_way() -> None:
    wrong = {}
    for package, levels in INNER.items():
        level = {name: k for k, names in enumerate(levels) for name in names}
        for name, k in level.items():
            path = SRC / package / f"{name}.py"
            imported = {m.split(".")[2] for m in module_imports(path) if m.count(".") >= 2
                        and m.startswith(f"ptacl.{package}.")}  # fmt: skip
            above = sorted(m for m in imported if m != name and level.get(m, -1) >= k)
            if above:
                wrong[f"{package}/{name}.py"] = above
    assert wrong == {}


def test_every_package_and_module_has_a_layer() -> None:
    """A new package must be placed in LAYERS (else the order says nothing about it)."""
    units = {unit_of(p) for p in SRC.rglob("*.py")}
    assert units - set(LEVEL) == set()
    assert set(LEVEL) - units == set(), "LAYERS names a unit that no longer exists"
    assert len(LEVEL) == sum(len(units) for units in LAYERS), "a unit placed twice"


def test_the_layer_check_catches_a_planted_upward_import(tmp_path: Path) -> None:
    """The order would pass vacuously if the check missed an import form: a tree with an upward
    import at the top, inside a function, relative or under TYPE_CHECKING is caught, a
    downward one is not, and an unplaced package counts as above everything."""
    files = {
        "data/ok.py": "from ptacl.io import read_ecg\nfrom ..schema import LEADS\nimport ptacl\n",
        "data/top.py": "import ptacl.eval.probe\n",
        "io/nested.py": "def f():\n    from ..qc import check_ecg\n",
        "inference/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from ptacl.export.write import export_bundle\n",
        "eval/new.py": "from ptacl.somewhere_new import x\n",
        "cli/main.py": "from ptacl.training import trainer\nfrom ptacl.export import run\n",
    }
    for name, source in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source, encoding="utf-8")
    assert layer_violations(tmp_path) == {
        "data/top.py": ["eval"],
        "io/nested.py": ["qc"],
        "inference/typed.py": ["export"],
        "eval/new.py": ["somewhere_new"],
    }


def test_the_layer_check_sees_imports_inside_functions() -> None:
    """The rule above would pass vacuously if function-level imports were missed."""
    assert "cmr" in ptacl_packages(SRC / "data" / "process.py")
    assert "qc" in ptacl_packages(SRC / "inference" / "predictor.py")  # imported in a method


def test_io_holds_no_quality_control() -> None:
    """io/ reads; judging (validate_ecg, check_labels) lives in ptacl.qc."""
    import ptacl.io
    import ptacl.io.phenotypes

    assert not hasattr(ptacl.io, "validate_ecg") and not hasattr(ptacl.io, "validate_record")
    assert not hasattr(ptacl.io.phenotypes, "check_labels")
    assert not (SRC / "io" / "validate.py").exists()
