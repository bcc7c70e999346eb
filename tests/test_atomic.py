import errno
import os
import signal
import subprocess
import sys
import time
from subprocess import PIPE

import pytest

import ptacl.atomic as atomic
from faults import alive, descendants, hold_lock, ptacl_env
from ptacl.atomic import NoSpace, OutputBusy, atomic_file, atomic_folder, lock_path, output_lock


def test_replaces_only_on_success(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(out) as tmp:
        (tmp / "new.txt").write_text("half")
        raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder, no lock file
    assert [p.name for p in out.iterdir()] == ["old.txt"]  # the old folder untouched
    with atomic_folder(out) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path):
    out = tmp_path / "store"
    holder = hold_lock(out)
    try:
        with pytest.raises(OutputBusy, match=rf"store: another ptacl process \(pid {holder.pid}\)"):
            with atomic_folder(out):
                pass
        assert not out.exists() and not list(tmp_path.glob(".store.tmp-*"))
    finally:
        holder.kill()
        holder.wait()
    # the kernel drops a dead holder's lock (kill -9 included): the next run goes ahead
    with atomic_folder(out) as tmp:
        (tmp / "x").write_text("x")
    assert (out / "x").is_file() and not lock_path(out).exists()


def test_the_lock_is_reentrant_in_one_process(tmp_path):
    out = tmp_path / "run"
    with output_lock(out), output_lock(tmp_path / "." / "run"), atomic_folder(out) as tmp:
        (tmp / "x").write_text("x")
        assert lock_path(out).read_text().strip() == str(os.getpid())
    assert not lock_path(out).exists()


def test_without_overwrite_an_output_that_appears_meanwhile_is_kept(tmp_path):
    out = tmp_path / "store"
    with pytest.raises(FileExistsError, match="appeared while"):
        with atomic_folder(out, overwrite=False) as tmp:
            (tmp / "mine").write_text("mine")
            out.mkdir()  # someone not using ptacl's lock
            (out / "theirs").write_text("theirs")
    assert [p.name for p in out.iterdir()] == ["theirs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        with atomic_folder(out, overwrite=False):
            pass


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_overwrite_swaps_old_and_new(tmp_path, monkeypatch, exchange):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "old").write_text("old")
    if not exchange:
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    with atomic_folder(out) as tmp:
        (tmp / "new").write_text("new")
        assert (out / "old").is_file()  # readers see the old folder until the swap
    assert [p.name for p in out.iterdir()] == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_the_swap_is_one_step_where_linux_offers_it(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "in_a").touch()
    if not atomic._exchange(a, b):
        pytest.skip("no renameat2(RENAME_EXCHANGE) here: the two-rename fallback is used")
    assert [p.name for p in b.iterdir()] == ["in_a"] and not list(a.iterdir())


def test_debris_of_killed_runs_is_removed_and_reported(tmp_path):
    out = tmp_path / "store"
    for name in (".store.tmp-abc", ".store.scratch-def"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "ecg.npy").write_bytes(b"half")
    (tmp_path / ".other.tmp-x").mkdir()  # another output's: not ours to touch
    with pytest.warns(UserWarning, match=r"removed .*\.store\.scratch-def, \.store\.tmp-abc"):
        with atomic_folder(out) as tmp:
            (tmp / "x").touch()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp-x", "store"]


