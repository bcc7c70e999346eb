import time
import tracemalloc

import numpy as np
import pytest

from ptacl.io import InputError, read_ecg
from ptacl.io.leads import standard_lead
from ptacl.schema import LEADS


def test_xml_reads_strip_not_median_in_millivolts(write_xml, strip_counts):
    rec = read_ecg(write_xml(strip_counts))
    assert rec.signal.shape == (12, 5000) and rec.signal.dtype == np.float32
    assert rec.fs == 500 and rec.leads == LEADS and rec.derived == ()
    np.testing.assert_allclose(rec.signal, strip_counts * 5e-3, atol=1e-6)


def test_xml_resolution_is_read_from_the_file(write_xml, strip_counts):
    rec = read_ecg(write_xml(strip_counts, resolution=2.5))
    np.testing.assert_allclose(rec.signal, strip_counts * 2.5e-3, atol=1e-6)


def test_xml_leads_matched_by_name_not_position(write_xml, strip_counts):
    order = np.random.default_rng(0).permutation(12)
    rec = read_ecg(write_xml(strip_counts[order], leads=[LEADS[k] for k in order]))
    np.testing.assert_allclose(rec.signal, strip_counts * 5e-3, atol=1e-6)


def test_missing_limb_leads_are_derived_from_i_and_ii(write_xml, strip_counts):
    keep = [k for k, lead in enumerate(LEADS) if lead not in {"III", "aVR", "aVL", "aVF"}]
    rec = read_ecg(write_xml(strip_counts[keep], leads=[LEADS[k] for k in keep]))
    assert rec.derived == ("III", "aVR", "aVL", "aVF")
    # The recorder computed these leads the same way, up to its 5-µV rounding.
    np.testing.assert_allclose(rec.signal, strip_counts * 5e-3, atol=0.011)


def test_missing_precordial_lead_is_an_error(write_xml, strip_counts):
    keep = [k for k, lead in enumerate(LEADS) if lead != "V3"]
    path = write_xml(strip_counts[keep], leads=[LEADS[k] for k in keep])
    with pytest.raises(InputError, match=r"V3 missing and cannot be derived") as err:
        read_ecg(path)
    assert str(err.value).startswith(str(path))


