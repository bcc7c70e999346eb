"""UK Biobank resting ECG (field 20205): GE CardioSoft XML.

A file holds two sets of `WaveformData` elements: the 600-sample median beat under
`RestingECGMeasurements/MedianSamples` and the 10-s rhythm strip under `StripData`. The model
wants the strip, so only `StripData` is read. Samples are integers in units of `Resolution`
(µV per LSB in UK Biobank files), read from the file rather than assumed.

Parsing goes through defusedxml: a document that declares entities (the "billion laughs"
expansion bomb) or fetches external resources is refused before anything is expanded.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

import numpy as np
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse, parse

from ptacl.io.errors import InputError
from ptacl.io.leads import arrange_leads
from ptacl.io.records import EcgRecord
from ptacl.schema import LEADS

#: Real files are ~300 kB; anything this large is not a resting ECG and is refused unread.
MAX_BYTES = 64 * 2**20

#: Resolution units -> millivolts per unit.
_TO_MV = {"uvperlsb": 1e-3, "µvperlsb": 1e-3, "nvperlsb": 1e-6, "mvperlsb": 1.0}
#: SampleRate units -> Hz per unit (CardioSoft writes units="Hz"; a missing unit means Hz).
_TO_HZ = {"hz": 1.0, "khz": 1000.0}


def parse_ecg_xml(path: Path) -> Element:
    """The root of a resting-ECG XML file (CardioSoft or MUSE), size-capped before parsing and
    parsed by defusedxml; an InputError naming the file for anything else."""
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise InputError(path, f"{size} bytes is too large for a resting-ECG XML file")
    try:
        # The parser honours the encoding the header declares (ISO-8859-1 in UK Biobank files,
        # ISO-8859-1 or UTF-16 in MUSE exports).
        return parse(str(path)).getroot()
    except DefusedXmlException as err:
        raise InputError(path, f"refused unsafe XML ({type(err).__name__}: {err})") from None
    except ParseError as err:
        raise InputError(path, f"malformed or truncated XML ({err})") from None


def read_cardiosoft_xml(path: Path) -> EcgRecord:
    """Read the rhythm strip of a CardioSoft XML file (see module docstring)."""
    root = parse_ecg_xml(path)
    if root.tag != "CardiologyXML":
        raise InputError(
            path,
            f"root element <{root.tag}>, expected <CardiologyXML> (CardioSoft) or <RestingECG> "
            "(GE MUSE); Philips XML is not read",
        )
    strip = root.find("StripData")
    if strip is None:
        raise InputError(path, "no <StripData> (10-s rhythm strip) element")
    # raises when missing, so find() below succeeds
    fs = positive_number(strip, "SampleRate", path, "<StripData><SampleRate>")
    rate_units = (strip.find("SampleRate").get("units") or "Hz").replace(" ", "").lower()
    if rate_units not in _TO_HZ:
        raise InputError(path, f"unknown SampleRate units {rate_units!r}; known: Hz, kHz")
    fs *= _TO_HZ[rate_units]
    resolution = positive_number(strip, "Resolution", path, "<StripData><Resolution>")
    units = (strip.find("Resolution").get("units") or "uVperLsb").replace(" ", "").lower()
    if units not in _TO_MV:
        raise InputError(path, f"unknown Resolution units {units!r}")
    names, rows = [], []
    for wave in strip.findall("WaveformData"):
        lead = wave.get("lead")
        if lead is None:
            raise InputError(path, "a <StripData><WaveformData> element has no lead attribute")
        names.append(lead)
        rows.append(_samples(wave, path))
    counts = stack_leads(rows, path, "strip", "<StripData> holds no <WaveformData>")  # (C, S)
    expected = strip.findtext("ChannelSampleCountTotal")
    if expected is not None and expected.strip().isdigit() and int(expected) != counts.shape[1]:
        raise InputError(
            path,
            f"strip leads hold {counts.shape[1]} samples, ChannelSampleCountTotal says {expected}",
        )
    data = counts.astype(np.float64) * (resolution * _TO_MV[units])
    return xml_record(data, names, fs, path, xml_meta(root, "PatientInfo/PID"))


def stack_leads(rows: list[np.ndarray], path: Path, which: str, empty: str) -> np.ndarray:
    """The XML's lead rows as one (C, S) array; InputError `empty` when there are none, or
    naming the lengths when the `which` leads differ in length."""
    if not rows:
        raise InputError(path, empty)
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise InputError(path, f"{which} leads have different lengths {sorted(lengths)}")
    return np.stack(rows)


def xml_record(
    data: np.ndarray, names: list[str], fs: float, path: Path, meta: dict[str, object]
) -> EcgRecord:
    """The record of a resting-ECG XML's strip: `data` (C, S) in mV, channels named `names`,
    put in LEADS order with the missing limb leads derived (`arrange_leads`)."""
    signal, derived = arrange_leads(data, names, path)
    return EcgRecord(signal=signal, fs=fs, leads=LEADS, source=path, derived=derived, meta=meta)


#: where an ECG XML names its patient: CardioSoft, GE MUSE
_PATIENT_ID_PATHS = (["PatientInfo", "PID"], ["PatientDemographics", "PatientID"])
#: the waveform blocks, which real files put after the patient's details
_WAVEFORM_TAGS = ("StripData", "Waveform")


def read_xml_patient_id(path: Path) -> str:
    """The file's own patient id, CardioSoft `PatientInfo/PID` or MUSE
    `PatientDemographics/PatientID` ('' when absent or unreadable: the reader then names the
    problem), read up to the first waveform block only."""
    if path.stat().st_size > MAX_BYTES:
        return ""
    where: list[str] = []
    try:
        with open(path, "rb") as f:  # closed here, not whenever the parser is collected
            for event, element in iterparse(f, events=("start", "end")):
                if event == "start":
                    where.append(element.tag)
                    if element.tag in _WAVEFORM_TAGS:
                        break
                    continue
                if where[1:] in _PATIENT_ID_PATHS:
                    return (element.text or "").strip()
                where.pop()
    except (DefusedXmlException, ParseError, OSError):
        pass
    return ""


def xml_meta(root: Element, patient_path: str) -> dict[str, object]:
    """The patient id (at `patient_path`) and the device's ventricular rate
    (`RestingECGMeasurements/VentricularRate`, in CardioSoft and MUSE files alike), where the
    file gives them."""
    meta: dict[str, object] = {}
    patient = (root.findtext(patient_path) or "").strip()
    if patient:
        meta["patient_id"] = patient
    rate = (root.findtext("RestingECGMeasurements/VentricularRate") or "").strip()
    try:
        if float(rate) > 0:
            meta["ventricular_rate"] = float(rate)
    except ValueError:
        pass  # absent or not a number: no cross-check of the sampling rate
    return meta


def positive_number(parent: Element, tag: str, path: Path, where: str) -> float:
    """The positive number in `parent`'s <`tag`>; an InputError naming `where` (the element as
    the user would look for it) when it is missing, not a number or not positive."""
    text = parent.findtext(tag)
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise InputError(path, f"{where} missing or not a number: {text!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise InputError(path, f"{where} must be positive, got {value}")
    return value


def _samples(wave: Element, path: Path) -> np.ndarray:
    # Comma-separated integers, often wrapped with newlines and tabs.
    tokens = "".join((wave.text or "").split()).strip(",").split(",")
    if tokens == [""]:
        raise InputError(path, f"lead {wave.get('lead')}: <WaveformData> holds no samples")
    try:
        return np.array([int(t) for t in tokens], dtype=np.int32)
    except OverflowError:
        big = max(tokens, key=lambda t: abs(int(t)))
        raise InputError(
            path, f"lead {wave.get('lead')}: sample {big[:24]!r} exceeds a 32-bit integer"
        ) from None
    except ValueError:
        bad = next(t for t in tokens if not t.lstrip("+-").isdigit())
        raise InputError(
            path, f"lead {wave.get('lead')}: sample {bad[:20]!r} is not an integer"
        ) from None
