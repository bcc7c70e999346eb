"""`make bench`: run every `benchmarks/bench_*.py` in turn, one at a time (they share 2 cores).

Each script prints its own figures; copy them, with the date and machine, into BENCHMARKS.md.
Pass names to run a subset: `python benchmarks/run_all.py synth mae`.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    wanted = set(sys.argv[1:] if argv is None else argv)
    here = Path(__file__).parent
    scripts = sorted(here.glob("bench_*.py"))
    if wanted:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}  {platform.node()}  {platform.processor()}")
    failed = []
    for script in scripts:
        print(f"\n## {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)], check=False).returncode:
            failed.append(script.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