def test_limb_lead_missing_without_i_is_an_error(write_xml, strip_counts):
    keep = [k for k, lead in enumerate(LEADS) if lead not in {"I", "aVL"}]
    path = write_xml(strip_counts[keep], leads=[LEADS[k] for k in keep])
    with pytest.raises(InputError, match=r"lead I missing"):
        read_ecg(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nope_20205_2_0.xml"
    with pytest.raises(InputError, match=rf"^{path}: file not found"):
        read_ecg(path)


def test_truncated_xml(tmp_path, write_xml, strip_counts):
    good = write_xml(strip_counts).read_bytes()
    path = tmp_path / "cut.xml"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(InputError, match=rf"^{path}: malformed or truncated XML"):
        read_ecg(path)


def test_xml_declaring_an_external_dtd_is_read(tmp_path, write_xml, strip_counts):
    text = write_xml(strip_counts).read_bytes()
    doctype = b'<!DOCTYPE CardiologyXML SYSTEM "CardiologyXML.dtd">\n<CardiologyXML>'
    path = tmp_path / "dtd.xml"
    path.write_bytes(text.replace(b"<CardiologyXML>", doctype, 1))
    np.testing.assert_allclose(read_ecg(path).signal, strip_counts * 5e-3, atol=1e-6)


def test_xml_without_strip(tmp_path):
    path = tmp_path / "x.xml"
    path.write_text('<?xml version="1.0"?><CardiologyXML><PatientInfo/></CardiologyXML>')
    with pytest.raises(InputError, match=r"no <StripData>"):
        read_ecg(path)


def test_xml_with_non_integer_sample(write_xml, strip_counts, tmp_path):
    text = (
        write_xml(strip_counts)
        .read_bytes()
        .replace(b'<WaveformData lead="V2">', b'<WaveformData lead="V2">12a,')
    )
    path = tmp_path / "bad.xml"
    path.write_bytes(text)
    with pytest.raises(InputError, match=r"'12a' is not an integer"):
        read_ecg(path)


def test_xml_entity_bomb_refused_fast_with_little_memory(tmp_path):
    entities = ['<!ENTITY lol0 "lollollollollollollollollollol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    bomb = (
        '<?xml version="1.0"?>\n<!DOCTYPE CardiologyXML [\n'
        + "\n".join(entities)
        + "\n]>\n<CardiologyXML><StripData>&lol9;</StripData></CardiologyXML>"
    )  # would expand to 3 GB
    path = tmp_path / "bomb.xml"
    path.write_text(bomb)
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(InputError, match=rf"^{path}: refused unsafe XML \(EntitiesForbidden"):
        read_ecg(path)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1.0 and peak < 5 * 2**20


def test_dicom_rhythm_group_in_millivolts(dicom_path):
    import pydicom

    rec = read_ecg(dicom_path)
    assert rec.signal.shape == (12, 10000) and rec.fs == 1000.0 and rec.derived == ()
    ds = pydicom.dcmread(dicom_path)
    names = [
        c.ChannelSourceSequence[0].CodeMeaning
        for c in ds.WaveformSequence[0].ChannelDefinitionSequence
    ]
    assert names[0] == "Lead I (Einthoven)"
    expected = ds.waveform_array(0).T / 1000.0  # µV -> mV; the file lists leads in LEADS order
    np.testing.assert_allclose(rec.signal, expected, atol=1e-6)
    assert 0.5 < np.ptp(rec.signal[1]) < 5  # lead II spans millivolts, not microvolts


def test_wfdb_ptbxl_style_names(tmp_path, strip_counts):
    import wfdb

    mv = strip_counts * 5e-3
    names = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    order = [6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 4, 5]
    wfdb.wrsamp(
        "00001_hr",
        fs=500,
        units=["mV"] * 12,
        sig_name=[names[k] for k in order],
        p_signal=mv[order].T,
        fmt=["16"] * 12,
        adc_gain=[1000.0] * 12,
        baseline=[0] * 12,
        write_dir=str(tmp_path),
    )
    for path in (tmp_path / "00001_hr", tmp_path / "00001_hr.hea", tmp_path / "00001_hr.dat"):
        rec = read_ecg(path)
        assert rec.fs == 500 and rec.signal.shape == (12, 5000)
        np.testing.assert_allclose(rec.signal, mv, atol=1e-3)


def test_wfdb_without_its_signal_file(tmp_path, strip_counts):
    import wfdb

    wfdb.wrsamp("rec", fs=500, units=["mV"] * 12, sig_name=list(LEADS),
                p_signal=(strip_counts * 5e-3).T, fmt=["16"] * 12, write_dir=str(tmp_path))  # fmt: skip
    (tmp_path / "rec.dat").unlink()
    with pytest.raises(InputError, match=rf"^{tmp_path / 'rec.hea'}: unreadable WFDB record"):
        read_ecg(tmp_path / "rec.hea")


def test_npy_needs_fs(tmp_path, strip_counts):
    path = tmp_path / "a.npy"
    np.save(path, strip_counts * 5e-3)
    with pytest.raises(InputError, match=rf"^{path}: .*pass fs"):
        read_ecg(path)
    rec = read_ecg(path, fs=500)
    assert rec.fs == 500 and rec.signal.shape == (12, 5000)
    np.save(path, (strip_counts * 5e-3).T)  # (S, 12) is transposed
    np.testing.assert_allclose(read_ecg(path, fs=500).signal, rec.signal)


def test_npz_with_leads_and_fs(tmp_path, strip_counts):
    path = tmp_path / "a.npz"
    names = np.array(["Lead I", "lead ii", *[f"V{k}" for k in range(1, 7)]])
    keep = [0, 1, 6, 7, 8, 9, 10, 11]
    np.savez(path, signal=strip_counts[keep] * 5e-3, leads=names, fs=500.0)
    rec = read_ecg(path)
    assert rec.fs == 500 and rec.derived == ("III", "aVR", "aVL", "aVF")
    with pytest.raises(InputError, match=r"fs=250 given but the file says 500"):
        read_ecg(path, fs=250)


def test_nan_samples_rejected(tmp_path, strip_counts):
    signal = strip_counts * 5e-3
    signal[4, 100] = np.nan
    signal[7, 5] = np.inf
    path = tmp_path / "a.npy"
    np.save(path, signal)
    with pytest.raises(InputError, match=r"2 NaN or infinite samples in leads \['aVL', 'V2'\]"):
        read_ecg(path, fs=500)


def test_fs_disagreeing_with_the_file(write_xml, strip_counts):
    with pytest.raises(InputError, match=r"fs=1000 given but the file says 500"):
        read_ecg(write_xml(strip_counts), fs=1000)


@pytest.mark.parametrize(
    ("name", "lead"),
    [
        ("Lead I (Einthoven)", "I"),
        ("Lead II", "II"),
        ("Lead III (Einthoven)", "III"),
        ("AVR", "aVR"),
        ("aVL", "aVL"),
        ("MDC_ECG_LEAD_aVF", "aVF"),
        ("v1", "V1"),
        ("Lead V6", "V6"),
        ("X", None),
        ("Lead V7", None),
    ],
)
def test_lead_aliases(name, lead):
    assert standard_lead(name) == lead


def test_input_error_survives_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(InputError("a/b.xml", "file not found")))
    assert isinstance(err, ValueError) and str(err) == "a/b.xml: file not found"
    assert err.reason == "file not found" and str(err.source) == "a/b.xml"


