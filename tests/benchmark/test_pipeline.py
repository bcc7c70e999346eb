import os
import re
import signal
import subprocess
import sys
import time

import pytest

from faults import alive, descendants, ptacl_env
from ptacl.benchmark import pipeline
from ptacl.benchmark.pipeline import PipelineError, Step, run_steps


def test_finished_steps_are_reused(tmp_path, capsys):
    out = tmp_path / "cohort"
    argv = ("synth", "--out", str(out), "--subjects", "1", "--quiet")
    steps = [Step("a/synth", argv, out)]
    first = run_steps(steps, tmp_path / "pipe")
    assert first["a/synth"] > 0 and (out / "phenotypes.csv").is_file()
    assert (tmp_path / "pipe" / "logs" / "a__synth.log").read_text().startswith("$ ptacl synth")
    again = run_steps(steps, tmp_path / "pipe")
    assert again == {"a/synth": 0.0}
    assert "reused" in capsys.readouterr().out


def test_failure_names_step_and_log_and_half_output_is_cleared(tmp_path):
    half = tmp_path / "half"
    half.mkdir()
    (half / "partial.bin").write_bytes(b"x")
    with pytest.raises(PipelineError, match=r"step b failed with exit status 2.*b\.log"):
        run_steps([Step("b", ("no-such-command",), half)], tmp_path / "pipe", quiet=True)
    assert not half.exists()  # what a failed try leaves is removed before (and not reused)
    assert not (tmp_path / "pipe" / ".done" / "b").exists()


def test_duplicate_names_are_refused(tmp_path):
    step = Step("x", ("--version",), tmp_path)
    with pytest.raises(ValueError, match="duplicate"):
        run_steps([step, step], tmp_path / "pipe")


def _python(monkeypatch):
    """Steps run `python -c argv[0]` instead of `ptacl`: quick, and doing what the test says."""
    monkeypatch.setattr(pipeline, "_command", lambda step: [sys.executable, "-c", step.argv[0]])


def _writes(path, sleep=0.0, say=""):
    return f"import pathlib, time; print({say!r}, flush=True); time.sleep({sleep}); " + (
        f"pathlib.Path({str(path)!r}).write_text('x')"
    )


def test_a_long_step_shows_a_heartbeat_with_its_last_log_line(tmp_path, monkeypatch, capsys):
    _python(monkeypatch)
    out = tmp_path / "a.txt"
    step = Step("seed0/a", (_writes(out, sleep=1.5, say="step 3/10"),), out)
    run_steps([step], tmp_path / "pipe", heartbeat=0.2)
    printed = capsys.readouterr().out
    assert re.search(r"\[1/1\] seed0/a: running, \d+ s \| step 3/10\n", printed), printed
    assert re.search(r"seed0/a: done in \d+ s\n$", printed), printed
    out.unlink()
    run_steps([step], tmp_path / "pipe", heartbeat=0.2, quiet=True)
    assert capsys.readouterr().out == ""


def test_time_left_is_estimated_from_the_same_step_of_another_seed(tmp_path, monkeypatch, capsys):
    _python(monkeypatch)
    steps = [Step(f"seed{s}/a", (_writes(tmp_path / f"{s}.txt"),), tmp_path / f"{s}.txt")
             for s in (0, 1)]  # fmt: skip
    run_steps(steps, tmp_path / "pipe")
    printed = capsys.readouterr().out
    assert "[1/2] seed0/a: done in 0 s; ~0 s left for 1 step(s)" in printed
    assert "[2/2] seed1/a: running, about 0 s (log:" in printed


def test_a_changed_command_and_its_readers_run_again(tmp_path, monkeypatch, capsys):
    _python(monkeypatch)
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    read_a = _writes(b) + f"  # reads {a}"
    steps = [Step("a", (_writes(a),), a), Step("b", (read_a, str(a)), b)]
    run_steps(steps, tmp_path / "pipe")
    assert run_steps(steps, tmp_path / "pipe") == {"a": 0.0, "b": 0.0}
    capsys.readouterr()
    steps[0] = Step("a", (_writes(a, say="new"),), a)  # e.g. a new override
    again = run_steps(steps, tmp_path / "pipe")
    assert again["a"] > 0 and again["b"] > 0  # b read the old a
    printed = capsys.readouterr().out
    assert "a: running again (its command changed since it ran)" in printed
    assert f"b: running again ({a} was just rebuilt)" in printed
    assert run_steps(steps, tmp_path / "pipe") == {"a": 0.0, "b": 0.0}
    # an output rebuilt by an earlier call (the demo's cohort) outdates its readers too
    assert run_steps(steps[1:], tmp_path / "pipe", rebuilt=[a])["b"] > 0


