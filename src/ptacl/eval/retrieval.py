"""Similar-patient retrieval (the paper's Table 1): ECG queries against a CMR database.

Definitions used throughout (every choice the paper leaves open is stated here):

- Queries are the ECG embeddings (N, D); the database is the CMR embeddings (N, D) of the same
  subjects in the same order. Candidates are ranked by cosine similarity, highest first (minus
  a per-candidate `penalty` where one is given: CSLS's hub correction, ptacl.eval.hubness).
  With `exclude_self` the query's own subject is not a candidate.
- Per phenotype, subjects whose value is NaN are left out entirely: they are neither queries
  nor candidates for that phenotype (they still count for the other phenotypes).
- SD is the standard deviation of the phenotype over the N subjects with a value, ddof = 1.
  A candidate j matches query i when `y_i - match_sd*SD <= y_j <= y_i + match_sd*SD`.
- P@k: fraction of the k best-ranked candidates that match, averaged over queries. When a
  query has fewer than k candidates, P@k is undefined (NaN), never padded.
- Rank of the first match: 1-based position of the best-ranked matching candidate among that
  phenotype's candidates. MnR and MdR are its mean and median over queries. A query with no
  matching candidate at all has no rank: it is left out of MnR and MdR (it still counts as 0
  in P@k) and is counted in the column `no_match`, so nothing is hidden.
- Ties in similarity are broken by database position (lower index first), i.e. the ranking is
  a stable sort on descending similarity. Similarities are computed in `dtype` (float32 by
  default); near-ties within float32 rounding may therefore order differently from a float64
  reference. Zero embeddings have similarity 0 to everything.

Memory stays bounded: queries are processed in chunks of `chunk_size` rows, each chunk holding
one (chunk, N) similarity block. Within a chunk a top-K (K = `top`) is taken once; P@k and the
first match come from it. Rows whose first match lies beyond the top-K (or whose top-K has too
few candidates with a value) are finished exactly on the full similarity row: the rank of the
first match is 1 + the number of candidates ranked ahead of the best-ranked match, counted
without sorting. The best match's similarity s* is the maximum over the query's matches, which
are one contiguous run of the subjects sorted by the phenotype (its ±match_sd·SD window), so only
they are gathered; then one pass over the row counts the candidates with similarity > s* (and,
where some other candidate equals s*, those of them at a lower position). Nothing N×N is ever
materialised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ptacl.eval.ranking import (
    DEFAULT_CHUNK_ENTRIES,
    as_matrix,
    chunk_buffer,
    penalty_vector,
    similarities,
    stable_topk,
)


@dataclass(frozen=True)
class RetrievalScores:
    """Per-query results for one phenotype, indexed by subject position (length N).

    precision:  (N, len(ks)) float64, P@k of each query; NaN where the subject is not a query
                for this phenotype or has fewer than k candidates.
    first_rank: (N,) float64, 1-based rank of the first match; NaN where not a query or no match.
    is_query:   (N,) bool, the subject has a value for this phenotype.
    """

    precision: np.ndarray
    first_rank: np.ndarray
    is_query: np.ndarray


def metric_columns(ks: Sequence[int]) -> list[str]:
    """Column names of a retrieval table: P@k..., MnR, MdR."""
    return [f"P@{k}" for k in ks] + ["MnR", "MdR"]


def _check_inputs(
    ecg_emb: torch.Tensor,
    cmr_emb: torch.Tensor,
    phenotypes: pd.DataFrame,
    ks: Sequence[int],
    ecg_eids: Sequence[str] | None,
    cmr_eids: Sequence[str] | None,
) -> tuple[int, ...]:
    n = ecg_emb.shape[0]
    if cmr_emb.shape[0] != n:
        raise ValueError(
            f"ECG embeddings have {n} rows but CMR embeddings {cmr_emb.shape[0]}: "
            "retrieval needs the same subjects in the same order"
        )
    if ecg_emb.shape[1] != cmr_emb.shape[1]:
        raise ValueError(
            f"ECG embeddings have width {ecg_emb.shape[1]}, CMR {cmr_emb.shape[1]}: "
            "they must live in one space to be compared"
        )
    if len(phenotypes) != n:
        raise ValueError(f"phenotypes have {len(phenotypes)} rows for {n} subjects")
    for name, eids in (("ECG", ecg_eids), ("CMR", cmr_eids)):
        if eids is not None and len(eids) != n:
            raise ValueError(f"{len(eids)} {name} eids for {n} embeddings")
    if ecg_eids is not None and cmr_eids is not None:
        a, b = np.asarray(ecg_eids, dtype=str), np.asarray(cmr_eids, dtype=str)
        bad = np.flatnonzero(a != b)
        if len(bad):
            i = bad[0]
            raise ValueError(
                f"ECG and CMR eids differ at {len(bad)} positions (first: row {i}, "
                f"ECG {a[i]!r} vs CMR {b[i]!r}); align both to the same subject order"
            )
    ks = tuple(int(k) for k in ks)
    if not ks or any(k < 1 for k in ks) or list(ks) != sorted(set(ks)):
        raise ValueError(f"ks must be distinct positive integers in increasing order, got {ks}")
    return ks


def _match_windows(y: np.ndarray, match_sd: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-subject [lo, hi] match window of one phenotype column y (N,), NaN kept NaN."""
    valid = ~np.isnan(y)
    sd = float(np.std(y[valid], ddof=1)) if valid.sum() > 1 else float("nan")
    half = match_sd * sd
    return y - half, y + half, sd


