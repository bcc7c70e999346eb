import numpy as np
import pytest

from ptacl.io import InputError, read_ecg
from ptacl.qc import validate_ecg


@pytest.fixture(scope="module")
def real(dicom_path):
    return read_ecg(dicom_path)


def test_real_recording_passes_and_returns_its_beats(real):
    peaks = validate_ecg(real.signal, real.fs, real.source)
    assert len(peaks) == 10


def test_flat_lead(real):
    signal = real.signal.copy()
    signal[8] = 0.2  # V3 disconnected: a constant offset
    with pytest.raises(InputError, match=r"^rec.xml: flat line in leads \['V3'\]"):
        validate_ecg(signal, real.fs, "rec.xml")


def test_nan_and_inf(real):
    signal = real.signal.copy()
    signal[0, 3] = np.inf
    with pytest.raises(InputError, match=r"^rec.xml: 1 NaN or infinite samples in leads \['I'\]"):
        validate_ecg(signal, real.fs, "rec.xml")


def test_too_short(real):
    # 4.99 s at 1000 Hz is 2,495 samples at 500 Hz: one sample short of a training crop.
    with pytest.raises(InputError, match=r"^rec.xml: too short: 4.99 s"):
        validate_ecg(real.signal[:, :4990], real.fs, "rec.xml")
    validate_ecg(real.signal[:, :5000], real.fs, "rec.xml")  # exactly 5 s is enough


def test_no_r_peaks_in_slow_waves():
    t = np.arange(5000) / 500
    signal = np.stack([np.sin(2 * np.pi * 0.3 * t + k) for k in range(12)]).astype(np.float32)
    with pytest.raises(InputError, match=r"^rec.xml: no detectable R peaks"):
        validate_ecg(signal, 500, "rec.xml")


def test_no_r_peaks_in_noise():
    signal = np.random.default_rng(0).normal(0, 0.1, (12, 5000)).astype(np.float32)
    with pytest.raises(InputError, match=r"^rec.xml: no detectable R peaks.*do not look alike"):
        validate_ecg(signal, 500, "rec.xml")


# -- plausibility: files that read fine but would teach or tell the model nonsense -------------


@pytest.fixture(scope="module")
def synth_xml(tmp_path_factory):
    """A UK Biobank-shaped CardioSoft XML from `ptacl synth`'s writer (PID, VentricularRate)."""
    from inference.builders import synth_xmls

    return synth_xmls(tmp_path_factory.mktemp("xml"), 1)[0]


def test_real_shaped_files_pass_every_rule(real, synth_xml):
    from ptacl.qc import validate_record

    assert len(validate_record(real)) == 10
    record = read_ecg(synth_xml)
    eid = synth_xml.name.split("_")[0]
    assert record.meta["patient_id"] == eid and record.meta["ventricular_rate"] > 0
    assert len(validate_record(record)) >= 5


def test_a_lead_stuck_at_the_adc_limit(real):
    signal = real.signal.copy()
    signal[1, 2000:8000] = signal[1].max()  # lead II pinned for 6 s at 1000 Hz
    with pytest.raises(InputError, match=r"lead II stuck at .* mV for 6.00 s"):
        validate_ecg(signal, real.fs, "rec.xml")


def test_every_lead_clipped_at_40_percent_of_its_peak(real):
    peak = np.abs(real.signal).max(axis=1, keepdims=True)
    clipped = np.clip(real.signal, -0.4 * peak, 0.4 * peak)
    with pytest.raises(InputError, match=r"lead \w+ clipped: \d+ flat tops at"):
        validate_ecg(clipped, real.fs, "rec.xml")


@pytest.mark.parametrize("scale", [100, 1000, 0.05], ids=["x100", "uV-as-mV", "x0.05"])
def test_unit_errors_are_refused(real, scale):
    with pytest.raises(InputError, match=r"implausible amplitude.*wrong units"):
        validate_ecg(real.signal * scale, real.fs, "rec.xml")


