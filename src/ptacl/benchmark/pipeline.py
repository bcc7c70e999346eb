"""Run many `ptacl` commands as one reproducible pipeline: the demo and the benchmark.

A pipeline is a list of `Step`s, each one `ptacl` command with its output folder. Steps run in
order (or `jobs` at once, each after the steps whose outputs it names), each in its own process (a crash or a leak in one stage cannot poison the next), with its
output in `logs/<step>.log` and progress lines here: one when a step starts and ends, and while
it runs a heartbeat every `heartbeat` seconds with the time elapsed and the last line of its
log, plus an estimate of the time left once every remaining step has one (the time the same
step of another seed took). A step that finished is recorded in `.done/<step>` with its command;
re-running the pipeline reuses it, so an interrupted benchmark picks up where it stopped, unless
its command changed or a step it reads (its argv names that step's output) ran again. A step
that did not finish leaves its half-written output folder, which is removed before the step runs
again (the commands refuse non-empty folders). The cores are shared out over the steps running
and again whenever one starts or ends (`ptacl.threads`): a step left running alone gets them all.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ptacl.atomic import DIE_WITH_PARENT_ENV
from ptacl.errors import PtaclError
from ptacl.threads import THREADS_FILE_ENV, shares, usable_cores, write_share

#: Seconds between two "still running" lines of a step.
HEARTBEAT_S = 30.0


class PipelineError(PtaclError, RuntimeError):
    """A step failed; the message names the step, its exit status and its log."""


@dataclass(frozen=True)
class Step:
    name: str  # unique; also the log and marker file name ('/' becomes '__')
    argv: tuple[str, ...]  # arguments of `ptacl`
    output: Path  # the folder or file the step writes (removed if a failed try left it)
    accept: tuple[int, ...] = (0,)  # exit statuses that count as finished


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


def _inputs(step: Step, steps: Sequence[Step]) -> list[str]:
    """Names of the other steps whose output this step's argv names: it reads them."""
    argv = set(step.argv)
    return [s.name for s in steps if s is not step and str(s.output) in argv]


@dataclass
class _Running:
    step: Step
    process: subprocess.Popen
    out: IO[str]
    start: float
    head: str
    about: str
    beat: float
    share: Path  # the file holding this step's share of the cores (ptacl.threads)


def run_steps(
    steps: Sequence[Step],
    root: Path,
    *,
    quiet: bool = False,
    heartbeat: float = HEARTBEAT_S,
    rebuilt: Collection[Path] = (),
    jobs: int = 1,
    share_cores: bool = False,
) -> dict[str, float]:
    """Run `steps` under `root`, reusing finished ones. Returns seconds per step run (0.0 for a
    reused step). `rebuilt`: outputs an earlier call rebuilt (their readers run again).

    `jobs` steps run at once, each started, in list order, as soon as every step whose output
    its argv names has finished; with jobs=1 the steps run one after another in list order.
    Each step gets its share of the cores (OMP_NUM_THREADS; one the user set is kept); with
    `share_cores` the shares are dealt out again whenever a step starts or ends, and training
    steps follow them between steps (`ptacl.threads`): faster when fewer steps run than there
    are slots, but a run's last digits then depend on when its neighbours ended (torch's
    reductions split by thread count), so the benchmark keeps each step's count fixed.
    Raises PipelineError on the first failure (after the steps still running have finished, so
    their work is kept); `quiet` prints nothing."""
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate step names in {names}")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    scheduler = _Scheduler(steps, root, quiet, heartbeat, rebuilt, jobs, share_cores)
    return scheduler.run()


