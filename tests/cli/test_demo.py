"""`ptacl demo`: the steps it lays out and its refusal of a cohort too small for the preset
(nothing trained here; the tiny benchmark test runs the same steps end to end)."""

import pytest

import ptacl.benchmark.cohort as cohort_check
import ptacl.benchmark.pipeline
from ptacl import configs
from ptacl.cli.demo import main


@pytest.fixture
def ran(monkeypatch):
    """Run no step: record them, and pretend the store has `counts`."""
    calls = []
    monkeypatch.setattr(ptacl.benchmark.pipeline, "run_steps",
                        lambda steps, out, **kw: calls.append(steps) or {s.name: 0.0 for s in steps})  # fmt: skip
    return calls


def test_demo_refuses_a_cohort_too_small_before_training(tmp_path, ran, monkeypatch, capsys):
    small = {"train_ecg": 21, "train_cmr": 21, "train_paired": 21, "train_probe": 21,
             "test_paired": 6}  # fmt: skip
    monkeypatch.setattr(cohort_check, "store_counts", lambda store: small)
    assert main(["--subjects", "30", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "too few subjects for preset demo (30 subjects asked for" in err
    assert "batch_size 32" in err
    # 21 train subjects for a 64-wide embedding: the demo probes with ridge (fitted at any
    # count), so the probe is not among the refusals (an OLS one is: benchmark/test_steps_and_tables.py)
    assert "linear probe" not in err
    assert len(ran) == 1 and [s.name for s in ran[0]] == ["cohort/synth", "cohort/prepare"]


def test_demo_steps_train_evaluate_export_and_predict(tmp_path, ran, monkeypatch, capsys):
    monkeypatch.setattr(cohort_check, "store_counts", lambda store: dict.fromkeys(
        ("train_ecg", "train_cmr", "train_paired", "train_probe", "test_paired"), 70))  # fmt: skip
    (tmp_path / "predictions.csv").write_text("file,status,LVEDV (mL)\na.xml,ok,120\n")
    assert main(["--subjects", "100", "--out", str(tmp_path), "--preset", "tiny"]) == 0
    names = [s.name for s in ran[1]]
    assert names[-2:] == ["export", "predict"]
    assert "seed0/train/ptacl_retrieval" in names and not any("finetune" in n for n in names)
    train = next(s.argv for s in ran[1] if s.name == "seed0/train/ecg_mae")
    assert train[train.index("--config") + 1] == str(configs.path("tiny/ecg_mae"))  # shipped
    evaluate = next(s.argv for s in ran[1] if s.name == "seed0/eval/ptacl")
    assert evaluate[evaluate.index("--probe") + 1] == "ridge"  # 70 train for 32-wide: not OLS
    printed = capsys.readouterr().out
    assert "Note: linear probe: ridge, not OLS" in printed
    assert "# ptacl demo (100 synthetic subjects, preset tiny, seed 0)" in printed
    assert "a.xml" in printed
