"""FN+AP − LP (or any two arms' test R²), paired by subject within seed, combined over seeds
(`ptacl.eval.comparisons.compare_r2`): the before/after of the fine-tuning recipe (issue 23).

    .venv/bin/python benchmarks/finetune_recipe.py \\
        --a B/seed{0,1,2}/eval/ptacl/finetune/test_predictions.npz \\
        --b B/seed{0,1,2}/eval/ptacl/lp_test_predictions.npz --label "old FN+AP − LP"

One line per phenotype: the mean difference over seeds, its 95 % CI, p, the MDE and the
difference within each seed. --a and --b list one file per seed, in the same seed order.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ptacl.eval.comparisons import compare_r2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", type=Path, nargs="+", required=True, help="arm A, one per seed")
    parser.add_argument("--b", type=Path, nargs="+", required=True, help="arm B, one per seed")
    parser.add_argument("--label", default="A − B")
    parser.add_argument("--phenotypes", nargs="*", help="short names (default: all)")
    parser.add_argument("--n-boot", type=int, default=2000)
    args = parser.parse_args()
    found = compare_r2(args.a, args.b, n_boot=args.n_boot)
    print(f"{args.label}: {len(args.a)} seed(s)")
    for name, d in found.items():
        if args.phenotypes and name not in args.phenotypes:
            continue
        seeds = ", ".join(f"{v:+.3f}" for v in d.per_seed)
        print(
            f"  {name:12s} {d.estimate:+.3f} [{d.ci[0]:+.3f}, {d.ci[1]:+.3f}]  p {d.p_value:.3f}"
            f"  MDE {d.mde:.3f}  per seed {seeds}  ({d.subjects} subjects)"
        )


if __name__ == "__main__":
    main()
