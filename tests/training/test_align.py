import pytest
import torch

from ptacl import configs
from ptacl.config import load_config, to_dict
from ptacl.losses import global_contrastive_loss, local_contrastive_loss
from ptacl.models import count_parameters
from ptacl.training.align import (
    AlignModule,
    AlignRunConfig,
)
from ptacl.training.figures import save_similarity_figure
from ptacl.training.parts import parameter_counts

TINY = configs.root() / "tiny" / "ptacl.yaml"


def tiny_module(*overrides: str) -> AlignModule:
    torch.manual_seed(0)
    return AlignModule(to_dict(load_config(AlignRunConfig, TINY, list(overrides))))


def tiny_batch(module: AlignModule, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ecg_cfg, cmr_cfg = module.ecg_encoder.config, module.cmr_encoder.config
    r_peaks = torch.full((batch, 8), -1)
    r_peaks[:, :3] = torch.tensor([100, 450, 800])  # two complete beats in the 1000-sample crop
    return {
        "ecg": torch.randn(batch, ecg_cfg.leads, ecg_cfg.samples, generator=g),
        "cmr": torch.rand(batch, 1, cmr_cfg.frames, cmr_cfg.size, cmr_cfg.size, generator=g),
        "r_peaks": r_peaks,
    }


ALIGN_CONFIGS = ["ptacl_regression.yaml", "ptacl_retrieval.yaml", "global.yaml", "tiny/ptacl.yaml"]


@pytest.mark.parametrize("name", ALIGN_CONFIGS)
def test_shipped_align_configs_build(name):
    cfg = load_config(AlignRunConfig, configs.root() / name)
    module = AlignModule(to_dict(cfg)) if name.startswith("tiny") else None
    assert cfg.loss.num_steps == 13 and (module is None or module.loss_config == cfg.loss)


def test_paper_hyperparameters_in_shipped_configs():
    regression = load_config(AlignRunConfig, configs.root() / "ptacl_regression.yaml").loss
    retrieval = load_config(AlignRunConfig, configs.root() / "ptacl_retrieval.yaml").loss
    global_only = load_config(AlignRunConfig, configs.root() / "global.yaml").loss
    assert (regression.sigma, regression.temperature_global, regression.temperature_local) == (
        0.1,
        0.1,
        1.0,
    )
    assert (retrieval.sigma, retrieval.temperature_global, retrieval.temperature_local) == (
        0.0,
        0.07,
        0.07,
    )
    assert regression.beta == retrieval.beta == 1.0 and global_only.beta == 0.0


@pytest.mark.parametrize("space", ["tokens", "projection"])
def test_local_loss_adds_no_parameters(space):
    with_local = tiny_module("loss.beta=1.0", f"loss.local_space={space}")
    global_only = tiny_module("loss.beta=0.0", f"loss.local_space={space}")
    assert count_parameters(with_local) == count_parameters(global_only)
    assert count_parameters(with_local, trainable_only=False) == count_parameters(
        global_only, trainable_only=False
    )


def test_first_blocks_and_embeddings_are_frozen():
    module = tiny_module("freeze_blocks=1")
    for encoder in (module.ecg_encoder, module.cmr_encoder):
        assert not any(p.requires_grad for p in encoder.blocks[0].parameters())
        assert not any(p.requires_grad for p in encoder.patch_embed.parameters())
        assert all(p.requires_grad for p in encoder.blocks[1].parameters())
        assert all(p.requires_grad for p in encoder.norm.parameters())
    counts = parameter_counts(module)
    assert counts["total"] == counts["ecg_encoder"] + counts["cmr_encoder"] + counts["heads"]
    with pytest.raises(ValueError, match="freeze_blocks=3"):
        tiny_module("freeze_blocks=3")


@pytest.mark.parametrize("space", ["tokens", "projection"])
def test_training_loss_is_global_plus_beta_local_and_every_trainable_weight_learns(space):
    module = tiny_module("loss.beta=0.5", f"loss.local_space={space}")
    batch = tiny_batch(module)
    out = module(batch["ecg"], batch["cmr"], batch["r_peaks"])
    width = 16 if space == "projection" else 32
    assert out["ecg_local"].shape == out["cmr_local"].shape == (2, 13, width)
    assert out["local_valid"].all()
    losses = module.losses(out)
    cfg = module.loss_config
    expected_global = global_contrastive_loss(out["z_ecg"], out["z_cmr"], 0.1)
    expected_local = local_contrastive_loss(out["ecg_local"], out["cmr_local"], 1.0, 0.1)
    torch.testing.assert_close(losses["global"], expected_global)
    torch.testing.assert_close(losses["local"], expected_local)
    torch.testing.assert_close(losses["loss"], expected_global + cfg.beta * expected_local)
    losses["loss"].backward()
    for name, p in module.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name


def test_global_only_skips_the_local_embeddings_in_training():
    module = tiny_module("loss.beta=0.0")
    module.log = lambda *args, **kwargs: None  # no Trainer attached
    batch = tiny_batch(module)
    loss = module.training_step(batch, 0)
    out = module(batch["ecg"], batch["cmr"], batch["r_peaks"], local=False)
    torch.testing.assert_close(loss, module.losses(out)["global"])
    # evaluated with local embeddings, β = 0 still keeps them out of the loss
    full = module.losses(module(batch["ecg"], batch["cmr"], batch["r_peaks"]))
    torch.testing.assert_close(full["loss"], full["global"])


def test_batch_without_complete_beats_trains_on_the_global_loss():
    module = tiny_module()
    batch = tiny_batch(module)
    batch["r_peaks"][:] = -1
    batch["r_peaks"][0, 0] = 300  # a lone peak is no complete beat
    out = module(batch["ecg"], batch["cmr"], batch["r_peaks"])
    losses = module.losses(out)
    assert not out["local_valid"].any()
    assert losses["local"].item() == 0.0
    torch.testing.assert_close(losses["loss"], losses["global"])
    losses["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters() if p.grad is not None)


def test_validation_collects_retrieval_alignment_and_figure(tmp_path):
    module = tiny_module()
    logged: dict[str, float] = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, float(value))  # no Trainer
    module.on_validation_epoch_start()
    with torch.no_grad():
        for seed in range(2):
            module.validation_step(tiny_batch(module, seed=seed), seed)
    module.on_validation_epoch_end()
    assert 0 <= logged["val/top1"] <= logged["val/top5"] <= 1
    assert 0 <= logged["val/alignment_acc_exact"] <= logged["val/alignment_acc"] <= 1
    assert module.val_similarity.shape == (13, 13)
    png = save_similarity_figure(module.val_similarity, tmp_path / "fig.png", "test")
    assert png.read_bytes()[:4] == b"\x89PNG"
