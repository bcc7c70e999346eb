"""Helpers for the fault tests: another process holding an output's lock.

A plain module beside the root conftest (pytest puts tests/ on sys.path), so tests of every
folder can `from faults import hold_lock`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ptacl.atomic import lock_path


def hold_lock(out: Path, pid: int | None = None, seconds: float = 60) -> subprocess.Popen:
    """Another process holding the lock of `out` the way ptacl does (flock, pid inside: its
    own, or `pid`, as a child of a killed ptacl holds it) for `seconds`. Kill it
    (`proc.kill(); proc.wait()`) to release the lock as `kill -9` would."""
    code = (
        "import fcntl, os, time\n"
        f"fd = os.open({str(lock_path(out))!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        f"os.write(fd, str({pid} or os.getpid()).encode())\n"
        "print('held', flush=True)\n"
        f"time.sleep({seconds})\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def ptacl_env() -> dict[str, str]:
    """The environment of a `python -m ptacl` subprocess that imports the ptacl under test."""
    import os

    import ptacl

    src = str(Path(ptacl.__file__).resolve().parents[1])
    return dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))


def ptacl_process(*argv: str) -> subprocess.Popen:
    """`ptacl ARGV...` started as a real process (to be killed with a real signal)."""
    return subprocess.Popen(
        [sys.executable, "-m", "ptacl", *argv],
        env=ptacl_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def descendants(pid: int) -> set[int]:
    """The live processes below `pid`, read from /proc (Linux)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended while we looked
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of `pids` still running (not gone, not a zombie)."""
    running = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            running.add(pid)
    return running


def fill_disk(monkeypatch, folder: Path, after: int = 0) -> None:
    """Make `os.write` into files under `folder` fail with ENOSPC once `after` bytes went in
    (as a full disk does mid-file); writes elsewhere (pytest's own) go through."""
    import errno
    import os

    real_write = os.write
    written = {"bytes": 0}
    folder = str(folder.resolve())

    def write(fd: int, data) -> int:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if not target.startswith(folder):
            return real_write(fd, data)
        room = after - written["bytes"]
        if room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        done = real_write(fd, bytes(data[:room]))
        written["bytes"] += done
        return done

    monkeypatch.setattr(os, "write", write)


def read_only(monkeypatch, folder: Path) -> None:
    """What the kernel does to a user (not root, whom tests may run as) writing into a
    read-only `folder`: creating an entry there fails with EACCES naming the path."""
    import errno
    import os

    real_open, real_mkdir = os.open, os.mkdir
    inside = str(folder.resolve()) + os.sep

    def refused(path) -> OSError:
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))

    def open_(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and os.path.abspath(os.fsdecode(path)).startswith(inside):
            raise refused(path)
        return real_open(path, flags, *args, **kwargs)

    def mkdir(path, *args, **kwargs):
        if os.path.abspath(os.fsdecode(path)).startswith(inside):
            raise refused(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "mkdir", mkdir)


def holders(path: Path) -> dict[int, str]:
    """The processes with `path` open (pid -> command line), read from /proc (Linux)."""
    found = {}
    target = str(path)
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.readlink(fd) == target:
                pid = int(fd.parts[2])
                found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
    return found
