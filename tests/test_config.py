from dataclasses import dataclass, field

import pytest

from ptacl.config import ConfigError, load_config, save_config


@dataclass(frozen=True)
class Optim:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)


@dataclass(frozen=True)
class Cfg:
    name: str = "x"
    steps: int = 10
    optim: Optim = field(default_factory=Optim)
    frozen_layers: int | None = None


def test_defaults_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 20\noptim:\n  lr: 0.01\n")
    cfg = load_config(Cfg, path, ["optim.betas=[0.8, 0.9]", "frozen_layers=2", "name=abc"])
    assert cfg == Cfg(name="abc", steps=20, optim=Optim(lr=0.01, betas=(0.8, 0.9)), frozen_layers=2)


def test_round_trip_through_saved_yaml(tmp_path):
    cfg = load_config(Cfg, None, ["optim.lr=2e-4"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(Cfg, tmp_path / "config.yaml") == cfg


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lrr=1", "unknown key"),
        ("steps=1.5", "expected an integer"),
        ("optim.lr=abc", "expected a number"),
        ("steps", "key.sub=value"),
        ("optim.betas=[1]", "expected 2 items"),
    ],
)
def test_bad_overrides_are_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Cfg, None, [override])


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Cfg, tmp_path / "nope.yaml")


@dataclass(frozen=True)
class Conv:
    name: str = "conv"
    width: int = 8


@dataclass(frozen=True)
class Vit:
    name: str = "vit"
    width: int = 16
    depth: int = 2

    @classmethod
    def config_class(cls, data, where="config"):
        return {"vit": Vit, "conv": Conv}[data.get("name", "vit")]


@dataclass(frozen=True)
class WithEncoder:
    encoder: Vit = field(default_factory=Vit)


def test_a_section_naming_another_kind_starts_from_that_kinds_defaults(tmp_path):
    """An encoder section naming another encoder: the default ViT's fields (depth) are not
    carried into it, from a YAML file or from a dotted override alike."""
    path = tmp_path / "c.yaml"
    path.write_text("encoder:\n  name: conv\n  width: 4\n")
    assert load_config(WithEncoder, path).encoder == Conv(width=4)
    cfg = load_config(WithEncoder, None, ["encoder.name=conv", "encoder.width=3"])
    assert cfg.encoder == Conv(width=3)
    same = load_config(WithEncoder, None, ["encoder.name=vit", "encoder.depth=5"])
    assert same.encoder == Vit(depth=5)  # the same kind keeps merging over its defaults
