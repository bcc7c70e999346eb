"""The stage-1 run configs (`ptacl pretrain`, `ptacl simclr`): each modality's defaults are what
run folders have always saved (tests/golden/run_configs.yaml, written by the per-modality
classes this file's configs replaced), and such a saved config still loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ptacl.config import from_dict, to_dict
from ptacl.training.mae import MAE_RUN_CONFIGS
from ptacl.training.simclr import SIMCLR_RUN_CONFIGS

SAVED = yaml.safe_load(
    (Path(__file__).parents[1] / "golden" / "run_configs.yaml").read_text(encoding="utf-8")
)
CASES = [(stage, m) for stage in ("mae", "simclr") for m in ("ecg", "cmr")]


def run_config(stage: str, modality: str) -> type:
    return {"mae": MAE_RUN_CONFIGS, "simclr": SIMCLR_RUN_CONFIGS}[stage][modality]


@pytest.mark.parametrize(("stage", "modality"), CASES)
def test_each_modality_defaults_to_what_run_folders_saved(stage, modality):
    saved = SAVED[f"{stage}_{modality}"]
    resolved = to_dict(run_config(stage, modality)())
    assert list(resolved) == list(saved)
    for section, value in saved.items():  # field by field, so a failure names the field
        assert resolved[section] == value, section


@pytest.mark.parametrize(("stage", "modality"), CASES)
def test_a_saved_config_loads_as_the_defaults(stage, modality):
    saved = SAVED[f"{stage}_{modality}"]
    assert from_dict(run_config(stage, modality), saved) == run_config(stage, modality)()
