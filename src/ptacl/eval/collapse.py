"""Top-1 collapse: how concentrated the queries' best-ranked CMRs are, phenotype-independent.

`top1_candidates` ranks as `ptacl.eval.retrieval.retrieval_scores` does (cosine similarity
minus an optional hub penalty, ties by lower position) and keeps each query's first candidate;
`top1_collapse` says what share of queries land on the most frequent one (a collapsed embedding
sends most queries to one "hub" CMR).
"""

from __future__ import annotations

import numpy as np
import torch

from ptacl.eval.ranking import (
    DEFAULT_CHUNK_ENTRIES,
    as_matrix,
    chunk_buffer,
    penalty_vector,
    similarities,
    stable_topk,
)


def top1_candidates(
    ecg_emb: np.ndarray | torch.Tensor,
    cmr_emb: np.ndarray | torch.Tensor,
    exclude_self: bool = True,
    chunk_size: int | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    penalty: np.ndarray | None = None,
) -> np.ndarray:
    """Database position (N,) of each query's best-ranked candidate, ranked as in
    `retrieval_scores` (cosine similarity minus `penalty` when given, ties by lower position,
    the query's own CMR left out with `exclude_self`); -1 for a query without candidates.
    Phenotype-independent."""
    ecg = torch.nn.functional.normalize(as_matrix(ecg_emb, "ecg_emb", dtype), dim=1)
    cmr = torch.nn.functional.normalize(as_matrix(cmr_emb, "cmr_emb", dtype), dim=1)
    cmr = cmr.to(ecg.device)
    n = ecg.shape[0]
    out = np.full(n, -1, dtype=np.int64)
    if n - int(exclude_self) < 1:
        return out
    chunk_size = chunk_size or max(1, DEFAULT_CHUNK_ENTRIES // max(cmr.shape[0], 1))
    buffer = chunk_buffer(min(chunk_size, n), cmr)
    pen = penalty_vector(penalty, cmr)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        sim = similarities(ecg[start:stop], cmr, buffer, pen)
        if exclude_self:
            rows = torch.arange(stop - start, device=sim.device)
            sim[rows, rows + start] = -torch.inf
        out[start:stop] = stable_topk(sim, 1)[:, 0]
    return out


def top1_collapse(top1: np.ndarray, candidates: int) -> dict[str, float | int | None]:
    """How concentrated the queries' top-1 candidates are (a collapsed embedding sends most
    queries to one "hub" CMR, whatever the phenotype).

    top1: database position of each query's top-1 (-1 = none, ignored); candidates: database
    size N. Returns `top1_hub_share`, the share of queries whose top-1 is the most frequent
    top-1 candidate (1/N for a one-to-one ranking, 1 when every query gets the same CMR; None
    without queries), `top1_distinct`, the number of distinct top-1 candidates (out of N), and
    `queries` and `candidates`.
    """
    top1 = np.asarray(top1)
    top1 = top1[top1 >= 0]
    counts = np.unique(top1, return_counts=True)[1]
    return {
        "top1_hub_share": float(counts.max() / len(top1)) if len(top1) else None,
        "top1_distinct": len(counts),
        "queries": len(top1),
        "candidates": int(candidates),
    }
