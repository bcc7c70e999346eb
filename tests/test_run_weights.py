"""A run's weights/ (`ptacl.run_weights`): per-part safetensors written from the best
checkpoint, read first by `ptacl.runs`; runs without them (older) or with stale ones are read
from the checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml

from ptacl import configs
from ptacl.config import load_config, to_dict
from ptacl.run_weights import read_weights, split_state, write_weights
from ptacl.runs import RunDirError, load_encoder_weights, load_run_encoders
from ptacl.training.align import AlignModule, AlignRunConfig


def _align_run(root: Path) -> tuple[Path, AlignModule]:
    """A tiny align run folder: config.yaml and a checkpoint of a seeded module."""
    torch.manual_seed(0)
    cfg = to_dict(load_config(AlignRunConfig, configs.root() / "tiny" / "ptacl.yaml"))
    module = AlignModule(cfg)
    (root / "checkpoints").mkdir(parents=True)
    (root / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    torch.save({"state_dict": module.state_dict()}, root / "checkpoints" / "best.ckpt")
    return root, module


def test_each_declared_part_gets_a_file_with_the_checkpoint_weights(tmp_path):
    run, module = _align_run(tmp_path / "run")
    written = write_weights(run, module)
    assert sorted(p.name for p in written) == [
        "cmr_encoder.safetensors",
        "cmr_head.safetensors",
        "ecg_encoder.safetensors",
        "ecg_head.safetensors",
    ]
    parts = read_weights(run)
    for name, tensors in module.ecg_encoder.state_dict().items():
        torch.testing.assert_close(parts["ecg_encoder"][name], tensors, rtol=0, atol=0)
    assert parts["ecg_head"].keys() == module.ecg_head.state_dict().keys()
    encoders = load_run_encoders(run)
    assert encoders.ecg_head is not None and encoders.cmr_head is not None


def test_weights_are_read_first_and_old_runs_still_load(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    run, module = _align_run(tmp_path / "run")
    old = load_encoder_weights(run, "ecg")  # no weights/: from the checkpoint's keys
    for name, tensor in module.ecg_encoder.state_dict().items():
        assert torch.equal(old[name], tensor)
    write_weights(run, module)
    # the file (same stamp, other values) answers, not the checkpoint
    path = run / "weights" / "ecg_encoder.safetensors"
    with safe_open(str(path), framework="pt") as f:
        stamp = f.metadata()
    save_file({k: v + 1 for k, v in old.items()}, str(path), metadata=stamp)
    new = load_encoder_weights(run, "ecg")
    assert new.keys() == old.keys()
    assert all(torch.equal(new[k], old[k] + 1) for k in old)


def test_stale_weights_give_way_to_the_newer_checkpoint(tmp_path):
    run, module = _align_run(tmp_path / "run")
    write_weights(run, module)
    with torch.no_grad():  # training went on (a resumed run) and wrote best.ckpt again
        for p in module.ecg_encoder.parameters():
            p.add_(1.0)
    path = run / "checkpoints" / "best.ckpt"
    torch.save({"state_dict": module.state_dict()}, path)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert read_weights(run) is None
    got = load_encoder_weights(run, "ecg")
    for name, tensor in module.ecg_encoder.state_dict().items():
        assert torch.equal(got[name], tensor)


def test_last_is_always_the_checkpoint_and_a_broken_file_is_named(tmp_path):
    run, module = _align_run(tmp_path / "run")
    write_weights(run, module)
    assert read_weights(run, "last") is None
    broken = run / "weights" / "ecg_encoder.safetensors"
    broken.write_bytes(b"not safetensors")
    with pytest.raises(RunDirError, match=r"ecg_encoder\.safetensors: not readable weights"):
        load_encoder_weights(run, "ecg")


def test_parts_are_found_by_the_modules_declaration_not_by_name():
    class Renamed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.ModuleDict({"enc": torch.nn.Linear(2, 2)})
            self.proj = torch.nn.Linear(2, 1)

        def encoders(self) -> dict[str, torch.nn.Module]:
            return {"ecg": self.body["enc"]}

        def heads(self) -> dict[str, torch.nn.Module]:
            return {"ecg": self.proj}

    module = Renamed()
    parts = split_state(module, module.state_dict())
    assert set(parts) == {"ecg_encoder", "ecg_head"}
    assert set(parts["ecg_encoder"]) == {"weight", "bias"}
