"""The paper's comparisons as paired differences over shared test subjects and seeds.

    r2 = compare_r2(a_files, b_files)               # {phenotype: PairedDifference}
    p1 = compare_retrieval(a_files, b_files, k=1)   # {phenotype: PairedDifference}

Each arm is one file per seed, in seed order, written by `ptacl evaluate` (or `ptacl finetune`):
`lp_test_predictions.npz` / `test_predictions.npz` (eids, true, predicted, phenotype_names) for
R², `retrieval_per_query.npz` (eids, phenotype_names, ks, precision (P, N, K), is_query (P, N))
for P@k. Subjects are matched by eid: the comparison uses the subjects every file of both arms
scored (a CMR probe and an ECG probe of one store score different subsets), and refuses files
whose truths disagree for one eid. The statistics are `ptacl.eval.paired.paired_difference`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ptacl.eval.paired import PairedDifference, mean_metric, paired_difference, r2_metric

#: file names `ptacl evaluate` writes beside metrics.json
LP_PREDICTIONS = "lp_test_predictions.npz"
RETRIEVAL_PER_QUERY = "retrieval_per_query.npz"


def save_predictions(path: Path, eids, true: np.ndarray, predicted: np.ndarray, names) -> None:
    """Per-subject test predictions (N, P) with their truths, as fine-tuning writes them."""
    np.savez(
        path,
        eids=np.asarray(eids, dtype=str),
        true=np.asarray(true, np.float32),
        predicted=np.asarray(predicted, np.float32),
        phenotype_names=np.asarray(names, dtype=str),
    )


def save_retrieval(path: Path, eids, names, ks: Sequence[int], scores: dict) -> None:
    """Per-query P@k of every phenotype (`RetrievalScores` by phenotype name)."""
    np.savez(
        path,
        eids=np.asarray(eids, dtype=str),
        phenotype_names=np.asarray(names, dtype=str),
        ks=np.asarray(ks, np.int64),
        precision=np.stack([scores[n].precision for n in names]),  # (P, N, K)
        is_query=np.stack([scores[n].is_query for n in names]),  # (P, N)
    )


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _common(arms: Sequence[Sequence[dict]]) -> list[str]:
    """The eids every file of every arm holds, in the first file's order."""
    first = [str(e) for e in arms[0][0]["eids"]]
    shared = set(first)
    for arm in arms:
        for data in arm:
            shared &= {str(e) for e in data["eids"]}
    return [e for e in first if e in shared]


def _rows(data: dict, eids: list[str]) -> np.ndarray:
    where = {str(e): i for i, e in enumerate(data["eids"])}
    return np.array([where[e] for e in eids], dtype=int)


def _short(name: str) -> str:
    return name.split(" (")[0]


def _arms(a_files: Sequence[Path], b_files: Sequence[Path]) -> list[list[dict]]:
    if not a_files or len(a_files) != len(b_files):
        raise ValueError(
            f"need one file per seed in each arm, got {len(a_files)} and {len(b_files)}"
        )
    return [[_load(Path(p)) for p in a_files], [_load(Path(p)) for p in b_files]]


def _column(arm: list[dict], name: str, eids: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """(truth (N,), predictions (S, N)) of phenotype `name` in every seed of one arm; None if a
    file lacks it. Refuses seeds whose truths disagree."""
    truths, preds = [], []
    for data in arm:
        cols = [str(n) for n in data["phenotype_names"]]
        if name not in cols:
            return None
        rows, col = _rows(data, eids), cols.index(name)
        truths.append(data["true"][rows, col].astype(np.float64))
        preds.append(data["predicted"][rows, col])
    for t in truths[1:]:
        if not np.allclose(t, truths[0], equal_nan=True, rtol=1e-5):
            raise ValueError(f"the seeds' files disagree on the true {name} of one subject")
    return truths[0], np.stack(preds)


def compare_r2(
    a_files: Sequence[Path], b_files: Sequence[Path], **kwargs
) -> dict[str, PairedDifference]:
    """R²(A) − R²(B) per phenotype over the subjects both arms scored in every seed."""
    arms = _arms(a_files, b_files)
    eids = _common(arms)
    out: dict[str, PairedDifference] = {}
    for name in (str(n) for n in arms[0][0]["phenotype_names"]):
        a, b = _column(arms[0], name, eids), _column(arms[1], name, eids)
        if a is None or b is None or np.sum(~np.isnan(a[0])) < 2:
            continue
        if not np.allclose(a[0], b[0], equal_nan=True, rtol=1e-5):
            raise ValueError(f"the two arms disagree on the true {name} of one subject")
        out[_short(name)] = paired_difference(r2_metric, a[0], a[1], b[1], **kwargs)
    return out


def compare_retrieval(
    a_files: Sequence[Path], b_files: Sequence[Path], k: int = 1, **kwargs
) -> dict[str, PairedDifference]:
    """P@k(A) − P@k(B) per phenotype over the queries both arms scored in every seed."""
    arms = _arms(a_files, b_files)
    eids = _common(arms)
    out: dict[str, PairedDifference] = {}
    for name in (str(n) for n in arms[0][0]["phenotype_names"]):
        hits, query = [], np.ones(len(eids), bool)
        for arm in arms:
            stack = []
            for data in arm:
                ks, cols = [int(v) for v in data["ks"]], [str(n) for n in data["phenotype_names"]]
                if k not in ks or name not in cols:
                    raise ValueError(f"P@{k} of {name} was not computed (ks {ks}, {cols})")
                rows, p = _rows(data, eids), cols.index(name)
                precision = data["precision"][p, rows, ks.index(k)]  # (N,)
                query &= data["is_query"][p, rows] & ~np.isnan(precision)
                stack.append(precision)
            hits.append(np.stack(stack))
        if query.sum() < 2:
            continue
        a, b = hits[0][:, query], hits[1][:, query]
        out[_short(name)] = paired_difference(mean_metric, np.zeros(a.shape[1]), a, b, **kwargs)
    return out
