"""The one error every reader raises for bad input."""

from __future__ import annotations

from pathlib import Path

from ptacl.errors import PtaclError


class InputError(PtaclError, ValueError):
    """A file that cannot be used; the message starts with the file path and says why.

    `prepare` catches it per subject, writes the message to qc.csv and carries on.
    """

    def __init__(self, source: str | Path, reason: str) -> None:
        self.source = Path(source)
        self.reason = reason
        super().__init__(f"{source}: {reason}")

    def __reduce__(self):
        # Rebuilt from (source, reason), so it survives the trip back from a worker process.
        return type(self), (self.source, self.reason)
