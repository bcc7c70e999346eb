import errno
import os
import time

import pytest

import ptacl.atomic as atomic
from faults import hold_lock
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
