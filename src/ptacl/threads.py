"""The cores a pipeline step may use, shared out again whenever a step starts or ends.

`ptacl demo` and `ptacl benchmark` run several commands at once, each in its own process. A
fixed thread count per process leaves cores idle whenever fewer steps run than there are slots
(in the demo, the ECG MAE trains alone for minutes after the CMR MAE and the evaluations beside
it have finished). So the pipeline writes each running step's share of the cores into a small
file named by `THREADS_FILE_ENV`, and a training process re-reads it between steps
(`ptacl.training.callbacks.ThreadShare`) and calls `torch.set_num_threads`. Measured side by side
in BENCHMARKS.md ("make demo, time per stage").
"""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming the file that holds a step's current share of the cores.
THREADS_FILE_ENV = "PTACL_THREADS_FILE"


def usable_cores() -> int:
    """Cores this process may run on (a SLURM or taskset allocation, not the whole machine)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def shares(jobs: int, cores: int) -> list[int]:
    """Threads for each of `jobs` processes sharing `cores`: as equal as can be, the first ones
    (the longest running, in start order) taking the remainder; at least 1 each.

    >>> shares(1, 2), shares(2, 2), shares(3, 2), shares(2, 5)
    ([2], [1, 1], [1, 1, 1], [3, 2])
    """
    base, extra = divmod(max(cores, 1), max(jobs, 1))
    return [max(1, base + (i < extra)) for i in range(jobs)]


def write_share(path: Path, threads: int) -> None:
    """Replace the share in `path` in one step (a reader never sees a half-written number)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{threads}\n", encoding="ascii")
    os.replace(tmp, path)


def read_share(path: Path) -> int | None:
    """The share in `path`, or None when it is missing or not a positive number."""
    try:
        value = int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    return value if value > 0 else None


__all__ = ["THREADS_FILE_ENV", "read_share", "shares", "usable_cores", "write_share"]
