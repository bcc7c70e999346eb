"""Seconds per optimizer step of every training run under a folder, from TensorBoard wall times.

    python benchmarks/step_rates.py BENCHMARK_DIR/seed0/runs

Each run's rate is (wall time of the last logged training loss - that of the second) / steps
between them, so process start-up and the first step's warm-up are left out while validation
passes inside the span are counted. This is how the `small` preset's steps were sized.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def step_rate(event_file: Path) -> tuple[float, int] | None:
    """(seconds per step, steps measured) of one TensorBoard event file, or None if it logged
    fewer than three training losses."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(event_file))
    events.Reload()
    tags = [t for t in events.Tags()["scalars"] if t.startswith("train/") and "loss" in t]
    if not tags:
        return None
    scalars = events.Scalars(sorted(tags)[0])
    if len(scalars) < 3:
        return None
    first, last = scalars[1], scalars[-1]
    steps = last.step - first.step
    return (last.wall_time - first.wall_time) / steps, steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder holding run folders")
    args = parser.parse_args(argv)
    for event_file in sorted(args.root.rglob("events.out.tfevents.*")):
        measured = step_rate(event_file)
        if measured is None:
            continue
        run = event_file.parent.parent.relative_to(args.root)
        print(f"{run!s:<40} {measured[0]:6.3f} s/step over {measured[1]} steps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
