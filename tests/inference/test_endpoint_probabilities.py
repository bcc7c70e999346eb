"""Endpoint probabilities in a bundle: fitted at export (evaluate's logistic probe on train,
Platt scaling of its logit on val), verified on load like every other file, applied by predict
with numpy, stated in the model card; old bundles without them still predict."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from builders import ENDPOINT_OVERRIDES, beats_ecg

from ptacl.data.store import Store
from ptacl.inference import BundleError, Predictor
from ptacl.inference.bundle_format import ENDPOINTS, sha256_bytes
from ptacl.phenotypes import PHENOTYPES
from ptacl.schema import ECG_FS

FITTED = ["P(lvsd)", "P(lvh)"]  # ENDPOINT_OVERRIDES make these two fittable on the probe store


@pytest.fixture
def bundle(endpoint_bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(endpoint_bundle, tmp_path / "bundle"))


def rewrite(bundle: Path, name: str, data: bytes) -> None:
    """Replace a bundle file and its manifest hash, as a consistent tamperer would."""
    (bundle / name).write_bytes(data)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"][name] = {"sha256": sha256_bytes(data), "bytes": len(data)}
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def by_hand(embedding: np.ndarray, entry: dict) -> float:
    """1 / (1 + exp(-((x - mean) . weight + bias))) in plain Python floats."""
    z = sum((x - m) * w for x, m, w in zip(embedding.tolist(), entry["mean"], entry["weight"]))
    return 1.0 / (1.0 + math.exp(-(z + entry["bias"])))


def test_predict_gives_the_stored_logistic_of_the_embedding(endpoint_bundle: Path) -> None:
    predictor = Predictor(endpoint_bundle)
    assert predictor.endpoint_columns == FITTED
    doc = json.loads((endpoint_bundle / ENDPOINTS).read_text())
    assert sorted(doc["skipped"]) == ["hfref", "lv_dilation"]  # too rare here, said with counts
    assert "fewer than 3 positives" in doc["skipped"]["hfref"]["why"]
    assert doc["skipped"]["hfref"]["counts"]["train"]["negatives"] > 0
    ecg = beats_ecg(70, 1.0)
    values = predictor.predict(ecg, fs=ECG_FS)
    assert list(values)[-2:] == FITTED  # after the phenotypes and their bounds
    embedding = predictor.embed(ecg, fs=ECG_FS)
    for entry in doc["endpoints"].values():
        assert 0.0 <= values[entry["column"]] <= 1.0
        assert values[entry["column"]] == pytest.approx(by_hand(embedding, entry), abs=1e-12)
    table = predictor.predict([ecg, beats_ecg(55, 0.7)], fs=ECG_FS)
    assert list(table.columns[-2:]) == FITTED
    assert table[FITTED].to_numpy().min() >= 0 and table[FITTED].to_numpy().max() <= 1
    np.testing.assert_allclose(table.loc[0, FITTED].to_numpy(float), [values[c] for c in FITTED])


def test_the_model_is_evaluates_probe_recalibrated_on_val(
    endpoint_bundle: Path, probe_store: Path
) -> None:
    """Recomputed from the store with scikit-learn: the stored model's logit is Platt's
    a * logit + b of `ptacl evaluate`'s probe, a and b fitted on val; the stated test AUROC,
    Brier and ECE are those of the stored model on the test split."""
    from sklearn.linear_model import LogisticRegression

    from ptacl.eval.endpoint_eval import logistic_probe
    from ptacl.eval.endpoint_metrics import auroc, brier, expected_calibration_error
    from ptacl.eval.endpoints import endpoint_labels, load_endpoints
    from ptacl.export.fit import embed_store

    predictor = Predictor(endpoint_bundle)
    store = Store.open(probe_store)
    x = {s: embed_store(predictor.model.encoder, store, s) for s in ("train", "val", "test")}
    cfg = load_endpoints(None, ENDPOINT_OVERRIDES)
    doc = predictor.bundle.endpoints
    for key, entry in doc["endpoints"].items():
        rule = cfg.rules()[key]
        y, z = {}, {}
        for split, (rows, embeddings) in x.items():
            labels = endpoint_labels(rule, store.phenotypes[rows], list(PHENOTYPES)).labels
            known = np.isfinite(labels)  # the store's one unknown LVEF has no label
            y[split], z[split] = labels[known], embeddings[known]
        assert sum(len(v) for v in y.values()) == len(store.subjects) - (key == "lvsd")
        p_val, p_test = logistic_probe(z["train"], y["train"], z["val"], z["test"])
        logit_val = np.log(p_val / (1 - p_val))
        platt = LogisticRegression(C=1e4, max_iter=5000).fit(logit_val[:, None], y["val"])
        slope = float(platt.coef_[0, 0])
        assert slope > 0 and entry["calibration"]["slope"] == pytest.approx(slope, rel=1e-4)
        logit_test = np.log(p_test / (1 - p_test))
        expected = 1 / (1 + np.exp(-(slope * logit_test + platt.intercept_[0])))
        got = [by_hand(e, entry) for e in z["test"]]
        np.testing.assert_allclose(got, expected, atol=1e-9)
        test = entry["test"]
        assert test["AUROC"][0] == pytest.approx(auroc(y["test"], p_test), abs=1e-4)
        assert test["Brier"][0] == pytest.approx(brier(y["test"], expected), abs=1e-4)
        assert test["ECE"] == pytest.approx(expected_calibration_error(y["test"], expected), 1e-3)
        assert entry["calibration"]["test"]["probe"]["Brier"] == pytest.approx(
            brier(y["test"], p_test), abs=1e-4
        )
        assert entry["prevalence"]["test"] == pytest.approx(np.mean(y["test"]), abs=1e-4)


def test_cli_csv_and_python_predict_agree(bundle: Path, tmp_path: Path) -> None:
    from ptacl.cli.predict import PROBABILITY, main

    paths = []
    for i, (rate, amplitude) in enumerate([(70, 1.0), (55, 0.7), (90, 1.2)]):
        paths.append(tmp_path / f"ecg{i}.npy")
        np.save(paths[-1], beats_ecg(rate, amplitude))
    out = tmp_path / "out.csv"
    args = ["--model", str(bundle), "--ecg", *map(str, paths), "--fs", "500", "--no-progress"]
    assert main([*args, "--out", str(out)]) == 0
    csv = pd.read_csv(out)
    python = Predictor(bundle).predict([str(p) for p in paths], fs=ECG_FS)
    assert list(csv.columns[-2:]) == FITTED
    np.testing.assert_allclose(
        csv[FITTED].to_numpy(), python[FITTED].to_numpy().round(PROBABILITY), atol=1e-12
    )


def test_an_edited_endpoints_file_is_refused(bundle: Path) -> None:
    doc = json.loads((bundle / ENDPOINTS).read_text())
    doc["endpoints"]["lvsd"]["bias"] += 3.0  # a higher risk for everyone, nobody measured it
    (bundle / ENDPOINTS).write_text(json.dumps(doc, indent=2))
    with pytest.raises(BundleError, match=f"{ENDPOINTS}.*(sha256|bytes)"):
        Predictor(bundle)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda d: d["endpoints"]["lvh"]["weight"].pop(), r"lvh'? weight must be 16 finite"),
        (lambda d: d["endpoints"]["lvh"]["mean"].__setitem__(0, "x"), "mean must be 16 finite"),
        (lambda d: d["endpoints"]["lvsd"].__setitem__("bias", None), "bias None"),
        (lambda d: d["endpoints"]["lvsd"].__setitem__("column", "LVEF (%)"), "column 'LVEF"),
        (lambda d: d.pop("endpoints"), "no 'endpoints' table"),
    ],
)
def test_a_rehashed_endpoints_file_must_still_make_sense(bundle: Path, edit, reason) -> None:
    doc = json.loads((bundle / ENDPOINTS).read_text())
    edit(doc)
    rewrite(bundle, ENDPOINTS, json.dumps(doc).encode())
    with pytest.raises(BundleError, match=reason) as caught:
        Predictor(bundle)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(bundle / ENDPOINTS))


def test_an_unlisted_or_unparsable_endpoints_file_is_refused(bundle: Path) -> None:
    rewrite(bundle, ENDPOINTS, b"{not json")
    with pytest.raises(BundleError, match=f"{ENDPOINTS}: not valid JSON"):
        Predictor(bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    del manifest["files"][ENDPOINTS]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="not listed in the manifest"):
        Predictor(bundle)


def test_an_old_bundle_without_endpoints_still_predicts(bundle: Path, tmp_path: Path) -> None:
    from ptacl.cli.predict import main

    (bundle / ENDPOINTS).unlink()
    manifest = json.loads((bundle / "manifest.json").read_text())
    del manifest["files"][ENDPOINTS]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    predictor = Predictor(bundle)
    assert predictor.bundle.endpoints is None and predictor.endpoint_columns == []
    values = predictor.predict(beats_ecg(70, 1.0), fs=ECG_FS)
    assert not any(c.startswith("P(") for c in values) and list(values)[:10] == list(PHENOTYPES)
    np.save(tmp_path / "ecg.npy", beats_ecg(70, 1.0))
    out = tmp_path / "out.csv"
    args = ["--model", str(bundle), "--ecg", str(tmp_path / "ecg.npy"), "--fs", "500"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    assert not any(c.startswith("P(") for c in out.read_text().splitlines()[0].split(","))


def test_the_card_states_each_endpoint_and_the_skipped_ones(
    endpoint_bundle: Path, tiny_bundle: Path
) -> None:
    card = (endpoint_bundle / "README.md").read_text()
    doc = json.loads((endpoint_bundle / ENDPOINTS).read_text())
    assert "### Endpoint probabilities" in card and "Platt scaling" in card
    lvsd = doc["endpoints"]["lvsd"]
    row = next(line for line in card.splitlines() if line.startswith("| `P(lvsd)`"))
    assert "LVEF (%) < 60" in row and f"{lvsd['test']['AUROC'][0]:.3f} [" in row
    assert f"{lvsd['test']['Brier'][0]:.3f} [" in row
    assert f"{100 * lvsd['prevalence']['test']:.1f} %" in row
    assert "- `P(lvsd)`: ESC 2021" in card  # the source
    assert "- hfref (reduced EF (LVEF <= 40 %)): fewer than 3 positives" in card
    # fitted with lvsd.threshold=60: the label says 60 (it said the shipped 50), and so do
    # predict's column labels
    assert lvsd["label"] == "LV systolic dysfunction (LVEF < 60 %)"
    assert Predictor(endpoint_bundle).endpoints["P(lvsd)"] == lvsd["label"]
    # the shipped endpoints on 90 subjects: none fitted, each one named with its counts
    default = json.loads((tiny_bundle / ENDPOINTS).read_text())
    assert default["endpoints"] == {} and len(default["skipped"]) == 4
    assert Predictor(tiny_bundle).endpoint_columns == []
    assert "Not fitted" in (tiny_bundle / "README.md").read_text()
    # the intervals' nominal and measured coverage, as before
    assert "Nominal coverage **90.0 %**" in card and "test coverage" in card


def test_a_probe_that_ranks_val_inversely_gives_the_val_prevalence() -> None:
    from ptacl.export.endpoint_fit import _platt_on_logit

    y = np.array([0, 0, 0, 1, 1, 0, 1, 0])
    slope, intercept = _platt_on_logit(-np.arange(8.0) * (2 * y - 1), y)  # positives lower
    assert slope == 0.0 and intercept == pytest.approx(math.log(3 / 5))
    slope, _ = _platt_on_logit(np.arange(8.0) * (2 * y - 1) + 0.1 * np.arange(8), y)
    assert slope > 0


def test_without_scikit_learn_every_endpoint_is_skipped_and_said(
    probe_store: Path, monkeypatch
) -> None:
    import importlib.util

    from ptacl.eval.endpoints import load_endpoints
    from ptacl.export import endpoint_fit

    store = Store.open(probe_store)
    rng = np.random.default_rng(0)
    splits = {}
    for split in ("train", "val", "test"):
        rows = store.indices(split, ecg=True)
        splits[split] = (rows, rng.standard_normal((len(rows), 4)))
    real = importlib.util.find_spec
    monkeypatch.setattr(
        endpoint_fit.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "sklearn" else real(name, *a),
    )
    doc = endpoint_fit.fit_endpoints(load_endpoints(None, ENDPOINT_OVERRIDES), store, splits)
    assert doc["endpoints"] == {}
    assert all("scikit-learn is not installed" in e["why"] for e in doc["skipped"].values())
