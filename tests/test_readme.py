"""README.md cannot drift: every `ptacl` command in it parses with today's flags (fast), and the
"A typical run" block runs as written in an empty folder (slow)."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import ptacl
from ptacl.cli.main import main as ptacl_main

README = Path(__file__).resolve().parents[1] / "README.md"


def bash_blocks(text: str) -> list[tuple[str, str]]:
    """(section heading, code) of every ```bash block, in order."""
    blocks, heading = [], ""
    for match in re.finditer(r"^(#+ [^\n]*)$|^```bash\n(.*?)^```$", text, re.M | re.S):
        if match.group(1):
            heading = match.group(1).lstrip("# ").strip()
        else:
            blocks.append((heading, match.group(2)))
    return blocks


def ptacl_commands(code: str) -> list[list[str]]:
    """The `ptacl ...` command lines of a block, continuations joined, comments dropped."""
    joined = code.replace("\\\n", " ")
    return [
        shlex.split(line, comments=True)[1:]
        for line in joined.splitlines()
        if line.strip().startswith("ptacl ")
    ]


class Parsed(BaseException):
    """Raised by the patched parser once argparse accepted a command line (a BaseException, so
    `ptacl`'s handler of unexpected errors lets it through)."""


def test_every_readme_command_parses(monkeypatch) -> None:
    commands = [c for _, code in bash_blocks(README.read_text()) for c in ptacl_commands(code)]
    assert len(commands) >= 20 and {c[0] for c in commands} >= {
        "synth", "prepare", "pretrain", "align", "evaluate", "compare", "export", "embed",
        "predict", "retrieve",
    }  # fmt: skip

    def accept(original):
        def parse(self, *args, **kwargs):
            original(self, *args, **kwargs)  # SystemExit(2) with argparse's message on a bad flag
            raise Parsed

        return parse

    for name in ("parse_args", "parse_intermixed_args"):
        monkeypatch.setattr(
            argparse.ArgumentParser, name, accept(getattr(argparse.ArgumentParser, name))
        )
    for argv in commands:
        with pytest.raises(Parsed):
            ptacl_main(argv)


def test_the_typical_run_is_the_block_the_slow_test_runs() -> None:
    sections = [heading for heading, _ in bash_blocks(README.read_text())]
    assert sections.count("A typical run") == 1


@pytest.mark.slow
def test_the_typical_run_runs_as_written(tmp_path: Path) -> None:
    """The block under "A typical run", verbatim, with `bash -e` in an empty folder; `ptacl`
    on PATH is this checkout's."""
    code = next(
        code for heading, code in bash_blocks(README.read_text()) if heading == "A typical run"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "ptacl"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ptacl "$@"\n', encoding="utf-8")
    shim.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(Path(ptacl.__file__).resolve().parents[1]),
    }
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code], cwd=work, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for path in ("store/qc.csv", "eval/ptacl/metrics.json", "comparison.md", "bundle/README.md",
                 "emb/test.npz", "predictions.csv"):  # fmt: skip
        assert (work / path).is_file(), path
    assert "rank" in done.stdout and "cosine" in done.stdout  # retrieve's table
    assert "ptacl retrieve: warning" not in done.stderr  # same run embedded and exported
