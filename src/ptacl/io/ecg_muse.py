"""GE MUSE XML: the resting-ECG export of most hospitals' ECG management systems.

Root `<RestingECG>`; `PatientDemographics/PatientID`; usually two `<Waveform>` sections,
`WaveformType` `Median` (one beat) and `Rhythm` (the 10-s strip). The model wants the strip, so
only the `Rhythm` section is read. Its rate is `SampleBase` x 10^`SampleExponent` Hz (500 or
250); each `LeadData` holds `LeadID`, `LeadSampleCountTotal`, `LeadAmplitudeUnitsPerBit`,
`LeadAmplitudeUnits` and `WaveFormData`: base64 of little-endian signed 16-bit integers,
wrapped over lines. Usually 8 leads are stored (I, II, V1-V6) and III, aVR, aVL, aVF are
derived by Einthoven's and Goldberger's laws (`ptacl.io.leads`); stored ones are used as they
are. The rate is returned as stored: `ptacl.ecg.preprocess_ecg` resamples to the model's, as it
does for DICOM's 1000 Hz.

Files are declared ISO-8859-1 or UTF-16 (with a byte-order mark): the XML parser honours both.
Parsing goes through defusedxml, after the size check CardioSoft files get (`MAX_BYTES`).
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from xml.etree.ElementTree import Element

import numpy as np

from ptacl.io.ecg_xml import parse_ecg_xml, positive_number, stack_leads, xml_meta, xml_record
from ptacl.io.errors import InputError
from ptacl.io.records import EcgRecord

ROOT = "RestingECG"
#: LeadAmplitudeUnits -> millivolts per unit (MUSE writes MICROVOLTS).
_TO_MV = {"microvolts": 1e-3, "uv": 1e-3, "millivolts": 1.0, "mv": 1.0, "nanovolts": 1e-6}


def read_muse_xml(path: Path) -> EcgRecord:
    """Read the rhythm strip of a GE MUSE XML file (see module docstring)."""
    root = parse_ecg_xml(path)
    if root.tag != ROOT:
        raise InputError(path, f"root element <{root.tag}>, expected <{ROOT}>")
    wave = _rhythm(root, path)
    fs = _rate(wave, path)
    names, rows = [], []
    for k, lead in enumerate(wave.findall("LeadData")):
        name = (lead.findtext("LeadID") or "").strip()
        if not name:
            raise InputError(path, f"Rhythm <LeadData> {k + 1} has no <LeadID>")
        names.append(name)
        rows.append(_lead_mv(lead, name, path))
    data = stack_leads(rows, path, "rhythm", "the Rhythm <Waveform> holds no <LeadData>")
    return xml_record(data, names, fs, path, xml_meta(root, "PatientDemographics/PatientID"))


def _rhythm(root: Element, path: Path) -> Element:
    """The `<Waveform>` whose `WaveformType` is Rhythm (the median beat is not a recording)."""
    waves = root.findall("Waveform")
    kinds = [(w.findtext("WaveformType") or "").strip() for w in waves]
    rhythm = [w for w, kind in zip(waves, kinds) if kind.lower() == "rhythm"]
    if not rhythm:
        raise InputError(path, f"no Rhythm <Waveform> (10-s strip); waveform types: {kinds}")
    if len(rhythm) > 1:
        raise InputError(path, f"{len(rhythm)} Rhythm <Waveform> sections, expected one")
    return rhythm[0]


def _rate(wave: Element, path: Path) -> float:
    base = positive_number(wave, "SampleBase", path, "<SampleBase>")
    exponent = (wave.findtext("SampleExponent") or "0").strip()
    if not exponent.lstrip("+-").isdigit():
        raise InputError(path, f"<SampleExponent> is not an integer: {exponent!r}")
    return base * 10.0 ** int(exponent)


def _lead_mv(lead: Element, name: str, path: Path) -> np.ndarray:
    """One lead's samples in mV: the base64 int16 counts times units per bit."""
    text = "".join((lead.findtext("WaveFormData") or "").split())  # lines are wrapped
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise InputError(path, f"lead {name}: <WaveFormData> is not base64 ({err})") from None
    if len(raw) % 2:
        raise InputError(path, f"lead {name}: {len(raw)} bytes, not a whole number of int16")
    counts = np.frombuffer(raw, dtype="<i2")
    stated = (lead.findtext("LeadSampleCountTotal") or "").strip()
    if stated.isdigit() and int(stated) != len(counts):
        raise InputError(
            path, f"lead {name}: {len(counts)} samples, LeadSampleCountTotal says {stated}"
        )
    per_bit = positive_number(
        lead, "LeadAmplitudeUnitsPerBit", path, f"lead {name}: <LeadAmplitudeUnitsPerBit>"
    )
    units = (lead.findtext("LeadAmplitudeUnits") or "MICROVOLTS").strip()
    if units.lower() not in _TO_MV:
        raise InputError(path, f"lead {name}: LeadAmplitudeUnits {units!r} is not a voltage")
    return counts.astype(np.float64) * (per_bit * _TO_MV[units.lower()])
