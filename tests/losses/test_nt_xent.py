import math
import os
import re

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from ptacl.losses.nt_xent import nt_xent_loss


def test_hand_computed_value():
    # views e0, e1 and (1, 1)/√2, (1, −1)/√2: c = cos 45° between every e and every diagonal,
    # 0 between the two e's and between the two diagonals.
    z1 = torch.tensor([[3.0, 0.0], [0.0, 2.0]])
    z2 = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    tau = 0.5
    s = (1 / math.sqrt(2)) / tau
    # anchor e0: positive (1,1) at s, others e1 at 0 and (1,−1) at s;
    # anchor e1: positive (1,−1) at −s, others e0 at 0 and (1,1) at s;
    # the diagonals mirror these (their non-self negatives are each other at 0).
    first = -(s - math.log(math.exp(0) + 2 * math.exp(s)))
    second = -(-s - math.log(math.exp(0) + math.exp(s) + math.exp(-s)))
    expected = (2 * first + 2 * second) / 4
    assert nt_xent_loss(z1, z2, tau).item() == pytest.approx(expected, abs=1e-6)


def _loop_reference(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Anchor by anchor: −log(exp(s_ap/τ) / Σ_{k≠a} exp(s_ak/τ)) over the 2B views."""
    views = torch.cat([z1, z2])
    n, batch = views.shape[0], z1.shape[0]
    total = 0.0
    for a in range(n):
        positive = (a + batch) % n
        denominator = 0.0
        for k in range(n):
            if k != a:
                denominator = denominator + torch.exp(
                    F.cosine_similarity(views[a], views[k], dim=0) / temperature
                )
        numerator = torch.exp(F.cosine_similarity(views[a], views[positive], dim=0) / temperature)
        total = total - torch.log(numerator / denominator)
    return total / n


def test_matches_loop_reference_value_and_gradient():
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(5, 4, generator=g, dtype=torch.float64).requires_grad_()
    z2 = torch.randn(5, 4, generator=g, dtype=torch.float64).requires_grad_()
    fast = nt_xent_loss(z1, z2, 0.2)
    slow = _loop_reference(z1, z2, 0.2)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-12)
    for a, b in zip(torch.autograd.grad(fast, (z1, z2)), torch.autograd.grad(slow, (z1, z2))):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_self_similarity_is_excluded():
    # identical views, all orthogonal samples: every anchor sees its positive at 1/τ, its own
    # copy would add a second exp(1/τ) term; the 2B − 2 orthogonal others each add exp(0).
    z = torch.eye(3)
    tau = 0.5
    expected = -math.log(math.exp(2) / (math.exp(2) + 4))
    assert nt_xent_loss(z, z.clone(), tau).item() == pytest.approx(expected, abs=1e-6)


def test_zero_vectors_give_finite_loss_and_gradient():
    z1 = torch.zeros(3, 4, requires_grad=True)
    z2 = torch.zeros(3, 4, requires_grad=True)
    loss = nt_xent_loss(z1, z2, 0.1)
    loss.backward()
    # every cosine is 0: uniform over the 2B − 1 candidates
    assert loss.item() == pytest.approx(math.log(5), abs=1e-6)
    assert torch.isfinite(z1.grad).all() and torch.isfinite(z2.grad).all()


def test_matching_views_score_lower_than_unrelated_ones():
    g = torch.Generator().manual_seed(1)
    z1 = torch.randn(8, 16, generator=g)
    close = z1 + 0.05 * torch.randn(8, 16, generator=g)
    unrelated = torch.randn(8, 16, generator=g)
    assert nt_xent_loss(z1, close, 0.1) < nt_xent_loss(z1, unrelated, 0.1)


def test_bf16_inputs_and_autocast_give_the_float32_value():
    g = torch.Generator().manual_seed(2)
    z1, z2 = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    reference = nt_xent_loss(z1, z2, 0.07)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = nt_xent_loss(z1, z2, 0.07)
    assert inside.dtype == torch.float32
    assert inside.item() == pytest.approx(reference.item(), abs=1e-6)


@pytest.mark.parametrize(
    ("z1", "z2", "temperature", "message"),
    [
        (torch.zeros(3, 4), torch.zeros(3, 5), 0.1, "must both be (B, d)"),
        (torch.zeros(3), torch.zeros(3), 0.1, "must both be (B, d)"),
        (torch.zeros(3, 4), torch.zeros(3, 4), 0.0, "temperature must be > 0"),
    ],
)
def test_bad_inputs_are_refused(z1, z2, temperature, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        nt_xent_loss(z1, z2, temperature)


# ----------------------------------------------------------------------------- two processes

WORLD = 2
BATCH = 3  # per process


def _problem():
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(WORLD * BATCH, 6, generator=g, dtype=torch.float64)
    x2 = torch.randn(WORLD * BATCH, 6, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    return x1, x2, torch.nn.Linear(6, 4).double()


def _worker(rank: int, init_file: str, out_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        x1, x2, head = _problem()
        rows = slice(rank * BATCH, (rank + 1) * BATCH)
        loss = nt_xent_loss(head(x1[rows]), head(x2[rows]), 0.1)
        loss.backward()
        grads = [p.grad for p in head.parameters()]
        for grad in grads:  # what DDP does
            dist.all_reduce(grad)
            grad /= WORLD
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss)
        mean_loss /= WORLD
        if rank == 0:
            torch.save({"loss": mean_loss, "grads": grads}, out_file)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # spawning two torch processes takes ~20 s on the shared 2-core machine
def test_two_processes_match_one_process_on_the_concatenated_batch(tmp_path):
    out_file = tmp_path / "rank0.pt"
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(out_file)), nprocs=WORLD, join=True)
    result = torch.load(out_file, weights_only=True)

    x1, x2, head = _problem()
    loss = nt_xent_loss(head(x1), head(x2), 0.1)
    loss.backward()
    torch.testing.assert_close(result["loss"], loss.detach(), rtol=0, atol=1e-10)
    for distributed_grad, p in zip(result["grads"], head.parameters()):
        torch.testing.assert_close(distributed_grad, p.grad, rtol=0, atol=1e-10)
    # a process that ignored the other's views as negatives would differ by far more
    local_only = nt_xent_loss(head(x1[:BATCH]), head(x2[:BATCH]), 0.1, gather=False)
    assert abs(local_only.item() - loss.item()) > 1e-3
