"""Output plausibility: impossible, NaN, extrapolated and out-of-distribution predictions are
never 'ok' (docs/reliability.md: the `predict` faults)."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from builders import beats_ecg, synth_subject, write_cardiosoft_xml
from safetensors.torch import load_file, save_file

from ptacl.cli.main import main as ptacl
from ptacl.inference import Predictor
from ptacl.inference.bundle_format import WEIGHTS, sha256_bytes
from ptacl.inference.plausibility import assess, fit_ood, fit_ranges, ood_distances
from ptacl.inference.predictor import ImplausiblePrediction
from ptacl.phenotypes import PHENOTYPES
from ptacl.schema import ECG_FS


def rewrite(bundle: Path, name: str, data: bytes) -> None:
    """Replace a bundle file and its manifest hash, as a consistent tamperer would."""
    (bundle / name).write_bytes(data)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"][name] = {"sha256": sha256_bytes(data), "bytes": len(data)}
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def edit_weights(bundle: Path, edit) -> None:
    tensors = load_file(bundle / WEIGHTS)
    edit(tensors)
    save_file(tensors, bundle / "new.safetensors", metadata={"format": "ptacl-bundle"})
    data = (bundle / "new.safetensors").read_bytes()
    (bundle / "new.safetensors").unlink()
    rewrite(bundle, WEIGHTS, data)


@pytest.fixture
def bundle(tiny_bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


def test_assess_by_hand():
    columns = ["LVEDV (mL)", "LVEF (%)"]
    targets = np.array([[100.0, 50.0], [200.0, 70.0], [np.nan, 60.0]])
    ranges = fit_ranges(targets, columns)
    assert ranges["LVEDV (mL)"]["train"] == [100, 200]
    assert ranges["LVEDV (mL)"]["expected"] == [90, 210]  # +-10 % of the span
    assert ranges["LVEF (%)"]["expected"] == [48, 72] and ranges["LVEF (%)"]["subjects"] == 3
    values = np.array([[150, 60], [-55, 110], [np.nan, 60], [250, 60], [150, 60]])
    scores = np.array([1.0, 1.0, 1.0, 1.0, 9.0])
    status = assess(values, columns, ranges, scores, threshold=5.0)
    assert status[0] == "ok"
    assert status[1] == (
        "error: LVEDV -55 mL is impossible (physiological range 20-600); "
        "LVEF 110 % is impossible (physiological range 5-90)"
    )
    assert status[2] == "error: LVEDV is nan"
    assert status[3] == "warning: LVEDV 250 mL outside the training range 100-200 (+10% of it)"
    assert status[4] == "warning: ECG unlike the training ECGs (OOD score 9.0 > 5.0)"


def test_absurd_training_labels_do_not_widen_the_expected_range():
    targets = np.array([[120.0], [-55.0], [1e30], [180.0]])
    assert fit_ranges(targets, ["LVEDV (mL)"])["LVEDV (mL)"]["train"] == [120, 180]


def test_ood_threshold_keeps_held_out_gaussians_and_flags_far_points():
    rng = np.random.default_rng(0)
    train, held_out, new = (rng.normal(size=(n, 8)) @ np.diag(range(1, 9)) for n in (400, 100, 500))
    mean, whiten, spec = fit_ood(train, held_out)
    assert spec["reference"] == {
        "train": 400, "validation": 100, **{k: spec["reference"][k] for k in ("median", "quantile")}
    }  # fmt: skip
    assert (ood_distances(new, mean, whiten) < spec["threshold"]).all()
    far = np.zeros((2, 8))
    far[0, 0], far[1, 7] = 10.0, 80.0  # 10 SD along the first axis, 10 SD along the last
    assert (ood_distances(far, mean, whiten) > spec["threshold"]).all()


def test_a_consistently_tampered_bundle_gives_an_error_row_and_exit_1(bundle, tmp_path, capsys):
    """A tampered head (manifest rehashed) once predicted LVM 2.6e29 g with status ok."""
    edit_weights(bundle, lambda t: t["head.bias"].__setitem__(5, 2.6e29))
    xml = write_cardiosoft_xml(tmp_path / "1000001_20205_2_0.xml", synth_subject(11, 0)[0])
    out = tmp_path / "p.csv"
    assert ptacl(["predict", "--model", str(bundle), "--ecg", str(xml), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "error: LVM 2.6e+29 g is impossible (physiological range 20-600)" in err
    import pandas as pd

    assert pd.read_csv(out)["status"][0].startswith("error: LVM 2.6e+29 g is impossible")


def test_nan_is_never_ok(bundle):
    edit_weights(bundle, lambda t: t["head.bias"].__setitem__(0, float("nan")))
    predictor = Predictor(bundle)
    table = predictor.predict([beats_ecg(70, 1.0)], fs=ECG_FS)
    assert table["status"][0].startswith("error: LVEDV is nan")
    with pytest.warns(ImplausiblePrediction, match=r"array: error: LVEDV is nan"):
        predictor.predict(beats_ecg(70, 1.0), fs=ECG_FS)


def test_a_spike_train_is_flagged_out_of_distribution(tiny_bundle):
    from builders import _GAINS

    rng = np.random.default_rng(0)
    needle = np.zeros(5000)
    needle[::400] = 5.0  # 75 "beats" a minute of nothing but a needle, limb leads consistent
    spikes = (_GAINS[:, None] * needle + rng.normal(0, 0.01, (12, 5000))).astype(np.float32)
    predictor = Predictor(tiny_bundle)
    table = predictor.predict([spikes, beats_ecg(70, 1.0)], fs=ECG_FS)
    # input QC lets a limb-consistent needle train through; the OOD score does not
    assert table["status"][0].startswith("warning: ")
    assert "ECG unlike the training ECGs (OOD score" in table["status"][0]
    assert table["status"][1] == "ok" and table["ood_score"][1] < table["ood_score"][0] / 2
    with pytest.warns(ImplausiblePrediction, match="unlike the training ECGs"):
        predictor.predict(spikes, fs=ECG_FS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predictor.predict(beats_ecg(70, 1.0), fs=ECG_FS)  # an ok prediction is silent


def test_an_old_bundle_without_ranges_loads_with_bounds_only(bundle):
    phenotypes = json.loads((bundle / "phenotypes.json").read_text())
    del phenotypes["ranges"]
    rewrite(bundle, "phenotypes.json", json.dumps(phenotypes).encode())
    config = json.loads((bundle / "config.json").read_text())
    del config["ood"]
    rewrite(bundle, "config.json", json.dumps(config).encode())
    edit_weights(bundle, lambda t: [t.pop(k) for k in list(t) if k.startswith("ood.")])
    with pytest.warns(UserWarning, match="physiological bounds only .* export it again"):
        predictor = Predictor(bundle)
    assert predictor.checks == ["finite", "physiological range"]
    table = predictor.predict([beats_ecg(70, 1.0)], fs=ECG_FS)
    assert table["status"][0] == "ok" and np.isnan(table["ood_score"][0])
    assert list(table.columns[5:15]) == list(PHENOTYPES)


def test_a_new_bundle_checks_everything(tiny_bundle):
    predictor = Predictor(tiny_bundle)
    assert predictor.checks == [
        "finite", "physiological range", "training range", "out-of-distribution score"
    ]  # fmt: skip
    config = json.loads((tiny_bundle / "config.json").read_text())
    assert (
        config["ood"]["reference"]["train"] == 60 and config["ood"]["reference"]["validation"] == 15
    )


def test_predict_on_a_full_disk_leaves_the_old_csv(tiny_bundle, tmp_path, monkeypatch, capsys):
    import errno

    import pandas as pd

    out = tmp_path / "p.csv"
    out.write_text("previous\n")
    xml = write_cardiosoft_xml(tmp_path / "1000001_20205_2_0.xml", beats_ecg(70, 1.0))

    def full(self, path, *args, **kwargs):
        Path(path).write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    assert (
        ptacl(["predict", "--model", str(tiny_bundle), "--ecg", str(xml), "--out", str(out)]) == 2
    )
    assert "no space left on the device" in capsys.readouterr().err
    assert out.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1000001_20205_2_0.xml", "p.csv"]
