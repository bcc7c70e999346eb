"""Encoders (registered by name, `ptacl.models.registry`; the paper's ECG and CMR ViTs by
default) and the masked autoencoder around them."""

from __future__ import annotations

from typing import Any

from ptacl.models.mae import MaeConfig, MaskedAutoencoder
from ptacl.models.masking import random_masking, restore_order
from ptacl.models.registry import (
    DEFAULT_ENCODERS,
    EncoderConfig,
    build_encoder,
    default_config,
    encoder_config_class,
    encoder_from_config,
    encoder_spec,
    register_encoder,
    registered_encoders,
)
from ptacl.models.vit import (
    CmrEncoder,
    CmrEncoderConfig,
    EcgEncoder,
    EcgEncoderConfig,
    TokenEncoder,
)


def count_parameters(module: Any, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


__all__ = [
    "DEFAULT_ENCODERS",
    "CmrEncoder",
    "CmrEncoderConfig",
    "EcgEncoder",
    "EcgEncoderConfig",
    "EncoderConfig",
    "MaeConfig",
    "MaskedAutoencoder",
    "TokenEncoder",
    "build_encoder",
    "count_parameters",
    "default_config",
    "encoder_config_class",
    "encoder_from_config",
    "encoder_spec",
    "random_masking",
    "register_encoder",
    "registered_encoders",
    "restore_order",
]
