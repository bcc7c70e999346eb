"""export -> predict on real and synthetic ECGs: finite phenotypes in plausible ranges."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from builders import beats_ecg, synth_subject, synth_xmls, write_cardiosoft_xml

import ptacl
from ptacl.inference import Predictor, eid_from_path
from ptacl.inference.predictor import ImplausiblePrediction
from ptacl.io import InputError
from ptacl.phenotypes import PHENOTYPES
from ptacl.schema import ECG_FS

#: Wide adult ranges; a value outside means units, order or scale went wrong somewhere.
PLAUSIBLE = {
    "LVEDV (mL)": (50, 350),
    "LVESV (mL)": (10, 250),
    "LVSV (mL)": (20, 200),
    "LVEF (%)": (20, 85),
    "LVCO (L/min)": (1.5, 15),
    "LVM (g)": (40, 300),
    "RVEDV (mL)": (50, 400),
    "RVESV (mL)": (10, 300),
    "RVSV (mL)": (20, 200),
    "RVEF (%)": (20, 85),
}


def assert_plausible(values: dict[str, float]) -> None:
    # the phenotypes first, in order; then the interval bounds of a bundle that has them
    assert list(values)[: len(PHENOTYPES)] == list(PHENOTYPES)
    assert list(values)[len(PHENOTYPES) :] in (
        [],
        [f"{c} {s}" for c in PHENOTYPES for s in ("lower", "upper")],
    )
    for column in PHENOTYPES:
        value = values[column]
        low, high = PLAUSIBLE[column]
        assert np.isfinite(value), column
        assert low <= value <= high, f"{column} = {value}"


@pytest.fixture(scope="module")
def predictor(tiny_bundle: Path) -> Predictor:
    return ptacl.load(tiny_bundle)


def test_pydicom_real_ecg(predictor: Predictor) -> None:
    from pydicom import examples

    # A real Mortara recording at 1,000 Hz: resampled to 500 Hz by the shared preprocessing.
    values = predictor.predict(examples.get_path("waveform"))
    assert_plausible(values)


def test_synthetic_xmls_from_ptacl_synth(predictor: Predictor, tmp_path: Path) -> None:
    """Every file reads and predicts with status ok, which includes predict's own plausibility
    check (ptacl.phenotypes); the values are the fixture's random encoder's OLS probe, which
    may extrapolate past this file's narrower bands for the generator's reduced-EF subjects."""
    paths = synth_xmls(tmp_path, 4)
    table = predictor.predict(paths)
    assert (table["status"] == "ok").all(), table["status"].tolist()
    assert table["eid"].tolist() == [p.name.split("_")[0] for p in paths]
    assert np.isfinite(table[list(PHENOTYPES)].to_numpy(dtype=float)).all()


def test_eid_from_path() -> None:
    assert eid_from_path("/data/1000037_20205_2_0.xml") == "1000037"
    assert eid_from_path("patient-7.dcm") == "patient-7"
    assert eid_from_path("rec.hea") == "rec"


def test_array_needs_fs_and_matches_its_file(predictor: Predictor, tmp_path: Path) -> None:
    # The XML stores integers of 5 µV: give the array the same samples.
    signal = np.rint(beats_ecg(64, 1.1) / 0.005) * 0.005
    with pytest.raises(ValueError, match="sampling rate"):
        predictor.predict(signal)
    from_array = predictor.predict(signal, fs=ECG_FS)
    from_file = predictor.predict(write_cardiosoft_xml(tmp_path / "same.xml", signal))
    np.testing.assert_allclose(list(from_array.values()), list(from_file.values()), rtol=1e-5)


def test_raw_recordings_predict_as_their_store_rows(tiny_bundle: Path, probe_store: Path) -> None:
    """predict on a raw recording must see what the probe saw at export for the same subject:
    the store's row of it (stored as float16, hence the tolerance)."""
    from ptacl.data.store import Store
    from ptacl.embedding.crops import store_outputs

    predictor = Predictor(tiny_bundle)
    store = Store.open(probe_store)
    rows = store.indices("train", ecg=True)
    out = store_outputs(predictor.model, store, rows, crop=predictor.crop)
    for row in rows[:6]:  # row 3 is one of the 6-s recordings
        raw, _ = synth_subject(3, int(row))
        length = int(store.subjects["ecg_length"][row])
        values = predictor.predict(raw[:, :length], fs=ECG_FS)
        found = [values[c] for c in PHENOTYPES]
        np.testing.assert_allclose(found, out["phenotypes"][row], rtol=2e-3)
    spread = out["phenotypes"].std(axis=0)
    assert (spread > 0).all()  # the head reads the embedding, not only its intercept


