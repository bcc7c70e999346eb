"""All-gather of features across processes, keeping the gradient path to every process.

The global contrastive loss uses the other subjects of the *global* batch as negatives. Each
process gathers the features of all processes; the gradient of its loss with respect to the
gathered copy of another process's features must flow back to that process, so the backward pass
sums the gradients of all processes and each keeps its own slice (as `torch.distributed.nn`
does, written here with an all-reduce so that it works on every backend, gloo included).

With every process computing the loss of its own rows against all gathered columns and DDP
averaging parameter gradients, the result equals one process on the concatenated batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_info() -> tuple[int, int]:
    """(rank, world_size) of the default process group; (0, 1) when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        rank, world = world_info()
        ctx.rank, ctx.rows = rank, x.shape[0]
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        # Every process's loss depends on this process's rows: sum their gradients.
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate `x` (B, ...) of all processes in rank order, differentiably.

    Returns (gathered (world * B, ...), offset) where `offset = rank * B` is the row of this
    process's first item in the gathered tensor (the label offset of its positives). Every process
    must pass the same B (training loaders use `drop_last`); unequal sizes raise ValueError on
    all processes rather than hang. Outside a process group this returns (x, 0).
    """
    rank, world = world_info()
    if world == 1:
        return x, 0
    sizes = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([x.shape[0]], dtype=torch.long, device=x.device))
    sizes_list = [int(s.item()) for s in sizes]
    if len(set(sizes_list)) != 1:
        raise ValueError(
            f"gather_with_grad: processes hold different batch sizes {sizes_list}; the global "
            "contrastive loss needs equal per-process batches (use drop_last in the loader)"
        )
    return _GatherWithGrad.apply(x), rank * x.shape[0]


def unit_pair(
    a: torch.Tensor, b: torch.Tensor, *, gather: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """The preamble of the pairwise contrastive losses (global InfoNCE, NT-Xent): row-paired
    a, b (B, d) made unit length in at least float32 (a zero row stays zero: cosine 0, no NaN)
    and, with `gather`, their copies from every process (`gather_with_grad`).

    Returns (a, b, all_a, all_b, offset): all_a, all_b (world·B, d), offset = rank·B, the row
    of this process's first pair among them (0 and a, b themselves without `gather`). Call it
    with autocast off, as the losses do, so the logits that follow are not rounded to bf16.
    """
    dtype = torch.promote_types(a.dtype, torch.float32)
    a = torch.nn.functional.normalize(a.to(dtype), dim=-1)
    b = torch.nn.functional.normalize(b.to(dtype), dim=-1)
    if not gather:
        return a, b, a, b, 0
    all_a, offset = gather_with_grad(a)
    all_b, _ = gather_with_grad(b)
    return a, b, all_a, all_b, offset
