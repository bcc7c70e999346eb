"""Benchmark tables read back from evaluation folders (no training: metrics.json written here),
and the steps the benchmark lays out (nothing run)."""

import json
import math
from pathlib import Path

from ptacl.benchmark.demo import demo_steps
from ptacl.benchmark.methods import METHODS, RETRIEVAL_SETTING, select_methods
from ptacl.benchmark.presets import CONFIGS, PRESETS
from ptacl.benchmark.results import collect_results
from ptacl.benchmark.steps import build_steps
from ptacl.benchmark.tables import intervals_note, table1_markdown, table2_markdown
from ptacl.config import load_config
from ptacl.training.align import AlignRunConfig

R2 = {"LVEDV (mL)": {"R2": 0.5, "n": 10, "ci": [0.4, 0.6]}}


def _write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))


def test_supervised_cmr_and_underdetermined_probes_are_read_back(tmp_path):
    methods = [m for m in METHODS if m.key in ("ecg_mae", "cmr_mae", "sup_cmr")]
    warning = "LP (ols): 33 training subjects for 32 features + 1 intercept: under-determined"
    _write(tmp_path / "seed0/eval/ecg_mae/metrics.json", {"regression": {"LP (ols)": R2}})
    _write(
        tmp_path / "seed0/eval/cmr_mae/metrics.json",
        {"regression": {"LP (ols)": R2}, "warnings": [warning]},
    )
    _write(tmp_path / "seed0/runs/sup_cmr/test_metrics.json", {"r2": R2})
    results = collect_results(tmp_path, [0], methods)
    assert results["regression"][("CMR", "supervised", "FN")] == [{"LVEDV": 0.5}]
    assert results["regression"][("CMR", "MAE", "LP")] == [{"LVEDV": 0.5}]
    assert results["warnings"] == {("CMR", "MAE", "LP"): [f"seed 0: {warning}"]}
    table = table2_markdown(results, ["LVEDV"])
    # the bootstrap CI beside the value, then the paper's UK Biobank figure, labelled as such
    assert "| CMR | supervised | FN | 1 | 0.500 [0.400, 0.600] | 0.814 |" in table
    assert "| UKB paper LVEDV |" in table and "not comparable" in table
    assert "not meaningful" in table and f"CMR / MAE / LP: seed 0: {warning}" in table
    assert "ECG / MAE" not in table  # only the flagged row


def _train_argv(steps, key):
    (step,) = [s for s in steps if s.name == f"seed0/train/{key}"]
    return step.argv


def test_global_and_ptacl_bring_their_retrieval_setting_runs():
    keys = [m.key for m in select_methods(["random", "global", "ptacl"])]
    assert keys == ["ecg_mae", "cmr_mae", "random", "random_cmr", "global", "ptacl",
                    "global_retrieval", "ptacl_retrieval"]  # fmt: skip
    keys = [m.key for m in select_methods(["random", "global", "ptacl"], bring_retrieval=False)]
    assert keys == ["ecg_mae", "cmr_mae", "random", "random_cmr", "global", "ptacl"]
    named = select_methods(["ptacl_retrieval"], bring_retrieval=False)  # named: kept
    assert [m.key for m in named] == ["ecg_mae", "cmr_mae", "ptacl_retrieval"]
    steps = build_steps(PRESETS["tiny"], Path("S"), Path("B"), [0], select_methods(["ptacl"]))
    regression, retrieval = _train_argv(steps, "ptacl"), _train_argv(steps, "ptacl_retrieval")
    assert not set(RETRIEVAL_SETTING) & set(regression)  # the preset's (regression) config
    assert set(RETRIEVAL_SETTING) <= set(retrieval) and "--ecg-init" in retrieval
    assert retrieval[retrieval.index("--config") + 1] == str(PRESETS["tiny"].configs["ptacl"])
    steps = build_steps(PRESETS["tiny"], Path("S"), Path("B"), [0], select_methods(["global"]))
    assert {"loss.beta=0", *RETRIEVAL_SETTING} <= set(_train_argv(steps, "global_retrieval"))


