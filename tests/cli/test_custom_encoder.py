"""A new ECG encoder, registered from this file, through every command by name alone.

A 1-D conv net (no ViT, no lead × time token grid) is registered here, named in an align
config, trained by `ptacl align` without --ecg-init, evaluated by `ptacl evaluate`, exported by
`ptacl export` and run by `ptacl predict`: all that ptacl learns of it is its registered name,
its config and the encoder interface (`ptacl.models.registry`). Also: configs, run folders and
bundles that name no encoder (written before the registry) still mean the paper's ViT.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from inference.builders import beats_ecg, write_cardiosoft_xml
from ptacl import configs
from ptacl.cli.main import main as ptacl
from ptacl.data.store_write import write_store
from ptacl.models import EcgEncoder, EcgEncoderConfig, EncoderConfig, register_encoder

TINY = configs.root() / "tiny" / "ptacl.yaml"


@dataclass(frozen=True)
class ConvEcgConfig(EncoderConfig):
    name: str = "test_conv1d"
    samples: int = 1000  # input crop
    width: int = 32  # = the tiny CMR encoder's, for the local loss on tokens
    stride: int = 25  # ECG samples per time token
    depth: int = 2


@register_encoder("test_conv1d", modality="ecg", config=ConvEcgConfig)
class ConvEcgEncoder(nn.Module):
    """All 12 leads in one strided Conv1d, then residual convolutions over time: one token per
    `stride` samples, already one per time step."""

    def __init__(self, config: ConvEcgConfig = ConvEcgConfig()) -> None:
        super().__init__()
        self.config = config
        self.width, self.samples, self.samples_per_step = (
            config.width,
            config.samples,
            config.stride,
        )
        self.stem = nn.Conv1d(12, config.width, config.stride, stride=config.stride)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv1d(config.width, config.width, 3, padding=1), nn.GELU())
            for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(config.width)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 12, samples) -> (B, samples / stride, D)."""
        h = self.stem(x)
        for block in self.blocks:
            h = h + block(h)
        return self.norm(h.transpose(1, 2))

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens.mean(dim=1)

    def time_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """54 paired subjects (40 train: more than the 32 features of the OLS probe `ptacl export`
    fits, 4 val, 10 test), R peaks every 400 samples."""
    rng = np.random.default_rng(5)
    n = 54
    time = np.arange(5000) / 500
    ecg = np.sin(2 * np.pi * rng.uniform(1, 1.5, (n, 12, 1)) * time)
    ecg += 0.1 * rng.standard_normal((n, 12, 5000))
    eids = [str(4_000_000 + i) for i in range(n)]
    return write_store(
        tmp_path_factory.mktemp("custom") / "store",
        eids=eids,
        splits=["train"] * 40 + ["val"] * 4 + ["test"] * 10,
        ecg=ecg,
        cmr=rng.random((n, 50, 84, 84), dtype=np.float32),
        r_peaks=[np.arange(200, 5000, 400)] * n,
        phenotypes=rng.normal(100, 20, (n, 10)).astype(np.float32),
        has_ecg=[True] * n,
        has_cmr=[True] * n,
        qc=pd.DataFrame({"eid": eids, "status": "ok"}),
    )


