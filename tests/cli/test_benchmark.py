"""`ptacl benchmark` end to end on the tiny preset: a real synthetic cohort, every stage run by
its own command, tables read back; a second invocation reuses every finished step."""

import json

import pytest

from ptacl.benchmark.methods import METHODS, select_methods
from ptacl.benchmark.presets import PRESETS
from ptacl.cli.benchmark import main


def test_every_preset_config_exists():
    for preset in PRESETS.values():
        for kind, path in preset.configs.items():
            assert path.is_file(), f"preset {preset.name}: {kind} config {path} is missing"


def test_selecting_a_method_brings_what_it_starts_from():
    keys = [m.key for m in select_methods(["ptacl"])]
    assert keys == ["ecg_mae", "cmr_mae", "ptacl", "ptacl_retrieval"]
    assert [m.key for m in select_methods(["ptacl_retrieval"])] == [
        "ecg_mae",
        "cmr_mae",
        "ptacl_retrieval",
    ]
    assert select_methods(None) == METHODS
    with pytest.raises(ValueError, match="unknown method"):
        select_methods(["nope"])


def test_the_demo_runs_what_the_reviewer_runs():
    from ptacl.benchmark.demo import DEMO_METHODS

    keys = {m.key for m in select_methods(DEMO_METHODS)}
    assert {"random", "global", "ptacl", "global_retrieval", "ptacl_retrieval"} <= keys


def _run(out, methods, capsys):
    argv = ["--preset", "tiny", "--out", str(out), "--seeds", "1", "--subjects", "24"]
    code = main([*argv, "--methods", *methods, "--no-finetune", "--workers", "1"])
    return code, capsys.readouterr().out


def test_tiny_benchmark_end_to_end_and_resume(tmp_path, capsys):
    # what a reviewer runs: `--methods random global ptacl` brings the retrieval-setting runs
    code, printed = _run(tmp_path, ["random", "global", "ptacl"], capsys)
    assert code == 0, printed
    tables = (tmp_path / "tables.md").read_text()
    table2, table1 = tables.split("## Table 1")
    for row in (
        "| ECG | PTACL | LP | 1 |",
        "| ECG | Global only | LP | 1 |",
        "| ECG | MAE | LP | 1 |",
        "| ECG | random init | LP | 1 |",
        "| CMR | random init | LP | 1 |",
    ):
        assert row in table2
    assert table2.count("| ECG | PTACL | LP |") == 1  # the retrieval-setting run is not a row
    for row in ("| LVEDV | random ranking |", "| LVEDV | PTACL |", "| LVEDV | Global only |"):
        assert row in table1
    results = json.loads((tmp_path / "results.json").read_text())
    assert {r["method"] for r in results["regression"]} >= {"PTACL", "Global only", "MAE"}
    assert set(results["retrieval"]) == {"PTACL", "Global only"}
    assert results["retrieval_exclude_self"] == [True]
    assert set(results["retrieval_collapse"]) == {"PTACL", "Global only"}
    assert isinstance(results["retrieval_warnings"], list)
    assert "top-1 hub share" in table1
    assert "Protocol: the query's own CMR is excluded" in table1
    # Table 1's numbers are those of the retrieval-setting runs
    metrics = json.loads((tmp_path / "seed0/eval/ptacl_retrieval/metrics.json").read_text())
    p1 = metrics["retrieval"]["model"]["LVEDV (mL)"]["P@1"]
    assert results["retrieval"]["PTACL"][0]["LVEDV"]["P@1"] == p1
    config = (tmp_path / "seed0/runs/ptacl_retrieval/config.yaml").read_text()
    assert "sigma: 0" in config and "temperature_local: 0.07" in config
    assert (tmp_path / "seed0" / "eval" / "ptacl" / "report.md").is_file()
    # the paper's comparisons, paired by subject, from the files evaluate wrote
    paired = {(r["comparison"], r["phenotype"]): r for r in results["paired"]}
    row = paired[("PTACL − Global only", "LVEDV")]
    assert row["seeds"] == [0] and row["ci"][0] <= row["estimate"] <= row["ci"][1]
    assert ("PTACL − Global only (retrieval setting)", "LVEDV") in paired
    assert "| PTACL − Global only | R² | LVEDV |" in tables

    code, printed = _run(tmp_path, ["random", "global", "ptacl"], capsys)
    assert code == 0
    assert ": running (log" not in printed and printed.count(": reused") == 16


def test_a_failed_step_names_itself_and_its_log(tmp_path, capsys):
    store = tmp_path / "not_a_store"
    store.mkdir()
    code = main(["--preset", "tiny", "--out", str(tmp_path / "b"), "--data", str(store),
                 "--seeds", "1", "--methods", "ecg_mae", "--quiet"])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "seed0/train/ecg_mae failed" in err and "seed0__train__ecg_mae.log" in err
