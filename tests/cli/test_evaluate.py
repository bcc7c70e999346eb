import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ptacl.cli.align import main as align
from ptacl.cli.evaluate import main
from ptacl.data.store_write import write_store


@pytest.fixture(scope="module")
def eval_store(tmp_path_factory):
    """30 paired subjects (14 train, 6 val, 10 test): enough test queries for P@1..P@5."""
    rng = np.random.default_rng(3)
    n = 30
    time = np.arange(5000) / 500
    ecg = np.sin(2 * np.pi * rng.uniform(1, 1.5, (n, 12, 1)) * time)
    ecg += 0.1 * rng.standard_normal((n, 12, 5000))
    cmr = rng.random((n, 50, 84, 84), dtype=np.float32)
    pheno = rng.normal(100, 20, (n, 10)).astype(np.float32)
    pheno[0, 2] = np.nan
    return _paired_store(tmp_path_factory.mktemp("eval"), 3_000_000, (14, 6, 10), ecg, cmr, pheno)


def _paired_store(folder, first_eid, split_sizes, ecg, cmr, pheno):
    """A store of N paired subjects (train, val, test counts in `split_sizes`), R peaks every
    0.8 s, eids from `first_eid`."""
    n = len(ecg)
    eids = [str(first_eid + i) for i in range(n)]
    train, val, test = split_sizes
    return write_store(
        folder / "store",
        eids=eids,
        splits=["train"] * train + ["val"] * val + ["test"] * test,
        ecg=ecg,
        cmr=cmr,
        r_peaks=[np.arange(200, 5000, 400)] * n,
        phenotypes=pheno,
        has_ecg=[True] * n,
        has_cmr=[True] * n,
        qc=pd.DataFrame({"eid": eids, "status": "ok"}),
    )


