"""Typed configuration: YAML into frozen dataclasses, dotted `key=value` overrides, saved resolved.

Every run folder gets `config.yaml`, the fully resolved config, so a run can be repeated from it
alone. Unknown keys are errors (a typo must not silently fall back to a default).

    cfg = load_config(MaeConfig, "ecg_mae.yaml", ["optim.lr=1e-4", "trainer.max_steps=2"])

A config path that is not a file is looked up among the shipped configs (`ptacl.configs`:
"ecg_mae.yaml", "tiny/ptacl", ...), so `--config tiny/ptacl` works from an installed wheel.
    save_config(cfg, run_dir / "config.yaml")
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ptacl.errors import PtaclError

T = TypeVar("T")


class ConfigError(PtaclError, ValueError):
    """A config file or override that does not fit its dataclass."""


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Turn a YAML value into `tp`, recursing into dataclasses, lists and tuples."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: {value!r} fits none of {tp}: {'; '.join(errors)}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {typing.get_args(tp)}")
        return value
    if origin in (list, tuple, Sequence):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(
                _coerce(v, a, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value))
            )
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except ValueError as e:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from e
    if tp is int:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str | int | float):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "config") -> T:
    """Build dataclass `cls` from a mapping; unknown keys raise `ConfigError`.

    A class with a `config_class(data, where)` classmethod picks the dataclass actually built
    from the data (an encoder section naming its registered encoder, `ptacl.models.registry`).
    """
    if hasattr(cls, "config_class"):
        cls = cls.config_class(data, where)
    types_ = _field_types(cls)
    unknown = set(data) - set(types_)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {sorted(unknown)}; {cls.__name__} takes {sorted(types_)}"
        )
    kwargs = {k: _coerce(v, types_[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (tuples as lists) of a config dataclass, ready for YAML or JSON."""

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(cfg))


def parse_override(text: str) -> tuple[list[str], Any]:
    """'optim.lr=1e-4' -> (['optim', 'lr'], 0.0001). Values are read as YAML scalars/lists."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {text!r} is not of the form key.sub=value")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: cannot read the value: {e}") from e
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply dotted overrides to a nested dict, returning a new dict."""
    import copy

    out = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
        renamed = len(path) > 1 and path[-1] == "name" and node.get("name", value) != value
        if renamed:  # a section naming another kind (encoder) starts afresh, as in _merge
            node.clear()
        node[path[-1]] = value
    return out


def config_file(path: str | Path) -> Path:
    """`path` if it is a file, else the shipped config of that name (`ptacl.configs.path`)."""
    path = Path(path)
    if path.is_file():
        return path
    from ptacl import configs

    try:
        return configs.path(path)
    except KeyError as e:
        raise ConfigError(f"{path}: config file not found, nor a shipped config; shipped: "
                          f"{', '.join(configs.names())}") from e  # fmt: skip


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = config_file(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    base: Mapping[str, Any] | None = None,
) -> T:
    """Defaults of `cls` <- `base` <- YAML file `path` <- dotted overrides."""
    data: dict[str, Any] = to_dict(cls()) if base is None else dict(base)
    if path is not None:
        data = _merge(data, load_yaml(path))
    data = apply_overrides(data, overrides)
    return from_dict(cls, data, where=str(path) if path else cls.__name__)


def _merge(a: dict[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """`b` over `a`, section by section. A section of `b` whose `name` differs from `a`'s
    (an encoder section naming another encoder) replaces it whole: the defaults of one kind
    are not fields of another."""
    out = dict(a)
    for k, v in b.items():
        renamed = isinstance(v, Mapping) and isinstance(out.get(k), dict)
        renamed = renamed and "name" in v and v["name"] != out[k].get("name", v["name"])
        if renamed:
            out[k] = dict(v)
        elif isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")
