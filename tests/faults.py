"""Helpers for the fault tests: another process holding an output's lock.

A plain module beside the root conftest (pytest puts tests/ on sys.path), so tests of every
folder can `from faults import hold_lock`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ptacl.atomic import lock_path


def hold_lock(out: Path) -> subprocess.Popen:
    """Another process holding the lock of `out` the way ptacl does (flock, pid inside).
    Kill it (`proc.kill(); proc.wait()`) to release the lock as `kill -9` would."""
    code = (
        "import fcntl, os, time\n"
        f"fd = os.open({str(lock_path(out))!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, str(os.getpid()).encode())\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc
