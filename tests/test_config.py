from dataclasses import dataclass, field
from typing import Literal

import pytest

from ptacl.config import (
    ConfigError,
    default_like,
    depends_on,
    fill_dependent,
    from_dict,
    load_config,
    save_config,
    to_dict,
)


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


@dataclass(frozen=True)
class Left:
    a: int = 1


@dataclass(frozen=True)
class Right:
    b: str = "r"


@dataclass(frozen=True)
class Sided:
    """`part`'s type and `size`'s default follow `side`, as a run config's encoder section
    follows its modality."""

    part: Left | Right = field(
        default=None, metadata=depends_on("side", type_of={"l": Left, "r": Right}.get)
    )
    side: Literal["l", "r"] = "l"  # after `part`: the order of the fields does not matter
    size: int = field(default=None, metadata=depends_on("side", default_of={"l": 3, "r": 4}.get))

    def __post_init__(self) -> None:
        fill_dependent(self)


def test_a_field_takes_its_type_and_default_from_a_sibling(tmp_path):
    assert Sided() == Sided(Left(), "l", 3)
    assert Sided(side="r") == Sided(Right(), "r", 4)
    assert from_dict(Sided, {"part": {"b": "x"}, "side": "r"}) == Sided(Right("x"), "r", 4)
    assert from_dict(Sided, {"part": {"a": 2}}) == Sided(Left(2), "l", 3)  # the sibling's default
    assert from_dict(Sided, to_dict(Sided(side="r"))) == Sided(side="r")
    with pytest.raises(ConfigError, match=r"part: unknown key\(s\) \['a'\]; Right takes \['b'\]"):
        from_dict(Sided, {"part": {"a": 2}, "side": "r"})
    with pytest.raises(ConfigError, match="side: 'x' is not one of"):
        from_dict(Sided, {"part": {"a": 2}, "side": "x"})
    with pytest.raises(ConfigError, match=r"Sided\.part: side='r' takes a Right, not a Left"):
        Sided(Left(), "r")
    with pytest.raises(TypeError, match="needs type_of, default_of or both"):
        depends_on("side")
    assert default_like(Sided(Right("y"), "r", 9)) == Sided(side="r")


def test_load_config_starts_from_the_defaults_of_the_sibling_it_is_given(tmp_path):
    assert load_config(Sided, None, ["side=r"]) == Sided(side="r")
    assert load_config(Sided, None, ["side=r", "part.b=z"]) == Sided(Right("z"), "r", 4)
    path = tmp_path / "r.yaml"
    path.write_text("side: r\npart: {b: y}\n")
    assert (
        load_config(Sided, path) == load_config(Sided, path, ["side=r"]) == Sided(Right("y"), "r")
    )
    # the file's sections are written for its side: an override may not switch it
    with pytest.raises(ConfigError, match=r"'side=l' contradicts the file's side: 'r'"):
        load_config(Sided, path, ["side=l"])
    path.write_text("size: 7\n")  # a file that does not say: the override picks
    assert load_config(Sided, path, ["side=r"]) == Sided(Right(), "r", 7)
