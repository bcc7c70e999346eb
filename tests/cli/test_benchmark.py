"""`ptacl benchmark` end to end on the tiny preset: a real synthetic cohort, every stage run by
its own command, tables read back; a second invocation reuses every finished step."""

import json

import pytest

from ptacl.cli.benchmark import main
from ptacl.reproduction import METHODS, PRESETS, select_methods


def test_every_preset_config_exists():
    for preset in PRESETS.values():
        for kind, path in preset.configs.items():
            assert path.is_file(), f"preset {preset.name}: {kind} config {path} is missing"


def test_selecting_a_method_brings_what_it_starts_from():
    keys = [m.key for m in select_methods(["ptacl"])]
    assert keys == ["ecg_mae", "cmr_mae", "ptacl"]
    assert select_methods(None) == METHODS
    with pytest.raises(ValueError, match="unknown method"):
        select_methods(["nope"])


def _run(out, methods, capsys):
    argv = ["--preset", "tiny", "--out", str(out), "--seeds", "1", "--subjects", "24"]
    code = main([*argv, "--methods", *methods, "--no-finetune", "--workers", "1"])
    return code, capsys.readouterr().out


def test_tiny_benchmark_end_to_end_and_resume(tmp_path, capsys):
    code, printed = _run(tmp_path, ["ptacl", "global"], capsys)
    assert code == 0, printed
    tables = (tmp_path / "tables.md").read_text()
    for row in (
        "| ECG | PTACL | LP | 1 |",
        "| ECG | Global only | LP | 1 |",
        "| ECG | MAE | LP | 1 |",
    ):
        assert row in tables
    assert "random ranking" in tables  # Table 1 carries the random baseline
    results = json.loads((tmp_path / "results.json").read_text())
    assert {r["method"] for r in results["regression"]} >= {"PTACL", "Global only", "MAE"}
    assert (tmp_path / "seed0" / "eval" / "ptacl" / "report.md").is_file()

    code, printed = _run(tmp_path, ["ptacl", "global"], capsys)
    assert code == 0
    assert ": running (log" not in printed and printed.count(": reused") == 10


def test_a_failed_step_names_itself_and_its_log(tmp_path, capsys):
    store = tmp_path / "not_a_store"
    store.mkdir()
    code = main(["--preset", "tiny", "--out", str(tmp_path / "b"), "--data", str(store),
                 "--seeds", "1", "--methods", "ecg_mae", "--quiet"])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "seed0/train/ecg_mae failed" in err and "seed0__train__ecg_mae.log" in err