def test_read_patient_id_reads_the_header_only(write_xml, strip_counts, dicom_path, tmp_path):
    from ptacl.io.ecg import read_patient_id

    path = write_xml(strip_counts)
    text = path.read_bytes().replace(b"<PatientInfo>", b"<PatientInfo><PID> 0042 </PID>", 1)
    path.write_bytes(text)
    assert read_patient_id(path) == "0042"
    # a strip too damaged to read still gives the id: parsing stops at <StripData>
    path.write_bytes(text[: text.index(b"<StripData>") + 40])
    assert read_patient_id(path) == "0042"
    assert read_patient_id(dicom_path) == "642341"  # pydicom's recording: its PatientID
    np.save(tmp_path / "a.npy", strip_counts)
    assert read_patient_id(tmp_path / "a.npy") == ""  # arrays name nobody
    (tmp_path / "bomb.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aa">]><CardiologyXML/>'
    )
    assert read_patient_id(tmp_path / "bomb.xml") == ""  # refused by defusedxml, not expanded


# -- odd rates and arrays: one line naming the file and the reason, never a library's own text --


@pytest.mark.parametrize(
    ("fs", "reason"),
    [
        ([500, 500], r"the stored 'fs' must be one number, got 2 values \[500, 500\]"),
        ("fast", r"the stored 'fs' 'fast' is not a number"),
        (0, r"the stored 'fs' must be a positive number of Hz, got 0"),
        (-500, r"the stored 'fs' must be a positive number of Hz, got -500"),
        (np.nan, r"the stored 'fs' must be a positive number of Hz, got nan"),
        (np.inf, r"the stored 'fs' must be a positive number of Hz, got inf"),
    ],
)
def test_npz_with_an_odd_fs(tmp_path, strip_counts, fs, reason):
    path = tmp_path / "a.npz"
    np.savez(path, signal=strip_counts * 5e-3, fs=fs)
    with pytest.raises(InputError, match=rf"^{path}: {reason}$"):
        read_ecg(path)


