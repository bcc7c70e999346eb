"""GE MUSE XML, written from its published description by tests/ecg_writers.py (not by the
reader's code), around pydicom's real Mortara recording."""

import numpy as np
import pytest

from ecg_writers import MUSE_STORED, muse_xml
from ptacl.io import InputError, read_ecg
from ptacl.schema import LEADS

UPB = 4.88  # µV per count, the LeadAmplitudeUnitsPerBit of real exports


@pytest.fixture(scope="module")
def real_uv(dicom_path) -> np.ndarray:
    """The real recording, (12, 10000) µV at 1000 Hz, leads in LEADS order."""
    import pydicom

    return pydicom.dcmread(dicom_path).waveform_array(0).T


def _stored(uv: np.ndarray, leads=MUSE_STORED) -> dict[str, np.ndarray]:
    return {name: uv[LEADS.index(name)] for name in leads}


def _mv(uv: np.ndarray) -> np.ndarray:
    """What a file of UPB-µV counts holds, in mV."""
    return np.rint(uv / UPB) * UPB / 1000


@pytest.mark.parametrize("encoding", ["ISO-8859-1", "UTF-16"])
@pytest.mark.parametrize("fs", [500, 250])
def test_eight_stored_leads_at_500_and_250_hz_in_both_encodings(tmp_path, real_uv, fs, encoding):
    uv = real_uv[:, :: 1000 // fs]  # the file holds what the device sampled; no resampling here
    path = tmp_path / "ecg.xml"
    path.write_bytes(muse_xml(_stored(uv), fs=fs, encoding=encoding))
    assert "\n" in path.read_bytes().decode(encoding).split("<WaveFormData>")[2].strip()
    record = read_ecg(path)
    assert record.fs == fs and record.signal.shape == (12, 10 * fs)
    assert record.derived == ("III", "aVR", "aVL", "aVF")
    for name in MUSE_STORED:  # the Rhythm strip, not the Median beat (1111 counts everywhere)
        np.testing.assert_allclose(record.signal[LEADS.index(name)], _mv(uv[LEADS.index(name)]))
    i, ii = _mv(uv[0]), _mv(uv[1])
    derived = {"III": ii - i, "aVR": -(i + ii) / 2, "aVL": i - ii / 2, "aVF": ii - i / 2}
    for name, expected in derived.items():
        np.testing.assert_allclose(record.signal[LEADS.index(name)], expected, atol=1e-6)
    assert record.meta == {"patient_id": "0012345", "ventricular_rate": 70.0}


def test_twelve_stored_leads_are_used_as_stored(tmp_path, real_uv):
    uv = real_uv[:, ::2]
    uv[2] += 100.0  # a stored III that Einthoven's law would not give: it must be kept
    path = tmp_path / "ecg.xml"
    path.write_bytes(muse_xml(_stored(uv, LEADS)))
    record = read_ecg(path)
    assert record.derived == ()
    np.testing.assert_allclose(record.signal, _mv(uv), atol=1e-6)


def _file(tmp_path, real_uv, edit=lambda text: text, **kwargs):
    text = muse_xml(_stored(real_uv[:, ::2]), **kwargs).decode("iso-8859-1")
    path = tmp_path / "ecg.xml"
    path.write_bytes(edit(text).encode("iso-8859-1"))
    return path


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda t: t.replace("<WaveformType>Rhythm", "<WaveformType>Median"), "no Rhythm"),
        (
            lambda t: t.replace("<LeadSampleCountTotal>5000<", "<LeadSampleCountTotal>4999<"),
            "5000 samples, LeadSampleCountTotal says 4999",
        ),
        (lambda t: t.replace("MICROVOLTS", "FURLONGS"), "'FURLONGS' is not a voltage"),
        (
            lambda t: t.replace("<LeadAmplitudeUnitsPerBit>4.88", "<LeadAmplitudeUnitsPerBit>0"),
            "LeadAmplitudeUnitsPerBit> must be positive",
        ),
        (lambda t: t.replace("<WaveFormData>\n", "<WaveFormData>\n#!"), "is not base64"),
        (lambda t: t.replace("<SampleBase>500", "<SampleBase>x"), "SampleBase> missing"),
        (lambda t: t.replace("<LeadID>II<", "<LeadID>V9<"), "lead II missing"),
        (lambda t: t[: len(t) // 2], "malformed or truncated XML"),
    ],
    ids=["no-rhythm", "count", "units", "per-bit", "base64", "rate", "no-lead-ii", "truncated"],
)
def test_a_damaged_file_is_refused_naming_it_and_why(tmp_path, real_uv, edit, reason):
    path = _file(tmp_path, real_uv, edit)
    with pytest.raises(InputError, match=reason) as err:
        read_ecg(path)
    assert str(err.value).startswith(str(path))


def test_entities_are_refused_unexpanded(tmp_path, real_uv):
    bomb = '<!DOCTYPE RestingECG [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    path = _file(
        tmp_path,
        real_uv,
        lambda t: t.replace('<!DOCTYPE RestingECG SYSTEM "restecg.dtd">', bomb).replace(
            "<Site>1</Site>", "<Site>&b;</Site>"
        ),
    )
    with pytest.raises(InputError, match="refused unsafe XML"):
        read_ecg(path)


def test_a_file_beyond_the_size_cap_is_refused_unread(tmp_path, real_uv, monkeypatch):
    import ptacl.io.ecg_xml as ecg_xml  # MUSE and CardioSoft share one size cap and parser

    path = _file(tmp_path, real_uv)
    monkeypatch.setattr(ecg_xml, "MAX_BYTES", path.stat().st_size - 1)
    monkeypatch.setattr(ecg_xml, "parse", lambda *a: pytest.fail("parsed a file over the cap"))
    with pytest.raises(InputError, match="too large"):
        read_ecg(path)


def test_the_patient_id_is_read_from_the_header(tmp_path, real_uv):
    from ptacl.io.ecg import read_patient_id

    path = tmp_path / "a.xml"
    path.write_bytes(muse_xml(_stored(real_uv[:, ::2]), patient_id="MRN0042"))
    assert read_patient_id(path) == "MRN0042"
