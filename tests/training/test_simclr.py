import pytest
import torch
from torch.utils.data import DataLoader

from ptacl.config import to_dict
from ptacl.data.datasets import CmrDataset, EcgDataset
from ptacl.losses.nt_xent import nt_xent_loss
from ptacl.models import CmrEncoderConfig, EcgEncoderConfig
from ptacl.training.align import HeadConfig
from ptacl.training.mae import MaePretraining, MaeRunConfig
from ptacl.training.parts import parameter_counts
from ptacl.training.simclr import (
    SimclrPretraining,
    SimclrRunConfig,
    TwoViews,
)

HEAD = HeadConfig(hidden=16, dim=8)


def _module(modality: str, batch: int = 3):
    torch.manual_seed(0)
    if modality == "ecg":
        cfg = SimclrRunConfig(
            encoder=EcgEncoderConfig(samples=500, width=16, depth=1, heads=2), head=HEAD
        )
        shape = (batch, 12, 500)
    else:
        cfg = SimclrRunConfig(
            modality="cmr", encoder=CmrEncoderConfig(width=16, depth=1, heads=2), head=HEAD
        )
        shape = (batch, 1, 26, 84, 84)
    return SimclrPretraining(to_dict(cfg)), torch.randn(*shape), torch.randn(*shape)


def test_hyperparameters_are_plain_values():
    module, _, _ = _module("ecg")
    config = module.hparams["config"]
    assert isinstance(config, dict) and config["stage"] == "simclr"
    assert config["loss"]["temperature"] == 0.1

    def plain(v):
        if isinstance(v, dict):
            return all(plain(x) for x in v.values())
        if isinstance(v, list):
            return all(plain(x) for x in v)
        return v is None or isinstance(v, str | int | float | bool)

    assert plain(config)  # nothing that would need unpickling


@pytest.mark.parametrize("modality", ["ecg", "cmr"])
def test_every_parameter_gets_a_finite_gradient(modality):
    module, view1, view2 = _module(modality)
    loss, z1, z2 = module.loss(view1, view2)
    assert z1.shape == z2.shape == (3, HEAD.dim)
    loss.backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_one_pass_over_both_views_equals_two_passes():
    module, view1, view2 = _module("ecg")
    module.eval()  # in training the head's batch norm sees 2B rows in one pass, B in each of two
    joint, _, _ = module.loss(view1, view2)
    separate = nt_xent_loss(module(view1), module(view2), module.temperature)
    torch.testing.assert_close(joint, separate, rtol=1e-5, atol=1e-6)


def test_encoder_lives_where_load_encoder_weights_looks_and_the_head_is_not_a_stage2_head():
    for modality in ("ecg", "cmr"):
        module, _, _ = _module(modality)
        keys = list(module.state_dict())
        assert any(k.startswith(f"{modality}_encoder.") for k in keys)
        assert all(k.startswith((f"{modality}_encoder.", "projection.")) for k in keys)
        # `ptacl embed` and `ptacl export` treat `ecg_head.*` / `cmr_head.*` as stage-2 heads
        assert not any("_head." in k for k in keys)


def test_validation_skips_a_batch_without_negatives():
    module, view1, view2 = _module("ecg")
    logged = {}
    module.log = lambda name, value, **kw: logged.setdefault(name, value)  # outside a Trainer
    module.validation_step({"view1": view1[:1], "view2": view2[:1]}, 0)
    assert logged == {}
    module.validation_step({"view1": view1, "view2": view2}, 0)
    assert logged["val/loss"] > 0 and 0 <= logged["val/view_top1"] <= 1


def test_a_few_steps_on_one_batch_lower_the_loss():
    module, view1, _ = _module("ecg", batch=4)
    view2 = view1 + 0.1 * torch.randn_like(view1)  # genuinely two views of the same samples
    optimizer = torch.optim.AdamW(module.parameters(), lr=3e-3)
    losses = []
    for _ in range(6):
        optimizer.zero_grad()
        loss, _, _ = module.loss(view1, view2)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


def test_default_sizes_are_the_mae_encoders():
    for modality in ("ecg", "cmr"):
        simclr_cfg, mae_cfg = SimclrRunConfig(modality=modality), MaeRunConfig(modality=modality)
        assert simclr_cfg.encoder == mae_cfg.encoder
        counts = parameter_counts(SimclrPretraining(to_dict(simclr_cfg)))
        key = f"{mae_cfg.modality}_encoder"
        assert counts[key] == parameter_counts(MaePretraining(to_dict(mae_cfg)))[key]
        assert counts["other"] == 0
        assert counts["heads"] == 512 * 512 + 512 + 2 * 512 + 512 * 128 + 128  # BN: 2 x 512


# ----------------------------------------------------------------------------- two views


def _ecg_views(store, split, fixed_seed=None):
    base = EcgDataset(store, split, train=True, augment=SimclrRunConfig().augment, crop=500)
    return TwoViews(base, "ecg", fixed_seed=fixed_seed)


def test_two_views_are_two_different_augmentations_of_one_item(tiny_store):
    views = _ecg_views(tiny_store, "train")
    item = views[0]
    assert set(item) == {"view1", "view2", "phenotypes", "eid", "index"}
    assert item["view1"].shape == item["view2"].shape == (12, 500)
    assert not torch.equal(item["view1"], item["view2"])
    assert item["eid"] == views.base[0]["eid"]
    # a CMR item: two cines of (1, F, H, W)
    cmr = TwoViews(
        CmrDataset(
            tiny_store, "train", train=True, augment=SimclrRunConfig(modality="cmr").augment
        ),
        "cmr",
    )[1]
    assert cmr["view1"].shape == cmr["view2"].shape == (1, 26, 84, 84)
    assert not torch.equal(cmr["view1"], cmr["view2"])


def test_training_views_change_between_reads(tiny_store):
    views = _ecg_views(tiny_store, "train")
    assert not torch.equal(views[0]["view1"], views[0]["view1"])


def test_fixed_seed_views_repeat_in_any_order_and_any_worker(tiny_store):
    views = _ecg_views(tiny_store, "val", fixed_seed=3)
    first = [views[k] for k in range(len(views))]
    assert not torch.equal(first[0]["view1"], first[0]["view2"])
    backwards = [views[k] for k in reversed(range(len(views)))][::-1]
    for a, b in zip(first, backwards):
        assert torch.equal(a["view1"], b["view1"]) and torch.equal(a["view2"], b["view2"])
    # in worker processes (which reseed the dataset once from their own seed) as well
    batch = next(iter(DataLoader(views, batch_size=len(views), num_workers=1)))
    assert torch.equal(batch["view1"], torch.stack([a["view1"] for a in first]))
    assert torch.equal(batch["view2"], torch.stack([a["view2"] for a in first]))
    # another seed, other views
    assert not torch.equal(_ecg_views(tiny_store, "val", 4)[0]["view1"], first[0]["view1"])