def test_retrieval_setting_is_the_papers_retrieval_config():
    # the overrides turn the paper's regression YAML into its retrieval YAML, nothing else
    regression = load_config(AlignRunConfig, CONFIGS / "ptacl_regression.yaml", RETRIEVAL_SETTING)
    assert regression == load_config(AlignRunConfig, CONFIGS / "ptacl_retrieval.yaml")


def _retrieval(p1, hub=0.1):
    row = {"P@1": p1, "P@10": p1, "MnR": 2.0, "MdR": 1.0}
    return {"model": {"LVEDV (mL)": row},
            "random": {"LVEDV (mL)": {**row, "P@1": 0.28, "P@10": 0.28}},
            "exclude_self": True,
            "collapse": {"top1_hub_share": hub, "top1_distinct": 2, "queries": 10,
                         "candidates": 10}}  # fmt: skip


def test_table1_reads_retrieval_runs_and_table2_regression_runs(tmp_path):
    methods = select_methods(["ptacl"])
    _write(tmp_path / "seed0/eval/ptacl/metrics.json",
           {"regression": {"LP (ols)": R2}, "retrieval": _retrieval(0.1)})  # fmt: skip
    lp = {"LVEDV (mL)": {"R2": 0.2, "n": 10}}
    _write(tmp_path / "seed0/eval/ptacl_retrieval/metrics.json",
           {"regression": {"LP (ols)": lp}, "retrieval": _retrieval(0.9)})  # fmt: skip
    results = collect_results(tmp_path, [0], methods)
    assert results["regression"][("ECG", "PTACL", "LP")] == [{"LVEDV": 0.5}]  # regression run only
    assert [r["LVEDV"]["P@1"] for r in results["retrieval"]["PTACL"]] == [0.9]  # retrieval run
    assert "| LVEDV | PTACL | 0.900 |" in table1_markdown(results)


def test_ptacl_without_smp_trains_random_encoders_whole():
    steps = build_steps(PRESETS["tiny"], Path("S"), Path("B"), [0], select_methods(["ptacl_nosmp"]))
    argv = _train_argv(steps, "ptacl_nosmp")
    assert "--ecg-init" not in argv and "--cmr-init" not in argv
    assert "freeze_blocks=0" in argv
    assert argv.index("freeze_blocks=0") > argv.index("--config")  # overrides the preset's YAML


def test_cossim_matches_step_k_to_step_k():
    methods = select_methods(["ptacl_cossim"])
    argv = _train_argv(build_steps(PRESETS["tiny"], Path("S"), Path("B"), [0], methods),
                       "ptacl_cossim")  # fmt: skip
    assert {"loss.local_loss=cosine", "loss.sigma=0"} <= set(argv)


def test_random_init_rows_for_both_inputs(tmp_path):
    methods = select_methods(["random"])
    assert [m.key for m in methods] == ["ecg_mae", "cmr_mae", "random", "random_cmr"]
    steps = {
        s.name: s.argv for s in build_steps(PRESETS["tiny"], Path("S"), tmp_path, [0], methods)
    }
    assert "seed0/train/random_cmr" not in steps  # nothing trained
    cmr = steps["seed0/eval/random_cmr"]
    assert cmr[cmr.index("--model") + 1] == "none"
    assert cmr[cmr.index("--like") + 1] == str(tmp_path / "seed0/runs/cmr_mae")
    ecg = steps["seed0/eval/random"]
    assert ecg[ecg.index("--like") + 1] == str(tmp_path / "seed0/runs/ecg_mae")
    _write(tmp_path / "seed0/eval/random_cmr/metrics.json", {"regression": {"LP (ols)": R2}})
    results = collect_results(tmp_path, [0], methods)
    assert results["regression"] == {("CMR", "random init", "LP"): [{"LVEDV": 0.5}]}
    assert "| CMR | random init | LP | 1 | 0.500 [0.400, 0.600] | – |" in table2_markdown(
        results, ["LVEDV"]
    )


def test_include_self_reaches_every_evaluation_and_table1_names_the_protocol(tmp_path):
    methods = select_methods(["ptacl"])
    for include in (False, True):
        steps = build_steps(PRESETS["tiny"], Path("S"), tmp_path, [0], methods,
                            include_self=include)  # fmt: skip
        evals = [s.argv for s in steps if "/eval/" in s.name]
        assert evals and all(("--include-self" in a) == include for a in evals)
    _write(tmp_path / "seed0/eval/ptacl_retrieval/metrics.json", {"retrieval": _retrieval(0.9)})
    results = collect_results(tmp_path, [0], methods)
    assert results["retrieval_exclude_self"] == [True]
    assert "Protocol: the query's own CMR is excluded" in table1_markdown(results)
    mixed = {**results, "retrieval_exclude_self": [False, True]}
    assert "different protocols" in table1_markdown(mixed)