def retrieval_scores(
    ecg_emb: np.ndarray | torch.Tensor,
    cmr_emb: np.ndarray | torch.Tensor,
    phenotypes: pd.DataFrame,
    ks: Sequence[int] = (1, 3, 5, 10, 15),
    match_sd: float = 0.5,
    exclude_self: bool = True,
    chunk_size: int | None = None,
    *,
    ecg_eids: Sequence[str] | None = None,
    cmr_eids: Sequence[str] | None = None,
    top: int | None = None,
    dtype: torch.dtype = torch.float32,
    penalty: np.ndarray | None = None,
) -> dict[str, RetrievalScores]:
    """Per-query retrieval results, one `RetrievalScores` per phenotype column.

    ecg_emb: (N, D) queries; cmr_emb: (N, D) database, row i the same subject as ecg_emb[i];
    phenotypes: N rows, one column per phenotype (NaN = unknown). Optional eids are checked to
    agree row by row. `top` is the per-chunk top-K (default max(64, 4*max(ks))); it changes
    speed only, never the result. `chunk_size` queries share one (chunk, N) similarity block;
    None picks 2**26 entries (256 MiB in float32), and a chunk's temporaries take a few times
    that. Embeddings may be torch tensors on a GPU: the work then runs there. `penalty` (N,),
    when given, is subtracted from every query's similarity to database item j before ranking
    (`ptacl.eval.hubness.csls_penalty` makes the ranking CSLS's).
    See the module docstring for every definition.
    """
    ecg = as_matrix(ecg_emb, "ecg_emb", dtype)
    cmr = as_matrix(cmr_emb, "cmr_emb", dtype)
    ks = _check_inputs(ecg, cmr, phenotypes, ks, ecg_eids, cmr_eids)
    n = ecg.shape[0]
    cmr = cmr.to(ecg.device)
    ecg = torch.nn.functional.normalize(ecg, dim=1)
    cmr = torch.nn.functional.normalize(cmr, dim=1)

    y = phenotypes.to_numpy(dtype=np.float64)  # (N, P)
    n_pheno = y.shape[1]
    valid = ~np.isnan(y)
    windows = [_match_windows(y[:, p], match_sd)[:2] for p in range(n_pheno)]
    lo = np.stack([w[0] for w in windows], axis=1)  # (N, P)
    hi = np.stack([w[1] for w in windows], axis=1)
    n_cand = valid.sum(axis=0) - int(exclude_self)  # (P,) candidates of every query
    windows_sorted = [_SortedWindows.build(y[:, p], lo[:, p], hi[:, p]) for p in range(n_pheno)]

    n_db = n - int(exclude_self)  # database entries a query can see at all
    k_top = min(top if top is not None else max(64, 4 * max(ks)), n_db)
    if chunk_size is None:
        chunk_size = max(1, DEFAULT_CHUNK_ENTRIES // max(n, 1))
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")

    precision = np.full((n_pheno, n, len(ks)), np.nan)
    first_rank = np.full((n_pheno, n), np.nan)
    kmax = max(ks)
    buffer = chunk_buffer(min(chunk_size, n), cmr)
    pen = penalty_vector(penalty, cmr)

    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        rows = np.arange(start, stop)
        sim = similarities(ecg[start:stop], cmr, buffer, pen)  # (b, N)
        if exclude_self:
            sim[
                torch.arange(len(rows), device=sim.device), torch.from_numpy(rows).to(sim.device)
            ] = -torch.inf
        idx = stable_topk(sim, k_top) if k_top > 0 else np.zeros((len(rows), 0), dtype=np.int64)

        for p in range(n_pheno):
            q = valid[rows, p]  # queries of this chunk for phenotype p
            if not q.any():
                continue
            qi = np.flatnonzero(q)
            cand = idx[qi]  # (b_q, K)
            cand_ok = valid[cand, p]
            yc = y[cand, p]
            is_match = cand_ok & (yc >= lo[rows[qi], p, None]) & (yc <= hi[rows[qi], p, None])
            seen = np.cumsum(cand_ok, axis=1)  # candidates with a value, up to each place
            has_all = seen[:, -1] >= min(kmax, n_cand[p]) if k_top else np.zeros(len(qi), bool)

            for j, k in enumerate(ks):
                if k > n_cand[p]:
                    continue
                hits = (is_match & (seen <= k)).sum(axis=1)
                precision[p, rows[qi], j] = np.where(has_all, hits / k, np.nan)

            found = is_match.any(axis=1)
            if k_top:
                first = np.argmax(is_match, axis=1)
                rank = seen[np.arange(len(qi)), first].astype(np.float64)
                first_rank[p, rows[qi[found]]] = rank[found]

            # Exact finish for rows the top-K could not settle: it holds fewer than max(ks)
            # candidates with a value, or the first match lies beyond it.
            redo_topk = np.flatnonzero(~has_all)
            redo_rank = np.flatnonzero(~found) if k_top < n_db else np.zeros(0, dtype=np.int64)
            for redo, what in ((redo_topk, "topk"), (redo_rank, "rank")):
                if not len(redo):
                    continue
                local = qi[redo]
                block = sim[torch.from_numpy(local).to(sim.device)]  # (r, N)
                if what == "topk":
                    ok, match = _candidates(
                        rows[local], valid[:, p], y[:, p], lo[rows[local], p], hi[rows[local], p],
                        exclude_self, sim.device,
                    )  # fmt: skip
                    depth = int(min(kmax, n_cand[p]))
                    top_idx = stable_topk(block.masked_fill(~ok, -torch.inf), depth)
                    hits = np.take_along_axis(match.cpu().numpy(), top_idx, axis=1)
                    for j, k in enumerate(ks):
                        if k <= n_cand[p]:
                            precision[p, rows[local], j] = hits[:, :k].sum(axis=1) / k
                else:
                    first_rank[p, rows[local]] = windows_sorted[p].first_match_rank(
                        block, rows[local], exclude_self
                    )

    out = {}
    for p, column in enumerate(phenotypes.columns):
        out[str(column)] = RetrievalScores(
            precision=precision[p], first_rank=first_rank[p], is_query=valid[:, p].copy()
        )
    return out


def _candidates(
    query_rows: np.ndarray,
    valid: np.ndarray,
    y: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    exclude_self: bool,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate and match masks (r, N) of r queries for one phenotype column y (N,)."""
    r, n = len(query_rows), len(y)
    ok = torch.from_numpy(valid).to(device).expand(r, n).clone()
    if exclude_self:
        ok[torch.arange(r, device=device), torch.from_numpy(query_rows).to(device)] = False
    values = torch.from_numpy(np.nan_to_num(y)).to(device)[None]  # (1, N), float64
    lo_t = torch.from_numpy(lo).to(device)[:, None]
    hi_t = torch.from_numpy(hi).to(device)[:, None]
    return ok, ok & (values >= lo_t) & (values <= hi_t)


@dataclass(frozen=True)
class _SortedWindows:
    """One phenotype's subjects sorted by value, and each subject's match window in that order:
    the matches of query i are `order[start[i]:stop[i]]` (y within [lo_i, hi_i], NaN never)."""

    order: np.ndarray  # (N_valid,) positions of the subjects with a value, by ascending value
    start: np.ndarray  # (N,) first position in `order` inside the window
    stop: np.ndarray  # (N,) one past the last
    invalid: np.ndarray  # positions without a value (not candidates)
    valid: np.ndarray  # (N,) bool

    @classmethod
    def build(cls, y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> _SortedWindows:
        valid = ~np.isnan(y)
        order = np.flatnonzero(valid)
        order = order[np.argsort(y[order], kind="stable")]
        values = y[order]
        # the same comparisons as the match test y_j >= lo and y_j <= hi, so the same set
        start = np.searchsorted(values, np.nan_to_num(lo), side="left")
        stop = np.maximum(np.searchsorted(values, np.nan_to_num(hi), side="right"), start)
        return cls(order, start, stop, np.flatnonzero(~valid), valid)

    def first_match_rank(
        self, sim: torch.Tensor, query_rows: np.ndarray, exclude_self: bool
    ) -> np.ndarray:
        """Rank (r,) of the best-ranked match of each query in a stable descending sort of its
        similarity row (sim (r, N), the query's own entry -inf when `exclude_self`) over the
        candidates with a value: 1 + candidates more similar than the best match, + candidates
        as similar at a lower position. NaN where a query has no match."""
        r, n = sim.shape
        best = np.full(r, -np.inf)
        first = np.full(r, n, dtype=np.int64)
        sizes = self.stop[query_rows] - self.start[query_rows]
        # the matches' similarities, gathered for groups of rows with up to ~2N matches
        cuts = np.flatnonzero(np.diff(np.cumsum(sizes) // max(n, 1))) + 1
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, r]):
            size = sizes[a:b]
            seg = np.repeat(np.arange(a, b), size)
            within = np.arange(len(seg)) - np.repeat(np.cumsum(size) - size, size)
            cols = self.order[np.repeat(self.start[query_rows[a:b]], size) + within]
            if exclude_self:
                keep = cols != query_rows[seg]
                seg, cols = seg[keep], cols[keep]
            if not len(seg):
                continue
            index = (torch.from_numpy(seg).to(sim.device), torch.from_numpy(cols).to(sim.device))
            vals = sim[index].double().cpu().numpy()
            heads = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])  # seg is sorted
            best[seg[heads]] = np.maximum.reduceat(vals, heads)
            at_best = np.where(vals == best[seg], cols, n)
            first[seg[heads]] = np.minimum.reduceat(at_best, heads)
        found = np.isfinite(best)
        rank = np.full(r, np.nan)
        if not found.any():
            return rank
        rows = np.flatnonzero(found)
        block = sim[torch.from_numpy(rows).to(sim.device)]  # (f, N)
        threshold = torch.from_numpy(best[rows]).to(sim.device, sim.dtype)[:, None]
        # candidates above / at or above s*; non-candidates (no value) are subtracted: fewer
        # entries than masking the whole row. The query's own entry is -inf, never counted.
        outside = torch.from_numpy(self.invalid).to(sim.device)
        greater = (block > threshold).sum(1) - (block[:, outside] > threshold).sum(1)
        at_least = (block >= threshold).sum(1) - (block[:, outside] >= threshold).sum(1)
        ahead = greater.cpu().numpy()
        # another candidate exactly as similar as the best match: those at lower positions
        # rank ahead (the stable order); rare, so counted on those rows alone
        for i in np.flatnonzero((at_least - greater).cpu().numpy() > 1):
            row = block[i].cpu().numpy()
            ties = np.flatnonzero(row[: first[rows[i]]] == best[rows[i]])
            ahead[i] += int(self.valid[ties].sum())
        rank[rows] = ahead + 1
        return rank


def summarize_retrieval(
    scores: dict[str, RetrievalScores],
    ks: Sequence[int],
    subjects: np.ndarray | None = None,
) -> pd.DataFrame:
    """Table of P@k, MnR, MdR, queries and queries without any match, one row per phenotype.

    `subjects` (optional) selects query subjects by position, with repetition allowed: the
    bootstrap passes resampled positions here.
    """
    rows = {}
    for name, s in scores.items():
        prec, rank, is_q = s.precision, s.first_rank, s.is_query
        if subjects is not None:
            prec, rank, is_q = prec[subjects], rank[subjects], is_q[subjects]
        row: dict[str, float] = {}
        for j, k in enumerate(ks):
            col = prec[is_q, j]
            row[f"P@{k}"] = float(col.mean()) if len(col) and not np.isnan(col).any() else np.nan
        ranked = rank[is_q & ~np.isnan(rank)]
        row["MnR"] = float(ranked.mean()) if len(ranked) else np.nan
        row["MdR"] = float(np.median(ranked)) if len(ranked) else np.nan
        row["queries"] = int(is_q.sum())
        row["no_match"] = int((is_q & np.isnan(rank)).sum())
        rows[name] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "phenotype"
    return table


def retrieval_metrics(
    ecg_emb: np.ndarray | torch.Tensor,
    cmr_emb: np.ndarray | torch.Tensor,
    phenotypes: pd.DataFrame,
    ks: Sequence[int] = (1, 3, 5, 10, 15),
    match_sd: float = 0.5,
    exclude_self: bool = True,
    chunk_size: int | None = None,
    **kwargs,
) -> pd.DataFrame:
    """One row per phenotype: P@k for each k, MnR, MdR, `queries`, `no_match`.

    ecg_emb, cmr_emb: (N, D), row i both of subject i; phenotypes: (N, P) DataFrame.
    Keyword arguments (ecg_eids, cmr_eids, top, dtype, penalty) go to `retrieval_scores`; the module
    docstring defines matches, SD (ddof 1), ties, NaN handling and queries without a match.
    """
    scores = retrieval_scores(
        ecg_emb, cmr_emb, phenotypes, ks, match_sd, exclude_self, chunk_size, **kwargs
    )
    return summarize_retrieval(scores, ks)
