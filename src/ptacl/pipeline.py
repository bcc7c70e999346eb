"""Run many `ptacl` commands as one reproducible pipeline: the demo and the benchmark.

A pipeline is a list of `Step`s, each one `ptacl` command with its output folder. Steps run in
order, each in its own process (a crash or a leak in one stage cannot poison the next), with its
output in `logs/<step>.log` and one progress line here. A step that finished is recorded in
`.done/<step>` with its command; re-running the pipeline reuses it, so an interrupted benchmark
picks up where it stopped. A step that did not finish leaves its half-written output folder,
which is removed before the step runs again (the commands refuse non-empty folders).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class PipelineError(RuntimeError):
    """A step failed; the message names the step, its exit status and its log."""


@dataclass(frozen=True)
class Step:
    name: str  # unique; also the log and marker file name ('/' becomes '__')
    argv: tuple[str, ...]  # arguments of `ptacl`
    output: Path  # the folder or file the step writes (removed if a failed try left it)


def _slug(name: str) -> str:
    return name.replace("/", "__")


def run_steps(steps: Sequence[Step], root: Path, *, quiet: bool = False) -> dict[str, float]:
    """Run `steps` in order under `root`, reusing finished ones. Returns seconds per step run
    (0.0 for a reused step). Raises PipelineError on the first failure."""
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate step names in {names}")
    done_dir, log_dir = root / ".done", root / "logs"
    done_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    width = len(str(len(steps)))
    for i, step in enumerate(steps, 1):
        marker, log = done_dir / _slug(step.name), log_dir / f"{_slug(step.name)}.log"
        head = f"[{i:>{width}}/{len(steps)}] {step.name}"
        if marker.exists() and step.output.exists():
            seconds[step.name] = 0.0
            if not quiet:
                print(f"{head}: reused", flush=True)
            continue
        if step.output.exists():  # what a failed or interrupted try left
            if step.output.is_dir():
                shutil.rmtree(step.output)
            else:
                step.output.unlink()
        command = [sys.executable, "-m", "ptacl", *step.argv]
        if not quiet:
            print(f"{head}: running (log: {log})", flush=True)
        start = time.perf_counter()
        with log.open("w", encoding="utf-8") as out:
            out.write(f"$ ptacl {shlex.join(step.argv)}\n")
            out.flush()
            code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
        took = time.perf_counter() - start
        if code.returncode:
            tail = "".join(log.read_text(encoding="utf-8", errors="replace").splitlines(True)[-15:])
            raise PipelineError(
                f"step {step.name} failed with exit status {code.returncode} after {took:.0f} s; "
                f"log: {log}\n{tail}"
            )
        marker.write_text(
            json.dumps({"command": ["ptacl", *step.argv], "seconds": round(took, 1)}) + "\n",
            encoding="utf-8",
        )
        seconds[step.name] = took
        if not quiet:
            print(f"{head}: done in {took:.0f} s", flush=True)
    return seconds
