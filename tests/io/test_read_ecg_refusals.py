"""Every refusal of the ECG readers not tested elsewhere: one line naming the file, then the
reason (the table "Refusals and the evidence they rest on" in docs/reliability.md)."""

from __future__ import annotations

import numpy as np
import pytest

from ptacl.io import InputError, read_ecg
from ptacl.schema import LEADS


def _strip_edit(old: bytes, new: bytes, *, count: int = 1):
    """A damage: replace `old` by `new` inside <StripData> (the median beat stays intact)."""

    def damage(text: bytes) -> bytes:
        at = text.index(b"<StripData>")
        return text[:at] + text[at:].replace(old, new, count)

    return damage


def _drop_strip_leads(text: bytes) -> bytes:
    at, end = text.index(b"<StripData>"), text.index(b"</StripData>")
    first = text.index(b"<WaveformData", at)
    last = text.rindex(b"</WaveformData>", at, end) + len(b"</WaveformData>")
    return text[:first] + text[last:]


def _shorten_v6(text: bytes) -> bytes:
    at = text.index(b'<WaveformData lead="V6">', text.index(b"<StripData>"))
    end = text.index(b"</WaveformData>", at)
    return text[:at] + text[at:end].rsplit(b",", 1)[0] + text[end:]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda t: t.replace(b"CardiologyXML>", b"PhilipsECG>"),
         r"root element <PhilipsECG>, expected <CardiologyXML>"),
        (_strip_edit(b'units="uVperLsb"', b'units="furlong"'), r"unknown Resolution units 'furlong'"),
        (_strip_edit(b'<WaveformData lead="V2">', b"<WaveformData>"),
         r"a <StripData><WaveformData> element has no lead attribute"),
        (_drop_strip_leads, r"<StripData> holds no <WaveformData>"),
        (_shorten_v6, r"strip leads have different lengths \[4999, 5000\]"),
        (_strip_edit(b"<ChannelSampleCountTotal>5000", b"<ChannelSampleCountTotal>2500"),
         r"strip leads hold 5000 samples, ChannelSampleCountTotal says 2500"),
        (_strip_edit(b'<SampleRate units="Hz">500', b'<SampleRate units="Hz">fast'),
         r"<StripData><SampleRate> missing or not a number: 'fast'"),
        (_strip_edit(b'<Resolution units="uVperLsb">5', b'<Resolution units="uVperLsb">0'),
         r"<StripData><Resolution> must be positive, got 0.0"),
        (_strip_edit(b'<WaveformData lead="V2">\n\t\t\t', b'<WaveformData lead="V2">' + b"9" * 20 + b","),
         r"lead V2: sample '99999999999999999999' exceeds a 32-bit integer"),
    ],
    ids=["root", "resolution-units", "no-lead-name", "no-leads", "lengths", "sample-count",
         "rate-nan", "resolution-0", "huge-sample"],
)  # fmt: skip
def test_cardiosoft_xml_refusals(write_xml, strip_counts, tmp_path, damage, reason):
    path = tmp_path / "damaged.xml"
    path.write_bytes(damage(write_xml(strip_counts).read_bytes()))
    with pytest.raises(InputError, match=rf"^{path}: {reason}"):
        read_ecg(path)


def test_an_oversized_xml_is_refused_unread(write_xml, strip_counts, monkeypatch):
    import ptacl.io.ecg_xml as ecg_xml

    path = write_xml(strip_counts)
    monkeypatch.setattr(ecg_xml, "MAX_BYTES", 1000)
    with pytest.raises(InputError, match=rf"^{path}: \d+ bytes is too large for a resting-ECG"):
        read_ecg(path)


def test_paths_that_are_no_ecg(tmp_path):
    with pytest.raises(InputError, match=rf"^{tmp_path}: is a folder, expected an ECG file"):
        read_ecg(tmp_path)
    path = tmp_path / "ecg.txt"
    path.write_text("I,II\n1,2\n")
    with pytest.raises(InputError, match=rf"^{path}: unknown ECG format '.txt'"):
        read_ecg(path)


def test_array_refusals(tmp_path, strip_counts):
    mv = strip_counts * 5e-3
    path = tmp_path / "two.npz"
    np.savez(path, a=mv, b=mv)
    with pytest.raises(InputError, match=rf"^{path}: no 'signal' array among \['a', 'b'\]"):
        read_ecg(path, fs=500)
    path = tmp_path / "junk.npy"
    path.write_bytes(b"not an array at all")
    with pytest.raises(InputError, match=rf"^{path}: unreadable array file"):
        read_ecg(path, fs=500)
    path = tmp_path / "twice.npz"
    np.savez(path, signal=mv, leads=np.array([*LEADS[:11], "I"]))
    with pytest.raises(InputError, match=rf"^{path}: lead I appears twice \('I', 'I'\)"):
        read_ecg(path, fs=500)


def _dicom(dicom_path, tmp_path, edit):
    import pydicom

    ds = pydicom.dcmread(dicom_path)
    edit(ds)
    path = tmp_path / "edited.dcm"
    ds.save_as(path)
    return path


def test_dicom_refusals(dicom_path, tmp_path):
    path = tmp_path / "cut.dcm"
    data = dicom_path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated inside the waveform data
    with pytest.raises(InputError, match=rf"^{path}: not a readable DICOM file"):
        read_ecg(path)
    path = _dicom(dicom_path, tmp_path, lambda ds: delattr(ds, "WaveformSequence"))
    with pytest.raises(InputError, match=rf"^{path}: DICOM file holds no WaveformSequence"):
        read_ecg(path)

    def pressure(ds):
        channel = ds.WaveformSequence[0].ChannelDefinitionSequence[3]
        channel.ChannelSensitivityUnitsSequence[0].CodeValue = "mm[Hg]"

    path = _dicom(dicom_path, tmp_path, pressure)
    with pytest.raises(InputError, match=rf"^{path}: channel units 'mm\[Hg\]' are not a voltage"):
        read_ecg(path)

    def no_code(ds):
        channel = ds.WaveformSequence[0].ChannelDefinitionSequence[3]
        del channel.ChannelSensitivityUnitsSequence[0].CodeValue

    path = _dicom(dicom_path, tmp_path, no_code)
    with pytest.raises(InputError, match=rf"^{path}: channel units '' are not a voltage"):
        read_ecg(path)


def test_wfdb_channel_that_is_not_a_voltage(tmp_path, strip_counts):
    import wfdb

    units = ["mV"] * 11 + ["mmHg"]
    wfdb.wrsamp("rec", fs=500, units=units, sig_name=list(LEADS),
                p_signal=(strip_counts * 5e-3).T, fmt=["16"] * 12, write_dir=str(tmp_path))  # fmt: skip
    with pytest.raises(InputError, match=rf"^{tmp_path / 'rec.hea'}: lead V6: units 'mmHg'"):
        read_ecg(tmp_path / "rec.hea")
