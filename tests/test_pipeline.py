import pytest

from ptacl.pipeline import PipelineError, Step, run_steps


def test_finished_steps_are_reused(tmp_path, capsys):
    out = tmp_path / "cohort"
    argv = ("synth", "--out", str(out), "--subjects", "1", "--quiet")
    steps = [Step("a/synth", argv, out)]
    first = run_steps(steps, tmp_path / "pipe")
    assert first["a/synth"] > 0 and (out / "phenotypes.csv").is_file()
    assert (tmp_path / "pipe" / "logs" / "a__synth.log").read_text().startswith("$ ptacl synth")
    again = run_steps(steps, tmp_path / "pipe")
    assert again == {"a/synth": 0.0}
    assert "reused" in capsys.readouterr().out


def test_failure_names_step_and_log_and_half_output_is_cleared(tmp_path):
    half = tmp_path / "half"
    half.mkdir()
    (half / "partial.bin").write_bytes(b"x")
    with pytest.raises(PipelineError, match=r"step b failed with exit status 2.*b\.log"):
        run_steps([Step("b", ("no-such-command",), half)], tmp_path / "pipe", quiet=True)
    assert not half.exists()  # what a failed try leaves is removed before (and not reused)
    assert not (tmp_path / "pipe" / ".done" / "b").exists()


def test_duplicate_names_are_refused(tmp_path):
    step = Step("x", ("--version",), tmp_path)
    with pytest.raises(ValueError, match="duplicate"):
        run_steps([step, step], tmp_path / "pipe")