class _Scheduler:
    """`run_steps`' state and its parts, one job each: which steps may start (`start_ready`),
    whether one must run (`due`), starting one (`launch`), the cores' shares (`reshare`),
    watching the running ones (`poll`) and recording one that ended (`finish`)."""

    def __init__(
        self,
        steps: Sequence[Step],
        root: Path,
        quiet: bool,
        heartbeat: float,
        rebuilt: Collection[Path],
        jobs: int,
        share_cores: bool,
    ) -> None:
        self.steps, self.jobs, self.heartbeat, self.quiet = steps, jobs, heartbeat, quiet
        self.done_dir, self.log_dir = root / ".done", root / "logs"
        self.done_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.changed = {str(p) for p in rebuilt}
        # seconds a step of each kind took: from earlier runs' markers, then from this run
        self.took_by_kind = {
            _kind(s.name): float(m["seconds"])
            for s in steps
            if "seconds" in (m := _marker(self.done_dir / _slug(s.name)))
        }
        self.inputs = {s.name: _inputs(s, steps) for s in steps}
        self.number = {s.name: i for i, s in enumerate(steps, 1)}
        self.width = len(str(len(steps)))
        self.seconds: dict[str, float] = {}
        self.pending = list(steps)
        self.running: list[_Running] = []
        self.failure: PipelineError | None = None
        self.cores = usable_cores()
        # a count the user set is kept, not shared
        self.fixed_threads = "OMP_NUM_THREADS" in os.environ
        self.share_cores = share_cores
        self.share_dir = root / ".threads"
        if share_cores:
            self.share_dir.mkdir(exist_ok=True)

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)

    def run(self) -> dict[str, float]:
        try:
            while self.pending or self.running:
                self.start_ready()
                if self.failure is not None and not self.running:
                    break
                if not self.running:
                    continue  # everything started so far was reused
                time.sleep(min(0.2, self.heartbeat))
                self.poll()
        except BaseException:  # Ctrl-C and the like: leave no orphan behind
            for job in self.running:
                job.process.kill()
                job.process.wait()
                job.out.close()
                job.share.unlink(missing_ok=True)
            raise
        if self.failure is not None:
            raise self.failure
        return self.seconds

    def start_ready(self) -> None:
        """Start what may start: in list order, its inputs finished, a free slot."""
        busy = {s.name for s in self.pending} | {r.step.name for r in self.running}
        starting: list[Step] = []
        for step in list(self.pending):
            if self.failure is not None or len(self.running) + len(starting) >= self.jobs:
                break
            if any(name in busy for name in self.inputs[step.name]):
                if self.jobs == 1:
                    break  # one at a time: strictly in list order
                continue
            self.pending.remove(step)
            if self.due(step):  # a reused step stays in `busy` this round: frees readers next
                starting.append(step)
        for step, threads in zip(starting, self.reshare(starting)):
            self.launch(step, threads)

    def poll(self) -> None:
        """Record the steps that ended, and say how the others are doing every heartbeat."""
        for job in list(self.running):
            code = job.process.poll()
            if code is not None:
                self.running.remove(job)
                job.share.unlink(missing_ok=True)  # no share files left after the run
                self.finish(job, code)
                self.reshare()  # what it used goes to the steps still running
            elif time.perf_counter() >= job.beat:
                job.beat += self.heartbeat
                last = _last_line(self.log_dir / f"{_slug(job.step.name)}.log")
                elapsed = f"{time.perf_counter() - job.start:.0f} s"
                self.say(
                    f"{job.head}: running, {elapsed}{job.about}" + (f" | {last}" if last else "")
                )

    def reshare(self, new: Sequence[Step] = ()) -> list[int]:
        """Share the cores out again over the running steps and `new` ones (in start order),
        telling each running step its share; returns the shares of `new`."""
        if self.fixed_threads:
            return [0] * len(new)
        if not self.share_cores:
            return [max(1, self.cores // self.jobs)] * len(new)
        threads = shares(len(self.running) + len(new), self.cores)
        for job, n in zip(self.running, threads):
            write_share(job.share, n)
        return threads[len(self.running) :]

    def label(self, step: Step) -> tuple[str, str]:
        """'[3/12] seed0/x' and ', about 40 s' (the time the same kind of step took) or ''."""
        expected = self.took_by_kind.get(_kind(step.name))
        about = f", about {expected:.0f} s" if expected else ""
        return f"[{self.number[step.name]:>{self.width}}/{len(self.steps)}] {step.name}", about

    def due(self, step: Step) -> bool:
        """Whether `step` must run (else it is reused); clears what an earlier try left."""
        marker = self.done_dir / _slug(step.name)
        head, about = self.label(step)
        why = _why_rerun(step, marker, self.changed)
        if why is None:
            self.seconds[step.name] = 0.0
            self.say(f"{head}: reused")
            return False
        marker.unlink(missing_ok=True)
        if step.output.exists():  # what a failed or interrupted try (or an outdated run) left
            if step.output.is_dir():
                shutil.rmtree(step.output)
            else:
                step.output.unlink()
        log = self.log_dir / f"{_slug(step.name)}.log"
        self.say(f"{head}: running{f' again ({why})' if why else ''}{about} (log: {log})")
        return True

    def launch(self, step: Step, threads: int) -> None:
        log = self.log_dir / f"{_slug(step.name)}.log"
        share = self.share_dir / _slug(step.name)
        env = {**os.environ, DIE_WITH_PARENT_ENV: str(os.getpid())}
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        if threads and self.share_cores:  # the file where it finds its share later
            write_share(share, threads)
            env[THREADS_FILE_ENV] = str(share)
        out = log.open("w", encoding="utf-8")
        out.write(f"$ ptacl {shlex.join(step.argv)}\n")
        out.flush()
        # the step dies with this process: a killed pipeline's rerun finds no step still writing
        process = subprocess.Popen(_command(step), stdout=out, stderr=subprocess.STDOUT, env=env)
        head, about = self.label(step)
        now = time.perf_counter()
        beat = now + self.heartbeat
        self.running.append(_Running(step, process, out, now, head, about, beat, share))

    def finish(self, job: _Running, code: int) -> None:
        job.out.close()
        step, took = job.step, time.perf_counter() - job.start
        log = self.log_dir / f"{_slug(step.name)}.log"
        if code not in step.accept:
            if self.failure is None:
                tail = log.read_text(encoding="utf-8", errors="replace").splitlines(True)[-15:]
                self.failure = PipelineError(
                    f"step {step.name} failed with exit status {code} after {took:.0f} s; "
                    f"log: {log}\n{''.join(tail)}"
                )
            return
        (self.done_dir / _slug(step.name)).write_text(
            json.dumps({"command": ["ptacl", *step.argv], "seconds": round(took, 1)}) + "\n",
            encoding="utf-8",
        )
        self.seconds[step.name] = took
        self.changed.add(str(step.output))
        self.took_by_kind[_kind(step.name)] = took
        others = self.pending + [r.step for r in self.running]
        left = [s for s in others if not (self.done_dir / _slug(s.name)).exists()]
        eta = [self.took_by_kind.get(_kind(s.name)) for s in left]
        estimate = (
            f"; ~{sum(eta) / self.jobs:.0f} s left for {len(left)} step(s)"
            if None not in eta
            else ""
        )
        self.say(f"{job.head}: done in {took:.0f} s{estimate if left else ''}")
