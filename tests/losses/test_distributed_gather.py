"""Two CPU processes (gloo) must give the global loss and gradients of one process on the
concatenated batch: the negatives of the other process are seen, and gradients flow back."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ptacl.losses import gather_with_grad, global_contrastive_loss

WORLD = 2
BATCH = 4  # per process


def _problem():
    """The same tiny 'encoders' and global batch in every process (fixed seed)."""
    g = torch.Generator().manual_seed(0)
    x_ecg = torch.randn(WORLD * BATCH, 7, generator=g, dtype=torch.float64)
    x_cmr = torch.randn(WORLD * BATCH, 5, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    heads = torch.nn.ModuleDict(
        {"ecg": torch.nn.Linear(7, 3), "cmr": torch.nn.Linear(5, 3)}
    ).double()
    return x_ecg, x_cmr, heads


def _worker(rank: int, init_file: str, out_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        x_ecg, x_cmr, heads = _problem()
        rows = slice(rank * BATCH, (rank + 1) * BATCH)
        loss = global_contrastive_loss(
            heads["ecg"](x_ecg[rows]), heads["cmr"](x_cmr[rows]), 0.1, ecg_to_cmr_weight=0.3
        )
        loss.backward()
        # what DDP does: average the parameter gradients (and, for the log, the loss)
        grads = [p.grad for p in heads.parameters()]
        for grad in grads:
            dist.all_reduce(grad)
            grad /= WORLD
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss)
        mean_loss /= WORLD

        # unequal batches must fail loudly on every process, not hang
        try:
            gather_with_grad(torch.zeros(1 + rank, 3))
            uneven_error = ""
        except ValueError as e:
            uneven_error = str(e)
        if rank == 0:
            torch.save({"loss": mean_loss, "grads": grads, "uneven_error": uneven_error}, out_file)
    finally:
        dist.destroy_process_group()


def test_two_processes_match_one_process_on_the_concatenated_batch(tmp_path):
    out_file = tmp_path / "rank0.pt"
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(out_file)), nprocs=WORLD, join=True)
    result = torch.load(out_file, weights_only=True)

    x_ecg, x_cmr, heads = _problem()
    loss = global_contrastive_loss(heads["ecg"](x_ecg), heads["cmr"](x_cmr), 0.1, 0.3)
    loss.backward()
    torch.testing.assert_close(result["loss"], loss.detach(), rtol=0, atol=1e-5)
    for distributed_grad, p in zip(result["grads"], heads.parameters()):
        torch.testing.assert_close(distributed_grad, p.grad, rtol=0, atol=1e-5)
    # a process that ignored the other's negatives would differ by far more than 1e-5
    local_only = global_contrastive_loss(
        heads["ecg"](x_ecg[:BATCH]), heads["cmr"](x_cmr[:BATCH]), 0.1, 0.3, gather=False
    )
    assert abs(local_only.item() - loss.item()) > 1e-3
    assert "different batch sizes [1, 2]" in result["uneven_error"]


def test_single_process_gather_is_identity():
    x = torch.randn(3, 2)
    gathered, offset = gather_with_grad(x)
    assert gathered is x and offset == 0


if __name__ == "__main__":
    pytest.main([__file__])


def test_unit_pair_without_a_process_group_is_the_unit_rows_in_float32():
    from ptacl.losses.distributed import unit_pair

    a = torch.tensor([[3.0, 4.0], [0.0, 0.0]], dtype=torch.bfloat16)
    b = torch.tensor([[0.0, 2.0], [1.0, 0.0]], dtype=torch.bfloat16)
    ua, ub, all_a, all_b, offset = unit_pair(a, b, gather=True)  # no group: nothing to gather
    assert ua.dtype == torch.float32 and offset == 0
    torch.testing.assert_close(ua, torch.tensor([[0.6, 0.8], [0.0, 0.0]]))  # zero row stays 0
    torch.testing.assert_close(ub, torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    assert all_a is ua and all_b is ub