@pytest.fixture(scope="module")
def conv_run(store, tmp_path_factory) -> Path:
    """`ptacl align` (stage 2 without MAE) with the ECG encoder named in the YAML."""
    folder = tmp_path_factory.mktemp("conv")
    config = yaml.safe_load(TINY.read_text(encoding="utf-8"))
    config["ecg_encoder"] = {"name": "test_conv1d", "samples": 1000, "width": 32, "stride": 25}
    config["freeze_blocks"] = 0
    (folder / "align.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    out = folder / "run"
    argv = [
        "align",
        "--data",
        str(store),
        "--config",
        str(folder / "align.yaml"),
        "--out",
        str(out),
    ]
    assert ptacl(argv) == 0
    return out


def test_a_registered_conv_net_goes_through_align_evaluate_export_predict(
    conv_run, store, tmp_path, capsys
):
    saved = yaml.safe_load((conv_run / "config.yaml").read_text())
    assert saved["ecg_encoder"] == {
        "name": "test_conv1d", "samples": 1000, "width": 32, "stride": 25, "depth": 2
    }  # fmt: skip
    state = torch.load(conv_run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert "ecg_encoder.stem.weight" in state and "ecg_encoder.blocks.1.0.weight" in state

    # evaluate: embeddings (crop from the encoder), local alignment matrix, retrieval, probe
    out = tmp_path / "eval"
    argv = ["evaluate", "--model", str(conv_run), "--data", str(store), "--out", str(out)]
    assert ptacl([*argv, "--n-boot", "10", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["alignment"]["matrix"]) == 13  # the local steps came from time_tokens
    assert metrics["regression"]["LP (ols)"]["LVEDV (mL)"]["n"] == 10

    # export: the bundle names the registered encoder and its kwargs
    bundle = tmp_path / "bundle"
    assert ptacl(["export", "--model", str(conv_run), "--out", str(bundle)]) == 0
    spec = json.loads((bundle / "config.json").read_text())["encoder"]
    assert spec == {
        "kind": "ecg_encoder",
        "name": "test_conv1d",
        "kwargs": {"samples": 1000, "width": 32, "stride": 25, "depth": 2},
    }
    assert json.loads((bundle / "preprocessing.json").read_text())["crop"] == 1000
    assert "registered encoder `test_conv1d`" in (bundle / "README.md").read_text()

    # predict: `ptacl.load` rebuilds the conv net from the registry by name
    import ptacl as api

    assert isinstance(api.load(bundle).model.encoder, ConvEcgEncoder)
    files = [
        write_cardiosoft_xml(tmp_path / f"{1000020 + i}_20205_2_0.xml", beats_ecg(65, 1.0))
        for i in range(2)
    ]
    table_path = tmp_path / "predictions.csv"
    argv = ["predict", "--model", str(bundle), "--ecg", *map(str, files), "--out", str(table_path)]
    # Two random steps on sines make no plausible phenotypes: predict flags them (exit 1), but
    # only after the conv net embedded every recording.
    assert ptacl([*argv, "--embeddings"]) in (0, 1)
    table = pd.read_csv(table_path, dtype={"eid": str})
    embedding = table[[c for c in table.columns if c.startswith("emb")]].to_numpy()
    assert embedding.shape == (2, 32) and np.isfinite(embedding).all(), table.iloc[0].to_dict()
    assert np.isfinite(table["ood_score"]).all()


def test_a_section_or_bundle_without_a_name_is_the_paper_vit(tmp_path):
    """Run folders and bundles written before the registry name no encoder: the ViT."""
    from ptacl.inference.modules import _ecg_encoder
    from ptacl.runs import load_encoder

    torch.manual_seed(0)
    vit = EcgEncoder(EcgEncoderConfig(width=16, depth=1, heads=2))
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    old_section = {"leads": 12, "samples": 2500, "patch": 50, "width": 16, "depth": 1, "heads": 2}
    (run / "config.yaml").write_text(yaml.safe_dump({"ecg_encoder": old_section}))
    state = {f"ecg_encoder.{k}": v for k, v in vit.state_dict().items()}
    torch.save({"state_dict": state}, run / "checkpoints" / "last.ckpt")
    loaded = load_encoder(run, "ecg")
    assert isinstance(loaded, EcgEncoder) and loaded.config == vit.config

    old_bundle_spec = {"kind": "ecg_encoder", "kwargs": old_section}  # no `name`
    rebuilt = _ecg_encoder(old_bundle_spec, "config.json [encoder]")
    assert isinstance(rebuilt, EcgEncoder) and rebuilt.config == vit.config
    rebuilt.load_state_dict(vit.state_dict())  # the same tensors fit


def test_an_unregistered_encoder_is_named_not_imported():
    from ptacl.inference.bundle_format import BundleError
    from ptacl.inference.modules import _ecg_encoder

    spec = {"kind": "ecg_encoder", "name": "os.system", "kwargs": {}}
    with pytest.raises(BundleError, match=r"unknown encoder 'os.system'.*ecg_vit"):
        _ecg_encoder(spec, "config.json [encoder]")
    with pytest.raises(BundleError, match="not an ECG encoder"):
        _ecg_encoder({"kind": "ecg_encoder", "name": "cmr_vit", "kwargs": {}}, "config.json")


def test_the_mae_refuses_an_encoder_without_vit_token_geometry():
    from ptacl.models import MaskedAutoencoder

    with pytest.raises(TypeError, match="'test_conv1d' is not one"):
        MaskedAutoencoder(ConvEcgEncoder())