def test_an_old_folder_left_mid_swap_is_put_back(tmp_path):
    """A run killed between `out -> .old` and `tmp -> out` (the fallback) left no `out`."""
    out = tmp_path / "store"
    (tmp_path / ".store.old-123").mkdir()
    (tmp_path / ".store.old-123" / "complete").touch()
    (tmp_path / ".store.tmp-456").mkdir()
    with pytest.warns(UserWarning, match=r"store: restored from \.store\.old-123"):
        with pytest.raises(FileExistsError):
            with atomic_folder(out, overwrite=False):
                pass
    assert [p.name for p in out.iterdir()] == ["complete"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_disk_full_leaves_nothing_and_says_so(tmp_path):
    out = tmp_path / "predictions.csv"
    out.write_text("old predictions\n")
    with pytest.raises(NoSpace, match=r"predictions.csv: no space left .* GB free on"):
        with atomic_file(out) as tmp:
            tmp.write_text("half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert out.read_text() == "old predictions\n"
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.csv"]
    with pytest.raises(NoSpace), atomic_folder(tmp_path / "store") as tmp:
        raise OSError(errno.EDQUOT, "Disk quota exceeded")
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.csv"]


def test_atomic_file_replaces_in_one_rename(tmp_path):
    out = tmp_path / "p.csv"
    with atomic_file(out) as tmp:
        tmp.write_text("a,b\n")
        assert not out.exists()
    assert out.read_text() == "a,b\n"
    assert [p.name for p in tmp_path.iterdir()] == ["p.csv"]


def test_a_released_lock_can_be_taken_at_once(tmp_path):
    out = tmp_path / "x"
    start = time.perf_counter()
    for _ in range(20):
        with output_lock(out):
            pass
    assert time.perf_counter() - start < 1.0 and not lock_path(out).exists()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_does_not_keep_a_killed_parents_lock(tmp_path):
    """A DataLoader or pool worker forked under the lock shares its open file description;
    before, it kept the flock alive after a `kill -9` of its parent and blocked every rerun."""
    out = tmp_path / "run"
    code = (
        "import os, sys, time\n"
        "from ptacl.atomic import output_lock\n"
        f"with output_lock({str(out)!r}):\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(30); os._exit(0)\n"
        "    print('forked', flush=True); time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], env=ptacl_env(), stdout=PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "forked"
        child = descendants(parent.pid)
        parent.kill()
        parent.wait()
        with output_lock(out):  # at once, while the child still lives
            assert alive(child)
    finally:
        for pid in alive(descendants(parent.pid) | child):
            os.kill(pid, signal.SIGKILL)


def test_a_pool_worker_ends_when_its_parent_is_killed(tmp_path):
    code = (
        "import concurrent.futures as cf, multiprocessing as mp, os, time\n"
        "from ptacl.atomic import die_with_parent\n"
        "if __name__ == '__main__':\n"
        "    with cf.ProcessPoolExecutor(1, mp_context=mp.get_context('fork'),\n"
        "            initializer=die_with_parent, initargs=(os.getpid(),)) as pool:\n"
        "        print(pool.submit(os.getpid).result(), flush=True); time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], env=ptacl_env(), stdout=PIPE, text=True)
    worker = {int(parent.stdout.readline())}
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    leftover = alive(worker)
    for pid in leftover:
        os.kill(pid, signal.SIGKILL)
    assert not leftover


def test_every_spelling_of_one_output_shares_its_lock(tmp_path):
    """A symlinked parent, `..`, and `--out` itself a symlink: once the last got its own lock
    beside the link, so two writers could fill one folder."""
    real = tmp_path / "a" / "out"
    real.parent.mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "a")
    (tmp_path / "outlink").symlink_to(real)
    spellings = [
        tmp_path / "link" / "out",
        tmp_path / "a" / ".." / "a" / "out",
        tmp_path / "outlink",
    ]
    holder = hold_lock(real)
    try:
        for out in spellings:
            with pytest.raises(OutputBusy, match=rf"pid {holder.pid}"), atomic_folder(out):
                pass
            with pytest.raises(OutputBusy), atomic_file(out):
                pass
    finally:
        holder.kill()
        holder.wait()
    with atomic_folder(tmp_path / "outlink") as tmp:  # written through the link
        (tmp / "x").write_text("x")
    assert (tmp_path / "outlink").is_symlink() and (real / "x").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "link", "outlink"]
    assert sorted(p.name for p in real.parent.iterdir()) == ["out"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_leaving_the_block_leaves_the_parents_lock_alone(tmp_path):
    out = tmp_path / "run"
    lock = output_lock(out)
    lock.__enter__()
    pid = os.fork()
    if pid == 0:  # the child leaves the block too, then ends (never returns to pytest)
        try:
            lock.__exit__(None, None, None)
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    try:
        assert os.waitstatus_to_exitcode(status) == 0
        assert lock_path(out).exists()  # the child did not remove the parent's lock file
        code = f"from ptacl.atomic import output_lock\nwith output_lock({str(out)!r}): pass"
        other = subprocess.run(
            [sys.executable, "-c", code], env=ptacl_env(), capture_output=True, text=True
        )
        assert "OutputBusy" in other.stderr  # and it is still held
    finally:
        lock.__exit__(None, None, None)
    assert not lock_path(out).exists()


def test_a_lock_whose_recorded_holder_is_dead_is_waited_for_briefly(tmp_path, monkeypatch):
    """A child that a killed ptacl was starting holds the lock until it execs: the rerun waits
    for it (once refused at once, naming the dead parent) but not forever."""
    out = tmp_path / "store"
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], stdout=PIPE)
    dead = int(ended.stdout)
    holder = hold_lock(out, pid=dead, seconds=0.5)
    with output_lock(out):  # taken once the holder lets go, within the grace
        assert holder.poll() is not None
    monkeypatch.setattr(atomic, "_DEAD_HOLDER_GRACE", 0.3)
    holder = hold_lock(out, pid=dead)
    try:
        with pytest.raises(OutputBusy, match=rf"pid {dead}, no longer running; a process it"):
            with output_lock(out):
                pass
    finally:
        holder.kill()
        holder.wait()


@pytest.fixture(params=[0o022, 0o077], ids=["umask022", "umask077"])
def umask(request):
    """The process umask set for the test and restored after it."""
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_outputs_get_the_mode_the_umask_gives_any_new_file(tmp_path, umask):
    """tempfile makes 0700 folders and 0600 files whatever the umask: under umask 022 a
    colleague could not read a store, bundle or CSV until they were given its mode back."""
    with atomic_folder(tmp_path / "bundle") as tmp:
        (tmp / "config.json").write_text("{}")
    with atomic_file(tmp_path / "predictions.csv") as tmp:
        tmp.write_text("eid\n")
    assert (tmp_path / "bundle").stat().st_mode & 0o777 == 0o777 & ~umask
    assert (tmp_path / "bundle" / "config.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "predictions.csv").stat().st_mode & 0o777 == 0o666 & ~umask
    assert atomic.current_umask() == umask  # read, not changed
