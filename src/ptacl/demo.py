"""`make demo`: the whole pipeline on a synthetic cohort, stage by stage, reusing finished stages."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path


def _stage(name: str, done: Path, run: Callable[[], int]) -> None:
    """Run one stage unless its `done` marker exists; a failed stage stops the demo."""
    if done.exists():
        print(f"[demo] {name}: reused ({done})", flush=True)
        return
    print(f"[demo] {name}: running", flush=True)
    start = time.perf_counter()
    code = run()
    if code:
        raise SystemExit(f"[demo] {name} failed with exit status {code}")
    print(f"[demo] {name}: done in {time.perf_counter() - start:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ptacl.demo", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo_out"))
    parser.add_argument("--subjects", type=int, default=1500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    from ptacl.cli import synth

    cohort = out / "cohort"
    _stage(
        "synthetic cohort",
        cohort / "phenotypes.csv",
        lambda: synth.main(
            [
                "--out", str(cohort), "--subjects", str(args.subjects), "--seed", str(args.seed),
                "--workers", str(args.workers), "--preview",
            ]
        ),
    )  # fmt: skip
    print(f"[demo] cohort: {cohort}  preview: {cohort / 'preview.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
