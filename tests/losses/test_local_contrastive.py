import math

import pytest
import torch
import torch.nn.functional as F

from ptacl.losses import cosine_alignment_loss, local_contrastive_loss

E = math.e


def test_hand_computed_hard_alignment():
    # one subject, T = 2: both ECG steps point like CMR step 0, so (τ = 1) the similarity
    # matrix is s = [[1, 0], [1, 0]] (rows ECG steps, columns CMR steps).
    ecg_local = torch.tensor([[[1.0, 0.0], [2.0, 0.0]]])
    cmr_local = torch.tensor([[[3.0, 0.0], [0.0, 1.0]]])
    # E→C, row k over columns, target k: −log(e/(e+1)) and −log(1/(e+1))
    ecg_to_cmr = (math.log(1 + 1 / E) + math.log(1 + E)) / 2
    # C→E, column t over rows, target t: columns [1, 1] and [0, 0] are uniform: log 2 each
    cmr_to_ecg = math.log(2)
    for w in (0.5, 0.25):
        loss = local_contrastive_loss(ecg_local, cmr_local, 1.0, 0.0, ecg_to_cmr_weight=w)
        assert loss.item() == pytest.approx(w * ecg_to_cmr + (1 - w) * cmr_to_ecg, abs=1e-6)


def test_hand_computed_soft_alignment():
    # T = 2, σ = 0.5: P rows are [1, a] / (1 + a) with a = exp(−½ (1/2 / 0.5)²) = e^−½.
    a = math.exp(-0.5)
    p_same, p_other = 1 / (1 + a), a / (1 + a)
    local = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # s = identity (τ = 1)
    log_same, log_other = 1 - math.log(E + 1), -math.log(E + 1)
    expected = -(p_same * log_same + p_other * log_other)  # every row and column alike
    loss = local_contrastive_loss(local, local.clone(), 1.0, 0.5)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    # τ = 0.5 doubles the similarities
    log_same, log_other = 2 - math.log(math.exp(2) + 1), -math.log(math.exp(2) + 1)
    expected = -(p_same * log_same + p_other * log_other)
    assert local_contrastive_loss(local, local.clone(), 0.5, 0.5).item() == pytest.approx(
        expected, abs=1e-6
    )


def test_sigma_zero_is_cross_entropy_with_identity_target():
    g = torch.Generator().manual_seed(0)
    ecg_local, cmr_local = torch.randn(3, 13, 8, generator=g), torch.randn(3, 13, 8, generator=g)
    tau, w = 0.07, 0.6
    expected = 0.0
    labels = torch.arange(13)
    for i in range(3):
        sim = F.cosine_similarity(ecg_local[i, :, None], cmr_local[i, None], dim=-1) / tau
        expected += w * F.cross_entropy(sim, labels) + (1 - w) * F.cross_entropy(sim.T, labels)
    loss = local_contrastive_loss(ecg_local, cmr_local, tau, 0.0, ecg_to_cmr_weight=w)
    torch.testing.assert_close(loss, expected / 3)


@pytest.mark.parametrize("sigma", [0.0, 0.1])
def test_aligned_scores_lower_than_shuffled(sigma):
    g = torch.Generator().manual_seed(2)
    cmr_local = torch.randn(4, 13, 32, generator=g)
    ecg_local = cmr_local + 0.3 * torch.randn(4, 13, 32, generator=g)
    shuffled = ecg_local[:, torch.randperm(13, generator=g)]
    aligned_loss = local_contrastive_loss(ecg_local, cmr_local, 0.1, sigma)
    assert aligned_loss < local_contrastive_loss(shuffled, cmr_local, 0.1, sigma)
    assert cosine_alignment_loss(ecg_local, cmr_local, sigma) < cosine_alignment_loss(
        shuffled, cmr_local, sigma
    )


def _target(num_steps, sigma):
    """Alignment weights written out from the formula, one entry at a time."""
    rows = []
    for k in range(num_steps):
        if sigma == 0:
            w = [1.0 if t == k else 0.0 for t in range(num_steps)]
        else:
            w = [math.exp(-0.5 * (abs(k - t) / num_steps / sigma) ** 2) for t in range(num_steps)]
        rows.append([v / sum(w) for v in w])
    return rows


def _local_loop_reference(ecg_local, cmr_local, tau, sigma, w, valid):
    """Subject by subject, step by step, softmax written out."""
    num_steps = ecg_local.shape[1]
    p = _target(num_steps, sigma)
    total, count = 0.0, 0
    for i in range(ecg_local.shape[0]):
        if not valid[i]:
            continue
        s = [
            [
                F.cosine_similarity(ecg_local[i, k], cmr_local[i, t], dim=0) / tau
                for t in range(num_steps)
            ]
            for k in range(num_steps)
        ]
        e2c, c2e = 0.0, 0.0
        for k in range(num_steps):
            norm = torch.log(sum(torch.exp(s[k][t]) for t in range(num_steps)))
            e2c = e2c - sum(p[k][t] * (s[k][t] - norm) for t in range(num_steps))
        for t in range(num_steps):
            norm = torch.log(sum(torch.exp(s[k][t]) for k in range(num_steps)))
            c2e = c2e - sum(p[t][k] * (s[k][t] - norm) for k in range(num_steps))
        total = total + w * e2c / num_steps + (1 - w) * c2e / num_steps
        count += 1
    return total / count


