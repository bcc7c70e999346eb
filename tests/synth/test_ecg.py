"""The ECG read back from the written CardioSoft XML: format, lead relations, true R peaks."""

from __future__ import annotations

from pathlib import Path

import defusedxml.ElementTree as ET
import neurokit2 as nk
import numpy as np
import pandas as pd
import pytest

LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
ROOT_ORDER = [
    "ObservationType",
    "ObservationDateTime",
    "ClinicalInfo",
    "PatientInfo",
    "FilterSetting",
    "Interpretation",
    "RestingECGMeasurements",
    "StripData",
]


def _ints(text: str) -> np.ndarray:
    return np.array([int(v) for v in text.replace("\n", "").replace("\t", "").split(",")])


def _block(block) -> np.ndarray:
    waves = {w.get("lead"): _ints(w.text) for w in block.findall("WaveformData")}
    assert list(waves) == list(LEADS)
    return np.stack([waves[name] for name in LEADS])


def _files(cohort: Path) -> list[Path]:
    return sorted((cohort / "ecg").glob("*_20205_2_0.xml"))


def test_cardiosoft_layout(cohort: Path):
    for path in _files(cohort):
        raw = path.read_bytes()
        assert raw.startswith(b'<?xml version="1.0" encoding="ISO-8859-1"?>')
        root = ET.fromstring(raw)
        assert root.tag == "CardiologyXML"
        assert [child.tag for child in root] == ROOT_ORDER
        meas = root.find("RestingECGMeasurements")
        assert 35 <= int(meas.findtext("VentricularRate")) <= 130
        median = meas.find("MedianSamples")
        assert median.findtext("SampleRate") == "500"
        assert _block(median).shape == (12, 600)
        strip = root.find("StripData")
        assert strip.findtext("SampleRate") == "500"
        assert strip.find("SampleRate").get("units") == "Hz"
        assert strip.findtext("Resolution") == "5"
        assert strip.find("Resolution").get("units") == "uVperLsb"
        assert strip.findtext("ChannelSampleCountTotal") == "5000"
        assert _block(strip).shape == (12, 5000)
        assert "\n\t" in strip.find("WaveformData").text  # line breaks and tabs, as CardioSoft
        assert "Ü" in root.findtext("ClinicalInfo/ReasonForStudy")  # Latin-1 text survives


def test_einthoven_and_goldberger_hold_to_rounding(cohort: Path):
    for path in _files(cohort):
        root = ET.parse(path).getroot()
        for block in (root.find("StripData"), root.find("RestingECGMeasurements/MedianSamples")):
            x = dict(zip(LEADS, _block(block).astype(float), strict=True))
            # Each lead is rounded to 1 LSB on its own, so a relation of three leads is off by
            # at most 1.5 LSB; any modelling error would be orders of magnitude larger.
            assert np.abs(x["III"] - (x["II"] - x["I"])).max() <= 1.5
            assert np.abs(x["aVR"] + (x["I"] + x["II"]) / 2).max() <= 1.5
            assert np.abs(x["aVL"] - (x["I"] - x["II"] / 2)).max() <= 1.5
            assert np.abs(x["aVF"] - (x["II"] - x["I"] / 2)).max() <= 1.5
            assert np.abs(x["II"]).max() > 50  # not trivially satisfied by a flat line


def test_true_r_peaks_match_an_independent_detector(cohort: Path):
    truth = pd.read_csv(cohort / "truth.csv", dtype={"eid": str}).set_index("eid")
    for eid, row in truth.iterrows():
        true = np.array([int(v) for v in row["r_peaks"].split()])
        root = ET.parse(cohort / "ecg" / f"{eid}_20205_2_0.xml").getroot()
        lead_ii = _block(root.find("StripData"))[1] * 5.0 / 1000.0  # mV
        _, info = nk.ecg_peaks(lead_ii, sampling_rate=500)
        found = np.asarray(info["ECG_R_Peaks"])
        inner = true[(true > 250) & (true < 4750)]  # detectors may skip edge beats
        assert len(inner) >= 5
        for peak in inner:
            assert np.abs(found - peak).min() <= 5, f"{eid}: R peak at {peak} not detected"
        for peak in found:  # and nothing spurious
            assert np.abs(true - peak).min() <= 5, f"{eid}: detector found {peak}, not a beat"


def test_ventricular_rate_matches_peaks_and_differs_from_cine(cohort: Path):
    truth = pd.read_csv(cohort / "truth.csv", dtype={"eid": str}).set_index("eid")
    for _, row in truth.iterrows():
        peaks = np.array([int(v) for v in row["r_peaks"].split()])
        assert row["ecg_hr_bpm"] == pytest.approx(60 * 500 / np.diff(peaks).mean(), abs=1)
        cine_hr = 60.0 / (50 * row["frame_interval_s"])
        assert cine_hr == pytest.approx(row["latent_hr_cmr_bpm"], rel=1e-5)
