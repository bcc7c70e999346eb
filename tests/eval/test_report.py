import json

import numpy as np
import pandas as pd

from ptacl.eval.bootstrap import r2_ci, retrieval_ci
from ptacl.eval.probe import r2_per_phenotype
from ptacl.eval.report import (
    plot_alignment_matrix,
    plot_precision_curves,
    plot_predictions,
    regression_section,
    retrieval_section,
    write_report,
)
from ptacl.eval.retrieval import random_retrieval_baseline, retrieval_scores, summarize_retrieval
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
