"""Evaluate a run: retrieval (Table 1), linear probe and optionally FN+AP (Table 2), report.

`evaluate(options, store)` writes into `options.out`: metrics.json, report.md,
figures/*.png and the embeddings used (embeddings_{train,<split>}.npz,
embeddings_paired_<split>.npz). `ptacl evaluate` parses its arguments into `EvaluateOptions`
and calls it (its --help describes every metric).

FN+AP needs a training run, and nothing in ptacl.eval trains: the caller passes `finetune`, a
function that fine-tunes the run's ECG encoder into the folder it is given and writes
test_predictions.npz and test_metrics.json there (`ptacl.training.finetune.fit`);
this module scores what it wrote.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ptacl.eval.conformal import DEFAULT_LEVEL

#: Fine-tunes the run's ECG encoder into the given folder; returns an exit status (0: done).
FinetuneStep = Callable[[Path], int]


@dataclass(frozen=True)
class EvaluateOptions:
    """What to evaluate and how (the options of `ptacl evaluate`)."""

    model: str  # run folder, or `none` for random encoders
    out: Path
    split: Literal["val", "test"] = "test"  # the scored split
    probe: Literal["ols", "ridge"] = "ols"
    ks: tuple[int, ...] = (1, 3, 5, 10, 15)
    match_sd: float = 0.5
    include_self: bool = False  # keep the query's own CMR among the retrieval candidates
    ranking: str = "cosine"  # or "csls": hub-corrected (ptacl.eval.hubness)
    csls_k: int = 10
    n_boot: int = 1000
    seed: int = 0  # bootstrap and random-init seed
    like: str | None = None  # with `none`: random encoders of this run's architecture
    batch_size: int = 32
    device: str = "cpu"
    progress: bool = True
    command: str = "ptacl evaluate"  # recorded in metrics.json
    interval_level: float = DEFAULT_LEVEL  # nominal coverage of the LP's conformal intervals
    endpoints: Any = None  # an EndpointsConfig (ptacl.eval.endpoints): clinical endpoints too


def _frame(emb: Any) -> Any:
    import pandas as pd

    return pd.DataFrame(emb.phenotypes.astype("float64"), columns=list(emb.phenotype_names))


def evaluate(options: EvaluateOptions, store: Any, *, finetune: FinetuneStep | None = None) -> int:
    """Evaluate `options.model` on `store` (a `ptacl.data.store.Store`); with `finetune`, FN+AP
    too (into out/finetune). Returns 0, or the fine-tune's non-zero exit status (then nothing
    is written but the embeddings and figures so far)."""
    import ptacl
    from ptacl.eval.embed import compute_embeddings
    from ptacl.eval.report import write_report
    from ptacl.runs import load_run_encoders

    out = Path(options.out)
    split = options.split
    figures_dir = out / "figures"
    out.mkdir(parents=True, exist_ok=True)
    encoders = load_run_encoders(options.model, seed=options.seed, like=options.like)
    embed = dict(batch_size=options.batch_size, device=options.device, progress=options.progress)
    boot = dict(n_boot=options.n_boot, seed=options.seed)
    metrics: dict[str, Any] = {
        "info": {
            "model": str(options.model),
            "kind": encoders.kind,
            "data": str(store.root),
            "split": split,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "ptacl": ptacl.__version__,
            "command": options.command,
        },
        "bootstrap": {**boot, "level": 0.95},
        "regression": {},
        "regression_notes": {},
    }
    figures: dict[str, Path] = {}

    if encoders.ecg is None or encoders.cmr is None:
        metrics["retrieval_skipped"] = (
            f"the run ({encoders.kind}) does not hold both an ECG and a CMR encoder"
        )
    elif len(store.indices(split, ecg=True, cmr=True)) < 2:
        metrics["retrieval_skipped"] = f"fewer than 2 paired subjects in the {split} split"
    else:
        paired = compute_embeddings(encoders, store, split, **embed)
        paired.save(out / f"embeddings_paired_{split}.npz")
        retrieval_part(options, paired, metrics, figures, figures_dir, boot)
        metrics["info"]["paired_subjects"] = len(paired.eids)
        alignment_part(paired, encoders.kind, split, metrics, figures, figures_dir)
    probe_modality = "ecg" if encoders.ecg is not None else "cmr"
    probed = linear_probe_section(
        options, encoders, probe_modality, store, metrics, figures, embed, boot
    )
    finetuned = None
    if finetune is not None and probe_modality == "ecg":
        finetuned = run_dir = out / "finetune"
        code = finetune(run_dir)
        if code:
            return code
        finetune_section(run_dir, metrics, figures, figures_dir)
    elif finetune is not None:
        metrics["regression_notes"]["FN+AP"] = "not computed: the run holds no ECG encoder"
    if options.endpoints is not None:
        _endpoints(options, store, probe_modality, probed, finetuned, metrics, figures, boot)

    (out / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    report = write_report(out, metrics, figures)
    print(f"metrics -> {out / 'metrics.json'}; report -> {report}")
    return 0


def retrieval_part(
    options: EvaluateOptions,
    paired: Any,
    metrics: dict[str, Any],
    figures: dict[str, Path],
    figures_dir: Path,
    boot: dict[str, Any],
) -> None:
    """ECG -> CMR retrieval of the `paired` embeddings (`compute_embeddings`): per-query scores
    in out/, metrics["retrieval"] with its bootstrap CIs, random baseline, top-1 collapse,
    ranking and hubness, and the P@k figure; its warnings on stderr."""
    from ptacl.eval.bootstrap import retrieval_ci
    from ptacl.eval.collapse import top1_candidates, top1_collapse
    from ptacl.eval.comparisons import RETRIEVAL_PER_QUERY, save_retrieval
    from ptacl.eval.figures import plot_precision_curves
    from ptacl.eval.hubness import hubness_stats, ranking_penalty
    from ptacl.eval.random_baseline import random_retrieval_baseline
    from ptacl.eval.report import retrieval_section
    from ptacl.eval.retrieval import retrieval_scores, summarize_retrieval

    ks = tuple(options.ks)
    use_proj = paired.ecg_proj is not None and paired.cmr_proj is not None
    ecg, cmr = (paired.ecg_proj, paired.cmr_proj) if use_proj else (paired.ecg, paired.cmr)
    pheno = _frame(paired)
    exclude_self = not options.include_self
    penalty, ranking = ranking_penalty(options.ranking, ecg, cmr, options.csls_k, exclude_self)
    scores = retrieval_scores(ecg, cmr, pheno, ks, options.match_sd, exclude_self, penalty=penalty)
    per_query = Path(options.out) / RETRIEVAL_PER_QUERY
    save_retrieval(per_query, paired.eids, list(pheno.columns), ks, scores)
    lo, hi = retrieval_ci(scores, ks, **boot)
    metrics["retrieval"] = retrieval_section(
        summarize_retrieval(scores, ks),
        lo,
        hi,
        random_retrieval_baseline(pheno, ks, options.match_sd, exclude_self, seed=options.seed),
        ks=ks,
        match_sd=options.match_sd,
        exclude_self=exclude_self,
        space="projection-head outputs" if use_proj else "mean-pooled encoder tokens",
        collapse=top1_collapse(
            top1_candidates(ecg, cmr, exclude_self, penalty=penalty), len(paired.eids)
        ),
    )
    metrics["retrieval"]["ranking"] = ranking
    metrics["retrieval"]["hubness"] = hubness_stats(ecg, cmr, 10, exclude_self, penalty)
    for warning in metrics["retrieval"]["warnings"]:
        print(f"ptacl evaluate: warning: retrieval: {warning}", file=sys.stderr)
    figures["P@k per phenotype, model vs random ranking"] = plot_precision_curves(
        metrics["retrieval"], figures_dir / "precision_at_k.png"
    )


def alignment_part(
    paired: Any,
    kind: str,
    split: str,
    metrics: dict[str, Any],
    figures: dict[str, Path],
    figures_dir: Path,
) -> None:
    """metrics["alignment"] and its figure (Figure 2), the mean T×T local similarity of the
    `paired` embeddings, when they have one (a run with local embeddings)."""
    from ptacl.eval.figures import plot_alignment_matrix

    if paired.alignment is None:
        return
    matrix = paired.alignment
    metrics["alignment"] = {
        "matrix": matrix.round(4).tolist(),
        "subjects": paired.meta.get("alignment_subjects"),
        "diagonal_mean": float(np.mean(np.diag(matrix))),
        "off_diagonal_mean": float(matrix[~np.eye(len(matrix), dtype=bool)].mean()),
    }
    figures[f"ECG–CMR local similarity, mean over {split} subjects (Figure 2)"] = (
        plot_alignment_matrix(
            matrix, figures_dir / "alignment_matrix.png", f"{kind}: mean T×T cosine similarity"
        )
    )


def linear_probe_section(
    options: EvaluateOptions,
    encoders: Any,
    modality: str,
    store: Any,
    metrics: dict[str, Any],
    figures: dict[str, Path],
    embed: dict[str, Any],
    boot: dict[str, Any],
) -> tuple[Any, Any, Any]:
    """LP on frozen mean-pooled `modality` embeddings: fit on every train-split subject with that
    modality, score on the evaluated split; CIs, a scatter figure, and a note. ECG for any run
    with an ECG encoder (Table 2's ECG rows), CMR for a CMR-only run (the imaging upper bound).
    The OLS fit is the one `ptacl export` bundles (`ptacl.eval.probe.fit_ols`). Returns the
    embeddings used: train, val (None when there are none) and the scored split."""
    from ptacl.eval.bootstrap import r2_ci
    from ptacl.eval.comparisons import LP_PREDICTIONS, save_predictions
    from ptacl.eval.embed import compute_embeddings
    from ptacl.eval.figures import plot_predictions
    from ptacl.eval.probe import probe_predictions, r2_per_phenotype
    from ptacl.eval.report import regression_section

    out, split = Path(options.out), options.split
    other = "cmr" if modality == "ecg" else "ecg"
    single = dataclasses.replace(encoders, **{other: None, f"{other}_head": None})
    train = compute_embeddings(single, store, "train", **embed)
    test = compute_embeddings(single, store, split, **embed)
    train.save(out / "embeddings_train.npz")
    test.save(out / f"embeddings_{split}.npz")
    names = list(test.phenotype_names)
    x_train, x_test = getattr(train, modality), getattr(test, modality)
    # one fit predicts the scored split and, for the conformal intervals, the val split
    val, why = _calibration_embeddings(single, store, split, embed)  # why: when None
    x_val = getattr(val, modality) if val is not None else x_test[:0]
    both = probe_predictions(
        x_train, train.phenotypes, np.concatenate([x_test, x_val]), method=options.probe
    )
    pred = both[: len(x_test)]
    truth = test.phenotypes.astype(np.float64)
    save_predictions(out / LP_PREDICTIONS, test.eids, truth, pred, names)  # paired comparisons
    label, what = f"LP ({options.probe})", modality.upper()
    metrics["regression"][label] = regression_section(
        r2_per_phenotype(truth, pred, names), *r2_ci(truth, pred, names, **boot)
    )
    note = (
        f"linear probe on frozen mean-pooled {what} embeddings (input: {what}); "
        f"{len(train.eids)} train {what}s, {len(test.eids)} {split} {what}s"
    )
    known = (~np.isnan(train.phenotypes)).sum(axis=0)
    problem = ols_problem(int(known.min()), x_train.shape[1]) if len(known) else None
    if options.probe == "ols" and problem is not None:
        warning = f"{label}: {problem}; use --probe ridge"
        print(f"ptacl evaluate: warning: {warning}", file=sys.stderr)
        metrics.setdefault("warnings", []).append(warning)
        note += f". WARNING: {problem}; use --probe ridge"
    metrics["regression_notes"][label] = note
    metrics.setdefault("intervals", {})[label] = (
        {"skipped": why}
        if val is None
        else interval_section(
            (val.phenotypes.astype(np.float64), both[len(x_test) :]),
            (truth, pred),
            names,
            split,
            options.interval_level,
        )
    )
    metrics["info"]["probe_input"] = what
    metrics["info"][f"{modality}_subjects"] = {"train": len(train.eids), split: len(test.eids)}
    figures[f"{label} ({what} input): predicted vs true"] = plot_predictions(
        truth, pred, names, out / "figures" / "scatter_linear_probe.png", f"{label}, {what} input"
    )
    return train, val, test


def _endpoints(
    options: EvaluateOptions,
    store: Any,
    modality: str,
    probed: tuple[Any, Any, Any],
    finetuned: Path | None,
    metrics: dict[str, Any],
    figures: dict[str, Path],
    boot: dict[str, Any],
) -> None:
    """The clinical endpoints (`ptacl.eval.endpoint_eval`), with the ECG-criteria baseline,
    into metrics and a figure; only when the test split is scored (the threshold is fixed on
    val)."""
    from ptacl.eval.endpoint_eval import endpoints_section
    from ptacl.eval.endpoint_report import plot_reliability

    if options.split != "test":
        metrics["endpoints"] = {"skipped": "the threshold is fixed on val: score the test split"}
        return
    metrics["endpoints"] = section = endpoints_section(
        options.endpoints, store, modality, probed, finetuned, boot, criteria=True
    )
    path = plot_reliability(section, Path(options.out) / "figures" / "endpoint_reliability.png")
    if path is not None:
        figures["Endpoints: reliability (observed vs predicted probability, test split)"] = path


def _calibration_embeddings(
    encoders: Any, store: Any, split: str, embed: dict[str, Any]
) -> tuple[Any, str]:
    """The val split's embeddings for the intervals (and ""), or None and why there are none:
    the scored split is val itself (coverage measured on the residuals the width came from
    says nothing), or val holds nothing to embed."""
    from ptacl.eval.embed import EmbedError, compute_embeddings

    if split == "val":
        return None, f"the scored split is {split}, the split the intervals are fitted on"
    try:
        return compute_embeddings(encoders, store, "val", **embed), ""
    except EmbedError as e:  # the probe is still scored; only its interval is missing
        return None, f"no val embeddings to fit them on: {e}"


def interval_section(
    calibration: tuple[np.ndarray, np.ndarray],
    scored: tuple[np.ndarray, np.ndarray],
    names: list[str],
    split: str,
    level: float = DEFAULT_LEVEL,
) -> dict[str, Any]:
    """The conformal prediction interval of a head (`ptacl.eval.conformal`, as `ptacl export`
    bundles it): fitted on (truth, predicted) of the val split, `calibration`, and its coverage
    and mean width measured on the scored `split`'s (`scored`: truth, predicted)."""
    from ptacl.eval.conformal import fit_intervals, half_widths, interval_coverage

    spec = fit_intervals(*calibration, names, level)
    spec["fitted_on"] = "val"
    spec[split] = interval_coverage(*scored, half_widths(spec, names), names)
    return spec


def ols_problem(n_train: int, features: int) -> str | None:
    """Why an OLS probe of `features` dimensions on `n_train` subjects means little, or None:
    under-determined (`ols_underdetermined`), or so few subjects that estimation noise inflates
    its test error past `ptacl.eval.probe.OLS_INFLATION_LIMIT`, the rule by which `ptacl demo`
    probes with ridge instead."""
    from ptacl.eval.probe import OLS_INFLATION_LIMIT, ols_inflation, ols_underdetermined

    problem = ols_underdetermined(n_train, features)
    inflation = ols_inflation(n_train, features)
    if problem is None and inflation > OLS_INFLATION_LIMIT:
        problem = (
            f"{n_train} training subjects for {features} features: estimation noise inflates "
            f"OLS's test error {1 + inflation:.1f}-fold (it needs {3 * features + 2} or more)"
        )
    return problem


def finetune_section(
    run_dir: Path, metrics: dict[str, Any], figures: dict[str, Path], figures_dir: Path
) -> None:
    """A finished fine-tune's test predictions (run_dir, as `ptacl finetune` writes it) into
    metrics (FN+AP) and a scatter figure."""
    from ptacl.eval.figures import plot_predictions

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
