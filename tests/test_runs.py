"""The run folder contract (`ptacl.runs`): one checkpoint lookup, one encoder-section lookup."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from ptacl.config import to_dict
from ptacl.models import CmrEncoderConfig, EcgEncoderConfig, encoder_from_config
from ptacl.runs import (
    RunDirError,
    checkpoint_path,
    encoder_section,
    load_run_encoders,
    load_state,
    run_kind,
    run_modalities,
)

ECG = to_dict(EcgEncoderConfig(width=16, depth=1, heads=2))
CMR = to_dict(CmrEncoderConfig(width=16, depth=1, heads=2))

#: config.yaml of each kind of run, as the stages write them (the parts that matter here)
RUNS = {
    "pretrain-ecg": {"modality": "ecg", "encoder": ECG, "mae": {}},
    "simclr-cmr": {"modality": "cmr", "stage": "simclr", "encoder": CMR},
    "align": {"ecg_encoder": ECG, "cmr_encoder": CMR, "loss": {"num_steps": 7}},
    # a fine-tune run keeps the other modality's default section, unused
    "finetune-ecg": {
        "stage": "finetune",
        "modality": "ecg",
        "ecg_encoder": ECG,
        "cmr_encoder": CMR,
    },
    "finetune-cmr": {
        "stage": "finetune",
        "modality": "cmr",
        "ecg_encoder": ECG,
        "cmr_encoder": CMR,
    },
    "finetune-old": {"stage": "finetune", "ecg_encoder": ECG, "cmr_encoder": CMR},  # no modality
}


@pytest.mark.parametrize(
    ("name", "held", "kind"),
    [
        ("pretrain-ecg", ("ecg",), "pretrain-ecg"),
        ("simclr-cmr", ("cmr",), "simclr-cmr"),
        ("align", ("ecg", "cmr"), "align"),
        ("finetune-ecg", ("ecg",), "finetune"),
        ("finetune-cmr", ("cmr",), "finetune"),
        ("finetune-old", ("ecg",), "finetune"),
    ],
)
def test_each_run_kind_names_its_encoders_and_their_sections(
    name: str, held: tuple, kind: str
) -> None:
    config = RUNS[name]
    assert run_modalities(config) == held
    for modality in ("ecg", "cmr"):
        expected = {"ecg": ECG, "cmr": CMR}[modality] if modality in held else None
        assert encoder_section(config, modality) == expected
    assert run_kind(config) == kind


def write_run(root: Path, config: dict, checkpoints: tuple[str, ...] = ()) -> Path:
    (root / "checkpoints").mkdir(parents=True)
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    for name in checkpoints:
        torch.save({"state_dict": {"w": torch.tensor([len(name)])}}, root / "checkpoints" / name)
    return root


def test_best_falls_back_to_last_and_nothing_is_an_error(tmp_path: Path) -> None:
    run = write_run(tmp_path / "a", RUNS["align"], ("last.ckpt",))
    assert checkpoint_path(run).name == "last.ckpt"  # no validation ran: no best.ckpt
    with pytest.raises(RunDirError, match=r"no checkpoint \(last.ckpt\)"):
        checkpoint_path(write_run(tmp_path / "b", RUNS["align"]), "last")
    both = write_run(tmp_path / "c", RUNS["align"], ("last.ckpt", "best.ckpt"))
    assert checkpoint_path(both).name == "best.ckpt"
    assert checkpoint_path(both, "last").name == "last.ckpt"


class _Payload:
    def __reduce__(self):  # what a malicious checkpoint would run on a full unpickle
        return (print, ("unpickled",))


def test_checkpoints_are_read_without_unpickling_code(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": _Payload()}, path)
    # refused by torch's weights_only unpickler, reported as the file's problem in one line
    with pytest.raises(RunDirError, match=r"evil.ckpt: not a readable checkpoint: Unpickling"):
        load_state(path)
    path.write_bytes(path.read_bytes()[:100])  # truncated: no zip directory
    with pytest.raises(RunDirError, match=r"evil.ckpt: not a readable checkpoint: RuntimeError"):
        load_state(path)


def test_random_baseline_like_a_finetune_run_has_that_runs_encoder(tmp_path: Path) -> None:
    """`--model none --like FT` is the random baseline of a fine-tune run: its ECG encoder.
    (The old lookup let the absent `encoder` section override `ecg_encoder` and built the
    unused CMR default instead.)"""
    run = write_run(tmp_path / "ft", RUNS["finetune-ecg"])
    encoders = load_run_encoders("none", like=run, seed=3)
    assert encoders.modalities == ("ecg",)
    torch.manual_seed(3)
    expected = encoder_from_config(ECG, "ecg").state_dict()
    for key, value in encoders.ecg.state_dict().items():
        torch.testing.assert_close(value, expected[key])


def test_a_run_folder_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="not a run folder"):
        load_run_encoders(tmp_path)
    with pytest.raises(RunDirError, match="cannot tell which encoders"):
        load_run_encoders(write_run(tmp_path / "x", {"data": {}}))


def test_stages_take_the_init_runs_architecture_beneath_the_users_overrides(tmp_path: Path):
    """One function (`load_stage_config`) for align and fine-tune: the init run's encoder
    section replaces the config's, and the command line's key=value still applies on top (a
    fine-tune's `ecg_encoder.attention` was silently dropped before)."""
    from ptacl.config import ConfigError
    from ptacl.stage_config import load_stage_config
    from ptacl.training.align import AlignRunConfig
    from ptacl.training.finetune import FinetuneConfig

    ecg = write_run(tmp_path / "ecg", RUNS["pretrain-ecg"])
    cmr = write_run(tmp_path / "cmr", RUNS["simclr-cmr"])
    cfg = load_stage_config(FinetuneConfig, None, [f"model={ecg}"], ["ecg_encoder.attention=plain"])
    assert (cfg.ecg_encoder.width, cfg.ecg_encoder.depth) == (16, 1)  # the run's, not 512 / 6
    assert cfg.ecg_encoder.attention == "plain"
    align = load_stage_config(AlignRunConfig, None, [], [f"ecg_init={ecg}", f"cmr_init={cmr}"])
    assert align.ecg_encoder.width == align.cmr_encoder.width == 16
    assert load_stage_config(AlignRunConfig, None).ecg_encoder.width == 512  # no init runs
    with pytest.raises(ConfigError, match="holds no CMR encoder"):
        load_stage_config(AlignRunConfig, None, [f"cmr_init={ecg}"])
