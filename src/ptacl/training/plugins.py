"""Classes named in a config: `trainer.loggers` and `trainer.callbacks` entries, each a name or
"package.module:Class", alone or as a one-key mapping {NAME: {settings}}; read into (name,
settings) pairs and resolved to classes, with a one-line ConfigError for a bad entry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def config_entries(entries: Sequence[str | dict[str, Any]], where: str) -> list[tuple[str, dict]]:
    """(name or import path, kwargs) of each `trainer.loggers` / `trainer.callbacks` entry."""
    from ptacl.config import ConfigError

    out = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            out.append((entry, {}))
        elif isinstance(entry, dict) and len(entry) == 1:
            ((name, kwargs),) = entry.items()
            if not isinstance(kwargs, dict | None):
                raise ConfigError(f"{where}[{i}]: the settings of {name} must be a mapping")
            out.append((str(name), dict(kwargs or {})))
        else:
            raise ConfigError(
                f"{where}[{i}]: expected a name or a one-key mapping {{NAME: {{settings}}}}, "
                f"got {entry!r}"
            )
    return out


def import_class(path: str, base: type, where: str) -> type:
    """The class named "package.module:Class", which must subclass `base`; ConfigError in one
    line otherwise (a typo, a package that is not installed, the wrong kind of class)."""
    import importlib

    from ptacl.config import ConfigError

    module, _, name = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(f"{where}: cannot import {path!r} ({e})") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"{where}: {path} is not a {base.__module__}.{base.__name__}")
    return cls
