"""Hubs in ECG → CMR retrieval: how concentrated the rankings are, and the CSLS correction.

    stats = hubness_stats(ecg_emb, cmr_emb)          # N_k skewness, dominant direction, ...
    penalty = csls_penalty(ecg_emb, cmr_emb, k=10)   # (N,) for retrieval_scores(penalty=...)

A hub is a database item among the k nearest candidates of many queries, whatever their
phenotype; an anti-hub is one in nobody's top k. Their sign is a right-skewed k-occurrence N_k
(Radovanović et al. 2010). CSLS (cross-domain similarity local scaling, Conneau, Lample et al.
2018, "Word translation without parallel data") scores query x against item y by
2 cos(x, y) − r_Q(x) − r_D(y), r_D(y) the mean cosine of y to its k most similar queries and
r_Q(x) that of x to its k most similar items. r_Q(x) is the same for every candidate of x, so
the ranking of x's candidates is that of cos(x, y) − r_D(y) / 2: `csls_penalty` returns
r_D / 2, which `retrieval_scores` subtracts from every similarity column.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import skew

from ptacl.eval.ranking import DEFAULT_CHUNK_ENTRIES


def _unit(x: np.ndarray | torch.Tensor, name: str, dtype: torch.dtype) -> torch.Tensor:
    t = torch.as_tensor(x).to(dtype)
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {tuple(t.shape)}")
    return torch.nn.functional.normalize(t, dim=1)


def _similarity_chunks(
    ecg_emb: np.ndarray | torch.Tensor,
    cmr_emb: np.ndarray | torch.Tensor,
    exclude_self: bool,
    dtype: torch.dtype,
):
    """Yield (start, sim): cosine similarities (b, N) of queries start..start+b to every
    database item, the query's own item -inf with `exclude_self`."""
    ecg, cmr = _unit(ecg_emb, "ecg_emb", dtype), _unit(cmr_emb, "cmr_emb", dtype)
    if ecg.shape[1] != cmr.shape[1]:
        raise ValueError(f"ECG embeddings have width {ecg.shape[1]}, CMR {cmr.shape[1]}")
    if exclude_self and ecg.shape[0] != cmr.shape[0]:
        raise ValueError("exclude_self needs one CMR per ECG, in the same order")
    cmr = cmr.to(ecg.device)
    step = max(1, DEFAULT_CHUNK_ENTRIES // max(cmr.shape[0], 1))
    for start in range(0, ecg.shape[0], step):
        sim = ecg[start : start + step] @ cmr.T  # (b, N)
        if exclude_self:
            rows = torch.arange(sim.shape[0], device=sim.device)
            sim[rows, rows + start] = -torch.inf
        yield start, sim


def csls_penalty(
    ecg_emb: np.ndarray | torch.Tensor,
    cmr_emb: np.ndarray | torch.Tensor,
    k: int = 10,
    exclude_self: bool = True,
    *,
    dtype: torch.dtype = torch.float32,
) -> np.ndarray:
    """r_D / 2 (N_db,) float64: half the mean cosine similarity of each database item (CMR) to
    its k most similar queries (ECG); with `exclude_self` its own subject's ECG is not among
    them (nothing of a subject's pair enters the stricter protocol). Subtracted from cosine
    similarities it ranks every query's candidates as CSLS does (module docstring)."""
    n_queries = torch.as_tensor(ecg_emb).shape[0] - int(exclude_self)
    if not 1 <= k <= n_queries:
        raise ValueError(f"csls k must be in 1..{n_queries} (the queries per item), got {k}")
    best = None  # (k, N_db) the k highest similarities of each item so far
    for _, sim in _similarity_chunks(ecg_emb, cmr_emb, exclude_self, dtype):
        both = sim if best is None else torch.cat([best, sim])
        best = torch.topk(both, min(k, both.shape[0]), dim=0).values
    assert best is not None  # k >= 1 query
    return 0.5 * best.double().mean(dim=0).cpu().numpy()


def k_occurrence(
    ecg_emb: np.ndarray | torch.Tensor,
    cmr_emb: np.ndarray | torch.Tensor,
    k: int = 10,
    exclude_self: bool = True,
    penalty: np.ndarray | None = None,
    *,
    dtype: torch.dtype = torch.float32,
) -> np.ndarray:
    """N_k (N_db,) int: how many queries hold each database item among their k best-ranked
    candidates (cosine similarity, minus `penalty` (N_db,) when given). Ties at the k-th place
    are cut arbitrarily: a count, not a ranking."""
    counts = None
    pen = None if penalty is None else torch.as_tensor(penalty)
    for _, sim in _similarity_chunks(ecg_emb, cmr_emb, exclude_self, dtype):
        if pen is not None:
            sim = sim - pen.to(sim.device, sim.dtype)[None]
        top = torch.topk(sim, min(k, sim.shape[1] - int(exclude_self)), dim=1).indices
        got = torch.bincount(top.reshape(-1), minlength=sim.shape[1])
        counts = got if counts is None else counts + got
    return counts.cpu().numpy() if counts is not None else np.zeros(0, dtype=np.int64)


def direction_stats(emb: np.ndarray | torch.Tensor) -> dict[str, float]:
    """How much of a set of embeddings (N, D) one direction takes: `mean_norm`, the norm of the
    mean unit vector (0: spread around the origin, 1: all the same direction, where cosine
    similarity only compares small deviations from it), and `sv1_share`, the first singular
    value's share of the centred unit vectors' variance (1: the deviations lie on one line)."""
    unit = _unit(emb, "emb", torch.float64)
    mean = unit.mean(dim=0)
    sv = torch.linalg.svdvals(unit - mean)
    return {
        "mean_norm": float(mean.norm()),
        "sv1_share": float(sv[0] ** 2 / (sv**2).sum()) if float(sv.sum()) > 0 else 0.0,
    }


def hubness_stats(
    ecg_emb: np.ndarray | torch.Tensor,
    cmr_emb: np.ndarray | torch.Tensor,
    k: int = 10,
    exclude_self: bool = True,
    penalty: np.ndarray | None = None,
) -> dict[str, float | int]:
    """Hub diagnostics of a ranking (cosine, minus `penalty` when given) for metrics.json:
    `k`, `nk_skewness` (about 0 without hubs; right-skewed with them), `nk_max_share` (the
    share of queries holding the biggest hub in their top k), `anti_hub_share` (database items
    in no query's top k), and `direction_stats` of each modality (`ecg_mean_norm`, ...)."""
    nk = k_occurrence(ecg_emb, cmr_emb, k, exclude_self, penalty)
    queries = torch.as_tensor(ecg_emb).shape[0]
    out: dict[str, float | int] = {
        "k": int(k),
        "nk_skewness": float(skew(nk)) if len(nk) > 2 and nk.std() > 0 else 0.0,
        "nk_max_share": float(nk.max() / queries) if len(nk) and queries else 0.0,
        "anti_hub_share": float(np.mean(nk == 0)) if len(nk) else 0.0,
    }
    for name, emb in (("ecg", ecg_emb), ("cmr", cmr_emb)):
        out.update({f"{name}_{key}": v for key, v in direction_stats(emb).items()})
    return out


#: the rankings `ptacl evaluate --ranking` offers
RANKINGS = ("cosine", "csls")


def ranking_penalty(
    ranking: str,
    ecg_emb: np.ndarray | torch.Tensor,
    cmr_emb: np.ndarray | torch.Tensor,
    k: int = 10,
    exclude_self: bool = True,
) -> tuple[np.ndarray | None, str]:
    """The per-candidate penalty of a ranking for `retrieval_scores` (None for cosine) and the
    sentence metrics.json and report.md give it. CSLS's k is capped at the queries an item
    has (a tiny split), and the sentence says so."""
    if ranking == "cosine":
        return None, "cosine similarity (the paper's)"
    if ranking != "csls":
        raise ValueError(f"ranking must be one of {', '.join(RANKINGS)}, got {ranking!r}")
    available = torch.as_tensor(ecg_emb).shape[0] - int(exclude_self)
    used = max(1, min(k, available))
    capped = f" (capped from {k}: {available} queries per item)" if used != k else ""
    return csls_penalty(ecg_emb, cmr_emb, used, exclude_self), (
        f"CSLS, k = {used}{capped}: cosine similarity minus half the candidate's mean cosine "
        "to its k most similar queries (hub correction, Conneau et al. 2018)"
    )
