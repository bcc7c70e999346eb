"""Write an ECG as a UK Biobank resting-ECG file (field 20205): GE CardioSoft `CardiologyXML`.

Follows the real layout (see shared/FORMATS.md): ISO-8859-1 declared, children of the root in
the real order, `RestingECGMeasurements` with interval/axis measurements and the 12-lead
`MedianSamples` (600 samples at 500 Hz), then `StripData` with the 10 s rhythm strip as
comma-separated integers at 5 µV per LSB, broken into lines with tabs as CardioSoft does, and
`ArrhythmiaResults`. Text is escaped; nothing here reads XML.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from ptacl.synth.ecg import FS, LEADS, UV_PER_LSB, Ecg
from ptacl.synth.latents import Latents

_PER_LINE = 16  # integers per line inside a WaveformData element

# (measurement, unit) in the order CardioSoft writes them.
_MEASUREMENTS = (
    ("VentricularRate", "BPM"),
    ("PQInterval", "ms"),
    ("PDuration", "ms"),
    ("QRSDuration", "ms"),
    ("QTInterval", "ms"),
    ("QTCInterval", "ms"),
    ("RRInterval", "ms"),
    ("PPInterval", "ms"),
    ("SokolovLVHIndex", "uV"),
    ("PAxis", "degrees"),
    ("RAxis", "degrees"),
    ("TAxis", "degrees"),
    ("QRSNum", None),
    ("POnset", None),
    ("POffset", None),
    ("QOnset", None),
    ("QOffset", None),
    ("TOffset", None),
)


def to_counts(signal_mv: np.ndarray) -> np.ndarray:
    """mV -> integer counts at UV_PER_LSB, as stored (rounded to nearest)."""
    return np.rint(np.asarray(signal_mv) * 1000.0 / UV_PER_LSB).astype(np.int64)


def _waveforms(counts: np.ndarray, indent: str) -> list[str]:
    lines = []
    for lead, row in zip(LEADS, counts, strict=True):
        chunks = [
            ",".join(str(v) for v in row[i : i + _PER_LINE].tolist())
            for i in range(0, row.size, _PER_LINE)
        ]
        body = f",\n{indent}\t".join(chunks)
        lines.append(
            f'{indent}<WaveformData lead="{lead}">\n{indent}\t{body}\n{indent}</WaveformData>'
        )
    return lines


def cardiosoft_xml(eid: str, ecg: Ecg, lat: Latents, when: datetime) -> bytes:
    """The file's bytes, ISO-8859-1 encoded."""
    m = dict(ecg.measurements)
    m.setdefault("PAxis", 55)
    m.setdefault("TAxis", m.get("RAxis", 40))
    strip = to_counts(ecg.signal_mv)
    median = to_counts(ecg.median_mv)
    beat_times = ", ".join(f"{r / FS:.3f}" for r in ecg.r_peaks)
    rate = m["VentricularRate"]
    rhythm = (
        "Sinus bradycardia" if rate < 60 else "Sinus tachycardia" if rate > 100 else "Sinus rhythm"
    )
    meas = [
        f'\t\t<{name} units="{unit}">{m[name]}</{name}>'
        if unit
        else f"\t\t<{name}>{m[name]}</{name}>"
        for name, unit in _MEASUREMENTS
    ]
    out = [
        '<?xml version="1.0" encoding="ISO-8859-1"?>',
        "<CardiologyXML>",
        "\t<ObservationType>RestECG</ObservationType>",
        "\t<ObservationDateTime>",
        f"\t\t<Hour>{when.hour}</Hour>",
        f"\t\t<Minute>{when.minute}</Minute>",
        f"\t\t<Second>{when.second}</Second>",
        f"\t\t<Day>{when.day}</Day>",
        f"\t\t<Month>{when.month}</Month>",
        f"\t\t<Year>{when.year}</Year>",
        "\t</ObservationDateTime>",
        "\t<ClinicalInfo>",
        f"\t\t<ReasonForStudy>{escape('Ruhe-EKG, Überprüfung')}</ReasonForStudy>",
        "\t\t<DeviceInfo>",
        "\t\t\t<Desc>CARDIOSOFT</Desc>",
        "\t\t\t<SoftwareVer>6.73</SoftwareVer>",
        "\t\t\t<AnalysisVer>12SL V21</AnalysisVer>",
        "\t\t</DeviceInfo>",
        "\t</ClinicalInfo>",
        "\t<PatientInfo>",
        f"\t\t<PID>{eid}</PID>",
        "\t\t<Name>",
        "\t\t\t<FamilyName></FamilyName>",
        "\t\t\t<GivenName></GivenName>",
        "\t\t</Name>",
        f'\t\t<Age units="years">{lat.age}</Age>',
        f"\t\t<Gender>{'MALE' if lat.male else 'FEMALE'}</Gender>",
        f'\t\t<Height units="cm">{round(lat.height_cm)}</Height>',
        f'\t\t<Weight units="kg">{round(lat.weight_kg)}</Weight>',
        "\t\t<PaceMaker>no</PaceMaker>",
        "\t</PatientInfo>",
        "\t<FilterSetting>",
        "\t\t<CubicSpline>yes</CubicSpline>",
        "\t\t<Filter50Hz>yes</Filter50Hz>",
        "\t\t<Filter60Hz>no</Filter60Hz>",
        '\t\t<LowPass units="Hz">150</LowPass>',
        '\t\t<HighPass units="Hz">0.04</HighPass>',
        "\t</FilterSetting>",
        "\t<Interpretation>",
        "\t\t<Diagnosis>",
        f"\t\t\t<DiagnosisText>{rhythm}</DiagnosisText>",
        "\t\t</Diagnosis>",
        "\t\t<Conclusion>",
        "\t\t\t<ConclusionText>--- Unconfirmed report ---</ConclusionText>",
        "\t\t</Conclusion>",
        "\t</Interpretation>",
        "\t<RestingECGMeasurements>",
        "\t\t<DiagnosisVersion>12SL V21</DiagnosisVersion>",
        *meas,
        "\t\t<MeasurementTable>",
        f"\t\t\t<LeadOrder>{','.join(LEADS)}</LeadOrder>",
        f'\t\t\t<RAmplitude units="uV">{",".join(str(v) for v in (np.maximum(median.max(1), 0) * UV_PER_LSB).tolist())}</RAmplitude>',
        f'\t\t\t<SAmplitude units="uV">{",".join(str(v) for v in (np.minimum(median.min(1), 0) * UV_PER_LSB).tolist())}</SAmplitude>',
        "\t\t</MeasurementTable>",
        "\t\t<MedianSamples>",
        "\t\t\t<NumberOfLeads>12</NumberOfLeads>",
        f'\t\t\t<SampleRate units="Hz">{FS}</SampleRate>',
        f"\t\t\t<ChannelSampleCountTotal>{median.shape[1]}</ChannelSampleCountTotal>",
        f'\t\t\t<Resolution units="uVperLsb">{UV_PER_LSB}</Resolution>',
        '\t\t\t<FirstValid units="ms">0</FirstValid>',
        f'\t\t\t<LastValid units="ms">{median.shape[1] * 1000 // FS - 2}</LastValid>',
        *_waveforms(median, "\t\t\t"),
        "\t\t</MedianSamples>",
        "\t</RestingECGMeasurements>",
        "\t<StripData>",
        "\t\t<NumberOfLeads>12</NumberOfLeads>",
        f'\t\t<SampleRate units="Hz">{FS}</SampleRate>',
        f"\t\t<ChannelSampleCountTotal>{strip.shape[1]}</ChannelSampleCountTotal>",
        f'\t\t<Resolution units="uVperLsb">{UV_PER_LSB}</Resolution>',
        *_waveforms(strip, "\t\t"),
        "\t\t<ArrhythmiaResults>",
        f'\t\t\t<Time units="sec">{beat_times}</Time>',
        f"\t\t\t<BeatClass>{', '.join('N' for _ in ecg.r_peaks)}</BeatClass>",
        "\t\t</ArrhythmiaResults>",
        "\t</StripData>",
        "</CardiologyXML>",
        "",
    ]
    return "\n".join(out).encode("iso-8859-1")


def write_cardiosoft_xml(path: Path, eid: str, ecg: Ecg, lat: Latents, when: datetime) -> None:
    """Write `ecg/{eid}_20205_2_0.xml`-style bytes to `path`."""
    path.write_bytes(cardiosoft_xml(eid, ecg, lat, when))


def visit_time(rng: np.random.Generator) -> datetime:
    """A plausible imaging-visit date and time (2014-2019, clinic hours)."""
    day = datetime(2014, 5, 1) + timedelta(days=int(rng.integers(0, 5 * 365)))
    return day.replace(
        hour=int(rng.integers(8, 18)),
        minute=int(rng.integers(0, 60)),
        second=int(rng.integers(0, 60)),
    )
