import json

from ptacl.cli.compare import main


def _metrics(p1, r2, data="store"):
    names = ["LVEDV (mL)", "LVEF (%)"]
    return {
        "info": {"model": "m", "kind": "align", "split": "test", "data": data},
        "retrieval": {
            "ks": [1],
            "model": {n: {"P@1": p1, "MdR": 2.0} for n in names},
            "model_ci": {n: {"P@1": [p1 - 0.1, p1 + 0.1], "MdR": [1.0, 3.0]} for n in names},
            "random": {n: {"P@1": 0.276, "MdR": 3.0} for n in names},
        },
        "regression": {
            "LP (ols)": {n: {"R2": r2, "n": 5, "ci": [r2 - 0.1, r2 + 0.1]} for n in names}
        },
    }


def _write(path, metrics):
    path.mkdir()
    (path / "metrics.json").write_text(json.dumps(metrics))
    return str(path)


def test_compare_puts_runs_side_by_side(tmp_path):
    a = _write(tmp_path / "a", _metrics(0.5, 0.4))
    b = _write(tmp_path / "b", {**_metrics(0.6, 0.5), "retrieval": None})  # e.g. an ECG-only run
    out = tmp_path / "cmp.md"
    assert main([a, b, "--labels", "PTACL", "MAE", "--out", str(out), "--metrics", "P@1"]) == 0
    text = out.read_text()
    assert "| PTACL | 0.500 [0.400, 0.600] | 0.500 [0.400, 0.600] | 0.500 |" in text
    assert "| random ranking (expected) | 0.276 | 0.276 | 0.276 |" in text
    assert "| MAE | LP (ols) | 0.500 [0.400, 0.600] | 0.500 [0.400, 0.600] | 0.500 |" in text
    assert "MdR" not in text and "different stores" not in text


def test_compare_flags_other_stores_and_missing_folders(tmp_path, capsys):
    a = _write(tmp_path / "a", _metrics(0.5, 0.4))
    b = _write(tmp_path / "b", _metrics(0.5, 0.4, data="other"))
    out = tmp_path / "cmp.md"
    assert main([a, b, "--out", str(out)]) == 0
    assert "different stores" in out.read_text()
    assert main([a, str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "no metrics.json" in capsys.readouterr().err


def test_a_random_init_run_and_the_random_ranking_have_distinct_rows(tmp_path):
    """A run labelled "random" (the random-init baseline) must not share its label with the
    random ranking's row."""
    a = _write(tmp_path / "a", _metrics(0.5, 0.4))
    b = _write(tmp_path / "b", _metrics(0.3, 0.0))
    out = tmp_path / "cmp.md"
    assert main([a, b, "--labels", "PTACL", "random", "--out", str(out), "--metrics", "P@1"]) == 0
    labels = [line.split("|")[1].strip() for line in out.read_text().splitlines() if "0." in line]
    retrieval = labels[: labels.index("random ranking (expected)") + 1]
    assert len(retrieval) == len(set(retrieval)) == 3
