"""A core install (`pip install ptacl`, no extras) loads a bundle and predicts.

Run in a subprocess whose import system refuses every optional package (what the extras of
pyproject.toml bring), as if they were not installed: prediction must not notice, and what
needs an extra must say which.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from builders import beats_ecg, write_cardiosoft_xml

#: Everything outside the core dependencies, by top-level module.
OPTIONAL = (
    "lightning", "pytorch_lightning", "lightning_fabric", "torchmetrics", "tensorboard",
    "tensorboardX", "matplotlib", "sklearn", "neurokit2", "wfdb", "nibabel", "isal",
)  # fmt: skip

SCRIPT = """
import importlib.abc, json, sys, warnings

BLOCKED = set({blocked!r})

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
        return None

sys.meta_path.insert(0, Block())
warnings.simplefilter("ignore")

import ptacl
from ptacl.cli.main import main

model = ptacl.load({bundle!r})
one = model.predict({xml!r})
table = model.predict_files([{xml!r}, {hea!r}], progress=False)
cli = main(["predict", "--model", {bundle!r}, "--ecg", {xml!r}, "--out", {csv!r},
            "--no-progress"])
train = main(["pretrain", "ecg", "--data", "nowhere", "--out", {run!r}])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print(json.dumps({{"one": one, "status": list(table["status"]), "cli": cli, "train": train,
                   "loaded": loaded}}))
"""


def test_a_bundle_predicts_without_any_extra(tiny_bundle: Path, tmp_path: Path) -> None:
    xml = write_cardiosoft_xml(tmp_path / "1000037_20205_2_0.xml", beats_ecg(70, 1.0))
    hea = tmp_path / "rec.hea"
    hea.write_text("rec 12 500 5000\n")
    script = SCRIPT.format(
        blocked=OPTIONAL,
        bundle=str(tiny_bundle),
        xml=str(xml),
        hea=str(hea),
        csv=str(tmp_path / "out.csv"),
        run=str(tmp_path / "run"),
    )
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []  # nothing optional was even attempted successfully
    assert len(result["one"]) == 30 and result["cli"] == 0  # 10 phenotypes, their bounds
    assert (tmp_path / "out.csv").is_file()
    assert not result["status"][0].startswith("error")
    # a WFDB record needs the formats extra, and its row says so
    assert "pip install 'ptacl[formats]'" in result["status"][1]
    # training needs the train extra: one line saying which, exit 2
    assert result["train"] == 2
    assert "pip install 'ptacl[train]'" in done.stderr


def test_the_hint_names_the_command_s_extra() -> None:
    from ptacl.extras import hint

    assert hint("matplotlib.pyplot", "synth") == "pip install 'ptacl[synth]'"
    assert hint("matplotlib", "pretrain") == "pip install 'ptacl[train]'"
    assert hint("sklearn", "evaluate") == "pip install 'ptacl[all]'"
    assert hint("wfdb", "predict") == "pip install 'ptacl[formats]'"
    assert hint("neurokit2") == "pip install 'ptacl[eval]'"
