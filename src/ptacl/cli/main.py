"""`ptacl <command> ...`: dispatch to the module `ptacl.cli.<command>`.

Subcommands are discovered, not registered: every module in this package that defines
`main(argv=None)` is one, and the first line of its docstring is its help. Modules are imported
only when run, so `ptacl synth` never pays for importing torch.

Every command's errors end here, so that a user's mistake or a hostile file is one line on
stderr, `ptacl <command>: <file>: <reason>`, never a traceback. Exit codes (README, CLI):

    0    done
    1    the command ran but failed: nothing usable came out, or the machine refused
         (disk full, permission denied, an I/O error: any OSError)
    2    refused: a bad option or config, a file ptacl cannot use (`ptacl.errors.PtaclError`),
         a missing optional dependency, an output another process is writing
    130  interrupted (Ctrl-C)
    143  a training run stopped by SIGTERM, its state saved (`ptacl.errors.Stopped`)
    70   a bug: the traceback is printed, with a request to report it
"""

from __future__ import annotations

import ast
import importlib
import os
import pkgutil
import sys
import threading
import traceback
from pathlib import Path

import ptacl
import ptacl.cli
from ptacl.atomic import DIE_WITH_PARENT_ENV, die_with_parent
from ptacl.errors import PtaclError, Stopped
from ptacl.extras import EXTRA_OF, MissingExtra, hint

_NOT_COMMANDS = {"main", "common"}

#: Exit codes (see the module docstring).
EXIT_FAILED, EXIT_REFUSED, EXIT_BUG, EXIT_INTERRUPTED = 1, 2, 70, 130


def _commands() -> dict[str, str]:
    """Command name -> one-line help, read from the module sources without importing them."""
    found: dict[str, str] = {}
    for info in pkgutil.iter_modules(ptacl.cli.__path__):
        if info.name.startswith("_") or info.name in _NOT_COMMANDS:
            continue
        source = Path(ptacl.cli.__path__[0], f"{info.name}.py")
        if not source.exists():
            continue
        tree = ast.parse(source.read_text(encoding="utf-8"))
        if not any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body):
            continue
        doc = ast.get_docstring(tree) or ""
        found[info.name.replace("_", "-")] = doc.strip().splitlines()[0] if doc else ""
    return dict(sorted(found.items()))


def _usage() -> str:
    width = max((len(n) for n in _commands()), default=8)
    lines = [f"usage: ptacl <command> [options]   (ptacl {ptacl.__version__})", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in _commands().items()]
    lines += ["", "`ptacl <command> --help` describes a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    if argv[0] in {"-V", "--version"}:
        print(ptacl.__version__)
        return 0
    name = argv[0]
    parent = os.environ.pop(DIE_WITH_PARENT_ENV, "")  # popped: not for this command's children
    if parent.isdigit() and threading.current_thread() is threading.main_thread():
        die_with_parent(int(parent))
    if name not in _commands():
        print(f"ptacl: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(f"ptacl.cli.{name.replace('-', '_')}")
        result = module.main(argv[1:])
    except ModuleNotFoundError as err:
        # an optional dependency (MissingExtra says its extra itself): one line, not a traceback
        root = (err.name or "").split(".")[0]
        if isinstance(err, MissingExtra) or root in EXTRA_OF:
            text = (
                str(err) if isinstance(err, MissingExtra) else f"needs {root}: {hint(root, name)}"
            )
            return _say(name, text, EXIT_REFUSED)
        return _bug(name)
    except PtaclError as err:
        return _say(name, str(err), EXIT_REFUSED)
    except OSError as err:
        return _say(name, _os_error(err), EXIT_FAILED)
    except KeyboardInterrupt:
        return _say(name, "interrupted", EXIT_INTERRUPTED)
    except Stopped as stop:
        return _say(name, stop.message, int(stop.code))
    except Exception:
        return _bug(name)
    return int(result or 0)


def _say(name: str, text: str, code: int) -> int:
    """One line on stderr: a message of several lines is joined, so logs keep one per error."""
    line = "; ".join(part.strip() for part in text.splitlines() if part.strip())
    print(f"ptacl {name}: {line}", file=sys.stderr)
    return code


def _os_error(err: OSError) -> str:
    """`<file>: <reason>` of an OSError (NoSpace's own text already has both)."""
    if err.filename is None or err.strerror is None:
        return str(err)
    where = str(err.filename) + (f" -> {err.filename2}" if err.filename2 is not None else "")
    return f"{where}: {err.strerror}"


def _bug(name: str) -> int:
    traceback.print_exc()
    print(
        f"ptacl {name}: an unexpected error, which is a bug in ptacl {ptacl.__version__}: "
        "please report it with the command line and the traceback above",
        file=sys.stderr,
    )
    return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
