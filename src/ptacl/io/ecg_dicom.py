"""DICOM 12-lead ECG waveform (pydicom).

`WaveformSequence` holds multiplex groups; resting ECGs carry a 10-s "RHYTHM" group and often a
"MEDIAN BEAT" group. The rhythm group is read (or, when no group is labelled, the longest one).
Lead names come from `ChannelSourceSequence[0].CodeMeaning` ("Lead I (Einthoven)", "Lead V1");
each channel's units from `ChannelSensitivityUnitsSequence` (UCUM: uV, mV, V).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ptacl.io.errors import InputError
from ptacl.io.leads import arrange_leads
from ptacl.io.records import EcgRecord, stated_rate
from ptacl.schema import LEADS

#: UCUM code -> millivolts per unit.
_TO_MV = {"uv": 1e-3, "mv": 1.0, "v": 1e3, "nv": 1e-6}


def read_dicom_ecg(path: Path) -> EcgRecord:
    """Read the rhythm group of a DICOM waveform file (see module docstring)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError) as err:
        raise InputError(path, f"not a readable DICOM file ({err})") from None
    groups = ds.get("WaveformSequence")
    if not groups:
        raise InputError(path, "DICOM file holds no WaveformSequence (not a waveform object)")
    rates = [_group_rate(g, k, path) for k, g in enumerate(groups)]
    index = _rhythm_group(groups, rates)
    group = groups[index]
    try:
        # (samples, channels), already scaled by sensitivity, correction factor and baseline.
        data = np.asarray(ds.waveform_array(index), dtype=np.float64).T
    except Exception as err:  # pydicom raises assorted errors for damaged waveform data
        raise InputError(path, f"waveform group {index} unreadable ({err})") from None
    names, scale = [], []
    for k, channel in enumerate(group.ChannelDefinitionSequence):
        try:
            names.append(str(channel.ChannelSourceSequence[0].CodeMeaning))
        except (AttributeError, IndexError):
            names.append(f"channel {k}")
        scale.append(_channel_to_mv(channel, path))
    data *= np.asarray(scale)[:, None]
    fs = rates[index]
    signal, derived = arrange_leads(data, names, path)
    patient = str(ds.get("PatientID", "") or "").strip()
    meta = {"patient_id": patient} if patient else {}
    return EcgRecord(signal=signal, fs=fs, leads=LEADS, source=path, derived=derived, meta=meta)


def read_dicom_patient_id(path: Path) -> str:
    """The file's own `PatientID` ('' when absent or unreadable), without its waveforms."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"])
    except Exception:  # damaged or not DICOM: `read_dicom_ecg` names the problem
        return ""
    return str(ds.get("PatientID", "") or "").strip()


def _group_rate(group, index: int, path: Path) -> float:
    """A waveform group's SamplingFrequency, which every group must state (PS3.3 C.10.9)."""
    return stated_rate(
        group.get("SamplingFrequency"), path, f"waveform group {index}: SamplingFrequency"
    )


def _rhythm_group(groups, rates: list[float]) -> int:
    labels = [str(g.get("MultiplexGroupLabel", "")).strip().upper() for g in groups]
    if "RHYTHM" in labels:
        return labels.index("RHYTHM")
    lengths = [int(g.get("NumberOfWaveformSamples", 0) or 0) / r for g, r in zip(groups, rates)]
    return int(np.argmax(lengths))


def _channel_to_mv(channel, path: Path) -> float:
    units = channel.get("ChannelSensitivityUnitsSequence")
    if not units:
        # No units: DICOM PS3.3 defaults ECG channels to microvolts in practice.
        return 1e-3
    code = str(units[0].get("CodeValue", "")).strip()
    if code.lower() not in _TO_MV:
        raise InputError(path, f"channel units {code!r} are not a voltage")
    return _TO_MV[code.lower()]
