"""Is an ordering of linear probes about what the embeddings hold, or about how linearly they hold
it? The same frozen embeddings probed linearly and non-linearly (issue 23 item 5: CMR SimCLR's
linear probe above CMR MAE's).

    .venv/bin/python benchmarks/probe_capacity.py EVAL_A EVAL_B [--phenotypes LVEDV LVM ...]

EVAL_A, EVAL_B: `ptacl evaluate` output folders of two runs on the same store (their
embeddings_train.npz and embeddings_test.npz, the mean-pooled encoder embeddings the LP sees).
Per phenotype, on the train subjects with a value, three probes are fitted and scored on the
test subjects with one (R²):
- `linear`: OLS with an intercept, the LP of `ptacl evaluate` (`ptacl.eval.probe`);
- `kernel`: RBF kernel ridge on standardised embeddings, alpha and gamma by 5-fold CV on train;
- `knn`: k-nearest-neighbour regression (distance-weighted, standardised), k by 5-fold CV.
Then A − B per probe, paired by test subject (`ptacl.eval.paired`, one seed: subjects only).
If B's lead over A under the linear probe shrinks or turns under the non-linear ones, A's
embeddings hold the information less linearly, not less of it (MAE, He et al. 2022, section
4.3: MAE features are less linearly separable than contrastive ones). Prints markdown.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.kernel_ridge import KernelRidge
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ptacl.eval.paired import paired_difference, r2_metric
from ptacl.eval.probe import probe_predictions

PROBES = ("linear", "kernel", "knn")


def _load(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(eids, embeddings (N, D), phenotypes (N, P), names) of one split's saved embeddings."""
    with np.load(folder / f"embeddings_{split}.npz", allow_pickle=False) as data:
        key = "cmr" if "cmr" in data.files else "ecg"
        names = [str(n) for n in data["phenotype_names"]]
        eids, phenotypes = data["eids"].astype(str), data["phenotypes"].astype(np.float64)
        return eids, data[key].astype(np.float64), phenotypes, names


def _nonlinear(kind: str) -> GridSearchCV:
    """A standardise-then-fit pipeline of `kind` with its hyperparameter grid, 5-fold CV."""
    if kind == "kernel":
        model = KernelRidge(kernel="rbf")
        grid = {
            "kernelridge__alpha": [1e-2, 1e-1, 1.0],
            "kernelridge__gamma": [1e-3, 3e-3, 1e-2, 3e-2],
        }
    else:
        model = KNeighborsRegressor(weights="distance")
        grid = {"kneighborsregressor__n_neighbors": [5, 10, 20, 40, 80]}
    return GridSearchCV(make_pipeline(StandardScaler(), model), grid, cv=5, scoring="r2")


def predictions(train_x, train_y, test_x, kind: str) -> np.ndarray:
    """Test predictions (N_test,) of one probe fitted on the known train rows of one phenotype."""
    known = ~np.isnan(train_y)
    if kind == "linear":
        return probe_predictions(train_x[known], train_y[known, None], test_x, "ols")[:, 0]
    return _nonlinear(kind).fit(train_x[known], train_y[known]).predict(test_x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("evals", nargs=2, type=Path, help="two `ptacl evaluate` folders: A B")
    parser.add_argument("--phenotypes", nargs="*", help="short names (default: all)")
    args = parser.parse_args()
    loaded = [(_load(f, "train"), _load(f, "test")) for f in args.evals]
    (eids_a, _, y_test, names), (eids_b, _, _, _) = loaded[0][1], loaded[1][1]
    order = {e: i for i, e in enumerate(eids_b)}
    rows_b = np.array([order[e] for e in eids_a])  # B's test rows in A's order
    print(f"A = {args.evals[0]}, B = {args.evals[1]}; {len(eids_a)} test subjects\n")
    print("| phenotype | probe | R² A | R² B | A − B [95 % CI] |\n|---|---|---|---|---|")
    for p, name in enumerate(names):
        short = name.split(" (")[0]
        if args.phenotypes and short not in args.phenotypes:
            continue
        for kind in PROBES:
            preds = []
            for (train, test), rows in zip(loaded, (slice(None), rows_b)):
                preds.append(predictions(train[1], train[2][:, p], test[1][rows], kind))
            known = ~np.isnan(y_test[:, p])
            r2 = [float(r2_metric(y_test[None, known, p], q[None, known])[0]) for q in preds]
            d = paired_difference(r2_metric, y_test[:, p], preds[0][None], preds[1][None])
            diff = f"{d.estimate:+.3f} [{d.ci[0]:+.3f}, {d.ci[1]:+.3f}]"
            print(f"| {short} | {kind} | {r2[0]:.3f} | {r2[1]:.3f} | {diff} |", flush=True)


if __name__ == "__main__":
    main()
