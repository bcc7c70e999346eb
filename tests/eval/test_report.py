import json
from pathlib import Path

import numpy as np
import pandas as pd

from ptacl.eval.bootstrap import r2_ci, retrieval_ci
from ptacl.eval.figures import plot_alignment_matrix, plot_precision_curves, plot_predictions
from ptacl.eval.probe import r2_per_phenotype
from ptacl.eval.random_baseline import random_retrieval_baseline
from ptacl.eval.report import (
    regression_section,
    retrieval_section,
    retrieval_warnings,
    write_report,
)
from ptacl.eval.retrieval import retrieval_scores, summarize_retrieval
from ptacl.phenotypes import PHENOTYPES

KS = (1, 3, 5, 10, 15)


def test_report_has_both_tables_with_cis_and_the_figures(tmp_path):
    rng = np.random.default_rng(0)
    n = 120
    y = rng.normal(size=(n, 10))
    y[:5, 3] = np.nan
    pheno = pd.DataFrame(y, columns=PHENOTYPES)
    emb = rng.normal(size=(n, 8))
    scores = retrieval_scores(emb, emb + rng.normal(size=(n, 8)), pheno, KS)
    lo, hi = retrieval_ci(scores, KS, n_boot=20)
    retrieval = retrieval_section(
        summarize_retrieval(scores, KS), lo, hi, random_retrieval_baseline(pheno),
        ks=KS, match_sd=0.5, exclude_self=True, space="projection heads",
    )  # fmt: skip
    pred = y + rng.normal(size=y.shape)
    r2 = r2_per_phenotype(y, pred, PHENOTYPES)
    metrics = {
        "info": {"model": "runs/x", "split": "test"},
        "bootstrap": {"n_boot": 20, "seed": 0},
        "retrieval": retrieval,
        "regression": {"LP (ols)": regression_section(r2, *r2_ci(y, pred, PHENOTYPES, n_boot=20))},
    }
    json.dumps(metrics, allow_nan=False)  # NaN became null: strict JSON
    figures = {
        "P@k": plot_precision_curves(retrieval, tmp_path / "figures" / "pk.png"),
        "scatter": plot_predictions(y, pred, PHENOTYPES, tmp_path / "figures" / "lp.png"),
        "Figure 2": plot_alignment_matrix(np.eye(13), tmp_path / "figures" / "align.png", "x"),
    }
    text = write_report(tmp_path, metrics, figures).read_text()
    assert "| LVEDV | model | " in text and "| | random | " in text
    assert "Protocol: the query's own CMR is excluded" in text
    assert "| LP (ols) | " in text and "LVEF" in text
    p1 = metrics["retrieval"]["model"]["LVEDV (mL)"]["P@1"]
    assert f"{p1:.3f} [" in text
    assert "(figures/pk.png)" in text
    for path in figures.values():
        assert path.stat().st_size > 1000


def test_figure_links_are_relative_to_the_report_when_paths_are_relative(tmp_path, monkeypatch):
    """`ptacl evaluate --out demo_out/eval` hands relative paths: the link must still be
    figures/x.png, not demo_out/eval/figures/x.png (broken when report.md is opened)."""
    monkeypatch.chdir(tmp_path)
    out = Path("demo_out") / "eval"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "x.png").write_bytes(b"png")
    text = write_report(out, {"info": {}}, {"X": out / "figures" / "x.png"}).read_text()
    assert "![X](figures/x.png)" in text


def test_retrieval_warnings_below_random_and_hub():
    model = {
        "LVEDV (mL)": {"P@1": 0.2, "P@10": 0.3},  # P@1 under random's
        "LVM (g)": {"P@1": 0.5, "P@10": None},  # P@10 not computed: no comparison
        "RVEF (%)": {"P@1": 0.3, "P@10": 0.25},  # P@10 under random's
    }
    random = {n: {"P@1": 0.276, "P@10": 0.276} for n in model}
    hub = {"top1_hub_share": 0.6, "top1_distinct": 3, "candidates": 10}
    warnings = retrieval_warnings(model, random, hub)
    assert warnings == [
        "LVEDV: retrieval below the random ranking (P@1 0.200 < 0.276)",
        "RVEF: retrieval below the random ranking (P@10 0.250 < 0.276)",
        "collapse: one CMR is the top-1 candidate of 60% of the queries (3 distinct top-1 "
        "candidates of 10); the ECG embeddings point to a hub, whatever the patient",
    ]
    assert retrieval_warnings(model, random, {**hub, "top1_hub_share": 0.5})[-1].startswith("RVEF")
    assert retrieval_warnings({"x": {"P@1": 0.3}}, {"x": {"P@1": 0.276}}) == []


def test_report_states_collapse_and_warns_in_words(tmp_path):
    rng = np.random.default_rng(1)
    n = 40
    pheno = pd.DataFrame({"LVEDV (mL)": rng.normal(size=n)})
    scores = retrieval_scores(rng.normal(size=(n, 4)), rng.normal(size=(n, 4)), pheno, (1, 10))
    lo, hi = retrieval_ci(scores, (1, 10), n_boot=5)
    table = summarize_retrieval(scores, (1, 10))
    table.loc["LVEDV (mL)", "P@1"] = 0.0  # under any random ranking
    hub = {"top1_hub_share": 0.9, "top1_distinct": 2, "queries": n, "candidates": n}
    retrieval = retrieval_section(
        table, lo, hi, random_retrieval_baseline(pheno, (1, 10)),
        ks=(1, 10), match_sd=0.5, exclude_self=True, space="x", collapse=hub,
    )  # fmt: skip
    assert retrieval["collapse"] == hub and len(retrieval["warnings"]) == 2
    json.dumps(retrieval, allow_nan=False)
    text = write_report(tmp_path, {"retrieval": retrieval}, {}).read_text()
    assert "Collapse: top-1 hub share 0.900" in text and "2 distinct top-1 candidates of 40" in text
    assert "**Warning — LVEDV: retrieval below the random ranking (P@1 0.000 <" in text
    assert "**Warning — collapse: one CMR is the top-1 candidate of 90% of the queries" in text


def test_report_states_the_intervals_their_coverage_or_why_not(tmp_path):
    from ptacl.eval.evaluate import interval_section

    names = ["LVEDV (mL)", "LVEF (%)"]
    truth = np.array([[100.0, 50], [110, 60], [120, 55], [130, np.nan]])
    fitted = interval_section((truth, truth + 5), (truth, truth - 1), names, "test", 0.5)
    unbounded = interval_section((truth[:1], truth[:1]), (truth, truth), names, "test", 0.9)
    skipped = {"skipped": "the scored split is val, the split the intervals are fitted on"}
    metrics = {
        "info": {"split": "test"},
        "intervals": {"LP (ols)": fitted, "LP (ridge)": unbounded, "FN": skipped},
    }
    report = write_report(tmp_path, metrics, {}).read_text()
    assert "## Prediction intervals — LP (ols) (test split)" in report
    assert "Nominal coverage 50 %" in report
    assert "| LVEDV | 5.000 | 4 | 100.0 % | 10.000 | 4 |" in report  # |r| = 5: all inside
    assert "| LVEDV | unbounded | 1 | 100.0 % |" in report
    assert "Not computed: the scored split is val, the split the intervals are fitted on." in report