def test_independent_steps_run_at_once_and_readers_wait_for_what_they_read(tmp_path, monkeypatch):
    """a and b each wait (10 s at most) until the other has started: run one after the other,
    the first would give up and fail. c names a's output, so it starts only after a finished."""
    _python(monkeypatch)
    a, b, c = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"

    def meet(mine, other, out):
        return (
            "import pathlib, time; "
            f"pathlib.Path({str(mine)!r}).touch(); t = time.time()\n"
            f"while not pathlib.Path({str(other)!r}).exists():\n"
            "    assert time.time() - t < 10, 'ran alone'; time.sleep(0.05)\n"
            f"pathlib.Path({str(out)!r}).write_text('x')"
        )

    reads_a = f"import pathlib; assert pathlib.Path({str(a)!r}).read_text() == 'x'; " + (
        f"pathlib.Path({str(c)!r}).write_text('x')"
    )
    steps = [
        Step("a", (meet(tmp_path / "a.go", tmp_path / "b.go", a),), a),
        Step("c", (reads_a, str(a)), c),  # listed before b, yet must wait for a
        Step("b", (meet(tmp_path / "b.go", tmp_path / "a.go", b),), b),
    ]
    seconds = run_steps(steps, tmp_path / "pipe", jobs=2, quiet=True, heartbeat=0.2)
    assert set(seconds) == {"a", "b", "c"} and c.read_text() == "x"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_pipeline_leaves_no_step_running(tmp_path):
    """A step outliving `kill -9` of `ptacl benchmark` kept writing (and holding its output's
    lock) while the rerun removed and rebuilt that output."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from ptacl.benchmark.pipeline import Step, run_steps\n"
        f"out = Path({str(tmp_path / 'cohort')!r})\n"
        "run_steps([Step('synth', ('synth', '--out', str(out), '--subjects', '5000', "
        "'--quiet'), out)], out.parent / 'pipe', quiet=True)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], env=ptacl_env())
    step: set[int] = set()
    deadline = time.monotonic() + 60
    try:
        while not step and parent.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            step = descendants(parent.pid)
        assert step and parent.poll() is None
        time.sleep(3)  # the step is past its start, running ptacl synth
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 5
        while alive(step) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(step)
    finally:
        for pid in alive(step | descendants(parent.pid)):
            os.kill(pid, signal.SIGKILL)


def _env_probe(path):
    """A step that writes its OMP_NUM_THREADS and whether it was told a share file."""
    return (
        "import os, pathlib; "
        f"pathlib.Path({str(path)!r}).write_text("
        "os.environ.get('OMP_NUM_THREADS', '-') + ' ' + str('PTACL_THREADS_FILE' in os.environ))"
    )


def test_cores_go_to_the_step_left_running_when_shared(tmp_path, monkeypatch):
    """a and b start together on 2 cores (one thread each); when b ends, a's share file says 2
    (a waits up to 10 s for it: without the reshare it fails)."""
    _python(monkeypatch)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(pipeline, "usable_cores", lambda: 2)
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    waits = (
        "import os, pathlib, time; share = pathlib.Path(os.environ['PTACL_THREADS_FILE']); "
        "first = os.environ['OMP_NUM_THREADS']; t = time.time()\n"
        "while share.read_text().strip() != '2':\n"
        "    assert time.time() - t < 10, 'never got the idle core'; time.sleep(0.05)\n"
        f"pathlib.Path({str(a)!r}).write_text(first)"
    )
    steps = [Step("a", (waits,), a), Step("b", (_env_probe(b),), b)]
    run_steps(steps, tmp_path / "pipe", jobs=2, quiet=True, share_cores=True)
    assert a.read_text() == "1" and b.read_text() == "1 True"
    assert list((tmp_path / "pipe" / ".threads").iterdir()) == []  # no debris after the run


def test_without_sharing_each_step_keeps_a_fixed_count_and_a_users_count_is_kept(
    tmp_path, monkeypatch
):
    _python(monkeypatch)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(pipeline, "usable_cores", lambda: 4)
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    run_steps([Step("a", (_env_probe(a),), a)], tmp_path / "p1", jobs=2, quiet=True)
    assert a.read_text() == "2 False"  # 4 cores / 2 jobs, not re-dealt
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    run_steps([Step("b", (_env_probe(b),), b)], tmp_path / "p2", jobs=2, share_cores=True)
    assert b.read_text() == "3 False"
