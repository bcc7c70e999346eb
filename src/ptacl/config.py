"""Typed configuration: YAML into frozen dataclasses, dotted `key=value` overrides, saved resolved.

Every run folder gets `config.yaml`, the fully resolved config, so a run can be repeated from it
alone. Unknown keys are errors (a typo must not silently fall back to a default).

    cfg = load_config(MaeConfig, "ecg_mae.yaml", ["optim.lr=1e-4", "trainer.max_steps=2"])

A config path that is not a file is looked up among the shipped configs (`ptacl.configs`:
"ecg_mae.yaml", "tiny/ptacl", ...), so `--config tiny/ptacl` works from an installed wheel.
    save_config(cfg, run_dir / "config.yaml")

A field may take its type and default from a sibling field (`depends_on`): one run config
serves both modalities, its `encoder` section an ECG or a CMR encoder's as `modality` says.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ptacl.errors import PtaclError

T = TypeVar("T")


class ConfigError(PtaclError, ValueError):
    """A config file or override that does not fit its dataclass."""


_DEPENDS = "ptacl.config.depends_on"  # the metadata key of a `depends_on` field


def depends_on(
    sibling: str,
    *,
    type_of: Callable[[Any], Any] | None = None,
    default_of: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """The metadata of a dataclass field whose type and default follow the value of field
    `sibling`, a field left None until `fill_dependent` fills it:

        modality: Literal["ecg", "cmr"] = "ecg"
        encoder: EncoderConfig = field(
            default=None, metadata=depends_on("modality", type_of=encoder_config_class)
        )

    `type_of(value)` is the type `from_dict` reads the field as (without it, the annotation);
    `default_of(value)` the field's default (without it, `type_of(value)()`). The dataclass
    calls `fill_dependent(self)` in its `__post_init__`; `load_config` starts from the
    defaults of the sibling's value that the file or the overrides give.
    """
    if type_of is None and default_of is None:
        raise TypeError("depends_on needs type_of, default_of or both")
    return {_DEPENDS: (sibling, type_of, default_of)}


def _dependents(cls: Any) -> dict[str, tuple[str, Any, Any]]:
    """{field: (sibling, type_of, default_of)} of the `depends_on` fields of dataclass `cls`."""
    return {f.name: f.metadata[_DEPENDS] for f in dataclasses.fields(cls) if _DEPENDS in f.metadata}


def _fits(value: Any, tp: Any) -> bool:
    if hasattr(tp, "config_class") and dataclasses.is_dataclass(value):
        tp = tp.config_class(to_dict(value), type(value).__name__)  # the class value names
    return not isinstance(tp, type) or isinstance(value, tp)


def fill_dependent(obj: Any) -> None:
    """For a dataclass's `__post_init__`: give each `depends_on` field left None the default
    of its sibling's value; a ConfigError for a value of another type than that value takes
    (`MaeRunConfig(modality="cmr", encoder=EcgEncoderConfig())`)."""
    hints = _field_types(type(obj))
    for name, (sibling, type_of, default_of) in _dependents(type(obj)).items():
        key, value = getattr(obj, sibling), getattr(obj, name)
        tp = type_of(key) if type_of is not None else hints[name]
        if value is None:
            object.__setattr__(obj, name, default_of(key) if default_of is not None else tp())
        elif not _fits(value, tp):
            raise ConfigError(
                f"{type(obj).__name__}.{name}: {sibling}={key!r} takes a "
                f"{getattr(tp, '__name__', tp)}, not a {type(value).__name__}"
            )


def default_like(cfg: Any) -> Any:
    """The defaults of `cfg`'s dataclass for `cfg`'s values of the fields others depend on
    (`depends_on`): a CMR run config's defaults, not the ECG ones of `type(cfg)()`."""
    keys = {sibling for sibling, _, _ in _dependents(type(cfg)).values()}
    return type(cfg)(**{k: getattr(cfg, k) for k in keys})


def _field_types(cls: type, data: Mapping[str, Any] | None = None, where: str = "") -> dict:
    """{field: type} of dataclass `cls`; given its `data`, a `depends_on` field's type is the
    one its sibling's value in `data` (else the sibling's default) picks."""
    hints = typing.get_type_hints(cls)
    out = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name, (sibling, type_of, _) in _dependents(cls).items():
        if data is None or type_of is None:
            continue
        if sibling in data:
            key = _coerce(data[sibling], out[sibling], f"{where}.{sibling}")
        elif fields[sibling].default is not dataclasses.MISSING:
            key = fields[sibling].default
        else:
            continue  # no sibling: from_dict's call of cls says what is missing
        out[name] = type_of(key)
    return out


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
    types_ = _field_types(cls, data, where)
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
    """Defaults of `cls` <- `base` <- YAML file `path` <- dotted overrides.

    The defaults are those of the values the file and the overrides give the fields that
    others depend on (`depends_on`); an override may not change such a value the file
    states, as the file's sections are written for it.
    """
    where = str(path) if path else cls.__name__
    given = load_yaml(path) if path is not None else {}
    data = to_dict(cls(**_keys(cls, given, overrides, where))) if base is None else dict(base)
    data = apply_overrides(_merge(data, given), overrides)
    return from_dict(cls, data, where=where)


def _keys(
    cls: type, given: Mapping[str, Any], overrides: Sequence[str], where: str
) -> dict[str, Any]:
    """The values of `cls`'s fields that others depend on, from the file's data `given` and
    the overrides (a ConfigError where an override contradicts the file)."""
    names = {sibling for sibling, _, _ in _dependents(cls).values()}
    keys = {k: given[k] for k in names if k in given}
    for text in overrides:
        path, value = parse_override(text)
        if len(path) == 1 and path[0] in names:
            if path[0] in given and given[path[0]] != value:
                raise ConfigError(
                    f"{where}: {text!r} contradicts the file's {path[0]}: {given[path[0]]!r}, "
                    "for which its sections are written"
                )
            keys[path[0]] = value
    types_ = _field_types(cls)
    return {k: _coerce(v, types_[k], f"{where}.{k}") for k, v in keys.items()}


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
