"""Fixtures for the readers: a real ECG (pydicom's Mortara recording) and file writers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from ptacl.schema import LEADS


@pytest.fixture(scope="session")
def strip_counts(dicom_path) -> np.ndarray:
    """A real 10-s strip as CardioSoft stores it: (12, 5000) integers of 5 µV at 500 Hz."""
    import pydicom

    ds = pydicom.dcmread(dicom_path)
    uv = ds.waveform_array(0).T  # (12, 10000) µV at 1000 Hz, leads already in LEADS order
    return np.rint(uv[:, ::2] / 5.0).astype(int)


def _waveforms(counts: np.ndarray, leads: Sequence[str], indent: str) -> str:
    out = []
    for lead, row in zip(leads, counts):
        # Real files wrap the comma-separated integers in newlines and tabs.
        lines = [",".join(str(v) for v in row[i : i + 40]) for i in range(0, len(row), 40)]
        body = ",\n\t\t\t".join(lines)
        out.append(f'{indent}<WaveformData lead="{lead}">\n\t\t\t{body}\n{indent}</WaveformData>')
    return "\n".join(out)


def cardiosoft_xml(
    strip: np.ndarray,
    *,
    leads: Sequence[str] = LEADS,
    fs: int = 500,
    resolution: float = 5,
    median: np.ndarray | None = None,
) -> bytes:
    """A CardioSoft XML document laid out as FORMATS.md describes, encoded ISO-8859-1."""
    if median is None:
        median = np.full((len(leads), 600), 777)  # unmistakable if read by mistake
    text = f"""<?xml version="1.0" encoding="ISO-8859-1"?>
<CardiologyXML>
\t<ObservationType>RestECG</ObservationType>
\t<ObservationDateTime><Hour>9</Hour><Minute>41</Minute></ObservationDateTime>
\t<ClinicalInfo><DeviceInfo><Desc>CardioSoft</Desc><SoftwareVer>V6.73</SoftwareVer>
\t\t<AnalysisVer>12SL V21</AnalysisVer></DeviceInfo></ClinicalInfo>
\t<PatientInfo><Name>Zoë Müller-Ångström</Name><Gender>Female</Gender></PatientInfo>
\t<FilterSetting><CubicSpline>Yes</CubicSpline><LowPass units="Hz">150</LowPass></FilterSetting>
\t<Interpretation><Diagnosis><DiagnosisText>Sinusrhythmus, normales EKG (Größe 170 cm)</DiagnosisText>
\t</Diagnosis></Interpretation>
\t<RestingECGMeasurements>
\t\t<VentricularRate units="BPM">60</VentricularRate>
\t\t<QRSDuration units="ms">92</QRSDuration>
\t\t<MeasurementTable><LeadOrder>I,II,III</LeadOrder></MeasurementTable>
\t\t<MedianSamples>
\t\t\t<NumberOfLeads>{len(leads)}</NumberOfLeads>
\t\t\t<SampleRate units="Hz">500</SampleRate>
\t\t\t<ChannelSampleCountTotal>600</ChannelSampleCountTotal>
\t\t\t<Resolution units="uVperLsb">5</Resolution>
{_waveforms(median, leads, chr(9) * 3)}
\t\t</MedianSamples>
\t</RestingECGMeasurements>
\t<StripData>
\t\t<NumberOfLeads>{len(leads)}</NumberOfLeads>
\t\t<SampleRate units="Hz">{fs}</SampleRate>
\t\t<ChannelSampleCountTotal>{strip.shape[1]}</ChannelSampleCountTotal>
\t\t<Resolution units="uVperLsb">{resolution}</Resolution>
{_waveforms(strip, leads, chr(9) * 2)}
\t\t<ArrhythmiaResults><Time units="sec">0</Time></ArrhythmiaResults>
\t</StripData>
</CardiologyXML>
"""
    return text.encode("iso-8859-1")


@pytest.fixture
def write_xml(tmp_path):
    def write(strip, name="1000037_20205_2_0.xml", **kwargs) -> Path:
        path = tmp_path / name
        path.write_bytes(cardiosoft_xml(strip, **kwargs))
        return path

    return write
