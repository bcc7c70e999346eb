"""Why the mean rank of the first match (MnR) is worse than a random ranking where P@k beats it:
diagnosis and remedies, measured on the embeddings `ptacl evaluate` saved.

    .venv/bin/python benchmarks/retrieval_hubness.py demo_out/seed0/eval/{global,ptacl}

Per evaluation folder (its embeddings_paired_test.npz, in the space evaluate ranked: the
projection heads' outputs when the run has them), for each phenotype of --phenotypes:
1. diagnosis: hubness of the cosine and the CSLS ranking (`ptacl.eval.hubness`); the queries
   whose first match lies past --far: their share of the rank sum, their |z|, and whether the
   phenotypes of their 10 best-ranked candidates all lie on one side of theirs (1.00: a
   confidently wrong neighbourhood);
   MnR inside and outside |z| <= 1.5 against the random ranking's for the same queries; how
   precisely each modality's embedding places a subject on the phenotype (5-fold ridge R²);
2. remedies: cosine, centred (each modality minus its mean unit vector, then cosine), CSLS
   (k = --csls-k) and both: MnR, P@1, P@5, each against the random ranking and CSLS against
   cosine as paired differences over queries (`ptacl.eval.paired.paired_difference`, 95 % CI);
3. --simulate: a 1-D ranking with no hubs at all, query and database each a noisy copy of the
   phenotype, to show what a query noisier than its database does to MnR.
The query's own CMR is excluded (evaluate's default protocol). Prints markdown.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from ptacl.eval.hubness import csls_penalty, hubness_stats
from ptacl.eval.paired import mean_metric, paired_difference
from ptacl.eval.random_baseline import random_retrieval_scores
from ptacl.eval.retrieval import retrieval_scores

KS = (1, 5)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def load(folder: Path) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    with np.load(folder / "embeddings_paired_test.npz", allow_pickle=False) as data:
        proj = "ecg_proj" in data.files and "cmr_proj" in data.files
        ecg, cmr = (data["ecg_proj"], data["cmr_proj"]) if proj else (data["ecg"], data["cmr"])
        names = [str(n) for n in data["phenotype_names"]]
        pheno = pd.DataFrame(data["phenotypes"].astype(np.float64), columns=names)
    return ecg.astype(np.float64), cmr.astype(np.float64), pheno


def rankings(ecg: np.ndarray, cmr: np.ndarray, pheno: pd.DataFrame, k: int) -> dict:
    """Per-query scores of each ranking: {name: {phenotype: RetrievalScores}}."""
    centred = (_unit(ecg) - _unit(ecg).mean(0), _unit(cmr) - _unit(cmr).mean(0))
    out = {}
    for name, (e, c, csls) in {
        "cosine": (ecg, cmr, False),
        "centred": (*centred, False),
        "CSLS": (ecg, cmr, True),
        "centred+CSLS": (*centred, True),
    }.items():
        penalty = csls_penalty(e, c, k) if csls else None
        out[name] = retrieval_scores(e, c, pheno, KS, penalty=penalty)
    return out


def _paired(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> str:
    d = paired_difference(mean_metric, y, a[None], b[None], n_boot=2000)
    return f"{d.estimate:+.2f} [{d.ci[0]:+.2f}, {d.ci[1]:+.2f}]"


def remedies_table(label: str, pheno: pd.DataFrame, scores: dict, names: list[str]) -> list[str]:
    """Markdown rows: per phenotype and ranking, MnR / P@1 / P@5 and their differences."""
    rnd = random_retrieval_scores(pheno, KS)
    rows = []
    for name in names:
        y, r = pheno[name].to_numpy(), rnd[name]
        cos = scores["cosine"][name]
        rows.append(
            f"| {label} | {name.split(' (')[0]} | random | {np.nanmean(r.first_rank):.2f} | | "
            f"{np.nanmean(r.precision[:, 0]):.3f} | | {np.nanmean(r.precision[:, 1]):.3f} | |"
        )
        for ranking, per in scores.items():
            s = per[name]
            vs_cos = ranking != "cosine"
            rows.append(
                f"| | | {ranking} | {np.nanmean(s.first_rank):.2f} | "
                f"{_paired(y, s.first_rank, r.first_rank)}"
                + (f"; vs cosine {_paired(y, s.first_rank, cos.first_rank)}" if vs_cos else "")
                + f" | {np.nanmean(s.precision[:, 0]):.3f} | "
                f"{_paired(y, s.precision[:, 0], r.precision[:, 0])} | "
                f"{np.nanmean(s.precision[:, 1]):.3f} | "
                f"{_paired(y, s.precision[:, 1], r.precision[:, 1])} |"
            )
    return rows


def cv_r2(x: np.ndarray, y: np.ndarray, folds: int = 5, ridge: float = 1.0) -> float:
    """Cross-validated R² of a ridge fit y ~ x within the evaluated split (how precisely an
    embedding places a subject on the phenotype axis): the query's vs the database's."""
    keep = ~np.isnan(y)
    x, y = np.c_[_unit(x[keep]), np.ones(keep.sum())], y[keep]
    fold = np.random.default_rng(0).permutation(len(y)) % folds
    pred = np.empty_like(y)
    for f in range(folds):
        a, b = fold != f, fold == f
        w = np.linalg.solve(x[a].T @ x[a] + ridge * np.eye(x.shape[1]), x[a].T @ y[a])
        pred[b] = x[b] @ w
    return float(1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))


def diagnosis(
    label: str, ecg: np.ndarray, cmr: np.ndarray, pheno: pd.DataFrame, names, far: int, k: int
) -> list[str]:
    stats = hubness_stats(ecg, cmr, k=10)
    fixed = hubness_stats(ecg, cmr, k=10, penalty=csls_penalty(ecg, cmr, k))
    lines = [
        f"- {label}: N_10 skewness {stats['nk_skewness']:.2f}, biggest hub in the top 10 of "
        f"{stats['nk_max_share']:.0%} of queries, {stats['anti_hub_share']:.0%} of the CMRs in "
        f"nobody's top 10; mean unit vector norm ECG {stats['ecg_mean_norm']:.2f}, CMR "
        f"{stats['cmr_mean_norm']:.2f}; first singular value's share (centred) ECG "
        f"{stats['ecg_sv1_share']:.2f}, CMR {stats['cmr_sv1_share']:.2f}; ranked by CSLS "
        f"(k = {k}): N_10 skewness {fixed['nk_skewness']:.2f}, biggest hub "
        f"{fixed['nk_max_share']:.0%}, anti-hubs {fixed['anti_hub_share']:.0%}"
    ]
    sim = _unit(ecg) @ _unit(cmr).T
    np.fill_diagonal(sim, -np.inf)
    top10 = np.argsort(-sim, axis=1, kind="stable")[:, :10]
    scores = retrieval_scores(ecg, cmr, pheno, KS)
    rnd = random_retrieval_scores(pheno, KS)
    for name in names:
        y = pheno[name].to_numpy()
        z = np.abs(y - np.nanmean(y)) / np.nanstd(y, ddof=1)
        rank, expected = scores[name].first_rank, rnd[name].first_rank
        deep = rank > far
        one_side = np.abs(np.sign(y[top10] - y[:, None]).mean(axis=1))
        inner, ok = z <= 1.5, ~np.isnan(rank)
        lines.append(
            f"  - {name}: {deep.sum()} queries past rank {far} hold "
            f"{np.nansum(rank[deep]) / np.nansum(rank):.0%} of the rank sum; their |z| "
            f"{z[deep].mean():.2f} (all {z.mean():.2f}); top-10 one-sidedness "
            f"{one_side[deep].mean():.2f} (others {one_side[~deep].mean():.2f}); MnR at |z| <= "
            f"1.5: {rank[inner & ok].mean():.2f} vs random {expected[inner & ok].mean():.2f}, "
            f"|z| > 1.5: {rank[~inner & ok].mean():.2f} vs {expected[~inner & ok].mean():.2f}; "
            f"5-fold ridge R² ECG {cv_r2(ecg, y):.2f}, CMR {cv_r2(cmr, y):.2f}"
        )
    return lines


def simulate(seeds: int = 20, n: int = 300) -> list[str]:
    """MnR and P@1 of -|ŷ_query − ŷ_database| rankings, each a noisy copy of a normal y."""
    lines = [
        "| query noise SD | database noise SD | P@1 | MnR | random MnR |",
        "|---|---|---|---|---|",
    ]
    for q_sd, d_sd in ((1.4, 1.4), (1.0, 1.0), (1.0, 0.3), (1.2, 0.2)):
        got = []
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            y = rng.normal(size=n)
            query = (y + q_sd * rng.normal(size=n))[:, None]
            database = (y + d_sd * rng.normal(size=n))[:, None]
            # 2-D embeddings whose cosine orders candidates as -|query − database| does
            angle = lambda v: np.c_[np.cos(v / 8), np.sin(v / 8)]  # noqa: E731 (|v/8| < π/2)
            pheno = pd.DataFrame({"y": y})
            s = retrieval_scores(angle(query[:, 0]), angle(database[:, 0]), pheno, KS)["y"]
            r = random_retrieval_scores(pheno, KS)["y"]
            got.append((np.nanmean(s.precision[:, 0]), np.nanmean(s.first_rank),
                        np.nanmean(r.first_rank)))  # fmt: skip
        p1, mnr, rnd = np.mean(got, axis=0)
        lines.append(f"| {q_sd} | {d_sd} | {p1:.3f} | {mnr:.2f} | {rnd:.2f} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("evals", nargs="+", type=Path, help="`ptacl evaluate` output folders")
    parser.add_argument("--phenotypes", nargs="+", default=["LVEDV", "LVM", "RVEDV"])
    parser.add_argument("--csls-k", type=int, default=10)
    parser.add_argument("--far", type=int, default=20, help="a first match past this rank")
    parser.add_argument("--simulate", action="store_true")
    args = parser.parse_args(argv)
    header = [
        "| run | phenotype | ranking | MnR | − random (paired, 95 % CI) | P@1 | − random | P@5 "
        "| − random |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    diag, table = [], list(header)
    for folder in args.evals:
        ecg, cmr, pheno = load(folder)
        names = [c for c in pheno.columns if c.split(" (")[0] in args.phenotypes]
        diag += diagnosis(folder.name, ecg, cmr, pheno, names, args.far, args.csls_k)
        table += remedies_table(folder.name, pheno, rankings(ecg, cmr, pheno, args.csls_k), names)
    print("\n".join(["### Diagnosis", "", *diag, "", "### Remedies", "", *table]))
    if args.simulate:
        print("\n".join(["", "### A hub-free 1-D ranking", "", *simulate()]))


if __name__ == "__main__":
    main()
