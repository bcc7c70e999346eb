"""Loading a bundle and predicting imports no training stack, logger or plotting library.

`ptacl.load(bundle).predict(file)` runs in a fresh interpreter for each kind of bundle with a
head of its own (an aligned run's: probe + projection; a fine-tuned run's: attention pooling),
and the modules it imported are listed afterwards. Unlike tests/inference/test_core_install.py
nothing is blocked: a stray `import lightning` would succeed here and is caught by name.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from builders import beats_ecg, write_cardiosoft_xml

#: Top-level modules prediction must not import (the training stack, loggers, plotting).
HEAVY = ("lightning", "pytorch_lightning", "lightning_fabric", "tensorboard", "matplotlib")

SCRIPT = """
import json, sys
import ptacl

model = ptacl.load({bundle!r})
values = model.predict({xml!r})
print(json.dumps({{"values": values, "loaded": sorted({{m.split(".")[0] for m in sys.modules}})}}))
"""


@pytest.mark.parametrize("kind", ["aligned", "finetuned"])
def test_predicting_imports_no_training_logging_or_plotting(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    bundle = request.getfixturevalue(f"{kind}_bundle")
    xml = write_cardiosoft_xml(tmp_path / "1000037_20205_2_0.xml", beats_ecg(70, 1.0))
    script = textwrap.dedent(SCRIPT.format(bundle=str(bundle), xml=str(xml)))
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=600
    )
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(out["values"]) in (10, 30)  # it did predict: 10 phenotypes (+ interval bounds)
    assert "torch" in out["loaded"]  # and the check sees what was imported
    assert sorted(set(out["loaded"]) & set(HEAVY)) == []
