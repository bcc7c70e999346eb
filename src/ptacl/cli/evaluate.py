"""Evaluate a run: retrieval (Table 1), linear probe and optionally FN+AP (Table 2), report.

    ptacl evaluate --model RUN --data STORE --out DIR [--finetune] [--probe ols|ridge]
    ptacl evaluate --model none [--like RUN] --data STORE --out DIR   (random-init baseline)

Writes DIR/metrics.json, DIR/report.md, DIR/figures/*.png and the embeddings used
(DIR/embeddings_{train,test}.npz, DIR/embeddings_paired_test.npz).

- Retrieval (runs with both encoders): ECG queries against the CMR database of the paired test
  subjects, in the projection-head space when the run has heads (what stage 2 aligns), else on
  mean-pooled tokens; with the random-ranking baseline. The query's own CMR is not a candidate
  unless --include-self (the paper's literal protocol; metrics.json and report.md say which).
- Linear probe: OLS (or ridge) on mean-pooled ECG embeddings of every train-split ECG, scored
  on every test-split ECG; for a run holding only a CMR encoder (CMR MAE or SimCLR: the imaging
  upper bound) the same on CMR embeddings. With no more train subjects than features + 1, OLS
  is under-determined: a warning, and a note in metrics.json and report.md (use --probe ridge).
- --finetune: `ptacl finetune` of the run's ECG encoder into DIR/finetune, scored on the same
  test ECGs (--finetune-config YAML and --finetune-set key=value configure it).
CIs: percentile bootstrap over test subjects (--n-boot replicates, --seed).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ptacl evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="run folder, or `none` for random init")
    parser.add_argument("--data", type=Path, required=True, help="prepared store")
    parser.add_argument("--out", type=Path, required=True, help="output folder (new or empty)")
    parser.add_argument("--split", default="test", choices=["val", "test"], help="scored split")
    parser.add_argument("--probe", default="ols", choices=["ols", "ridge"])
    parser.add_argument("--finetune", action="store_true", help="also fine-tune (FN+AP)")
    parser.add_argument("--finetune-config", type=Path, help="YAML for the fine-tune")
    parser.add_argument(
        "--finetune-set", action="append", default=[], metavar="key=value",
        help="fine-tune config override (repeatable)",
    )  # fmt: skip
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 3, 5, 10, 15])
    parser.add_argument("--match-sd", type=float, default=0.5)
    parser.add_argument(
        "--include-self",
        action="store_true",
        help="keep the query's own CMR among the candidates (the paper's 'all patients in the "
        "CMR database'; it always matches); default: excluded, the stricter protocol",
    )
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap / random-init seed")
    parser.add_argument(
        "--like",
        help="with `none`: random encoders of the modalities and architecture of this run "
        "(else both, at the paper's sizes)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ptacl.config import ConfigError
    from ptacl.data.store import Store, StoreError
    from ptacl.eval.embed import EmbedError
    from ptacl.runs import RunDirError

    if args.finetune and args.split != "test":
        print("ptacl evaluate: --finetune scores the test split; drop --split", file=sys.stderr)
        return 2
    if args.out.exists() and any(args.out.iterdir()):
        print(f"ptacl evaluate: {args.out}: not empty; choose a new --out", file=sys.stderr)
        return 2
    try:
        store = Store.open(args.data)
        return evaluate(args, store, argv)
    except (ConfigError, EmbedError, RunDirError, StoreError) as e:
        print(f"ptacl evaluate: {e}", file=sys.stderr)
        return 2


def _frame(emb):
    import pandas as pd

    return pd.DataFrame(emb.phenotypes.astype("float64"), columns=list(emb.phenotype_names))


def evaluate(args: argparse.Namespace, store, argv: list[str] | None) -> int:

    import numpy as np

    import ptacl
    from ptacl.eval.bootstrap import retrieval_ci
    from ptacl.eval.embed import compute_embeddings
    from ptacl.eval.report import (
        plot_alignment_matrix,
        plot_precision_curves,
        retrieval_section,
        write_report,
    )
    from ptacl.eval.retrieval import (
        random_retrieval_baseline,
        retrieval_scores,
        summarize_retrieval,
        top1_candidates,
        top1_collapse,
    )
    from ptacl.runs import load_run_encoders

    out: Path = args.out
    figures_dir = out / "figures"
    out.mkdir(parents=True, exist_ok=True)
    encoders = load_run_encoders(args.model, seed=args.seed, like=args.like)
    embed = dict(batch_size=args.batch_size, device=args.device, progress=not args.no_progress)
    ks, boot = tuple(args.ks), dict(n_boot=args.n_boot, seed=args.seed)
    metrics: dict = {
        "info": {
            "model": str(args.model),
            "kind": encoders.kind,
            "data": str(store.root),
            "split": args.split,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "ptacl": ptacl.__version__,
            "command": "ptacl evaluate " + " ".join(argv if argv is not None else sys.argv[2:]),
        },
        "bootstrap": {**boot, "level": 0.95},
        "regression": {},
        "regression_notes": {},
    }
    figures: dict[str, Path] = {}

    both = encoders.ecg is not None and encoders.cmr is not None
    if both and len(store.indices(args.split, ecg=True, cmr=True)) < 2:
        metrics["retrieval_skipped"] = f"fewer than 2 paired subjects in the {args.split} split"
    elif both:
        paired = compute_embeddings(encoders, store, args.split, **embed)
        paired.save(out / f"embeddings_paired_{args.split}.npz")
        use_proj = paired.ecg_proj is not None and paired.cmr_proj is not None
        ecg, cmr = (paired.ecg_proj, paired.cmr_proj) if use_proj else (paired.ecg, paired.cmr)
        pheno = _frame(paired)
        exclude_self = not args.include_self
        scores = retrieval_scores(ecg, cmr, pheno, ks, args.match_sd, exclude_self)
        lo, hi = retrieval_ci(scores, ks, **boot)
        metrics["retrieval"] = retrieval_section(
            summarize_retrieval(scores, ks),
            lo,
            hi,
            random_retrieval_baseline(pheno, ks, args.match_sd, exclude_self, seed=args.seed),
            ks=ks,
            match_sd=args.match_sd,
            exclude_self=exclude_self,
            space="projection-head outputs" if use_proj else "mean-pooled encoder tokens",
            collapse=top1_collapse(top1_candidates(ecg, cmr, exclude_self), len(paired.eids)),
        )
        for warning in metrics["retrieval"]["warnings"]:
            print(f"ptacl evaluate: warning: retrieval: {warning}", file=sys.stderr)
        metrics["info"]["paired_subjects"] = len(paired.eids)
        figures["P@k per phenotype, model vs random ranking"] = plot_precision_curves(
            metrics["retrieval"], figures_dir / "precision_at_k.png"
        )
        if paired.alignment is not None:
            matrix = paired.alignment
            metrics["alignment"] = {
                "matrix": matrix.round(4).tolist(),
                "subjects": paired.meta.get("alignment_subjects"),
                "diagonal_mean": float(np.mean(np.diag(matrix))),
                "off_diagonal_mean": float(matrix[~np.eye(len(matrix), dtype=bool)].mean()),
            }
            figures[f"ECG–CMR local similarity, mean over {args.split} subjects (Figure 2)"] = (
                plot_alignment_matrix(
                    matrix,
                    figures_dir / "alignment_matrix.png",
                    f"{encoders.kind}: mean T×T cosine similarity",
                )
            )
    elif not both:
        metrics["retrieval_skipped"] = (
            f"the run ({encoders.kind}) does not hold both an ECG and a CMR encoder"
        )

    probe_modality = "ecg" if encoders.ecg is not None else "cmr"
    _linear_probe(args, encoders, probe_modality, store, metrics, figures, embed, boot)
    if args.finetune and probe_modality == "ecg":
        code = _finetune(args, store, out / "finetune", metrics, figures, figures_dir)
        if code:
            return code
    elif args.finetune:
        metrics["regression_notes"]["FN+AP"] = "not computed: the run holds no ECG encoder"

    (out / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    report = write_report(out, metrics, figures)
    print(f"metrics -> {out / 'metrics.json'}; report -> {report}")
    return 0


def _linear_probe(
    args, encoders, modality: str, store, metrics: dict, figures: dict, embed: dict, boot: dict
) -> None:
    """LP on frozen mean-pooled `modality` embeddings: fit on every train-split subject with that
    modality, score on the evaluated split; CIs, a scatter figure, and a note. ECG for any run
    with an ECG encoder (Table 2's ECG rows), CMR for a CMR-only run (the imaging upper bound)."""
    import dataclasses

    import numpy as np

    from ptacl.eval.bootstrap import r2_ci
    from ptacl.eval.embed import compute_embeddings
    from ptacl.eval.probe import ols_underdetermined, probe_predictions, r2_per_phenotype
    from ptacl.eval.report import plot_predictions, regression_section

    out: Path = args.out
    other = "cmr" if modality == "ecg" else "ecg"
    single = dataclasses.replace(encoders, **{other: None, f"{other}_head": None})
    train = compute_embeddings(single, store, "train", **embed)
    test = compute_embeddings(single, store, args.split, **embed)
    train.save(out / "embeddings_train.npz")
    test.save(out / f"embeddings_{args.split}.npz")
    names = list(test.phenotype_names)
    x_train, x_test = getattr(train, modality), getattr(test, modality)
    pred = probe_predictions(x_train, train.phenotypes, x_test, method=args.probe)
    truth = test.phenotypes.astype(np.float64)
    label, what = f"LP ({args.probe})", modality.upper()
    metrics["regression"][label] = regression_section(
        r2_per_phenotype(truth, pred, names), *r2_ci(truth, pred, names, **boot)
    )
    note = (
        f"linear probe on frozen mean-pooled {what} embeddings (input: {what}); "
        f"{len(train.eids)} train {what}s, {len(test.eids)} {args.split} {what}s"
    )
    known = (~np.isnan(train.phenotypes)).sum(axis=0)
    problem = ols_underdetermined(int(known.min()), x_train.shape[1]) if len(known) else None
    if args.probe == "ols" and problem is not None:
        warning = f"{label}: {problem}; use --probe ridge"
        print(f"ptacl evaluate: warning: {warning}", file=sys.stderr)
        metrics.setdefault("warnings", []).append(warning)
        note += f". WARNING: {problem}; use --probe ridge"
    metrics["regression_notes"][label] = note
    metrics["info"]["probe_input"] = what
    metrics["info"][f"{modality}_subjects"] = {"train": len(train.eids), args.split: len(test.eids)}
    figures[f"{label} ({what} input): predicted vs true"] = plot_predictions(
        truth, pred, names, out / "figures" / "scatter_linear_probe.png", f"{label}, {what} input"
    )


def _finetune(args, store, run_dir: Path, metrics: dict, figures: dict, figures_dir: Path) -> int:
    """FN+AP into run_dir, then its test predictions into metrics and a scatter figure."""
    import numpy as np

    from ptacl.cli.finetune import run_finetune, with_source_encoder
    from ptacl.config import load_config
    from ptacl.eval.report import plot_predictions
    from ptacl.runs import prepare_run_dir
    from ptacl.training.finetune import FinetuneConfig

    overrides = [f"model={args.model}", f"data.store={store.root}", *args.finetune_set]
    cfg = with_source_encoder(load_config(FinetuneConfig, args.finetune_config, overrides))
    prepare_run_dir(run_dir, cfg, resume=False)
    code = run_finetune(cfg, store, run_dir, None, n_boot=args.n_boot)
    if code:
        return code
    result = json.loads((run_dir / "test_metrics.json").read_text(encoding="utf-8"))
    metrics["regression"]["FN+AP"] = result["r2"]
    metrics["regression_notes"]["FN+AP"] = (
        f"fine-tuned ECG encoder + attention pooling ({run_dir.name}/), best validation "
        f"checkpoint, stopped at step {result['stopped_at_step']}"
    )
    with np.load(run_dir / "test_predictions.npz", allow_pickle=False) as data:
        names = [str(n) for n in data["phenotype_names"]]
        figures["FN+AP: predicted vs true"] = plot_predictions(
            data["true"].astype(np.float64),
            data["predicted"].astype(np.float64),
            names,
            figures_dir / "scatter_finetune.png",
            "FN+AP",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
