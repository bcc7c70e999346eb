"""Multi-node, simulated: `torchrun --nnodes 2 --nproc-per-node 1` twice on localhost (node
ranks 0 and 1, a static rendezvous on 127.0.0.1, gloo) trains `align` with the loss curve of one
process on the same global batch — with plain steps and with the feature cache. The head has no
batch norm there: on the CPU each process normalises its own batch (no SyncBatchNorm off a GPU),
which one process on the global batch does not."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("multinode_align.py")
ROOT = Path(__file__).parents[2]
B = 2  # per process and micro-batch


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_nodes(out: Path, accumulate: int, norm: str) -> list[float]:
    port = _free_port()
    nodes = []
    for rank in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2"]
        cmd += ["--nproc-per-node", "1", "--node-rank", str(rank), "--master-addr", "127.0.0.1"]
        cmd += [
            "--master-port",
            str(port),
            str(SCRIPT),
            str(out),
            "2",
            str(B),
            str(accumulate),
            norm,
        ]
        log = (out / f"node{rank}.log").open("w")
        nodes.append(subprocess.Popen(cmd, env=_env(), stdout=log, stderr=subprocess.STDOUT))
    for rank, node in enumerate(nodes):
        rc = node.wait(timeout=600)
        assert rc == 0, (out / f"node{rank}.log").read_text()[-3000:]
    return json.loads((out / "losses.json").read_text())


def _one_process(out: Path, accumulate: int) -> list[float]:
    cmd = [sys.executable, str(SCRIPT), str(out), "1", str(2 * B), str(accumulate), "none"]
    # (one process, batches of 2B, in the order the two processes are dealt theirs)
    subprocess.run(cmd, env=_env(), check=True, capture_output=True, timeout=600)
    return json.loads((out / "losses.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("accumulate", [1, 2])
def test_two_simulated_nodes_follow_the_one_process_loss_curve(tmp_path, accumulate):
    (tmp_path / "nodes").mkdir()
    (tmp_path / "one").mkdir()
    nodes = _two_nodes(tmp_path / "nodes", accumulate, "none")
    one = _one_process(tmp_path / "one", accumulate)
    assert len(nodes) == len(one) == 3
    assert nodes == pytest.approx(one, abs=1e-5)
    assert len(set(one)) == 3  # the weights moved: a curve, not one value three times


@pytest.mark.slow
def test_two_cpu_nodes_train_a_head_with_batch_norm(tmp_path):
    """The default head (a batch norm) on several CPU processes: torch's SyncBatchNorm runs on
    GPUs only, so on the CPU each process normalises its own batch (it used to stop the run)."""
    losses = _two_nodes(tmp_path, 1, "batch")
    assert len(losses) == 3
