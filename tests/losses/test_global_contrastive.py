import math

import pytest
import torch
import torch.nn.functional as F

from ptacl.losses import global_contrastive_loss


def _log_softmax_at(logits: list[float], i: int) -> float:
    return logits[i] - math.log(sum(math.exp(v) for v in logits))


def test_hand_computed_value():
    # cos(e0,c0)=1, cos(e0,c1)=1/√2, cos(e1,c0)=0, cos(e1,c1)=1/√2; τ = 0.5 doubles them.
    z_ecg = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    z_cmr = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    r = 1 / math.sqrt(2)
    sim = [[2.0, 2 * r], [0.0, 2 * r]]
    ecg_to_cmr = -(_log_softmax_at(sim[0], 0) + _log_softmax_at(sim[1], 1)) / 2
    columns = [[sim[0][0], sim[1][0]], [sim[0][1], sim[1][1]]]
    cmr_to_ecg = -(_log_softmax_at(columns[0], 0) + _log_softmax_at(columns[1], 1)) / 2
    assert cmr_to_ecg == pytest.approx((math.log(1 + math.exp(-2)) + math.log(2)) / 2)

    for w in (0.5, 0.3, 1.0):
        loss = global_contrastive_loss(z_ecg, z_cmr, temperature=0.5, ecg_to_cmr_weight=w)
        assert loss.item() == pytest.approx(w * ecg_to_cmr + (1 - w) * cmr_to_ecg, abs=1e-6)


def _loop_reference(z_ecg, z_cmr, temperature, w):
    """Per-subject loop: −log(exp(s_ii/τ) / Σ_j exp(s_ij/τ)) in both directions."""
    n = z_ecg.shape[0]
    total_e, total_c = 0.0, 0.0
    for i in range(n):
        row = torch.stack([F.cosine_similarity(z_ecg[i], z_cmr[j], dim=0) for j in range(n)])
        col = torch.stack([F.cosine_similarity(z_cmr[i], z_ecg[j], dim=0) for j in range(n)])
        total_e = total_e - torch.log(
            torch.exp(row[i] / temperature) / torch.exp(row / temperature).sum()
        )
        total_c = total_c - torch.log(
            torch.exp(col[i] / temperature) / torch.exp(col / temperature).sum()
        )
    return w * total_e / n + (1 - w) * total_c / n


def test_matches_loop_reference_value_and_gradient():
    g = torch.Generator().manual_seed(0)
    z_ecg = torch.randn(6, 5, generator=g, dtype=torch.float64).requires_grad_()
    z_cmr = torch.randn(6, 5, generator=g, dtype=torch.float64).requires_grad_()
    fast = global_contrastive_loss(z_ecg, z_cmr, temperature=0.1, ecg_to_cmr_weight=0.7)
    slow = _loop_reference(z_ecg, z_cmr, 0.1, 0.7)
    # the loss works in float32 whatever comes in
    assert fast.item() == pytest.approx(slow.item(), rel=1e-5)
    fast_grads = torch.autograd.grad(fast, (z_ecg, z_cmr))
    slow_grads = torch.autograd.grad(slow, (z_ecg, z_cmr))
    for a, b in zip(fast_grads, slow_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_matched_pairs_score_lower_than_mismatched():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(8, 16, generator=g)
    matched = global_contrastive_loss(z, z + 0.01 * torch.randn(8, 16, generator=g), 0.1)
    mismatched = global_contrastive_loss(z, z.roll(1, dims=0), 0.1)
    assert matched < mismatched


def test_zero_vectors_give_no_nan():
    z_ecg = torch.zeros(4, 3, requires_grad=True)
    z_cmr = torch.zeros(4, 3, requires_grad=True)
    loss = global_contrastive_loss(z_ecg, z_cmr, 0.07)
    loss.backward()
    assert loss.item() == pytest.approx(math.log(4), abs=1e-6)  # all cosines 0: uniform
    assert torch.isfinite(z_ecg.grad).all() and torch.isfinite(z_cmr.grad).all()


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="must both be"):
        global_contrastive_loss(torch.zeros(4, 3), torch.zeros(5, 3), 0.1)
    with pytest.raises(ValueError, match="temperature"):
        global_contrastive_loss(torch.zeros(4, 3), torch.zeros(4, 3), 0.0)


def test_autocast_bf16_gives_the_float32_value():
    g = torch.Generator().manual_seed(4)
    z_ecg, z_cmr = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)
    reference = global_contrastive_loss(z_ecg, z_cmr, 0.07)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = global_contrastive_loss(z_ecg, z_cmr, 0.07)
    assert inside.dtype == torch.float32
    assert inside.item() == pytest.approx(reference.item(), abs=1e-5)
