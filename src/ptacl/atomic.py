"""Safe writes of an output (a store, a bundle, a run folder, a CSV) that others may read.

Three guarantees, shared by every writer:

- **One writer per output.** `output_lock(out)` holds an exclusive `fcntl.flock` on
  `.NAME.lock` beside `out` from the first write to the final rename; a second ptacl process
  asking for the same `out` is refused at once (`OutputBusy`, naming the holder's pid) instead
  of renaming the other's finished work away. The kernel drops the lock when its holder dies,
  even by `kill -9`, so a dead run never blocks the next one.
- **All or nothing.** `atomic_folder(out)` fills a temporary sibling `.NAME.tmp-*` and renames
  it into place; `--overwrite` swaps old and new in one `renameat2(RENAME_EXCHANGE)` on Linux,
  so `out` never goes missing (elsewhere: old renamed aside, new renamed in, old removed, and a
  run killed between the two renames gets its old folder back on the next run).
  `atomic_file(out)` does the same for one file.
- **No debris.** Under the lock no other ptacl writer of `out` can be alive, so leftover
  `.NAME.tmp-*`, `.NAME.scratch-*` and `.NAME.old-*` entries are a dead run's: they are removed
  (with a warning naming them) before a new write starts. A write that fails (Ctrl-C, disk
  full) removes its own temporary entry; a full disk is reported as `NoSpace`, naming the
  folder and the free space.

Outputs are as readable as any file the user creates: `tempfile` makes its folders 0700 and
files 0600 whatever the umask, so the temporary entry is given `0777 & ~umask` (a folder) or
`0666 & ~umask` (a file) before it is renamed into place; a colleague on a shared cluster reads
a store, a bundle or a CSV as the creator's umask allows.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import glob
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from ptacl.errors import PtaclError

#: errno values that mean "the disk (or the quota) is full".
_FULL = {errno.ENOSPC, errno.EDQUOT}
#: Prefixes of a writer's temporary siblings (`.scratch-` is what older versions left).
_DEBRIS = ("tmp", "scratch", "old")


class OutputBusy(PtaclError, RuntimeError):
    """Another process is writing the same output folder or file."""


class NoSpace(OSError):
    """The disk filled up (or a quota was hit) while writing an output; nothing was left."""

    def __init__(self, where: Path, detail: str) -> None:
        super().__init__(errno.ENOSPC, f"{where}: no space left on the device: {detail}")

    def __str__(self) -> str:
        return str(self.args[1])


def lock_path(out: Path) -> Path:
    """The lock file of an output: `.NAME.lock` beside it."""
    return out.with_name(f".{out.name}.lock")


def real_path(out: str | Path) -> Path:
    """`out` with every symlink and `..` resolved, itself included: two spellings of one
    output (a symlinked parent, `a/../a`, `--out` a symlink to it) are one path, so they share
    one lock, and a symlinked output is written through (the link keeps naming it)."""
    return Path(os.path.realpath(out))


# Locks this process holds, by lock file, with their nesting depth: `prepare` takes the lock
# of its store before scanning, and the store writer takes it again for the write.
_held: dict[Path, int] = {}
_held_guard = threading.Lock()
# The descriptor of each lock held, closed in every forked child (see `_forget_locks`).
_fds: dict[Path, int] = {}


def _forget_locks() -> None:
    """In a freshly forked child: close the inherited lock descriptors (the parent's lock is
    unaffected, it holds its own) and forget them, so that the child never keeps the lock."""
    global _held_guard
    for fd in list(_fds.values()):
        with contextlib.suppress(OSError):
            os.close(fd)
    _fds.clear()
    _held.clear()
    _held_guard = threading.Lock()  # another thread may have held it at the fork


os.register_at_fork(after_in_child=_forget_locks)

#: How often (seconds) a worker looks whether its parent is still alive, where the kernel
#: cannot be asked to kill it (not Linux).
_WATCH_EVERY = 1.0
#: Set by a parent (`ptacl benchmark`'s steps) to its pid: the `ptacl` command started with it
#: calls `die_with_parent`, so a killed pipeline leaves no step writing on (`ptacl.cli.main`).
DIE_WITH_PARENT_ENV = "PTACL_DIE_WITH_PARENT"


def die_with_parent(parent: int) -> None:
    """Make this (worker) process end when process `parent` does, even by `kill -9`: pass
    as the `initializer` of a worker pool, with `os.getpid()` of the parent as its argument.

    Linux kills the worker itself (`PR_SET_PDEATHSIG`); elsewhere a daemon thread polls the
    parent pid. Linux sends that signal when the *thread* that started the worker ends, so
    start workers from a thread that outlives them (the main thread: a pool's `submit`). SIGTERM gets its default action back (a forked worker inherits the CLI's
    handler, which raises SystemExit, and the pool would catch that as a task's error).
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(AttributeError, OSError):
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request above took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(_WATCH_EVERY)
        os._exit(1)

    threading.Thread(target=watch, name="ptacl-parent-watch", daemon=True).start()


def _locked_inode(fd: int, path: Path) -> bool:
    """True when `path` still names the file open as `fd` (a releasing holder unlinks it)."""
    try:
        on_disk, opened = os.stat(path), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (on_disk.st_dev, on_disk.st_ino) == (opened.st_dev, opened.st_ino)


#: Seconds to wait for a lock whose recorded holder is dead: a child it was starting when it
#: was killed may hold the lock's descriptor until it closes it on exec (milliseconds, longer
#: on a loaded machine).
_DEAD_HOLDER_GRACE = 5.0


def _pid_alive(text: str) -> bool:
    if not text.isdigit():
        return True  # unknown: assume alive
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # alive, another user's
    return True


def _take(fd: int) -> str | None:
    """flock `fd` without blocking; None when taken, else the holder's pid as recorded. A dead
    holder's lock is retried for `_DEAD_HOLDER_GRACE` seconds before giving up."""
    deadline = None
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        if _pid_alive(holder):
            return holder
        deadline = deadline or time.monotonic() + _DEAD_HOLDER_GRACE
        if time.monotonic() >= deadline:
            return f"{holder}, no longer running; a process it started holds the lock"
        time.sleep(0.05)


@contextlib.contextmanager
def output_lock(out: str | Path) -> Iterator[None]:
    """Hold the exclusive lock of `out` (see the module docstring); raise `OutputBusy` when
    another process holds it. Re-entrant within one process."""
    out = Path(out)
    path = lock_path(real_path(out))  # two spellings of one output share one lock
    with _held_guard:
        if path in _held:
            _held[path] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield
        finally:
            with _held_guard:
                if path in _held:  # not in a child forked meanwhile (`_forget_locks`)
                    _held[path] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        holder = _take(fd)
        if holder is not None:
            os.close(fd)
            raise OutputBusy(
                f"{out}: another ptacl process (pid {holder}) is writing it; wait for it "
                f"to finish or choose another output (lock: {path})"
            )
        if _locked_inode(fd, path):
            break
        os.close(fd)  # the previous holder removed this lock file as we opened it: retry
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:  # a full disk: the pid is only for the message of a refused second writer
        pass
    with _held_guard:
        _held[path] = 1
        _fds[path] = fd
    owner = os.getpid()
    try:
        yield
    finally:
        # not in a forked child leaving the block: the lock, its file and fd are the parent's
        if os.getpid() == owner:
            _release(path, fd)


def _release(path: Path, fd: int) -> None:
    with _held_guard:
        del _held[path]
        del _fds[path]
    # Removed while still held, so a waiter that opened it sees a stale inode and retries.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    os.close(fd)


def clean_debris(out: Path) -> list[Path]:
    """Remove what dead writers of `out` left beside it; call only under `output_lock(out)`.

    A `.NAME.old-*` folder with `out` missing is the complete old output of a run killed
    between its two renames: it is put back as `out` rather than removed. Returns the paths
    removed or restored, and warns naming them.
    """
    out = Path(out)
    found = sorted(
        Path(p)
        for kind in _DEBRIS
        for p in glob.glob(str(out.parent / f".{glob.escape(out.name)}.{kind}-*"))
    )
    if not found:
        return []
    olds = [p for p in found if p.name.startswith(f".{out.name}.old-")]
    restored = None
    if not out.exists() and len(olds) == 1:
        olds[0].rename(out)
        restored = olds[0]
    for path in found:
        if path == restored:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    names = ", ".join(p.name for p in found if p != restored)
    message = f"{out.parent}: removed what an interrupted run of {out.name} left: {names}"
    if restored is not None:
        message = (
            f"{out}: restored from {restored.name}, left by a run killed while replacing it"
            + (f"; also removed {names}" if names else "")
        )
    warnings.warn(message, stacklevel=3)
    return found


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (AttributeError, OSError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    renameat2.argtypes += [ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False  # an old kernel or a file system without it: the two-rename fallback
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (/proc/self/status),
    else set and restored at once (os.umask is the only portable reader)."""
    try:
        with open("/proc/self/status", encoding="ascii") as file:
            for line in file:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _as_created(path: Path, mode: int) -> None:
    """Give a `tempfile` entry the mode a plain mkdir/open would have: `mode & ~umask`."""
    os.chmod(path, mode & ~current_umask())


def _free(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(folder).free / 1e9:.2f} GB free on {folder}"
    except OSError:
        return f"free space on {folder} unknown"


def _raise_if_full(err: OSError, out: Path) -> None:
    if err.errno in _FULL and not isinstance(err, NoSpace):
        raise NoSpace(out, f"{err.strerror} ({_free(out.parent)}); nothing was written") from err


@contextlib.contextmanager
def atomic_folder(out: str | Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling of `out` to fill; on success it replaces `out`, on any error
    (Ctrl-C included) it is removed and `out` is left as it was.

    Holds `output_lock(out)` throughout and removes dead writers' leftovers first. `out` is
    checked under the lock, at the start and again just before the final rename: without
    `overwrite` an existing `out` raises FileExistsError and is never replaced. A symlink `out`
    is written through (`real_path`).
    """
    out = real_path(out)
    with output_lock(out):
        clean_debris(out)
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out}: already exists; pass --overwrite to replace it")
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        except OSError as err:
            _raise_if_full(err, out)
            raise
        try:
            _as_created(tmp, 0o777)
            yield tmp
            if not out.exists():
                tmp.rename(out)
            elif not overwrite:
                raise FileExistsError(f"{out}: appeared while it was being written; left as is")
            elif _exchange(tmp, out):
                shutil.rmtree(tmp)  # now the old folder
            else:
                old = out.with_name(f".{out.name}.old-{os.getpid()}")
                out.rename(old)
                tmp.rename(out)
                shutil.rmtree(old)
        except BaseException as err:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(err, OSError):
                _raise_if_full(err, out)
            raise


@contextlib.contextmanager
def atomic_file(out: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `out` to write; on success it replaces `out` in one
    rename, on any error it is removed and `out` (if any) is left as it was. Holds
    `output_lock(out)`, so two writers of one file cannot interleave."""
    out = real_path(out)
    with output_lock(out):
        clean_debris(out)
        try:
            fd, name = tempfile.mkstemp(prefix=f".{out.name}.tmp-", dir=out.parent)
        except OSError as err:
            _raise_if_full(err, out)
            raise
        os.close(fd)
        tmp = Path(name)
        try:
            _as_created(tmp, 0o666)
            yield tmp
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())  # a full disk can surface only here, on delayed allocation
            os.replace(tmp, out)
        except BaseException as err:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            if isinstance(err, OSError):
                _raise_if_full(err, out)
            raise
