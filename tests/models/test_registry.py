"""The encoder registry: names, configs that name their encoder, and what it refuses."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from ptacl.config import ConfigError, from_dict, load_config, to_dict
from ptacl.models import (
    CmrEncoder,
    EcgEncoder,
    EcgEncoderConfig,
    EncoderConfig,
    build_encoder,
    encoder_from_config,
    encoder_spec,
    register_encoder,
    registered_encoders,
)


def test_the_paper_vits_are_registered_and_are_the_defaults():
    assert {"ecg_vit", "cmr_vit"} <= set(registered_encoders())
    assert "cmr_vit" not in registered_encoders("ecg")
    assert isinstance(encoder_from_config(None, "cmr"), CmrEncoder)
    assert isinstance(encoder_from_config({"width": 16, "heads": 2}, "ecg"), EcgEncoder)


def test_spec_round_trip_rebuilds_the_same_encoder():
    torch.manual_seed(0)
    encoder = build_encoder("ecg_vit", samples=500, width=16, depth=1, heads=2)
    name, kwargs = encoder_spec(encoder)
    assert name == "ecg_vit" and "name" not in kwargs and kwargs["samples"] == 500
    rebuilt = build_encoder(name, **kwargs)
    rebuilt.load_state_dict(encoder.state_dict())
    assert rebuilt.config == encoder.config


def test_a_run_config_section_may_not_name_the_other_modality():
    from ptacl.training.align import AlignRunConfig

    with pytest.raises(ConfigError, match="'cmr_vit' is a cmr encoder"):
        from_dict(AlignRunConfig, {"ecg_encoder": {"name": "cmr_vit"}})
    with pytest.raises(ConfigError, match="unknown encoder 'vit_huge'"):
        load_config(AlignRunConfig, None, ["ecg_encoder.name=vit_huge"])


def test_saved_configs_name_their_encoder():
    assert to_dict(EcgEncoderConfig())["name"] == "ecg_vit"


def test_registration_checks_the_config():
    @dataclass(frozen=True)
    class Misnamed(EncoderConfig):
        name: str = "other"
        width: int = 8
        samples: int = 100

    with pytest.raises(ValueError, match="defaults to 'other'"):
        register_encoder("test_misnamed", modality="ecg", config=Misnamed)

    @dataclass(frozen=True)
    class NoSamples(EncoderConfig):
        name: str = "test_no_samples"
        width: int = 8

    with pytest.raises(ValueError, match=r"lacks the field\(s\) \['samples'\]"):
        register_encoder("test_no_samples", modality="ecg", config=NoSamples)
    with pytest.raises(ValueError, match="already registered as EcgEncoder"):
        register_encoder("ecg_vit", modality="ecg", config=EcgEncoderConfig)(CmrEncoder)
