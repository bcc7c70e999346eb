"""The shipped configs are package data, found by name from anywhere (an installed wheel too)."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from ptacl import configs
from ptacl.benchmark.presets import PRESETS
from ptacl.config import ConfigError, config_file, load_config
from ptacl.training.mae import MaeRunConfig

ROOT = Path(__file__).resolve().parents[1]


def test_names_and_paths_live_inside_the_package():
    names = configs.names()
    assert {"ecg_mae.yaml", "ptacl_regression.yaml", "tiny/ptacl.yaml", "demo/ecg_mae.yaml"} <= set(
        names
    )
    assert configs.root() == ROOT / "src" / "ptacl" / "configs"
    assert (
        configs.path("tiny/ptacl")
        == configs.path("tiny/ptacl.yaml")
        == configs.root() / "tiny/ptacl.yaml"
    )
    with pytest.raises(KeyError, match=r"tiny/ptacl\.yaml"):  # the message lists what there is
        configs.path("tiny/nope")


def test_every_preset_config_is_shipped():
    for preset in PRESETS.values():
        for path in preset.configs.values():
            assert path.is_file() and path.is_relative_to(configs.root()), path


def test_package_data_globs_cover_every_shipped_config():
    # a YAML the wheel's package-data globs miss would be in a checkout and not in an install
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    toml = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    globs = toml["tool"]["setuptools"]["package-data"]["ptacl"]
    for name in configs.names():
        assert any(fnmatch.fnmatch(f"configs/{name}", g) for g in globs), name


def test_config_option_takes_a_shipped_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    by_name = load_config(MaeRunConfig, "tiny/ecg_mae")
    assert by_name == load_config(MaeRunConfig, configs.path("tiny/ecg_mae"))
    assert by_name.trainer.max_steps == 2


def test_a_user_file_wins_over_a_shipped_config_of_the_same_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ecg_mae.yaml").write_text("trainer: {max_steps: 7}\n", encoding="utf-8")
    assert config_file("ecg_mae.yaml") == Path("ecg_mae.yaml")
    assert load_config(MaeRunConfig, "ecg_mae.yaml").trainer.max_steps == 7


def test_unknown_config_says_what_is_shipped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"not found.*tiny/ptacl.yaml"):
        load_config(MaeRunConfig, "no_such.yaml")


STAGE1 = {"ecg_mae": "ecg", "cmr_mae": "cmr", "simclr_ecg": "ecg", "simclr_cmr": "cmr"}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_stage1_config_of_every_preset_resolves_its_modalitys_sections(preset):
    """One MaeRunConfig / SimclrRunConfig for both modalities: the `modality` of each shipped
    file picks the encoder and augment sections (and the MAE's mask ratio), as the command's
    modality does for a file without one."""
    from ptacl.data.augment_cmr import CmrAugmentConfig
    from ptacl.data.augment_ecg import EcgAugmentConfig
    from ptacl.models import CmrEncoderConfig, EcgEncoderConfig
    from ptacl.training.simclr import SimclrRunConfig

    sections = {"ecg": (EcgEncoderConfig, EcgAugmentConfig, 0.75),
                "cmr": (CmrEncoderConfig, CmrAugmentConfig, 0.9)}  # fmt: skip
    for kind, modality in STAGE1.items():
        cls = MaeRunConfig if kind.endswith("_mae") else SimclrRunConfig
        path = PRESETS[preset].configs[kind]
        overrides = PRESETS[preset].overrides.get(kind, ())
        cfg = load_config(cls, path, [f"modality={modality}", *overrides])  # as the command does
        assert cfg == load_config(cls, path, overrides)  # the file's modality alone picks alike
        encoder, augment, mask_ratio = sections[modality]
        assert cfg.modality == modality, (preset, kind)
        assert type(cfg.encoder) is encoder and type(cfg.augment) is augment, (preset, kind)
        if cls is MaeRunConfig:
            assert cfg.mae.mask_ratio == mask_ratio, (preset, kind)