@pytest.mark.parametrize("fs", [0, -1.0, np.nan, [500, 500]])
def test_npy_with_an_odd_fs_given(tmp_path, strip_counts, fs):
    path = tmp_path / "a.npy"
    np.save(path, strip_counts * 5e-3)
    with pytest.raises(InputError, match=rf"^{path}: the fs given must be"):
        read_ecg(path, fs=fs)


def test_arrays_that_are_not_a_real_recording(tmp_path, strip_counts):
    path = tmp_path / "a.npy"
    np.save(path, strip_counts * (5e-3 + 1e-3j))
    with pytest.raises(InputError, match=rf"^{path}: expected a real-valued \(leads, samples\)"):
        read_ecg(path, fs=500)
    path = tmp_path / "b.npz"
    np.savez(path, signal=strip_counts * 5e-3, leads=np.array("I"))  # a 0-d lead list
    with pytest.raises(InputError, match=rf"^{path}: 1 lead names for signal of shape"):
        read_ecg(path, fs=500)
    path = tmp_path / "C.NPZ"  # an upper-case suffix is still an npz archive
    np.savez(path.with_suffix(".npz"), signal=strip_counts * 5e-3, fs=500)
    path.with_suffix(".npz").rename(path)
    assert read_ecg(path).signal.shape == (12, 5000)


def _dicom_with(dicom_path, tmp_path, **group):
    """pydicom's recording with its waveform groups unlabelled (so the longest is chosen) and
    group 0's attributes set (None deletes)."""
    import pydicom

    ds = pydicom.dcmread(dicom_path)
    for item in ds.WaveformSequence:
        del item.MultiplexGroupLabel
    for name, value in group.items():
        if value is None:
            delattr(ds.WaveformSequence[0], name)
        else:
            setattr(ds.WaveformSequence[0], name, value)
    path = tmp_path / "ecg.dcm"
    ds.save_as(path)
    return path


def test_dicom_with_a_sampling_frequency_of_0_or_none(dicom_path, tmp_path):
    path = _dicom_with(dicom_path, tmp_path, SamplingFrequency=0)
    with pytest.raises(
        InputError,
        match=rf"^{path}: waveform group 0: SamplingFrequency must be a positive number of Hz",
    ):
        read_ecg(path)
    path = _dicom_with(dicom_path, tmp_path, SamplingFrequency=None)
    with pytest.raises(InputError, match=rf"^{path}: waveform group 0: SamplingFrequency missing$"):
        read_ecg(path)
    assert read_ecg(_dicom_with(dicom_path, tmp_path)).fs == 1000  # unlabelled: the longest


def test_wfdb_with_a_sampling_frequency_of_0(tmp_path, strip_counts):
    import wfdb

    wfdb.wrsamp("rec", fs=500, units=["mV"] * 12, sig_name=list(LEADS),
                p_signal=(strip_counts * 5e-3).T, fmt=["16"] * 12, write_dir=str(tmp_path))  # fmt: skip
    header = tmp_path / "rec.hea"
    first, rest = header.read_text().split("\n", 1)
    fields = first.split()
    fields[2] = "0"  # record line: name, signals, sampling frequency, samples
    header.write_text(" ".join(fields) + "\n" + rest)
    with pytest.raises(InputError, match=rf"^{header}: .*sampling frequency must be a positive"):
        read_ecg(header)


def test_xml_with_an_empty_lead(write_xml, strip_counts, tmp_path):
    text = write_xml(strip_counts).read_text(encoding="iso-8859-1")
    start = text.index('<WaveformData lead="V4">', text.index("<StripData>"))
    end = text.index("</WaveformData>", start)
    path = tmp_path / "empty.xml"
    path.write_text(text[:start] + '<WaveformData lead="V4">' + text[end:], encoding="iso-8859-1")
    with pytest.raises(InputError, match=rf"^{path}: lead V4: <WaveformData> holds no samples$"):
        read_ecg(path)
