"""How much of what an ECG encoder knows survives mean pooling? Ridge on three poolings, measured.

    .venv/bin/python benchmarks/pooling_probe.py --data STORE --run RUNS/ecg_mae

For the train and test splits of STORE (the deterministic evaluation views: the first 2,500
samples), the encoder's tokens are pooled three ways: the mean over all tokens (what the global
loss and the linear probe see, D values), the mean per lead (12 × D) and the beat-aligned local
embeddings of PTACL's local loss (T × D: tokens between consecutive R peaks, lead-averaged and
resampled to T phase bins, averaged over beats). A ridge regression (alphas chosen by
cross-validation on train) per phenotype is fitted on train and scored on test (R²).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ptacl.data.datasets import EcgDataset
from ptacl.data.store import Store
from ptacl.models.local import ecg_local_embeddings
from ptacl.phenotypes import PHENOTYPES
from ptacl.runs import load_encoder


@torch.no_grad()
def pooled(encoder, store: Store, split: str, steps: int, batch: int = 64) -> dict[str, np.ndarray]:
    data = EcgDataset(store, split, train=False, augment=None, crop=encoder.samples)
    out: dict[str, list] = {"mean": [], "per lead": [], "beat-aligned": [], "y": []}
    leads = encoder.grid[0]
    for start in range(0, len(data), batch):
        items = [data[i] for i in range(start, min(start + batch, len(data)))]
        tokens = encoder.forward_features(torch.stack([it["ecg"] for it in items]))  # (B, L, D)
        peaks = torch.stack([it["r_peaks"] for it in items])
        out["mean"].append(tokens.mean(1))
        out["per lead"].append(
            rearrange(tokens, "b (c t) d -> b c t d", c=leads).mean(2).flatten(1)
        )
        time = encoder.time_tokens(tokens)  # (B, L_t, D)
        local, _ = ecg_local_embeddings(time, peaks, encoder.samples_per_step, steps)
        out["beat-aligned"].append(local.flatten(1))
        out["y"].append(torch.stack([it["phenotypes"] for it in items]))
    return {k: torch.cat(v).numpy() for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--run", type=Path, required=True, help="a run holding an ECG encoder")
    parser.add_argument("--steps", type=int, default=13, help="T of the beat-aligned pooling")
    parser.add_argument("--phenotypes", nargs="+", default=["LVEDV", "LVM", "RVEDV"])
    args = parser.parse_args(argv)
    store = Store.open(args.data)
    encoder = load_encoder(args.run, "ecg").eval()
    train, test = (pooled(encoder, store, s, args.steps) for s in ("train", "test"))
    columns = [i for i, name in enumerate(PHENOTYPES) if name.split(" ")[0] in args.phenotypes]
    print(f"{args.run} on {args.data}: ridge R² on the test split ({len(test['y'])} subjects)")
    print(f"| pooling | values | {' | '.join(PHENOTYPES[i] for i in columns)} |")
    print(f"|---|---|{'---|' * len(columns)}")
    for kind in ("mean", "per lead", "beat-aligned"):
        scores = []
        for i in columns:
            fit, score = np.isfinite(train["y"][:, i]), np.isfinite(test["y"][:, i])
            model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 5, 15)))
            model.fit(train[kind][fit], train["y"][fit, i])
            pred, true = model.predict(test[kind][score]), test["y"][score, i]
            scores.append(1 - ((pred - true) ** 2).mean() / true.var())
        cells = " | ".join(f"{s:.3f}" for s in scores)
        print(f"| {kind} | {train[kind].shape[1]} | {cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
