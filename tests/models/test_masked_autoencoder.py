import pytest
import torch

from ptacl.models import (
    CmrEncoder,
    CmrEncoderConfig,
    EcgEncoder,
    EcgEncoderConfig,
    MaeConfig,
    MaskedAutoencoder,
    count_parameters,
)
from ptacl.models.mae import mean_prediction_mse, normalise_patches, removed_patch_mse

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny(modality, norm_target=False):
    torch.manual_seed(0)
    if modality == "ecg":
        encoder = EcgEncoder(EcgEncoderConfig(samples=500, width=32, depth=2, heads=4))
        return MaskedAutoencoder(encoder, MaeConfig(0.75, 16, 1, 2, 4.0, norm_target)), (4, 12, 500)
    encoder = CmrEncoder(CmrEncoderConfig(frames=4, size=24, width=32, depth=2, heads=4))
    return MaskedAutoencoder(encoder, MaeConfig(0.9, 16, 1, 2, 4.0, norm_target)), (4, 1, 4, 24, 24)


def test_masked_mse_counts_removed_tokens_only():
    pred = torch.zeros(1, 3, 2)
    target = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]])
    mask = torch.tensor([[1.0, 0.0, 1.0]])
    assert removed_patch_mse(pred, target, mask).item() == pytest.approx((1 + 9) / 2)


def test_mean_prediction_baseline_is_the_variance_of_the_removed_patches():
    target = torch.randn(4, 30, 5)
    mask = (torch.rand(4, 30) < 0.5).float()
    picked = target[mask.bool()]  # (N, P)
    expected = picked.var(dim=0, unbiased=False).mean()
    assert mean_prediction_mse(target, mask).item() == pytest.approx(expected.item(), rel=1e-5)


def test_normalised_patches():
    out = normalise_patches(torch.randn(2, 3, 50) * 5 + 2)
    assert torch.allclose(out.mean(-1), torch.zeros(2, 3), atol=1e-5)
    assert torch.allclose(out.std(-1), torch.ones(2, 3), atol=1e-3)


@pytest.mark.parametrize("modality", ["ecg", "cmr"])
@pytest.mark.parametrize("norm_target", [False, True])
def test_shapes_and_every_parameter_gets_a_gradient(modality, norm_target):
    mae, shape = _tiny(modality, norm_target)
    x = torch.randn(shape)
    out = mae(x)
    length = mae.encoder.num_tokens
    assert out["pred"].shape == (shape[0], length, mae.encoder.patch_dim)
    assert out["mask"].shape == (shape[0], length)
    out["loss"].backward()
    for name, p in mae.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    pictures = mae.reconstruct(x, out["pred"], out["mask"])
    for key in ("visible", "prediction", "pasted"):
        assert pictures[key].shape == x.shape
    visible = ~torch.isnan(pictures["visible"])
    assert torch.equal(pictures["pasted"][visible], x[visible])


def test_loss_ignores_visible_tokens():
    mae, shape = _tiny("ecg")
    x = torch.randn(shape)
    out = mae(x, generator=torch.Generator().manual_seed(0))
    patches = mae.encoder.patchify(x)
    # a perfect prediction of the visible tokens alone changes nothing
    pred = torch.where(out["mask"].bool().unsqueeze(-1), out["pred"], patches)
    assert mae.forward_loss(x, pred, out["mask"]).item() == pytest.approx(out["loss"].item())


def _learnable_batch(modality):
    """Two samples of smooth structure (sines per lead; discs per frame), as ECG and CMR are:
    white noise would ask a tiny model to memorise more values than it has parameters."""
    torch.manual_seed(0)
    if modality == "ecg":
        encoder = EcgEncoder(EcgEncoderConfig(samples=250, width=64, depth=2, heads=4))
        time = torch.linspace(0, 0.5, 250)
        freq, phase = torch.rand(2, 12, 1) * 5 + 1, torch.rand(2, 12, 1) * 6.28
        x = torch.sin(2 * torch.pi * freq * time + phase)
        return MaskedAutoencoder(encoder, MaeConfig(0.75, 32, 1, 2)), x
    encoder = CmrEncoder(CmrEncoderConfig(frames=4, size=24, width=64, depth=2, heads=4))
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 24), torch.linspace(-1, 1, 24), indexing="ij")
    radius = torch.rand(2, 1, 4, 1, 1) * 0.5 + 0.2
    x = (yy**2 + xx**2 < radius**2).float()
    return MaskedAutoencoder(encoder, MaeConfig(0.9, 32, 1, 2)), x


@pytest.mark.parametrize("modality", ["ecg", "cmr"])
def test_overfits_a_tiny_batch(modality):
    mae, x = _learnable_batch(modality)
    optimizer = torch.optim.AdamW(mae.parameters(), lr=3e-3)
    generator = torch.Generator()
    losses = []
    for _ in range(150):
        # one fixed mask, so the task is memorising the removed patches of this batch
        loss = mae(x, generator=generator.manual_seed(0))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, losses[::10]


def test_parameter_counts_of_the_paper(capsys):
    ecg = MaskedAutoencoder(EcgEncoder(), MaeConfig(mask_ratio=0.75))
    cmr = MaskedAutoencoder(CmrEncoder(), MaeConfig(mask_ratio=0.9))
    counts = {
        "ecg encoder": count_parameters(ecg.encoder),
        "ecg encoder+decoder": count_parameters(ecg),
        "cmr encoder": count_parameters(cmr.encoder),
        "cmr encoder+decoder": count_parameters(cmr),
    }
    print({k: f"{v / 1e6:.2f} M" for k, v in counts.items()})
    assert abs(counts["ecg encoder+decoder"] / 19e6 - 1) < 0.10
    assert abs(counts["ecg encoder"] / 19e6 - 1) < 0.10
    assert abs(counts["cmr encoder"] / 13e6 - 1) < 0.10
    assert abs(counts["cmr encoder+decoder"] / 13e6 - 1) < 0.10


@pytest.mark.slow
def test_learns_to_fill_removed_patches_from_visible_leads():
    """Leads are copies of one random sine, so a removed patch is readable from a visible
    lead at the same time. The MAE first predicts the mean (a plateau of a few hundred steps
    while attention learns to match times), then must fall far below it on unseen signals."""
    torch.manual_seed(0)
    encoder = EcgEncoder(EcgEncoderConfig(samples=500, width=64, depth=2, heads=4))
    mae = MaskedAutoencoder(encoder, MaeConfig(0.75, 32, 1, 4))
    optimizer = torch.optim.AdamW(mae.parameters(), lr=3e-3)
    time = torch.linspace(0, 1, 500)

    def signals(n):
        freq, phase = torch.rand(n, 1, 1) * 8 + 2, torch.rand(n, 1, 1) * 6.28
        return torch.sin(2 * torch.pi * freq * time + phase).expand(n, 12, 500).clone()

    for _ in range(1200):
        loss = mae(signals(16))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        x = signals(64)
        out = mae(x, generator=torch.Generator().manual_seed(0))
        baseline = mean_prediction_mse(mae.targets(x), out["mask"])
    assert out["loss"] < baseline / 5, (out["loss"].item(), baseline.item())
