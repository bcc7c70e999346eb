"""`PtaclError`, the base of every error ptacl expects: a user's mistake (a bad option, a config
that does not fit) or a file it refuses (not a checkpoint, a hostile bundle, a busy output).

`ptacl <command>` prints such an error as one line, `ptacl <command>: <file>: <reason>`, with
exit code 2 (`ptacl.cli.main`); anything else is a bug and keeps its traceback. Each module's
own error class (ConfigError, RunDirError, BundleError, InputError, ...) derives from it and
from the builtin class it always was (ValueError, RuntimeError), so existing handlers still work.
"""

from __future__ import annotations


class PtaclError(Exception):
    """An expected refusal; its message names the file (or option) and the reason."""


class Stopped(SystemExit):
    """A training run stopped by a signal between two steps, its state saved: `ptacl <command>`
    prints `reason; where: again` as one line and exits with `code` (143 = 128 + SIGTERM, so
    a scheduler or a pipeline does not take the run for finished)."""

    def __init__(self, reason: str, where: str, again: str, code: int = 143) -> None:
        super().__init__(code)
        self.reason, self.where, self.again = reason, where, again

    @property
    def message(self) -> str:
        return f"{self.reason}; {self.where}: {self.again}"
