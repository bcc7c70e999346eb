"""Prediction intervals in a bundle: fitted on the val split at export, verified on load like
every other file, applied by predict, measured on the test split in the model card."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from builders import beats_ecg, tiny_encoder

from ptacl.data.store import Store
from ptacl.embedding.crops import store_outputs
from ptacl.eval.conformal import conformal_quantile
from ptacl.inference import BundleError, Predictor
from ptacl.inference.bundle_format import INTERVALS, sha256_bytes
from ptacl.phenotypes import PHENOTYPES
from ptacl.schema import ECG_FS


@pytest.fixture
def bundle(tiny_bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


def rewrite(bundle: Path, name: str, data: bytes) -> None:
    """Replace a bundle file and its manifest hash, as a consistent tamperer would."""
    (bundle / name).write_bytes(data)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"][name] = {"sha256": sha256_bytes(data), "bytes": len(data)}
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def split_outputs(predictor: Predictor, store: Store, split: str) -> tuple[np.ndarray, np.ndarray]:
    rows = store.indices(split, ecg=True)
    out = store_outputs(predictor.model, store, rows, crop=predictor.crop)
    return np.asarray(store.phenotypes[rows], np.float64), out["phenotypes"]


def test_half_widths_are_the_val_residuals_quantile_and_test_coverage_is_measured(
    tiny_bundle: Path, probe_store: Path
) -> None:
    """Recomputed here from the store: the half-width is the conformal quantile of the head's
    val residuals, and the stated test coverage is the share of test truths inside."""
    predictor = Predictor(tiny_bundle)
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    assert INTERVALS in manifest["files"]
    spec = predictor.bundle.intervals
    assert spec["level"] == 0.9 and spec["fitted_on"]["split"] == "val"
    store = Store.open(probe_store)
    truth, predicted = split_outputs(predictor, store, "val")
    test_truth, test_predicted = split_outputs(predictor, store, "test")
    for p, column in enumerate(PHENOTYPES):
        q = conformal_quantile(truth[:, p] - predicted[:, p], 0.9)
        assert spec["columns"][column]["half_width"] == pytest.approx(q, rel=1e-6)
        known = np.isfinite(test_truth[:, p])
        inside = np.abs(test_truth[known, p] - test_predicted[known, p]) <= q
        assert spec["test"][column]["coverage"] == pytest.approx(inside.mean(), abs=1e-4)
        assert spec["test"][column]["mean_width"] == pytest.approx(2 * q, abs=1e-4)
    card = (tiny_bundle / "README.md").read_text()
    assert "### Prediction intervals" in card and "Nominal coverage **90.0 %**" in card
    coverage = spec["test"]["LVEDV (mL)"]["coverage"]
    assert f"| LVEDV (mL) | {spec['columns']['LVEDV (mL)']['half_width']:.3f} |" in card
    assert f"{100 * coverage:.1f} %" in card


def test_predict_gives_lower_le_value_le_upper(tiny_bundle: Path) -> None:
    predictor = Predictor(tiny_bundle)
    values = predictor.predict(beats_ecg(70, 1.0), fs=ECG_FS)
    widths = predictor.bundle.intervals["columns"]
    for column in PHENOTYPES:
        lower, upper = values[f"{column} lower"], values[f"{column} upper"]
        assert lower <= values[column] <= upper
        assert upper - values[column] == pytest.approx(widths[column]["half_width"])
    table = predictor.predict([beats_ecg(70, 1.0), beats_ecg(60, 0.8)], fs=ECG_FS)
    assert list(table.columns[5:15]) == list(PHENOTYPES)
    for column in PHENOTYPES:
        assert (table[f"{column} lower"] <= table[column]).all()
        assert (table[column] <= table[f"{column} upper"]).all()
    np.testing.assert_allclose(table.loc[0, list(values)].to_numpy(float), list(values.values()))


def test_the_level_is_configurable(probe_store: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    from ptacl.export import export_with_probe

    out = export_with_probe(
        tmp_path / "half",
        encoder=tiny_encoder(),
        store=probe_store,
        source={"run": "tests"},
        interval_level=0.5,
    )
    half, ninety = Predictor(out).bundle.intervals, Predictor(tiny_bundle).bundle.intervals
    assert half["level"] == 0.5
    for column in PHENOTYPES:
        assert half["columns"][column]["half_width"] <= ninety["columns"][column]["half_width"]
    from ptacl.export import export_run

    with pytest.raises(ValueError, match="between 0 and 1"):  # before the run is even read
        export_run(tmp_path / "no-run", tmp_path / "b", interval_level=1.5)
    assert not (tmp_path / "b").exists()


def test_an_old_bundle_without_intervals_still_predicts(bundle: Path, tmp_path: Path, capsys):
    from ptacl.cli.predict import main

    (bundle / INTERVALS).unlink()
    manifest = json.loads((bundle / "manifest.json").read_text())
    del manifest["files"][INTERVALS]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    predictor = Predictor(bundle)
    assert predictor.interval_level is None and predictor.bundle.intervals is None
    assert "(no prediction intervals)" in repr(predictor)  # the note, from Python
    values = predictor.predict(beats_ecg(70, 1.0), fs=ECG_FS)
    assert list(values) == list(PHENOTYPES)
    np.save(tmp_path / "ecg.npy", beats_ecg(70, 1.0))
    out = tmp_path / "out.csv"
    args = ["--model", str(bundle), "--ecg", str(tmp_path / "ecg.npy"), "--fs", "500"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    assert "no prediction intervals" in capsys.readouterr().err
    assert not any(
        c.endswith((" lower", " upper")) for c in out.read_text().splitlines()[0].split(",")
    )


def test_an_edited_interval_file_is_refused(bundle: Path) -> None:
    path = bundle / INTERVALS
    spec = json.loads(path.read_text())
    spec["columns"]["LVEDV (mL)"]["half_width"] /= 10  # narrower: a promise nobody measured
    path.write_text(json.dumps(spec, indent=2))
    with pytest.raises(BundleError, match=f"{INTERVALS}.*(sha256|bytes)"):
        Predictor(bundle)


def test_a_rehashed_interval_file_must_still_make_sense(bundle: Path) -> None:
    spec = json.loads((bundle / INTERVALS).read_text())
    spec["columns"]["LVEF (%)"]["half_width"] = -1.0
    rewrite(bundle, INTERVALS, json.dumps(spec).encode())
    with pytest.raises(BundleError, match=r"LVEF .* half_width: -1.0"):
        Predictor(bundle)


def test_an_unlisted_interval_file_is_refused(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    del manifest["files"][INTERVALS]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="not listed in the manifest"):
        Predictor(bundle)


def test_an_unbounded_interval_is_null_in_the_file_and_infinite_in_predict(bundle: Path):
    """Too few val subjects for the level: no finite half-width keeps the promise."""
    spec = json.loads((bundle / INTERVALS).read_text())
    spec["columns"]["LVM (g)"]["half_width"] = None
    rewrite(bundle, INTERVALS, json.dumps(spec).encode())
    values = Predictor(bundle).predict(beats_ecg(70, 1.0), fs=ECG_FS)
    assert values["LVM (g) lower"] == -math.inf and values["LVM (g) upper"] == math.inf
    assert math.isfinite(values["LVEDV (mL) upper"])