def test_table1_shows_collapse_and_warns_below_random_and_on_a_hub(tmp_path):
    methods = select_methods(["ptacl", "global"])
    _write(tmp_path / "seed0/eval/ptacl_retrieval/metrics.json",
           {"retrieval": _retrieval(0.1, hub=0.8)})  # fmt: skip
    _write(tmp_path / "seed0/eval/global_retrieval/metrics.json", {"retrieval": _retrieval(0.5)})
    results = collect_results(tmp_path, [0], methods)
    assert results["retrieval_collapse"]["PTACL"][0]["top1_hub_share"] == 0.8
    table = table1_markdown(results)
    assert "| PTACL | 1 | 0.800 | 2.0 | 10 |" in table
    assert "| Global only | 1 | 0.100 | 2.0 | 10 |" in table
    assert "not what they seem" in table
    assert "- PTACL: LVEDV: retrieval below the random ranking (P@1 0.100 < 0.280, " in table
    assert "- PTACL: collapse: one CMR is the top-1 candidate of 80% of the queries" in table
    assert "Global only:" not in table  # above random, no hub: nothing to say


def test_tables_show_mean_sd_over_seeds_and_the_averaged_bootstrap_ci(tmp_path):
    methods = select_methods(["ptacl"])
    boot = {"n_boot": 200, "seed": 0, "level": 0.95}
    for seed, (r2, p1) in enumerate([(0.4, 0.2), (0.6, 0.4)]):
        lp = {"LVEDV (mL)": {"R2": r2, "n": 10, "ci": [r2 - 0.1, r2 + 0.2]}}
        retrieval = _retrieval(p1)
        retrieval["model_ci"] = {"LVEDV (mL)": {"P@1": [p1 - 0.1, p1 + 0.1], "P@10": None,
                                                "MnR": [1.5, 2.5], "MdR": [None, None]}}  # fmt: skip
        _write(tmp_path / f"seed{seed}/eval/ptacl/metrics.json",
               {"regression": {"LP (ols)": lp}, "bootstrap": boot})  # fmt: skip
        _write(tmp_path / f"seed{seed}/eval/ptacl_retrieval/metrics.json",
               {"retrieval": retrieval, "bootstrap": boot})  # fmt: skip
    results = collect_results(tmp_path, [0, 1], methods)
    assert results["bootstrap"] == [{"n_boot": 200, "level": 0.95}]
    # R² 0.5 ± 0.141 over two seeds; CI bounds averaged: [0.4, 0.7]
    assert "| ECG | PTACL | LP | 2 | 0.500 ± 0.141 [0.400, 0.700] |" in table2_markdown(
        results, ["LVEDV"]
    )
    table1 = table1_markdown(results)
    assert "| LVEDV | PTACL | 0.300 ± 0.141 [0.200, 0.400] | 0.300 ± 0.141 |" in table1
    assert "| 2.00 ± 0.00 [1.50, 2.50] | 1.00 ± 0.00 |" in table1  # MnR with its CI, MdR without
    assert "| LVEDV | random ranking | 0.280 ± 0.000 |" in table1  # an expectation: no CI
    note = intervals_note(results)
    assert "200 replicates" in note and "MdR has no CI" in note


