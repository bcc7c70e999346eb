"""benchmarks/throughput.py and benchmarks/device_check.sh on the CPU at the tiny size."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"stage", "size", "device", "precision", "compile", "samples_per_s", "tflops", "mfu"}


def _throughput():
    spec = importlib.util.spec_from_file_location("throughput", ROOT / "benchmarks/throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return env


def test_cpu_attention_flops_are_counted():
    q = torch.randn(2, 4, 30, 8, requires_grad=True)
    counts = []
    for mapping in (None, _throughput().cpu_sdpa_flops()):
        counter = FlopCounterMode(display=False, custom_mapping=mapping)
        with counter:
            torch.nn.functional.scaled_dot_product_attention(q, q, q).sum().backward()
        counts.append(counter.get_total_flops())
    assert counts[0] == 0  # torch's own table has no CPU fused attention
    forward = 2 * (2 * 2 * 4 * 30 * 30 * 8)  # QKᵀ and PV: 2 matmuls of 2·B·h·L²·d
    # torch's backward formula (as for CUDA flash): 5 such matmuls, the scores recomputed
    assert counts[1] == forward * 3.5


def test_throughput_runs_both_precisions_side_by_side(tmp_path):
    out = tmp_path / "t.jsonl"
    cmd = [sys.executable, str(ROOT / "benchmarks/throughput.py"), "--stage", "embed"]
    cmd += ["--size", "tiny", "--steps", "1", "--repeats", "2", "--threads", "1"]
    cmd += ["--json", str(out)]
    text = subprocess.run(cmd, check=True, capture_output=True, text=True, env=_env()).stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["stage"], r["precision"]) for r in rows] == [
        ("embed", "32-true"),
        ("embed", "bf16-mixed"),
    ]
    for r in rows:
        assert KEYS <= r.keys()
        assert r["samples_per_s"] > 0 and r["gflop_per_sample"] > 0 and 0 < r["mfu"]
        assert len(r["step_s_blocks"]) == 2
    assert rows[0]["gflop_per_sample"] == rows[1]["gflop_per_sample"]
    assert "bf16 / fp32 speed" in text


@pytest.mark.skipif(sys.platform != "linux", reason="a bash script")
def test_device_check_runs_on_the_cpu_at_tiny_size(tmp_path):
    env = dict(_env(), OUT=str(tmp_path))
    cmd = [str(ROOT / "benchmarks/device_check.sh"), "--device", "cpu", "--size", "tiny"]
    subprocess.run([*cmd, "--threads", "1"], check=True, capture_output=True, env=env)
    rows = [json.loads(line) for line in (tmp_path / "device_check_cpu_tiny.jsonl").open()]
    steps = [r for r in rows if "stage" in r]
    assert [(r["stage"], r["precision"], r["compile"]) for r in steps] == [
        ("align", "bf16-mixed", False),
        ("align", "bf16-mixed", True),
    ]
    assert all(r["gflop_per_sample"] > 0 and r["samples_per_s"] > 0 for r in steps)
    (fed,) = [r for r in rows if r.get("check") == "loader_fed_align"]
    assert fed["fed_samples_per_s"] > 0 and fed["loader_items_per_s"] > 0
    assert fed["verdict"] in ("loader-bound", "device-bound")
    assert [r["k"] for r in rows if "k" in r] == [1, 4]
    parts = {r["check"]: r["rc"] for r in rows if "rc" in r}
    assert parts == {"throughput": 0, "loader_fed": 0, "accumulation_memory": 0}