def test_unreadable_file_gets_its_error_row(predictor: Predictor, tmp_path: Path) -> None:
    good = write_cardiosoft_xml(tmp_path / "1000001_20205_2_0.xml", synth_subject(11, 0)[0])
    broken = tmp_path / "1000002_20205_2_0.xml"
    broken.write_text("<CardiologyXML><StripData>", encoding="utf-8")
    flat = write_cardiosoft_xml(tmp_path / "flat.xml", np.zeros((12, 5000), np.float32))
    missing = tmp_path / "missing.dcm"
    table = predictor.predict([good, broken, flat, missing])
    assert list(table["file"]) == [str(p) for p in (good, broken, flat, missing)]
    status = table["status"]
    assert status[0] == "ok" and status[1:].str.startswith("error: ").all()
    assert status[1].startswith(f"error: {broken}") and "XML" in status[1]
    assert "flat" in status[2]
    assert "not found" in status[3]
    assert table.loc[1:, list(PHENOTYPES)].isna().all().all()
    assert_plausible(table.loc[0, list(PHENOTYPES)].to_dict())
    assert table["eid"][1] == "1000002"


def test_single_unreadable_file_raises(predictor: Predictor, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        predictor.predict(tmp_path / "nothing.xml")


def test_batching_does_not_change_results(tiny_bundle: Path, tmp_path: Path) -> None:
    paths = [
        write_cardiosoft_xml(tmp_path / f"{i}.xml", beats_ecg(55 + 7 * i, 1.0)) for i in range(5)
    ]
    one = Predictor(tiny_bundle, batch_size=1).predict_files(paths, embeddings=True)
    many = Predictor(tiny_bundle, batch_size=64).predict_files(paths, embeddings=True)
    numbers = [c for c in one.columns if c not in ("file", "eid", "status")]
    np.testing.assert_allclose(
        one[numbers].to_numpy(float), many[numbers].to_numpy(float), rtol=1e-4, atol=1e-5
    )
    assert sum(c.startswith("emb_") for c in one.columns) == 16


def test_short_recording_uses_evenly_spread_crops(predictor: Predictor) -> None:
    values = predictor.predict(synth_subject(11, 1)[0][:, :3500], fs=ECG_FS)
    assert_plausible(values)
    with pytest.raises(InputError, match="too short"):
        predictor.predict(beats_ecg(70, 1.0, seconds=4.0), fs=ECG_FS)


def test_embed(predictor: Predictor, tmp_path: Path) -> None:
    signal = beats_ecg(70, 1.0)
    one = predictor.embed(signal, fs=ECG_FS)
    assert one.shape == (16,) and np.isfinite(one).all()
    path = write_cardiosoft_xml(tmp_path / "a.xml", signal)
    table = predictor.embed([path, path])
    assert table.filter(like="emb_").shape == (2, 16)
    assert np.allclose(table.filter(like="emb_").to_numpy(float)[0], predictor.embed(path))
    with pytest.raises(ValueError, match="no projection head"):
        predictor.embed(signal, fs=ECG_FS, space="shared")


def test_bundle_documents_itself(tiny_bundle: Path) -> None:
    config = json.loads((tiny_bundle / "config.json").read_text())
    prep = json.loads((tiny_bundle / "preprocessing.json").read_text())
    phen = json.loads((tiny_bundle / "phenotypes.json").read_text())
    assert phen["columns"] == list(PHENOTYPES)
    assert prep["fs"] == 500 and prep["crop"] == 2500 and prep["dwt"]["level"] == 8
    assert config["head"]["fitted_on"]["subjects"]["LVEF (%)"] == 59  # one NaN left out
    assert config["head"]["fitted_on"]["subjects"]["LVEDV (mL)"] == 60
    assert len(config["embedding"]["encoder_id"]) == 64
    assert set(config["head"]["validation_r2"]) == set(PHENOTYPES)


def test_list_of_arrays_gets_one_row_each(predictor: Predictor) -> None:
    good, flat = beats_ecg(70, 1.0), np.zeros((12, 5000), np.float32)
    table = predictor.predict([good, flat], fs=ECG_FS)
    assert table["file"].tolist() == ["<array 0>", "<array 1>"]
    assert table["status"][0] == "ok"
    assert table["status"][1].startswith("error: <array 1>") and "flat" in table["status"][1]
    expected = predictor.predict(good, fs=ECG_FS)
    np.testing.assert_allclose(
        table.loc[0, list(expected)].to_numpy(float), list(expected.values())
    )


def test_files_naming_patient_0_predict_ok(predictor: Predictor, tmp_path: Path) -> None:
    # predict pairs nothing: a file's own id (the placeholder 0 here) is not judged at all
    paths = [
        write_cardiosoft_xml(
            tmp_path / f"41{k:05d}_20205_2_0.xml", synth_subject(11, k)[0], pid="0"
        )
        for k in range(3)
    ]
    table = predictor.predict(paths)
    assert (table["status"] == "ok").all(), table["status"].tolist()


def test_lead_checks_reach_the_status(predictor: Predictor, tmp_path: Path) -> None:
    # the same checks as prepare: an inverted recording is predicted with a warning, a
    # recording whose V5 copies V6 is refused
    signal = synth_subject(11, 0)[0]
    copied = signal.copy()
    copied[10] = signal[11]
    paths = [
        write_cardiosoft_xml(tmp_path / "1000001_20205_2_0.xml", signal),
        write_cardiosoft_xml(tmp_path / "1000002_20205_2_0.xml", -signal),
        write_cardiosoft_xml(tmp_path / "1000003_20205_2_0.xml", copied),
    ]
    status = predictor.predict(paths)["status"].tolist()
    assert status[0] == "ok"
    assert status[1].startswith("warning: ") and "every lead inverted?" in status[1]
    assert status[2].startswith("error: ") and "leads copied: V6 = V5" in status[2]
    with pytest.warns(ImplausiblePrediction, match="every lead inverted"):
        predictor.predict(paths[1])


def ecg_folder(folder: Path) -> list[Path]:
    """Three CardioSoft XMLs beside a file no reader takes (a folder as users keep one)."""
    folder.mkdir()
    paths = [
        write_cardiosoft_xml(folder / f"{1000010 + i}_20205_2_0.xml", beats_ecg(60 + 9 * i, 1.0))
        for i in range(3)
    ]
    (folder / "notes.txt").write_text("not an ECG", encoding="utf-8")
    return paths


def test_many_inputs_in_every_form_people_pass(predictor: Predictor, tmp_path: Path) -> None:
    import pandas as pd

    paths = ecg_folder(tmp_path / "ecgs")
    expected = [str(p) for p in paths]
    forms = {
        "folder": tmp_path / "ecgs",
        "folder as str": str(tmp_path / "ecgs"),
        "glob": str(tmp_path / "ecgs" / "*.xml"),
        "generator": (tmp_path / "ecgs").glob("*.xml"),
        "Series": pd.Series([str(p) for p in paths]),
        "array of str": np.array([str(p) for p in paths]),
        "set": set(paths),
    }
    for name, source in forms.items():
        table = predictor.predict(source)
        assert sorted(table["file"]) == expected, name
        assert (table["status"] == "ok").all(), (name, table["status"].tolist())
    for name in ("folder", "glob"):
        table = predictor.embed(forms[name])
        assert table["file"].tolist() == expected, name
        assert table.filter(like="emb_").shape == (3, 16)
    assert predictor.predict_files(paths[0])["file"].tolist() == [str(paths[0])]  # one row
    generated = predictor.embed(p for p in paths)
    assert generated["file"].tolist() == expected
    assert "LVEF (%)" not in generated.columns  # embeddings, not predictions


def test_empty_folder_or_pattern_is_an_error_not_an_empty_table(
    predictor: Predictor, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="without ECG files"):
        predictor.predict(tmp_path / "empty")
    with pytest.raises(InputError, match="matches no file"):
        predictor.embed(str(tmp_path / "*.dcm"))


def test_embed_of_several_gives_an_error_row_not_an_abort(
    predictor: Predictor, tmp_path: Path
) -> None:
    good = write_cardiosoft_xml(tmp_path / "good.xml", beats_ecg(70, 1.0))
    table = predictor.embed([good, tmp_path / "missing.xml"])
    assert table["status"].tolist()[0] == "ok"
    assert table["status"][1].startswith("error: ") and "not found" in table["status"][1]
    assert np.isfinite(table.filter(like="emb_").iloc[0].to_numpy(float)).all()
    assert table.filter(like="emb_").iloc[1].isna().all()


def test_repr_and_to(predictor: Predictor, aligned_bundle: Path) -> None:
    text = repr(predictor)
    assert text.startswith("Predictor(") and "width 16" in text and "10 phenotypes" in text
    assert "device cpu" in text and "10 phenotypes (90 % intervals)" in text
    assert "shared space 4" in repr(ptacl.load(aligned_bundle))
    moved = ptacl.load(aligned_bundle).to("cpu")
    assert isinstance(moved, Predictor) and moved.device.type == "cpu"
    assert next(moved.model.parameters()).device.type == "cpu"
