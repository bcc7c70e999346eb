"""Encoders (ECG and CMR ViTs with one interface) and the masked autoencoder around them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ptacl.models.mae import MaeConfig, MaskedAutoencoder
from ptacl.models.masking import random_masking, restore_order
from ptacl.models.vit import (
    CmrEncoder,
    CmrEncoderConfig,
    EcgEncoder,
    EcgEncoderConfig,
    TokenEncoder,
)

ENCODERS: dict[str, tuple[type[TokenEncoder], type]] = {
    "ecg": (EcgEncoder, EcgEncoderConfig),
    "cmr": (CmrEncoder, CmrEncoderConfig),
}


def build_encoder(modality: str, config: Mapping[str, Any] | object | None = None) -> TokenEncoder:
    """The encoder of `modality` ("ecg" or "cmr") from its config dataclass or a plain dict
    (e.g. the `encoder` section of a run's config.yaml); None gives the paper's default."""
    from ptacl.config import from_dict

    if modality not in ENCODERS:
        raise ValueError(f"modality must be one of {sorted(ENCODERS)}, got {modality!r}")
    encoder_cls, config_cls = ENCODERS[modality]
    if config is None:
        config = config_cls()
    elif isinstance(config, Mapping):
        config = from_dict(config_cls, config, where=f"{modality} encoder config")
    elif not isinstance(config, config_cls):
        raise TypeError(
            f"{modality} encoder needs a {config_cls.__name__}, got {type(config).__name__}"
        )
    return encoder_cls(config)


def count_parameters(module: Any, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


__all__ = [
    "ENCODERS",
    "CmrEncoder",
    "CmrEncoderConfig",
    "EcgEncoder",
    "EcgEncoderConfig",
    "MaeConfig",
    "MaskedAutoencoder",
    "TokenEncoder",
    "build_encoder",
    "count_parameters",
    "random_masking",
    "restore_order",
]
