import pytest
import torch

from ptacl.config import ConfigError
from ptacl.models import (
    CmrEncoder,
    CmrEncoderConfig,
    EcgEncoder,
    EcgEncoderConfig,
    build_encoder,
    count_parameters,
    encoder_from_config,
)
from ptacl.models.vit import Attention

pytestmark = pytest.mark.usefixtures("one_thread")


TINY = {
    "ecg": (EcgEncoder, EcgEncoderConfig(samples=500, width=32, depth=2, heads=4), (2, 12, 500)),
    "cmr": (CmrEncoder, CmrEncoderConfig(width=32, depth=2, heads=4), (2, 1, 26, 84, 84)),
}


@pytest.fixture(params=sorted(TINY))
def tiny(request):
    torch.manual_seed(0)
    cls, config, shape = TINY[request.param]
    return cls(config), torch.randn(shape)


def test_default_layouts_match_the_paper():
    ecg, cmr = EcgEncoder(), CmrEncoder()
    assert ecg.grid == (12, 50) and ecg.num_tokens == 600 and ecg.width == 512
    assert cmr.grid == (13, 49) and cmr.num_tokens == 637 and cmr.width == 512
    assert len(ecg.blocks) == 6 and len(cmr.blocks) == 4


def test_shape_contracts(tiny):
    encoder, x = tiny
    length = encoder.num_tokens
    out = encoder.forward_tokens(x)
    assert out["tokens"].shape == (2, length, 32)
    assert out["mask"].shape == (2, length) and out["mask"].sum() == 0
    assert torch.equal(out["ids_restore"][0], torch.arange(length))
    masked = encoder.forward_tokens(x, mask_ratio=0.75)
    assert masked["tokens"].shape == (2, length - round(0.75 * length), 32)
    assert encoder.forward_features(x).shape == (2, length, 32)
    assert encoder.pool(encoder.forward_features(x)).shape == (2, 32)
    assert encoder.patchify(x).shape == (2, length, encoder.patch_dim)
    assert torch.equal(encoder.unpatchify(encoder.patchify(x)), x)


def test_ecg_token_index_is_lead_times_50_plus_t():
    encoder = EcgEncoder(EcgEncoderConfig(width=16, depth=1, heads=2))
    x = torch.zeros(1, 12, 2500)
    x[0, 3, 50 * 7 : 50 * 8] = 1.0  # lead 3, time patch 7 only
    patches = encoder.patchify(x)
    assert torch.nonzero(patches.abs().sum(-1)[0]).flatten().tolist() == [3 * 50 + 7]
    # the embedding must follow the same order: only that token differs from the zero input
    diff = (encoder.embed(x) - encoder.embed(torch.zeros_like(x))).abs().sum(-1)[0]
    assert torch.nonzero(diff).flatten().tolist() == [3 * 50 + 7]


def test_cmr_token_index_is_t_times_49_plus_s():
    encoder = CmrEncoder(CmrEncoderConfig(width=16, depth=1, heads=2))
    x = torch.zeros(1, 1, 26, 84, 84)
    x[0, 0, 10:12, 24:36, 60:72] = 1.0  # temporal token 5, spatial row 2, column 5
    expected = 5 * 49 + 2 * 7 + 5
    assert torch.nonzero(encoder.patchify(x).abs().sum(-1)[0]).flatten().tolist() == [expected]
    diff = (encoder.embed(x) - encoder.embed(torch.zeros_like(x))).abs().sum(-1)[0]
    assert torch.nonzero(diff).flatten().tolist() == [expected]


def test_ecg_patch_embedding_is_shared_across_leads():
    encoder = EcgEncoder(EcgEncoderConfig(width=16, depth=1, heads=2))
    x = torch.zeros(1, 12, 2500)
    x[0, 0, :50] = torch.randn(50)
    x[0, 5, :50] = x[0, 0, :50]  # the same signal on lead 5 at the same time
    tokens = encoder.embed(x) - encoder.lead_embed.repeat_interleave(50, 0)
    assert torch.allclose(tokens[0, 0], tokens[0, 5 * 50], atol=1e-6)


def test_every_parameter_gets_a_finite_gradient(tiny):
    encoder, x = tiny
    encoder.pool(encoder.forward_tokens(x, mask_ratio=0.5)["tokens"]).pow(2).sum().backward()
    for name, p in encoder.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_sdpa_matches_plain_attention_forward_and_gradient():
    torch.manual_seed(0)
    fast = Attention(32, 4, kind="sdpa")
    plain = Attention(32, 4, kind="plain")
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(3, 17, 32, requires_grad=True)
    y = torch.randn(3, 17, 32)
    out_fast, out_plain = fast(x), plain(x)
    assert torch.allclose(out_fast, out_plain, atol=1e-5)
    (g_fast,) = torch.autograd.grad((out_fast * y).sum(), x)
    (g_plain,) = torch.autograd.grad((out_plain * y).sum(), x)
    assert torch.allclose(g_fast, g_plain, atol=1e-5)


def test_wrong_input_shape_is_named():
    encoder = build_encoder("ecg_vit", samples=500, width=16, depth=1, heads=2)
    with pytest.raises(ValueError, match=r"\(B, 12, 500\).*\(2, 12, 400\)"):
        encoder.forward_features(torch.zeros(2, 12, 400))
    with pytest.raises(ConfigError, match=r"unknown encoder 'eeg_vit'.*ecg_vit"):
        build_encoder("eeg_vit")


def test_build_encoder_from_a_plain_dict():
    section = {"width": 16, "depth": 3, "heads": 2, "patch": [2, 12, 12]}  # no name: the ViT
    encoder = encoder_from_config(section, "cmr")
    assert isinstance(encoder, CmrEncoder) and len(encoder.blocks) == 3
    assert count_parameters(encoder) > 0


def test_positional_codes_tell_every_token_apart(tiny):
    encoder, _ = tiny
    codes = encoder.sincos_positions(encoder.width)
    assert codes.shape == (encoder.num_tokens, encoder.width)
    distances = torch.cdist(codes, codes) + torch.eye(len(codes)) * 1e3
    assert distances.min() > 1e-3  # no two tokens start with the same position


def test_patch_embedding_as_a_matmul_equals_the_convolution():
    torch.manual_seed(0)
    ecg = EcgEncoder(EcgEncoderConfig(samples=500, width=32, depth=1, heads=2))
    x = torch.randn(2, 12, 500)
    conv = ecg.patch_embed(x.reshape(24, 1, 500))  # (B*C, D, T)
    expected = conv.reshape(2, 12, 32, 10).permute(0, 1, 3, 2).reshape(2, 120, 32)
    position = (ecg.lead_embed[:, None] + ecg.time_embed[None]).reshape(120, 32)
    torch.testing.assert_close(ecg.embed(x), expected + position)
    cmr = CmrEncoder(CmrEncoderConfig(width=32, depth=1, heads=2))
    v = torch.rand(2, 1, 26, 84, 84)
    expected = cmr.patch_embed(v).flatten(2).transpose(1, 2)  # (B, F*H*W tokens, D)
    torch.testing.assert_close(cmr.embed(v), expected + cmr.pos_embed)
