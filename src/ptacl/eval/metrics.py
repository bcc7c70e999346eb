"""Retrieval, alignment and validation-R² metrics: pure functions of tensors, the one home of each.

Validation (`ptacl.training.align`, `ptacl.training.simclr`), evaluation (`ptacl.eval.embed`)
and the report's Figure 2 (`ptacl.eval.figures`) all compute these here, so a number means the
same wherever it is printed.

**The tie rule** (one for every metric here, and the one `ptacl.eval.retrieval` ranks by):
candidates are ranked by descending cosine similarity, and equal similarities are ordered by
position, lower index first (a stable sort). So an own CMR tied with a candidate of lower index
ranks behind it, and an ECG step whose similarity ties between CMR steps is matched to the
earliest of them.

Shapes: B batch (queries and, in-batch, candidates), d embedding width, T local time steps,
D local width.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, d) × (M, d) -> (N, M) float32 cosine similarities; a zero row is 0 to everything."""
    return F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T


def own_rank(similarity: torch.Tensor) -> torch.Tensor:
    """(B, B) similarities of query i (row) to candidate j (column), own candidate on the
    diagonal -> (B,) 0-based rank of each query's own candidate under the tie rule: the
    candidates more similar, plus the equally similar ones of lower index."""
    own = similarity.diagonal()[:, None]  # (B, 1)
    index = torch.arange(similarity.shape[1], device=similarity.device)
    ahead = (similarity > own) | ((similarity == own) & (index[None, :] < index[:, None]))
    return ahead.sum(dim=1)


def retrieval_hits(
    z_ecg: torch.Tensor, z_cmr: torch.Tensor, ks: tuple[int, ...] = (1, 5)
) -> torch.Tensor:
    """In-batch ECG→CMR retrieval: for each k, how many ECG queries (B, d) find their own CMR
    (row i of z_cmr (B, d)) among the k best-ranked CMRs of the batch. Returns (len(ks),)."""
    rank = own_rank(cosine_similarity(z_ecg, z_cmr))  # (B,)
    return torch.stack([(rank < k).sum() for k in ks])


def local_similarity(ecg_local: torch.Tensor, cmr_local: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every ECG step with every CMR step: (B, T, D) × 2 -> (B, T, T)
    float32, rows ECG steps k, columns CMR steps t."""
    ecg_unit = F.normalize(ecg_local.float(), dim=-1)
    cmr_unit = F.normalize(cmr_local.float(), dim=-1)
    return torch.einsum("bkd,btd->bkt", ecg_unit, cmr_unit)


def temporal_alignment_hits(
    similarity: torch.Tensor, tolerance: int = 1, circular: bool = False
) -> torch.Tensor:
    """(B, T, T) -> (B,) number of ECG steps k whose best-ranked CMR step t (ties: the
    earliest) has |t − k| ≤ tolerance (the circular distance when `circular`)."""
    num_steps = similarity.shape[-1]
    best = similarity.argmax(dim=-1)  # (B, T); torch returns the first of equal maxima
    gap = (best - torch.arange(num_steps, device=best.device)).abs()
    if circular:
        gap = torch.minimum(gap, num_steps - gap)
    return (gap <= tolerance).sum(dim=1)


def alignment_accuracy(matrix: np.ndarray, tolerance: int = 0, circular: bool = False) -> float:
    """Share of ECG steps k (rows of one (T, T) matrix) whose best-ranked CMR step t lies
    within `tolerance` steps of k: `temporal_alignment_hits` of one matrix, over T."""
    similarity = torch.as_tensor(np.asarray(matrix, dtype=np.float64))[None]  # (1, T, T)
    hits = temporal_alignment_hits(similarity, tolerance, circular)
    return float(hits[0]) / similarity.shape[1]


def alignment_chance(steps: int, tolerance: int = 0, circular: bool = False) -> float:
    """`alignment_accuracy` of a random match: each ECG step's CMR step drawn uniformly from
    the `steps` columns. 1/T exact; (3T − 2)/T² within ±1 (fewer neighbours at the edges), 3/T
    circular."""
    if circular:
        return min(2 * tolerance + 1, steps) / steps
    k = np.arange(steps)
    hits = np.minimum(k + tolerance, steps - 1) - np.maximum(k - tolerance, 0) + 1
    return float(hits.sum() / steps**2)


def r2_sums(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Additive statistics of R² per column over the known entries: (B, P) x 2 -> (4, P)
    float64, rows n, Σy, Σy², Σ(y − ŷ)². Summed over batches (and processes), `r2_from_sums`
    turns them into the R² of all the rows at once."""
    known = ~torch.isnan(target)
    y = torch.where(known, target, torch.zeros_like(target)).double()
    err = torch.where(known, target - pred, torch.zeros_like(target)).double()
    return torch.stack([known.double().sum(0), y.sum(0), (y**2).sum(0), (err**2).sum(0)])


def r2_from_sums(sums: torch.Tensor) -> torch.Tensor:
    """(4, P) `r2_sums` -> (P,) R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)² (ȳ the rows' own mean, as
    `ptacl.eval.probe.r2_per_phenotype`); NaN where fewer than two rows or no variance."""
    n, total, squares, errors = sums
    spread = squares - total**2 / n.clamp_min(1)
    defined = (n >= 2) & (spread > 0)
    return torch.where(defined, 1 - errors / spread.clamp_min(1e-300), torch.nan)
