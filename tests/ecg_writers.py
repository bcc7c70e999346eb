"""ECG files written from the formats' published descriptions (/work/shared/FORMATS.md), by code
that shares nothing with ptacl's readers: GE MUSE XML and CODE-15%-style HDF5."""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: The leads a MUSE export stores; III, aVR, aVL and aVF are left to the reader to derive.
MUSE_STORED = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
#: CODE-15%'s lead order along the last axis of `tracings`.
CODE15_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def _lead_data(name: str, counts: Sequence[int], units_per_bit: float) -> str:
    raw = struct.pack(f"<{len(counts)}h", *(int(c) for c in counts))  # little-endian int16
    # encodebytes wraps every 76 characters, as real exports wrap their base64
    text = base64.encodebytes(raw).decode("ascii")
    return f"""    <LeadData>
      <LeadByteCountTotal>{len(raw)}</LeadByteCountTotal>
      <LeadTimeOffset>0</LeadTimeOffset>
      <LeadSampleCountTotal>{len(counts)}</LeadSampleCountTotal>
      <LeadAmplitudeUnitsPerBit>{units_per_bit}</LeadAmplitudeUnitsPerBit>
      <LeadAmplitudeUnits>MICROVOLTS</LeadAmplitudeUnits>
      <LeadHighLimit>32767</LeadHighLimit>
      <LeadLowLimit>-32768</LeadLowLimit>
      <LeadID>{name}</LeadID>
      <LeadOffsetFirstSample>0</LeadOffsetFirstSample>
      <FirstSampleBaseline>0</FirstSampleBaseline>
      <LeadSampleSize>2</LeadSampleSize>
      <LeadOff>FALSE</LeadOff>
      <BaselineSway>FALSE</BaselineSway>
      <LeadDataCRC32>0</LeadDataCRC32>
      <WaveFormData>
{text}      </WaveFormData>
    </LeadData>"""


def _waveform(kind: str, fs: int, leads: dict[str, np.ndarray], units_per_bit: float) -> str:
    blocks = "\n".join(_lead_data(n, c, units_per_bit) for n, c in leads.items())
    return f"""  <Waveform>
    <WaveformType>{kind}</WaveformType>
    <WaveformStartTime>0</WaveformStartTime>
    <NumberofLeads>{len(leads)}</NumberofLeads>
    <SampleType>CONTINUOUS_SAMPLES</SampleType>
    <SampleBase>{fs}</SampleBase>
    <SampleExponent>0</SampleExponent>
    <HighPassFilter>16</HighPassFilter>
    <LowPassFilter>150</LowPassFilter>
    <ACFilter>50</ACFilter>
{blocks}
  </Waveform>"""


def muse_xml(
    uv: dict[str, np.ndarray],
    *,
    fs: int = 500,
    units_per_bit: float = 4.88,
    encoding: str = "ISO-8859-1",
    patient_id: str = "0012345",
) -> bytes:
    """A MUSE RestingECG document: a Median beat (values unmistakable if read by mistake) then
    the Rhythm strip of `uv` (lead name -> microvolts), stored as counts of `units_per_bit`."""
    counts = {n: np.rint(np.asarray(v) / units_per_bit).astype(int) for n, v in uv.items()}
    median = {n: np.full(fs * 6 // 5, 1111) for n in uv}
    text = f"""<?xml version="1.0" encoding="{encoding}"?>
<!DOCTYPE RestingECG SYSTEM "restecg.dtd">
<RestingECG>
  <MuseInfo><MuseVersion>9.0.9.18167</MuseVersion></MuseInfo>
  <PatientDemographics>
    <PatientID>{patient_id}</PatientID>
    <PatientAge>63</PatientAge><AgeUnits>YEARS</AgeUnits><Gender>FEMALE</Gender>
    <PatientLastName>Müller-Ångström</PatientLastName>
  </PatientDemographics>
  <TestDemographics>
    <DataType>RESTING</DataType><Site>1</Site><AcquisitionDevice>MAC55</AcquisitionDevice>
    <AcquisitionTime>09:41:07</AcquisitionTime><AcquisitionDate>03-03-2016</AcquisitionDate>
  </TestDemographics>
  <RestingECGMeasurements>
    <VentricularRate>70</VentricularRate>
    <QRSDuration>92</QRSDuration>
    <QTInterval>388</QTInterval>
  </RestingECGMeasurements>
{_waveform("Median", fs, median, units_per_bit)}
{_waveform("Rhythm", fs, counts, units_per_bit)}
</RestingECG>
"""
    if encoding.upper() == "UTF-16":
        return text.encode("utf-16")  # Python writes the byte-order mark first
    return text.encode(encoding)


def write_code15(
    path: Path,
    recordings_mv: Sequence[np.ndarray],
    exam_ids: Sequence[int],
    *,
    samples: int = 4096,
    dataset: str = "tracings",
) -> Path:
    """A CODE-15%-style file: `dataset` (N, samples, 12) float32 mV, each (12, S) recording
    centred in zeros, and `exam_id` (N,) int64."""
    import h5py

    tracings = np.zeros((len(recordings_mv), samples, 12), dtype=np.float32)
    for k, rec in enumerate(recordings_mv):
        start = (samples - rec.shape[1]) // 2
        tracings[k, start : start + rec.shape[1]] = np.asarray(rec).T
    with h5py.File(path, "w") as f:
        f.create_dataset(dataset, data=tracings, chunks=(1, samples, 12))
        f.create_dataset("exam_id", data=np.asarray(exam_ids, dtype=np.int64))
    return path