def test_cohort_check_at_the_demo_size_and_below():
    from ptacl.benchmark.cohort import cohort_problems

    demo = PRESETS["demo"]
    at_100 = {"train_ecg": 70, "train_cmr": 70, "train_paired": 70, "train_probe": 70,
              "test_paired": 20}  # fmt: skip
    assert cohort_problems(demo, at_100) == []  # `ptacl demo --subjects 100`
    at_40 = {k: v * 4 // 10 for k, v in at_100.items()}
    problems = cohort_problems(demo, at_40)
    assert any("ecg_mae: 28 training subjects" in p and "batch_size 32" in p for p in problems)
    assert any("linear probe: 28 train subjects" in p and "64-wide" in p for p in problems)
    # the benchmark exports nothing: an under-determined probe is a warning there, not a stop
    assert not any("probe" in p for p in cohort_problems(demo, at_40, export=False))
    tiny_24 = {"train_ecg": 16, "train_cmr": 16, "train_paired": 16, "train_probe": 16,
               "test_paired": 5}  # fmt: skip
    assert cohort_problems(PRESETS["tiny"], tiny_24, export=False) == []


def test_the_demo_probes_with_ridge_where_ols_would_only_fit_noise():
    from ptacl.benchmark.cohort import demo_probe
    from ptacl.eval.probe import ols_inflation

    assert ols_inflation(70, 64) == 16 and ols_inflation(66, 64) == math.inf
    assert ols_inflation(1050, 64) < 0.1
    counts = {"train_probe": 70}
    probe, why = demo_probe(PRESETS["demo"], counts)  # `ptacl demo --subjects 100`
    assert probe == "ridge" and "70 train subjects for a 64-wide" in why and "194" in why
    assert demo_probe(PRESETS["demo"], {"train_probe": 1050}) == ("ols", None)  # 1,500 subjects
    steps = build_steps(PRESETS["demo"], Path("S"), Path("B"), [0], select_methods(["ptacl"]),
                        probe="ridge")  # fmt: skip
    evals = [s.argv for s in steps if "/eval/" in s.name]
    assert evals and all(a[a.index("--probe") + 1] == "ridge" for a in evals)
    demo, _ = demo_steps(Path("B"), Path("S"), PRESETS["demo"], [], probe="ridge")
    (export,) = [s.argv for s in demo if s.name == "export"]
    assert export[export.index("--probe") + 1] == "ridge"  # the bundle's probe is the scored one
    assert not any(
        "--probe" in s.argv
        for s in build_steps(PRESETS["demo"], Path("S"), Path("B"), [0], select_methods(["ptacl"]))
    )


def test_the_resolve_preset_shares_one_stage_1_across_seeds(tmp_path):
    preset = PRESETS["resolve"]
    assert preset.shared_stage1 and preset.test_fraction == 0.6
    steps = build_steps(preset, tmp_path / "store", tmp_path, [0, 1, 2], select_methods(["ptacl"]))
    names = {s.name for s in steps}
    assert {"seed0/train/ecg_mae", "seed0/train/cmr_mae"} <= names
    assert not any(n.endswith(("train/ecg_mae", "train/cmr_mae")) for n in names - {
        "seed0/train/ecg_mae", "seed0/train/cmr_mae"})  # fmt: skip
    argv = _train_argv_of(steps, "seed2/train/ptacl")
    assert argv[argv.index("--ecg-init") + 1] == str(tmp_path / "seed0/runs/ecg_mae")
    assert "trainer.seed=2" in argv
    # a preset without it trains every seed's own MAEs
    steps = build_steps(PRESETS["demo"], tmp_path / "store", tmp_path, [0, 1], METHODS[:2])
    assert {s.name for s in steps} >= {"seed1/train/ecg_mae", "seed1/train/cmr_mae"}


def _train_argv_of(steps, name):
    (step,) = [s for s in steps if s.name == name]
    return list(step.argv)


def test_an_accelerator_reaches_every_training_step_and_evaluation(tmp_path):
    """The tiny preset pins the CPU; `ptacl benchmark --accelerator gpu` runs it on the GPU."""
    steps = build_steps(
        PRESETS["tiny"], tmp_path / "s", tmp_path, [0], select_methods(["ptacl"]), accelerator="gpu"
    )
    for step in steps:
        argv = list(step.argv)
        if step.name.split("/")[1] == "train":
            assert argv[-1] == "trainer.accelerator=gpu"
        else:
            assert argv[argv.index("--device") + 1] == "cuda"
    evaluate = _train_argv_of(steps, "seed0/eval/ptacl")
    assert "trainer.accelerator=gpu" in evaluate  # the fine-tune too
    plain = build_steps(PRESETS["tiny"], tmp_path / "s", tmp_path, [0], select_methods(["ptacl"]))
    assert not any("trainer.accelerator=" in " ".join(s.argv) for s in plain)
