"""Run many `ptacl` commands as one reproducible pipeline: the demo and the benchmark.

A pipeline is a list of `Step`s, each one `ptacl` command with its output folder. Steps run in
order, each in its own process (a crash or a leak in one stage cannot poison the next), with its
output in `logs/<step>.log` and progress lines here: one when a step starts and ends, and while
it runs a heartbeat every `heartbeat` seconds with the time elapsed and the last line of its
log, plus an estimate of the time left once every remaining step has one (the time the same
step of another seed took). A step that finished is recorded in `.done/<step>` with its command;
re-running the pipeline reuses it, so an interrupted benchmark picks up where it stopped, unless
its command changed or a step it reads (its argv names that step's output) ran again. A step
that did not finish leaves its half-written output folder, which is removed before the step runs
again (the commands refuse non-empty folders).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Seconds between two "still running" lines of a step.
HEARTBEAT_S = 30.0


class PipelineError(RuntimeError):
    """A step failed; the message names the step, its exit status and its log."""


@dataclass(frozen=True)
class Step:
    name: str  # unique; also the log and marker file name ('/' becomes '__')
    argv: tuple[str, ...]  # arguments of `ptacl`
    output: Path  # the folder or file the step writes (removed if a failed try left it)


def _slug(name: str) -> str:
    return name.replace("/", "__")


def _command(step: Step) -> list[str]:
    """The process a step runs (a function so that tests can run something quicker)."""
    return [sys.executable, "-m", "ptacl", *step.argv]


def _kind(name: str) -> str:
    """'seed2/train/ptacl' -> 'train/ptacl': steps of one kind take about as long."""
    return re.sub(r"^seed\d+/", "", name)


def _marker(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _last_line(log: Path, width: int = 100) -> str:
    """The last non-empty line of a log (progress bars end lines with '\\r'), shortened."""
    try:
        with log.open("rb") as f:
            f.seek(max(0, log.stat().st_size - 4096))
            tail = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [s.strip() for s in re.split(r"[\r\n]", tail) if s.strip()]
    if not lines:
        return ""
    line = lines[-1]
    return line if len(line) <= width else line[: width - 1] + "…"


def _why_rerun(step: Step, marker: Path, rebuilt: set[str]) -> str | None:
    """None when a finished step can be reused, else why it runs again."""
    if not (marker.exists() and step.output.exists()):
        return ""  # never finished: runs, nothing to explain
    if _marker(marker).get("command") != ["ptacl", *step.argv]:
        return "its command changed since it ran"
    inputs = [a for a in step.argv if a in rebuilt]
    if inputs:
        return f"{inputs[0]} was just rebuilt"
    return None


def run_steps(
    steps: Sequence[Step],
    root: Path,
    *,
    quiet: bool = False,
    heartbeat: float = HEARTBEAT_S,
    rebuilt: Collection[Path] = (),
) -> dict[str, float]:
    """Run `steps` in order under `root`, reusing finished ones. Returns seconds per step run
    (0.0 for a reused step). `rebuilt`: outputs an earlier call rebuilt (their readers run again).
    Raises PipelineError on the first failure; `quiet` prints nothing."""
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate step names in {names}")
    done_dir, log_dir = root / ".done", root / "logs"
    done_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    say = (lambda text: None) if quiet else (lambda text: print(text, flush=True))
    changed = {str(p) for p in rebuilt}
    # seconds a step of each kind took: from earlier runs' markers, then from this run
    took_by_kind = {
        _kind(s.name): float(m["seconds"])
        for s in steps
        if "seconds" in (m := _marker(done_dir / _slug(s.name)))
    }
    seconds: dict[str, float] = {}
    width = len(str(len(steps)))
    for i, step in enumerate(steps, 1):
        marker, log = done_dir / _slug(step.name), log_dir / f"{_slug(step.name)}.log"
        head = f"[{i:>{width}}/{len(steps)}] {step.name}"
        why = _why_rerun(step, marker, changed)
        if why is None:
            seconds[step.name] = 0.0
            say(f"{head}: reused")
            continue
        marker.unlink(missing_ok=True)
        if step.output.exists():  # what a failed or interrupted try (or an outdated run) left
            if step.output.is_dir():
                shutil.rmtree(step.output)
            else:
                step.output.unlink()
        expected = took_by_kind.get(_kind(step.name))
        about = f", about {expected:.0f} s" if expected else ""
        say(f"{head}: running{f' again ({why})' if why else ''}{about} (log: {log})")
        start = time.perf_counter()
        with log.open("w", encoding="utf-8") as out:
            out.write(f"$ ptacl {shlex.join(step.argv)}\n")
            out.flush()
            process = subprocess.Popen(_command(step), stdout=out, stderr=subprocess.STDOUT)
            try:
                while True:
                    try:
                        code = process.wait(timeout=heartbeat)
                        break
                    except subprocess.TimeoutExpired:
                        last = _last_line(log)
                        elapsed = f"{time.perf_counter() - start:.0f} s"
                        say(f"{head}: running, {elapsed}{about}" + (f" | {last}" if last else ""))
            except BaseException:  # Ctrl-C and the like: leave no orphan behind
                process.kill()
                process.wait()
                raise
        took = time.perf_counter() - start
        if code:
            tail = "".join(log.read_text(encoding="utf-8", errors="replace").splitlines(True)[-15:])
            raise PipelineError(
                f"step {step.name} failed with exit status {code} after {took:.0f} s; "
                f"log: {log}\n{tail}"
            )
        marker.write_text(
            json.dumps({"command": ["ptacl", *step.argv], "seconds": round(took, 1)}) + "\n",
            encoding="utf-8",
        )
        seconds[step.name] = took
        changed.add(str(step.output))
        took_by_kind[_kind(step.name)] = took
        left = [s for s in steps[i:] if not (done_dir / _slug(s.name)).exists()]
        eta = [took_by_kind.get(_kind(s.name)) for s in left]
        estimate = f"; ~{sum(eta):.0f} s left for {len(left)} step(s)" if None not in eta else ""
        say(f"{head}: done in {took:.0f} s{estimate if left else ''}")
    return seconds
