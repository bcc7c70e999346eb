"""The stage-1 run configs (`ptacl pretrain`, `ptacl simclr`): each modality's defaults are what
run folders have always saved (tests/golden/run_configs.yaml, written by the per-modality
classes this file's configs replaced), and such a saved config still loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ptacl.config import ConfigError, from_dict, to_dict
from ptacl.models import MaeConfig
from ptacl.training.mae import MaeRunConfig
from ptacl.training.simclr import SimclrRunConfig

SAVED = yaml.safe_load(
    (Path(__file__).parents[1] / "golden" / "run_configs.yaml").read_text(encoding="utf-8")
)
CASES = [(stage, m) for stage in ("mae", "simclr") for m in ("ecg", "cmr")]


RUN_CONFIGS = {"mae": MaeRunConfig, "simclr": SimclrRunConfig}


@pytest.mark.parametrize(("stage", "modality"), CASES)
def test_each_modality_defaults_to_what_run_folders_saved(stage, modality):
    saved = SAVED[f"{stage}_{modality}"]
    resolved = to_dict(RUN_CONFIGS[stage](modality=modality))
    assert list(resolved) == list(saved)
    for section, value in saved.items():  # field by field, so a failure names the field
        assert resolved[section] == value, section


@pytest.mark.parametrize(("stage", "modality"), CASES)
def test_a_saved_config_loads_as_the_defaults(stage, modality):
    saved = SAVED[f"{stage}_{modality}"]
    assert from_dict(RUN_CONFIGS[stage], saved) == RUN_CONFIGS[stage](modality=modality)


@pytest.mark.parametrize(("stage", "modality"), CASES)
def test_an_old_run_folder_loads_and_resumes(stage, modality, tmp_path):
    """A run folder as the per-modality classes wrote it: its config.yaml resolves on --resume
    to a config with no conflicts, and its checkpoint's hyperparameters build the module."""
    import argparse

    import torch

    from ptacl.cli.common import add_run_arguments, resolve_config
    from ptacl.run_write import prepare_run_dir
    from ptacl.training.mae import MaePretraining
    from ptacl.training.simclr import SimclrPretraining

    saved = SAVED[f"{stage}_{modality}"]
    small = {"ecg": {"samples": 100, "patch": 50}, "cmr": {"frames": 4, "size": 24}}[modality]
    saved = {**saved, "encoder": {**saved["encoder"], **small, "width": 16, "depth": 1,
                                  "heads": 2},
             "data": {**saved["data"], "store": str(tmp_path / "store")}}  # fmt: skip
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False), encoding="utf-8")
    module = {"mae": MaePretraining, "simclr": SimclrPretraining}[stage]
    torch.save({"state_dict": {}, "hyper_parameters": {"config": saved}},
               run / "checkpoints" / "last.ckpt")  # fmt: skip

    parser = argparse.ArgumentParser()
    parser.add_argument("modality")
    parser.add_argument("--data")
    add_run_arguments(parser)
    argv = [modality, "--out", str(run), "--resume", "--data", saved["data"]["store"]]
    args = parser.parse_intermixed_args(argv)
    cfg = resolve_config(RUN_CONFIGS[stage], args, [f"modality={modality}"])
    assert to_dict(cfg) == saved
    assert prepare_run_dir(run, cfg, resume=True) == run / "checkpoints" / "last.ckpt"
    hparams = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
    built = module(**hparams)
    assert built.modality == modality
    assert built.hparams["config"] == saved
    other = {"ecg": "cmr", "cmr": "ecg"}[modality]  # the command of the other modality: refused
    with pytest.raises(ConfigError, match=f"'modality={other}' contradicts the file's modality"):
        resolve_config(RUN_CONFIGS[stage], args, [f"modality={other}"])


def test_a_key_newer_than_a_cmr_run_is_taken_at_the_cmr_default():
    """config_conflicts lets a key the run's config.yaml lacks (added to ptacl after the run)
    pass at its default: the CMR default for a CMR run, not the ECG one of MaeRunConfig()."""
    from ptacl.run_write import config_conflicts

    saved = yaml.safe_load(yaml.safe_dump(SAVED["mae_cmr"]))
    del saved["mae"]["mask_ratio"]  # as if the run predated the field
    assert config_conflicts(saved, MaeRunConfig(modality="cmr")) == []
    assert config_conflicts(saved, MaeRunConfig(modality="cmr", mae=MaeConfig(mask_ratio=0.5)))