def test_swapped_limb_leads_break_einthoven(real):
    from ptacl.schema import LEADS

    signal = real.signal.copy()
    avl, avf = LEADS.index("aVL"), LEADS.index("aVF")
    signal[[avl, avf]] = signal[[avf, avl]]
    with pytest.raises(InputError, match=r"limb leads inconsistent: aVL differs from I - II/2"):
        validate_ecg(signal, real.fs, "rec.xml")
    validate_ecg(signal, real.fs, "rec.xml", derived=("aVL", "aVF"))  # computed: not checked


def _with_rate(xml, tmp_path, rate: str):
    text = xml.read_text(encoding="iso-8859-1")
    strip = text.index("<StripData>")
    head, tail = text[:strip], text[strip:]
    tail = tail.replace('<SampleRate units="Hz">500</SampleRate>', rate, 1)
    out = tmp_path / xml.name
    out.write_text(head + tail, encoding="iso-8859-1")
    return out


def test_a_header_rate_that_contradicts_the_beats_is_refused(synth_xml, tmp_path):
    from ptacl.qc import validate_record

    path = _with_rate(synth_xml, tmp_path, '<SampleRate units="Hz">250</SampleRate>')
    record = read_ecg(path)
    assert record.fs == 250
    with pytest.raises(InputError, match=r"sampling rate inconsistent: at the stated 250 Hz"):
        validate_record(record)


def test_sample_rate_units_are_honoured(synth_xml, tmp_path):
    path = _with_rate(synth_xml, tmp_path, '<SampleRate units="kHz">0.5</SampleRate>')
    record = read_ecg(path)
    assert record.fs == 500
    np.testing.assert_array_equal(record.signal, read_ecg(synth_xml).signal)
    path = _with_rate(synth_xml, tmp_path, '<SampleRate units="samples">500</SampleRate>')
    with pytest.raises(InputError, match=r"unknown SampleRate units 'samples'; known: Hz, kHz"):
        read_ecg(path)


# -- identity: judged over a cohort, refused only on evidence --------------------------------


def test_a_file_id_unlike_its_eid_is_only_a_warning():
    from ptacl.qc import identity_findings

    cohort = ["4100000", "4100001", "4100002"]
    ids = {"4100000": "0", "4100001": "MRN-77", "4100002": "04100002"}  # the last: same number
    found = identity_findings(ids, cohort)
    assert set(found) == {"4100000", "4100001"}
    level, reason = found["4100000"]
    assert level == "warning" and reason.startswith("the file names patient '0', not its eid")
    assert found["4100001"][0] == "warning"
    assert identity_findings({"4100000": ""}, cohort) == {}  # an empty id claims nothing


def test_a_file_naming_another_subject_of_the_cohort_is_refused():
    from ptacl.qc import identity_findings

    cohort = ["1001", "1002", "1003"]
    found = identity_findings({"1001": "1003", "1003": "1003"}, cohort)
    assert list(found) == ["1001"]
    level, reason = found["1001"]
    assert level == "error" and "may be eid 1003's ECG" in reason


def test_two_files_naming_each_other_are_a_swap():
    from ptacl.qc import identity_findings

    found = identity_findings({"1001": "1002", "1002": "1001"}, ["1001", "1002"])
    assert {eid: level for eid, (level, _) in found.items()} == {"1001": "error", "1002": "error"}
    assert found["1001"][1].startswith("swapped with eid 1002's file")
    assert found["1002"][1].startswith("swapped with eid 1001's file")


@pytest.mark.parametrize("fs", [0, -500.0, np.nan])
def test_an_array_at_an_impossible_rate_is_refused_in_one_line(real, fs):
    with pytest.raises(InputError, match=r"^array: sampling rate must be a positive number"):
        validate_ecg(real.signal, fs, "array")


def test_an_array_of_the_wrong_shape(real):
    with pytest.raises(InputError, match=r"^array: expected \(12, samples\), got shape \(11, "):
        validate_ecg(real.signal[:11], real.fs, "array")


def test_beats_no_heart_makes_at_the_stated_rate(real):
    # 1,000 Hz data stated as 250 Hz: its ~60 bpm read as ~15 bpm, below 20 bpm
    with pytest.raises(InputError, match=r"^rec: beats at 1\d bpm at the stated 250 Hz, outside"):
        validate_ecg(real.signal, 250, "rec")
