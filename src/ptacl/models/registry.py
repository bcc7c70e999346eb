"""Encoders registered by name, as timm registers its models.

    @register_encoder("ecg_vit", modality="ecg", config=EcgEncoderConfig)
    class EcgEncoder(nn.Module): ...

    encoder = build_encoder("ecg_vit", width=256, depth=4)  # kwargs: fields of its config
    encoder = encoder_from_config({"name": "ecg_vit", "width": 256}, "ecg")  # a YAML section

A config section names its encoder with `name`; without one it is the modality's default
(`DEFAULT_ENCODERS`, the paper's ViTs), so configs, run folders and bundles written before
the registry load unchanged. The section's other keys are the fields of the encoder's config
dataclass, a subclass of `EncoderConfig`; `ptacl.config.from_dict` builds the class the
section names (see `EncoderConfig.config_class`).

What every stage uses of an encoder, and so what a registered encoder must offer:

    encoder.config                 its config dataclass (saved in run folders and bundles)
    encoder.width                  D, the width of its tokens and pooled embedding
    encoder.forward_features(x)    (B, L, D) tokens, after its final norm
    encoder.pool(tokens)           (B, L, D) -> (B, D), the global embedding
    encoder.time_tokens(tokens)    (B, L, D) -> (B, T, D), one embedding per time step: the
                                   input of the local loss (`ptacl.models.local`)
    encoder.blocks                 nn.ModuleList, the stages `freeze_blocks` counts; what runs
                                   before blocks[k] freezes with them, `encoder.norm` (if any)
                                   and later blocks stay trainable
    ECG: encoder.samples           input length: x is (B, 12, samples) at `ptacl.schema.ECG_FS`
         encoder.samples_per_step  ECG samples per time step: step j of `time_tokens` covers
                                   samples [j·s, (j+1)·s) of the input and sits at its centre
    CMR: encoder.frames            input frames: x is (B, 1, frames, H, W), frame 0 at end-
                                   diastole; time step t covers frames [t·f, (t+1)·f)

Their configs carry `width`, and `samples` (ECG) or `frames` (CMR), so a run's config tells the
input size and width without building the encoder (checked at registration).

A new ECG encoder in ptacl: its module (class, config, the decorator), its line in
`BUILTIN_MODULES`, and a config naming it. One outside ptacl registers when its module is
imported, before the run is built or the bundle loaded (as tests/cli/test_custom_encoder.py
does); the `ptacl` command line does not import user modules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

from ptacl.config import ConfigError, from_dict, to_dict

#: modality -> the encoder a config section without `name` means (the paper's ViTs)
DEFAULT_ENCODERS: dict[str, str] = {"ecg": "ecg_vit", "cmr": "cmr_vit"}
#: fields a modality's encoder config must have (see the module docstring)
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "ecg": ("width", "samples"),
    "cmr": ("width", "frames"),
}


@dataclass(frozen=True)
class EncoderConfig:
    """Base of every registered encoder's config: `name` says which encoder it configures.

    A subclass sets `name`'s default to its registered name. A field typed with a subclass (a
    run config's `ecg_encoder: EcgEncoderConfig`) accepts any registered encoder of the same
    modality: `from_dict` builds the config class the section's `name` picks.
    """

    name: str = ""

    @classmethod
    def config_class(cls, data: Mapping[str, Any], where: str = "config") -> type:
        """The config class of the encoder `data` names (absent `name`: this class)."""
        own = cls.__dataclass_fields__["name"].default
        name = data.get("name", own)
        if name == own:
            return cls
        entry = lookup(str(name), where)
        if own:
            modality = lookup(own, where).modality
            if entry.modality != modality:
                raise ConfigError(
                    f"{where}.name: {name!r} is a {entry.modality} encoder; this section needs "
                    f"a {modality} one ({', '.join(registered_encoders(modality))})"
                )
        return entry.config


@dataclass(frozen=True)
class EncoderEntry:
    name: str
    modality: str
    cls: type[nn.Module]
    config: type[EncoderConfig]


_REGISTRY: dict[str, EncoderEntry] = {}

M = TypeVar("M", bound=type[nn.Module])


def register_encoder(name: str, *, modality: str, config: type[EncoderConfig]) -> Callable[[M], M]:
    """Class decorator: register an encoder built as `cls(config_instance)` under `name`.

    `config` must be a frozen `EncoderConfig` dataclass whose `name` defaults to `name` and
    which has the fields its modality needs (`REQUIRED_FIELDS`). Registering a name twice with
    another class is an error (a typo must not silently replace the paper's encoder).
    """
    if modality not in DEFAULT_ENCODERS:
        raise ValueError(f"modality must be one of {sorted(DEFAULT_ENCODERS)}, got {modality!r}")
    if not (isinstance(config, type) and issubclass(config, EncoderConfig)):
        raise TypeError(f"encoder {name!r}: config must subclass EncoderConfig, got {config!r}")
    fields = {f.name: f for f in dataclasses.fields(config)}
    if fields["name"].default != name:
        raise ValueError(
            f"encoder {name!r}: {config.__name__}.name defaults to {fields['name'].default!r}; "
            f"set it to {name!r} so saved configs name this encoder"
        )
    missing = [f for f in REQUIRED_FIELDS[modality] if f not in fields]
    if missing:
        raise ValueError(f"encoder {name!r}: {config.__name__} lacks the field(s) {missing}")

    def decorate(cls: M) -> M:
        old = _REGISTRY.get(name)
        if old is not None and (old.cls.__qualname__, old.cls.__module__) != (
            cls.__qualname__,
            cls.__module__,
        ):
            raise ValueError(f"encoder {name!r} is already registered as {old.cls.__qualname__}")
        _REGISTRY[name] = EncoderEntry(name, modality, cls, config)
        return cls

    return decorate


#: Modules whose import registers ptacl's own encoders: a new built-in encoder adds its line.
BUILTIN_MODULES: tuple[str, ...] = ("ptacl.models.vit",)


def _builtin() -> None:
    """Register the built-in encoders (importing their modules registers them; cached)."""
    import importlib

    for module in BUILTIN_MODULES:
        importlib.import_module(module)


def lookup(name: str, where: str = "encoder") -> EncoderEntry:
    _builtin()
    if name not in _REGISTRY:
        raise ConfigError(
            f"{where}: unknown encoder {name!r}; registered: {', '.join(sorted(_REGISTRY))} "
            "(a custom encoder registers when its module is imported)"
        )
    return _REGISTRY[name]


def registered_encoders(modality: str | None = None) -> list[str]:
    """Names of the registered encoders (of `modality` when given), sorted."""
    _builtin()
    return sorted(n for n, e in _REGISTRY.items() if modality in (None, e.modality))


def default_config(modality: str) -> EncoderConfig:
    """The config of the modality's default encoder, with its default values."""
    if modality not in DEFAULT_ENCODERS:
        raise ValueError(f"modality must be one of {sorted(DEFAULT_ENCODERS)}, got {modality!r}")
    return lookup(DEFAULT_ENCODERS[modality]).config()


def encoder_config_class(modality: str) -> type[EncoderConfig]:
    """The config class of a modality's encoder section (a run config's `encoder` when its
    `modality` is `modality`): the default encoder's, whose `config_class` takes any
    registered encoder of the modality the section names."""
    return type(default_config(modality))


def build_encoder(name: str, **kwargs: Any) -> nn.Module:
    """The registered encoder `name`, its config built from `kwargs` (unknown keys are errors)."""
    entry = lookup(name)
    kwargs.pop("name", None)  # a whole section may be passed; it names the same encoder
    config = from_dict(entry.config, {"name": name, **kwargs}, where=f"encoder {name}")
    return entry.cls(config)


def encoder_from_config(
    config: EncoderConfig | Mapping[str, Any] | None, modality: str, where: str = ""
) -> nn.Module:
    """The encoder a config describes: an `EncoderConfig`, a plain section (a run's
    config.yaml `ecg_encoder`; without `name` the modality's default) or None (the default
    with its default sizes). The encoder must be of `modality`."""
    where = where or f"{modality} encoder config"
    if config is None:
        config = default_config(modality)
    elif isinstance(config, Mapping):
        config = from_dict(type(default_config(modality)), config, where=where)
    elif not isinstance(config, EncoderConfig):
        raise TypeError(
            f"{where}: needs an EncoderConfig or a mapping, got {type(config).__name__}"
        )
    entry = lookup(config.name, where)
    if entry.modality != modality:
        raise ConfigError(f"{where}: {config.name!r} is a {entry.modality} encoder, not {modality}")
    if not isinstance(config, entry.config):
        raise TypeError(f"{where}: encoder {config.name!r} needs a {entry.config.__name__}")
    return entry.cls(config)


def encoder_spec(encoder: nn.Module) -> tuple[str, dict[str, Any]]:
    """(registered name, constructor kwargs) of a built encoder: what `build_encoder` takes
    to rebuild it, as plain JSON (a bundle's config.json records both)."""
    config = to_dict(encoder.config)
    name = config.pop("name")
    lookup(name)  # an unregistered encoder could not be rebuilt from what is written
    return name, config
