"""Ranking a database by cosine similarity, a chunk of queries at a time, exactly and stably.

The primitives `ptacl.eval.retrieval` (P@k and first-match ranks) and `ptacl.eval.collapse`
(top-1 candidates) share, so both rank the same way: similarities (minus an optional
per-candidate penalty) into one reused (chunk, N) block, and the top k of each row with ties
broken by lower position (a stable sort), found without sorting whole rows.
"""

from __future__ import annotations

import numpy as np
import torch

#: Memory budget (in similarity entries) of one query chunk when `chunk_size` is None: 2**26
#: float32 entries = 256 MiB.
DEFAULT_CHUNK_ENTRIES = 2**26


def as_matrix(x: np.ndarray | torch.Tensor, name: str, dtype: torch.dtype) -> torch.Tensor:
    """`x` as a 2-D (N, D) tensor of `dtype`; `name` is said when it is not 2-D."""
    t = torch.as_tensor(x)
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {tuple(t.shape)}")
    return t.to(dtype)


def chunk_buffer(rows: int, cmr: torch.Tensor) -> torch.Tensor:
    """One (rows, N) block reused by every query chunk: a fresh 256 MiB tensor per chunk pays
    page faults and the kernel's zeroing of every page (BENCHMARKS.md, "Retrieval metrics")."""
    return torch.empty(rows, cmr.shape[0], dtype=cmr.dtype, device=cmr.device)


def similarities(
    queries: torch.Tensor,
    cmr: torch.Tensor,
    buffer: torch.Tensor,
    penalty: torch.Tensor | None = None,
) -> torch.Tensor:
    """queries (b, D) @ cmr (N, D)ᵀ into the first b rows of `buffer`: (b, N), minus the
    per-item `penalty` (N,) when given."""
    sim = torch.mm(queries, cmr.T, out=buffer[: len(queries)])
    return sim if penalty is None else sim.sub_(penalty[None])


def penalty_vector(penalty: np.ndarray | None, cmr: torch.Tensor) -> torch.Tensor | None:
    """A per-database-item penalty (N,) as a tensor beside `cmr` (N, D), checked."""
    if penalty is None:
        return None
    pen = torch.as_tensor(np.asarray(penalty)).to(cmr.device, cmr.dtype)
    if pen.shape != (cmr.shape[0],):
        raise ValueError(f"penalty has shape {tuple(pen.shape)}, the database {cmr.shape[0]} rows")
    return pen


def stable_topk(sim: torch.Tensor, k: int) -> np.ndarray:
    """Indices (b, k) of the k highest entries per row, ties by lower index (stable).

    Wide rows are first narrowed exactly: the columns are dealt into interleaved blocks (column
    j into block j mod blocks, about 64k of them) and each block's maximum is taken, one cheap
    pass. The k blocks with the highest maxima hold k entries at least as high as the k-th of
    those maxima, t, and every other block holds only entries <= t; so unless another block's
    maximum equals t (such rows are done in full), the top k lie in those k blocks and the
    < N/blocks tail columns: a ~1/64 subset of the row, which torch.topk then searches. That
    halves the time of a plain torch.topk over 100k-wide rows.
    """
    b, n = sim.shape
    per_block = n // (64 * k)  # 64: fastest of 2-256 at N = 20k and 100k (BENCHMARKS.md)
    if per_block < 4 or b == 0:  # narrow rows: the subset would not be much smaller
        return _topk_sorted(sim, k, None, sim, np.zeros(b, bool))
    blocks = n // per_block
    body = blocks * per_block
    maxima = sim[:, :body].view(b, per_block, blocks).amax(dim=1)  # (b, blocks)
    top_max, top_blocks = torch.topk(maxima, k + 1, dim=1)  # the (k+1)-th shows a tie at t
    cols = top_blocks[:, :k, None] + blocks * torch.arange(per_block, device=sim.device)
    cols = cols.reshape(b, -1)
    if body < n:
        cols = torch.cat([cols, torch.arange(body, n, device=sim.device).expand(b, -1)], dim=1)
    tied = (top_max[:, k] == top_max[:, k - 1]).cpu().numpy()
    return _topk_sorted(sim.gather(1, cols), k, cols, sim, tied)


def _topk_sorted(
    values: torch.Tensor,
    k: int,
    columns: torch.Tensor | None,
    full: torch.Tensor,
    redo: np.ndarray,
) -> np.ndarray:
    """Stable top-k column indices (b, k) from `values` (b, m), the entries of `full` (b, N) at
    `columns` (b, m; None: all of them, in order). Rows in `redo`, and rows where a tie
    straddles the k-th place, are redone by a stable sort of the full row."""
    extra = int(k < values.shape[1])  # one more entry shows whether a tie straddles the k-th place
    vals, pos = torch.topk(values, k + extra, dim=1, largest=True, sorted=True)
    idx = pos if columns is None else columns.gather(1, pos)
    vals, idx = vals.cpu().numpy(), idx.cpu().numpy()
    if extra:
        redo = redo | (vals[:, k - 1] == vals[:, k])
    vals, idx = vals[:, :k], idx[:, :k]
    # torch.topk orders equal values arbitrarily: re-sort by (-value, index) within the top-k.
    order = np.lexsort((idx, -vals), axis=-1)
    idx = np.take_along_axis(idx, order, axis=1)
    # With a tie at the k-th place, topk may have kept the later of equal entries.
    for r in np.flatnonzero(redo):
        idx[r] = np.argsort(-full[r].cpu().numpy(), kind="stable")[:k]
    return idx