def _cosine_loop_reference(ecg_local, cmr_local, sigma, valid):
    num_steps = ecg_local.shape[1]
    p = _target(num_steps, sigma)
    total, count = 0.0, 0
    for i in range(ecg_local.shape[0]):
        if not valid[i]:
            continue
        matched = sum(
            p[k][t] * F.cosine_similarity(ecg_local[i, k], cmr_local[i, t], dim=0)
            for k in range(num_steps)
            for t in range(num_steps)
        )
        total = total + 1 - matched / num_steps
        count += 1
    return total / count


@pytest.mark.parametrize("sigma", [0.0, 0.1, 0.3])
def test_matches_loop_reference_value_and_gradient(sigma):
    g = torch.Generator().manual_seed(3)
    ecg_local = torch.randn(4, 5, 6, generator=g, dtype=torch.float64).requires_grad_()
    cmr_local = torch.randn(4, 5, 6, generator=g, dtype=torch.float64).requires_grad_()
    valid = torch.tensor([True, False, True, True])
    for fast, slow in (
        (
            local_contrastive_loss(ecg_local, cmr_local, 0.2, sigma, 0.3, valid=valid),
            _local_loop_reference(ecg_local, cmr_local, 0.2, sigma, 0.3, valid),
        ),
        (
            cosine_alignment_loss(ecg_local, cmr_local, sigma, valid=valid),
            _cosine_loop_reference(ecg_local, cmr_local, sigma, valid),
        ),
    ):
        assert fast.item() == pytest.approx(slow.item(), rel=1e-5)
        fast_grads = torch.autograd.grad(fast, (ecg_local, cmr_local))
        slow_grads = torch.autograd.grad(slow, (ecg_local, cmr_local))
        for a, b in zip(fast_grads, slow_grads):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
        assert (fast_grads[0][1] == 0).all()  # the invalid subject gets no gradient


def test_hand_computed_cosine_alignment():
    ecg_local = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    cmr_local = torch.tensor([[[5.0, 0.0], [0.0, 1.0]]])
    expected = 1 - (1 + 1 / math.sqrt(2)) / 2
    assert cosine_alignment_loss(ecg_local, cmr_local).item() == pytest.approx(expected)


@pytest.mark.parametrize("loss_fn", ["local", "cosine"])
def test_no_nan_on_zero_vectors_or_invalid_subjects(loss_fn):
    def loss_of(ecg_local, cmr_local, valid):
        if loss_fn == "local":
            return local_contrastive_loss(ecg_local, cmr_local, 0.07, 0.1, valid=valid)
        return cosine_alignment_loss(ecg_local, cmr_local, 0.1, valid=valid)

    zeros_ecg = torch.zeros(3, 13, 4, requires_grad=True)
    zeros_cmr = torch.zeros(3, 13, 4, requires_grad=True)
    loss = loss_of(zeros_ecg, zeros_cmr, None)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(zeros_ecg.grad).all() and torch.isfinite(zeros_cmr.grad).all()

    # an invalid subject may hold anything, NaN included, without reaching the loss
    ecg_local = torch.randn(3, 13, 4)
    ecg_local[1] = float("nan")
    ecg_local.requires_grad_()
    cmr_local = torch.randn(3, 13, 4, requires_grad=True)
    valid = torch.tensor([True, False, True])
    loss = loss_of(ecg_local, cmr_local, valid)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(ecg_local.grad).all() and torch.isfinite(cmr_local.grad).all()
    reference = loss_of(ecg_local.detach()[[0, 2]], cmr_local.detach()[[0, 2]], None)
    torch.testing.assert_close(loss.detach(), reference)

    # no valid subject at all: exactly 0, and backward still works
    loss = loss_of(ecg_local, cmr_local, torch.zeros(3, dtype=torch.bool))
    assert loss.item() == 0.0 and loss.requires_grad
    ecg_local.grad = None
    loss.backward()
    assert (ecg_local.grad == 0).all()


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="must both be"):
        local_contrastive_loss(torch.zeros(2, 13, 4), torch.zeros(2, 12, 4), 1.0, 0.1)
    with pytest.raises(ValueError, match="valid"):
        cosine_alignment_loss(torch.zeros(2, 13, 4), torch.zeros(2, 13, 4), valid=torch.ones(3))