@pytest.fixture(scope="module")
def align_run(eval_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("align") / "run"
    args = ["--data", str(eval_store), "--config", "tiny/ptacl.yaml", "--out", str(out)]
    assert align(args) == 0
    return out


FT = ["--finetune-set", "trainer.max_steps=2", "--finetune-set", "trainer.val_every_n_steps=2",
      "--finetune-set", "trainer.accelerator=cpu", "--finetune-set", "trainer.progress_bar=false",
      "--finetune-set", "trainer.sanity_val_steps=0", "--finetune-set", "data.batch_size=4",
      "--finetune-set", "data.num_workers=0", "--finetune-set", "head.heads=2"]  # fmt: skip


def test_evaluate_an_aligned_run_with_finetuning(eval_store, align_run, tmp_path):
    out = tmp_path / "eval"
    args = ["--model", str(align_run), "--data", str(eval_store), "--out", str(out)]
    assert main([*args, "--n-boot", "20", "--no-progress", "--finetune", *FT]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    retrieval = metrics["retrieval"]
    assert retrieval["space"] == "projection-head outputs"
    lvedv = retrieval["model"]["LVEDV (mL)"]
    assert lvedv["queries"] == 10 and lvedv["P@10"] is None  # 9 candidates: P@10 undefined
    assert 0 <= lvedv["P@1"] <= 1 and lvedv["MnR"] >= 1
    assert retrieval["model"]["LVSV (mL)"]["queries"] == 10  # the NaN is a train subject
    assert set(metrics["regression"]) == {"LP (ols)", "FN+AP"}
    assert metrics["regression"]["LP (ols)"]["LVEDV (mL)"]["n"] == 10
    assert len(metrics["alignment"]["matrix"]) == 13
    assert retrieval["exclude_self"] is True and "excluded" in retrieval["protocol"]
    collapse = retrieval["collapse"]  # over the 10 test queries, whatever the phenotype
    assert collapse["queries"] == collapse["candidates"] == 10
    assert 0.1 <= collapse["top1_hub_share"] <= 1 and 1 <= collapse["top1_distinct"] <= 10
    assert isinstance(retrieval["warnings"], list)
    report = (out / "report.md").read_text()
    assert "| LVEDV | model |" in report and "| FN+AP |" in report
    assert "Protocol: the query's own CMR is excluded" in report
    assert "Collapse: top-1 hub share" in report
    for name in ("precision_at_k", "alignment_matrix", "scatter_linear_probe", "scatter_finetune"):
        assert (out / "figures" / f"{name}.png").is_file()
    assert (out / "finetune" / "test_predictions.npz").is_file()


def test_include_self_keeps_the_querys_own_cmr_and_says_so(eval_store, align_run, tmp_path):
    out = tmp_path / "eval"
    args = ["--model", str(align_run), "--data", str(eval_store), "--out", str(out)]
    assert main([*args, "--n-boot", "10", "--no-progress", "--include-self"]) == 0
    retrieval = json.loads((out / "metrics.json").read_text())["retrieval"]
    assert retrieval["exclude_self"] is False and "included" in retrieval["protocol"]
    lvedv = retrieval["model"]["LVEDV (mL)"]
    assert lvedv["P@10"] is not None  # 10 candidates now, the query's own CMR among them
    # the random ranking has the same candidates: one more match in each query's window
    assert retrieval["random"]["LVEDV (mL)"]["P@10"] > 0.1
    assert "Protocol: the query's own CMR is included" in (out / "report.md").read_text()


def test_csls_ranking_is_scored_recorded_and_said(eval_store, align_run, tmp_path):
    from ptacl.eval.hubness import csls_penalty
    from ptacl.eval.retrieval import retrieval_metrics

    out = tmp_path / "eval"
    args = ["--model", str(align_run), "--data", str(eval_store), "--out", str(out)]
    assert (
        main([*args, "--n-boot", "10", "--no-progress", "--ranking", "csls", "--csls-k", "20"]) == 0
    )
    retrieval = json.loads((out / "metrics.json").read_text())["retrieval"]
    # 10 test subjects: 9 queries per CMR once its own ECG is left out
    assert retrieval["ranking"].startswith("CSLS, k = 9 (capped from 20")
    assert {"nk_skewness", "anti_hub_share", "ecg_mean_norm"} <= set(retrieval["hubness"])
    with np.load(out / "embeddings_paired_test.npz") as data:
        ecg, cmr = data["ecg_proj"], data["cmr_proj"]
        pheno = pd.DataFrame(data["phenotypes"].astype(np.float64), columns=data["phenotype_names"])
    want = retrieval_metrics(ecg, cmr, pheno, ks=(1, 3, 5), penalty=csls_penalty(ecg, cmr, 9))
    for name, row in want.iterrows():
        assert retrieval["model"][name]["P@1"] == pytest.approx(row["P@1"])
        assert retrieval["model"][name]["MnR"] == pytest.approx(row["MnR"], nan_ok=True)
    assert "Ranking: CSLS, k = 9" in (out / "report.md").read_text()
    with pytest.raises(SystemExit) as stop:
        main([*args, "--ranking", "csls", "--csls-k", "0"])
    assert stop.value.code == 2


def test_evaluate_random_init_and_refuse_a_used_folder(eval_store, align_run, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["--model", "none", "--like", str(align_run), "--data", str(eval_store)]
    args += ["--out", str(out), "--n-boot", "10"]
    assert main([*args, "--no-progress", "--probe", "ridge"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["info"]["kind"] == "none"
    assert json.loads((out / "metrics.json").read_text())["info"]["paired_subjects"] == 10
    assert metrics["retrieval"]["space"] == "mean-pooled encoder tokens"
    assert "LP (ridge)" in metrics["regression"]
    assert main([*args, "--no-progress"]) == 2
    assert "not empty; choose a new --out or pass --overwrite" in capsys.readouterr().err
    (out / "stale.npz").write_bytes(b"")  # left by an interrupted run
    assert main([*args, "--no-progress", "--probe", "ridge", "--overwrite"]) == 0
    assert (out / "metrics.json").is_file() and not (out / "stale.npz").exists()


def _pretrain(store, out, modality):
    from ptacl.cli.pretrain import main as pretrain

    config = f"tiny/{modality}_mae.yaml"
    assert pretrain([modality, "--data", str(store), "--out", str(out), "--config", config]) == 0
    return out


def test_random_init_like_an_ecg_run_builds_only_an_ecg_encoder(eval_store, tmp_path, capsys):
    ecg_run = _pretrain(eval_store, tmp_path / "ecg_mae", "ecg")
    out = tmp_path / "eval"
    args = ["--model", "none", "--like", str(ecg_run), "--data", str(eval_store)]
    assert main([*args, "--out", str(out), "--n-boot", "10", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "retrieval" not in metrics and "both" in metrics["retrieval_skipped"]
    assert metrics["info"]["probe_input"] == "ECG"
    assert metrics["regression"]["LP (ols)"]["LVEDV (mL)"]["n"] == 10
    # 14 train ECGs for 32 features: OLS interpolates, and says so everywhere
    err = capsys.readouterr().err
    assert "warning" in err and "n_train ≤ features + 1" in err and "--probe ridge" in err
    assert "OLS is under-determined" in metrics["regression_notes"]["LP (ols)"]
    assert "use --probe ridge" in metrics["warnings"][0]
    assert "under-determined" in (out / "report.md").read_text()
    ridge = tmp_path / "ridge"
    assert (
        main([*args, "--out", str(ridge), "--n-boot", "10", "--no-progress", "--probe", "ridge"])
        == 0
    )
    assert "warning" not in capsys.readouterr().err
    assert "warnings" not in json.loads((ridge / "metrics.json").read_text())


def test_linear_probe_on_cmr_embeddings_for_a_cmr_only_run(tiny_store, tmp_path):
    cmr_run = _pretrain(tiny_store, tmp_path / "cmr_mae", "cmr")
    out = tmp_path / "eval"
    args = ["--model", str(cmr_run), "--data", str(tiny_store), "--out", str(out)]
    assert (
        main([*args, "--split", "val", "--probe", "ridge", "--n-boot", "10", "--no-progress"]) == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["info"]["kind"] == "pretrain-cmr" and metrics["info"]["probe_input"] == "CMR"
    assert metrics["info"]["cmr_subjects"] == {"train": 7, "val": 2}  # CMR subjects 0-6, 7-8
    lvedv = metrics["regression"]["LP (ridge)"]["LVEDV (mL)"]
    assert lvedv["n"] == 2 and len(lvedv["ci"]) == 2
    assert "input: CMR" in metrics["regression_notes"]["LP (ridge)"]
    report = (out / "report.md").read_text()
    assert "regression from the CMR" in report and "| LP (ridge) |" in report
    assert (out / "figures" / "scatter_linear_probe.png").is_file()
    with np.load(out / "embeddings_train.npz", allow_pickle=False) as data:
        assert data["cmr"].shape == (7, 32) and "ecg" not in data.files
    # its random-init baseline (Table 2's CMR random-init row): a CMR encoder only, CMR LP
    base = tmp_path / "random"
    args = [
        "--model",
        "none",
        "--like",
        str(cmr_run),
        "--data",
        str(tiny_store),
        "--out",
        str(base),
    ]
    assert (
        main([*args, "--split", "val", "--probe", "ridge", "--n-boot", "10", "--no-progress"]) == 0
    )
    metrics = json.loads((base / "metrics.json").read_text())
    assert metrics["info"]["kind"] == "none" and metrics["info"]["probe_input"] == "CMR"
    assert (
        "retrieval" not in metrics and metrics["regression"]["LP (ridge)"]["LVEDV (mL)"]["n"] == 2
    )
    # intervals fitted on val cannot be checked on val
    assert "fitted on" in metrics["intervals"]["LP (ridge)"]["skipped"]


@pytest.fixture(scope="module")
def probe_store(tmp_path_factory):
    """70 paired subjects (50 train, 8 val, 12 test): OLS on the tiny 32-wide ECG encoder is
    well-posed (50 > 33), so `ptacl export` fits its probe."""
    rng = np.random.default_rng(8)
    n = 70
    time = np.arange(5000) / 500
    freq = rng.uniform(1, 1.5, (n, 1, 1))
    ecg = np.sin(2 * np.pi * freq * time) * rng.uniform(0.5, 1.5, (n, 12, 1))
    ecg = ecg + 0.1 * rng.standard_normal((n, 12, 5000))
    cmr = rng.random((n, 50, 84, 84), dtype=np.float32)
    pheno = (60 + 80 * freq[:, :, 0] + rng.normal(0, 5, (n, 10))).astype(np.float32)
    pheno[3, 1] = np.nan
    return _paired_store(tmp_path_factory.mktemp("probe"), 4_000_000, (50, 8, 12), ecg, cmr, pheno)


@pytest.fixture(scope="module")
def probe_run(probe_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("probe_align") / "run"
    args = ["--data", str(probe_store), "--config", "tiny/ptacl.yaml", "--out", str(out)]
    assert align(args) == 0
    return out


@pytest.mark.parametrize("probe", ["ols", "ridge"])
def test_the_exported_probe_is_the_probe_evaluate_scored(probe_store, probe_run, tmp_path, probe):
    """Issue 12: `ptacl export` must bundle the linear probe whose test R² `ptacl evaluate`
    reports: same embedding (crops averaged), same fit, same train split. The bundle's
    predictions on the test ECGs equal the evaluation's LP predictions, and its shared-space
    embedding equals the ECG side of the evaluation's retrieval. For `--probe ridge` too (the
    demo's probe at small cohorts)."""
    import torch

    from ptacl.cli.main import main as ptacl
    from ptacl.data.store import Store
    from ptacl.embedding.crops import run_over_crops
    from ptacl.eval.embed import Embeddings
    from ptacl.eval.probe import probe_predictions, r2_per_phenotype
    from ptacl.inference import Predictor

    run = probe_run
    out = tmp_path / "eval"
    args = ["--model", str(run), "--data", str(probe_store), "--out", str(out)]
    # 8 val subjects: at 90 % no finite interval (k = ceil(9 * 0.9) = 9 > 8); at 75 % k = 7
    level = ["--interval-level", "0.75"]
    assert main([*args, "--n-boot", "10", "--no-progress", "--probe", probe, *level]) == 0
    bundle = tmp_path / "bundle"
    export = ["export", "--model", str(run), "--data", str(probe_store), "--out", str(bundle)]
    assert ptacl([*export, "--probe", probe, *level]) == 0

    train = Embeddings.load(out / "embeddings_train.npz")
    test = Embeddings.load(out / "embeddings_test.npz")
    scored = probe_predictions(train.ecg, train.phenotypes, test.ecg, method=probe)

    store = Store.open(probe_store)
    rows = store.indices("test", ecg=True)
    assert test.eids.tolist() == store.subjects["eid"].astype(str).to_numpy()[rows].tolist()
    lengths = store.subjects["ecg_length"].to_numpy()
    ecgs = [np.asarray(store.ecg[i], dtype=np.float32)[:, : lengths[i]] for i in rows]
    predictor = Predictor(bundle)
    # what Predictor does with a preprocessed recording (predictor._run)
    deployed = run_over_crops(predictor.model, ecgs, [e.shape[-1] for e in ecgs], predictor.crop)
    np.testing.assert_allclose(deployed["embedding"], test.ecg, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(deployed["phenotypes"], scored, rtol=1e-4, atol=1e-3)

    metrics = json.loads((out / "metrics.json").read_text())
    names = list(test.phenotype_names)
    r2 = r2_per_phenotype(test.phenotypes.astype(np.float64), deployed["phenotypes"], names)
    for name in names:
        assert r2.loc[name, "R2"] == pytest.approx(
            metrics["regression"][f"LP ({probe})"][name]["R2"], abs=1e-3
        )
    # the same head calibrated on the same val split: the bundle's intervals, the same coverage
    intervals, bundled = metrics["intervals"][f"LP ({probe})"], predictor.bundle.intervals
    assert intervals["level"] == bundled["level"] == 0.75
    for name in names:
        width = bundled["columns"][name]["half_width"]
        assert intervals["columns"][name]["half_width"] == pytest.approx(width, rel=1e-3)
        assert intervals["test"][name] == pytest.approx(bundled["test"][name], abs=1e-3)
    assert f"## Prediction intervals — LP ({probe}) (test split)" in (out / "report.md").read_text()

    paired = Embeddings.load(out / "embeddings_paired_test.npz")
    assert paired.eids.tolist() == test.eids.tolist()
    with torch.no_grad():
        shared = predictor.model.project(torch.from_numpy(deployed["embedding"]).float())
    np.testing.assert_allclose(shared.numpy(), paired.ecg_proj, rtol=1e-4, atol=1e-5)


def test_the_library_evaluate_takes_typed_options_and_a_finetune_step(
    probe_store, probe_run, tmp_path
):
    """ptacl.eval.evaluate runs without argparse and without training code: FN+AP is a step
    the caller passes (here a stand-in writing what `ptacl.training.finetune.fit` writes)."""
    from ptacl.data.store import Store
    from ptacl.eval.evaluate import EvaluateOptions, evaluate

    def failing(run_dir):
        return 3

    options = EvaluateOptions(model=str(probe_run), out=tmp_path / "a", n_boot=5, progress=False)
    store = Store.open(probe_store)
    assert evaluate(options, store, finetune=failing) == 3
    assert not (tmp_path / "a" / "metrics.json").exists()

    def finished(run_dir):
        run_dir.mkdir()
        names = list(store.manifest["phenotypes"])
        r2 = {name: {"R2": 0.5, "n": 12, "ci": [0.1, 0.9]} for name in names}
        result = {"stopped_at_step": 7, "r2": r2}
        (run_dir / "test_metrics.json").write_text(json.dumps(result))
        truth = np.ones((12, len(names)), np.float32)
        np.savez(
            run_dir / "test_predictions.npz",
            true=truth,
            predicted=truth,
            phenotype_names=np.asarray(names),
        )
        return 0

    options = dataclasses.replace(options, out=tmp_path / "b", probe="ridge", command="test")
    assert evaluate(options, store, finetune=finished) == 0
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert set(metrics["regression"]) == {"LP (ridge)", "FN+AP"}
    assert "stopped at step 7" in metrics["regression_notes"]["FN+AP"]
    assert metrics["info"]["command"] == "test"
    assert (tmp_path / "b" / "figures" / "scatter_finetune.png").is_file()


def test_cli_evaluate_does_not_import_another_command():
    """cli/ parses arguments and calls the library: `ptacl evaluate` reaches fine-tuning through
    ptacl.training.finetune, not through the `ptacl finetune` command module."""
    import ast

    import ptacl.cli.evaluate

    tree = ast.parse(Path(ptacl.cli.evaluate.__file__).read_text(encoding="utf-8"))
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    # ptacl.cli.common is the commands' shared parsing helpers, not a command
    assert not {m for m in imported if m.startswith("ptacl.cli") and m != "ptacl.cli.common"}


@pytest.mark.parametrize(
    ("size", "expected"),
    [((32, 2, 2), "tiny/finetune.yaml"), ((64, 2, 2), "demo/finetune.yaml"),
     ((64, 2, 4), "small/finetune.yaml"),
     ((512, 6, 8), "finetune.yaml"), ((48, 3, 4), "finetune.yaml")],
)  # fmt: skip
def test_finetune_size_comes_from_the_run_s_preset(tmp_path, size, expected) -> None:
    """A width-32 run is fine-tuned at the tiny preset's budget, not the paper's 20,000 steps;
    a size no preset has gets the paper's config, and the message says why."""
    from ptacl import configs
    from ptacl.cli.evaluate import preset_finetune_config

    width, depth, heads = size
    run = tmp_path / "run"
    run.mkdir()
    section = f"{{samples: 500, width: {width}, depth: {depth}, heads: {heads}}}"
    (run / "config.yaml").write_text(f"modality: ecg\nencoder: {section}\n", encoding="utf-8")
    path, why = preset_finetune_config(str(run))
    assert path == configs.path(expected)
    assert why.startswith(expected) and f"width {width}" in why
    assert preset_finetune_config("none", like=str(run))[0] == path
    assert preset_finetune_config("none")[0] == configs.path("finetune.yaml")


def test_evaluate_applies_the_demo_s_ols_rule() -> None:
    """84 train subjects for a 32-wide embedding: OLS fits mostly noise (the demo switches to
    ridge there); evaluate now says so instead of fitting silently."""
    from ptacl.eval.evaluate import ols_problem

    problem = ols_problem(84, 32)
    assert problem is not None and "needs 98 or more" in problem and "1.6-fold" in problem
    assert ols_problem(98, 32) is None
    assert "under-determined" in ols_problem(33, 32)


def test_intervals_are_skipped_with_the_reason_when_val_cannot_calibrate(tmp_path):
    """A store without a val split still gets its LP scored (before intervals it was); only the
    interval is missing, and metrics.json says why. Scoring val itself is refused too."""
    from ptacl.eval.evaluate import _calibration_embeddings
    from ptacl.models.vit import EcgEncoder, EcgEncoderConfig
    from ptacl.runs import RunEncoders

    rng = np.random.default_rng(0)
    ecg = rng.standard_normal((6, 12, 5000))
    cmr = rng.random((6, 50, 84, 84), dtype=np.float32)
    pheno = rng.normal(100, 20, (6, 10)).astype(np.float32)
    store = _paired_store(tmp_path, 5_000_000, (3, 0, 3), ecg, cmr, pheno)
    encoder = EcgEncoder(EcgEncoderConfig(width=16, depth=1, heads=2)).eval()
    encoders = RunEncoders(kind="test", source="test", ecg=encoder)
    val, why = _calibration_embeddings(encoders, store, "test", {})
    assert val is None and "no val embeddings" in why and "'val' has no subjects" in why
    val, why = _calibration_embeddings(encoders, store, "val", {})
    assert val is None and "the scored split is val" in why


def test_sigterm_during_the_fine_tune_says_how_to_rerun_the_evaluation(
    eval_store, align_run, tmp_path, monkeypatch, capsys
):
    """SIGTERM stopping FN+AP inside `ptacl evaluate --finetune` said "<out>/finetune: run the
    same command again to continue", and that command is refused (its --out is not empty).
    Now one line naming --overwrite, exit status 143, the output unlocked."""
    import lightning.pytorch as pl
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from ptacl.cli.main import main as ptacl

    def stopped(self, *args, **kwargs):
        raise SIGTERMException  # what Lightning raises between two steps after SIGTERM

    monkeypatch.setattr(pl.Trainer, "fit", stopped)
    out = tmp_path / "eval"
    args = ["--model", str(align_run), "--data", str(eval_store), "--out", str(out)]
    code = ptacl(["evaluate", *args, "--n-boot", "5", "--no-progress", "--finetune", *FT])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 143
    assert err[-1] == (
        "ptacl evaluate: stopped by SIGTERM at step 0/2 of the fine-tune; "
        f"{out}: run the same command with --overwrite to start the evaluation again"
    )
    assert "finetune: run the same command again" not in "\n".join(err)
    assert not (tmp_path / ".eval.lock").exists()
