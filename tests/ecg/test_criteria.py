"""The ECG criteria on hand-built 12-lead ECGs whose waves have known amplitudes and durations
(straight-line waves on a flat baseline, so every amplitude is exact), on neurokit2's
simulated 12-lead ECG, and on recordings where a criterion cannot be measured."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ptacl.ecg.criteria import CRITERIA, ecg_criteria, lead_waves, pathological_q
from ptacl.schema import LEADS

FS = 500
RR_S = 0.8  # 75 beats/min


def _ecg(waves: dict[str, list[tuple[float, float]]], rr_s: float = RR_S):
    """(12, 5000) mV and its beat marks: each beat of each lead is the straight lines through
    its (ms after QRS onset, mV) knots, flat 0 elsewhere; a beat every `rr_s`, the mark 40 ms
    after QRS onset (where the detector would put the R peak; any fixed point will do)."""
    t = np.arange(10 * FS) / FS
    onsets = np.arange(0.35, 10 - 0.6, rr_s)
    signal = np.zeros((len(LEADS), t.size))
    for i, lead in enumerate(LEADS):
        knots = waves.get(lead, [])
        if not knots:
            continue
        ms, mv = np.array(knots, dtype=float).T
        for onset in onsets:
            signal[i] += np.interp((t - onset) * 1000.0, ms, mv, left=0.0, right=0.0)
    return signal, np.rint((onsets + 0.04) * FS).astype(int)


def _qrs(*knots: tuple[float, float], end: float = 100.0) -> list[tuple[float, float]]:
    return [(0.0, 0.0), *knots, (end, 0.0)]


def _with_t(qrs: list[tuple[float, float]], t_mv: float) -> list[tuple[float, float]]:
    return [*qrs, (180.0, 0.0), (250.0, t_mv), (330.0, 0.0)]


#: A QRS of 100 ms: S V1 1.5 + R V5 2.0 (V6 1.8) -> Sokolow-Lyon 3.5 mV; R aVL 1.0 + S V3 1.2
#: -> Cornell 2.2 mV; a 40-ms Q of 0.5 mV before an R of 1.0 in II (pathological), a 12-ms q
#: in aVF, V5 and V6 (septal, normal); T inverted in V5 (-0.3) and V6 (-0.2). Knots on even
#: ms, the 500-Hz samples, so each peak is sampled.
NORMAL = {
    "I": _qrs((30, 0.6), (60, -0.1)),
    "II": _qrs((20, -0.5), (40, 0.0), (60, 1.0), (80, -0.2)),
    "III": _qrs((30, 0.3), (60, -0.4)),
    "aVR": _qrs((40, -0.9)),
    "aVL": _qrs((40, 1.0), (70, -0.3)),
    "aVF": _qrs((6, -0.12), (12, 0.0), (40, 0.8), (70, -0.2)),
    "V1": _qrs((16, 0.2), (50, -1.5)),
    "V2": _qrs((16, 0.3), (50, -1.0), (80, 0.0)),
    "V3": _qrs((20, 0.4), (60, -1.2)),
    "V4": _qrs((40, 1.4), (70, -0.8)),
    "V5": _with_t(_qrs((6, -0.12), (12, 0.0), (40, 2.0), (70, -0.3)), -0.3),
    "V6": _with_t(_qrs((6, -0.12), (12, 0.0), (40, 1.8), (70, -0.2)), -0.2),
}
#: A left bundle branch block: QRS 150 ms, QS in V1, broad R without q in I, V5, V6.
LBBB = {
    "I": _qrs((60, 0.7), (90, 0.6), (120, 0.8), end=150.0),
    "V1": _qrs((70, -1.4), end=150.0),
    "V5": _qrs((60, 1.0), (90, 0.9), (120, 1.2), end=150.0),
    "V6": _qrs((60, 0.9), (90, 0.8), (120, 1.1), end=150.0),
    "II": _qrs((70, 0.5), end=150.0),
}


def test_voltage_criteria_of_a_hand_built_ecg_are_exact() -> None:
    signal, marks = _ecg(NORMAL)
    c = ecg_criteria(signal, marks, FS, LEADS)
    assert list(c) == list(CRITERIA)
    assert c["heart_rate_bpm"] == pytest.approx(75.0, abs=0.2)
    assert c["sokolow_lyon"] == pytest.approx(3.5, abs=1e-9)
    assert c["cornell_voltage"] == pytest.approx(2.2, abs=1e-9)
    assert c["cornell_product"] == pytest.approx(2.2 * c["qrs_ms"], abs=1e-9)
    # deepest S outside aVR: V1's 1.5 (aVR's 0.9 QS is not counted anyway) + S V4 0.8
    assert c["peguero_lo_presti"] == pytest.approx(2.3, abs=1e-9)
    assert c["limb_qrs_max"] == pytest.approx(1.3, abs=1e-9)  # aVL 1.0 + 0.3
    assert c["precordial_qrs_max"] == pytest.approx(2.3, abs=1e-9)  # V5 2.0 + 0.3
    assert c["t_lateral"] == pytest.approx(-0.25, abs=1e-9)
    assert c["q_wave_leads"] == 1.0 and c["lbbb"] == 0.0  # II's Q; the septal q's are normal


def test_qrs_duration_within_the_smoothing_of_the_slope() -> None:
    """The slope is smoothed over 10 ms, so the onset and offset can move a few samples out."""
    normal = ecg_criteria(*_ecg(NORMAL), FS, LEADS)
    lbbb = ecg_criteria(*_ecg(LBBB), FS, LEADS)
    assert 100.0 <= normal["qrs_ms"] <= 110.0
    assert 150.0 <= lbbb["qrs_ms"] <= 160.0
    assert lbbb["lbbb"] == 1.0 and lbbb["q_wave_leads"] == 0.0


def test_waves_of_one_lead_and_what_counts_as_a_pathological_q() -> None:
    fs = 1000.0
    t = np.arange(400.0)  # ms, the QRS from 100 to 200
    trace = np.interp(t, [100, 120, 135, 160, 185, 200], [0, -0.4, 0, 1.2, -0.6, 0])
    w = lead_waves(trace, 100, 200, fs)
    assert (w.q, w.r, w.s) == pytest.approx((0.4, 1.2, 0.6))
    assert w.q_s == pytest.approx(0.035)  # onset to the return to the level
    assert pathological_q(w, "II")  # 35 ms and a third of R
    shallow = lead_waves(
        np.interp(t, [100, 120, 135, 160, 200], [0, -0.2, 0, 1.2, 0]), 100, 200, fs
    )
    assert not pathological_q(shallow, "II")  # 35 ms but a sixth of R
    short = lead_waves(np.interp(t, [100, 112, 125, 160, 200], [0, -0.4, 0, 1.2, 0]), 100, 200, fs)
    assert short.q_s == pytest.approx(0.025)
    assert not pathological_q(short, "II") and pathological_q(short, "V2")  # 20 ms in V2-V3
    qs = lead_waves(np.interp(t, [100, 150, 200], [0, -1.0, 0]), 100, 200, fs)
    assert (qs.r, qs.q, qs.s) == pytest.approx((0.0, 1.0, 1.0)) and qs.q_s == pytest.approx(0.1)
    assert pathological_q(qs, "V3")  # a QS complex


def test_neurokit2_simulated_ecg_gives_plausible_criteria() -> None:
    nk = pytest.importorskip("neurokit2")
    from ptacl.ecg.peaks import detect_r_peaks

    frame = nk.ecg_simulate(
        duration=6, sampling_rate=FS, heart_rate=70, method="multileads", random_state=1
    )
    assert list(frame.columns) == list(LEADS)
    signal = frame.to_numpy().T  # (12, 5000)
    c = ecg_criteria(signal, detect_r_peaks(signal, FS), FS, LEADS)
    assert c["heart_rate_bpm"] == pytest.approx(70.0, abs=3.0)
    assert 60.0 <= c["qrs_ms"] <= 130.0  # a normal QRS
    assert c["lbbb"] == 0.0
    assert all(np.isfinite(v) for v in c.values())


def test_what_cannot_be_measured_is_nan_never_an_error() -> None:
    signal, marks = _ecg(NORMAL)
    flat = ecg_criteria(np.zeros_like(signal), marks, FS, LEADS)
    assert flat["heart_rate_bpm"] == pytest.approx(75.0, abs=0.2)  # the beats are known
    assert all(np.isnan(v) for k, v in flat.items() if k != "heart_rate_bpm")
    assert all(np.isnan(v) for v in ecg_criteria(signal, np.array([], int), FS, LEADS).values())
    one = ecg_criteria(signal, marks[3:4], FS, LEADS)  # one beat: a QRS, no rate
    assert np.isnan(one["heart_rate_bpm"]) and one["sokolow_lyon"] == pytest.approx(3.5)
    bad = signal.copy()
    bad[0, 7] = np.nan
    assert all(np.isnan(v) for v in ecg_criteria(bad, marks, FS, LEADS).values())
    assert all(np.isnan(v) for v in ecg_criteria(signal[:6], marks, FS, LEADS).values())
    # without the chest leads, what needs them is NaN and the rest is measured
    limbs = ecg_criteria(signal[:6], marks, FS, LEADS[:6])
    assert np.isnan(limbs["sokolow_lyon"]) and np.isfinite(limbs["qrs_ms"])


def test_on_the_synthetic_cohorts_ecg_the_criteria_follow_the_generators_own() -> None:
    """ptacl synth's ECG (dipole model, noise, wander) with what its device reports: the QRS
    duration and Sokolow-Lyon index follow the generator's (its values from the clean signal),
    the rate matches, and its infarcts leave more Q waves than its healthy hearts."""
    from ptacl.synth.ecg import synth_ecg
    from ptacl.synth.latents import sample_latents

    rng = np.random.default_rng(3)
    rows = []
    for i in range(40):
        lat = sample_latents(rng)
        if i % 2 and lat.infarct_pct == 0:
            lat = dataclasses.replace(lat, infarct_pct=20.0, infarct_territory=1 + i % 3)
        ecg = synth_ecg(lat, rng)
        c = ecg_criteria(ecg.signal_mv, ecg.r_peaks, FS, LEADS)
        m = ecg.measurements
        rows.append([m["QRSDuration"], c["qrs_ms"], m["SokolovLVHIndex"] / 1000.0,
                     c["sokolow_lyon"], m["VentricularRate"], c["heart_rate_bpm"],
                     lat.infarct_pct > 0, c["q_wave_leads"]])  # fmt: skip
    a = np.array(rows, dtype=float)
    assert np.corrcoef(a[:, 0], a[:, 1])[0, 1] > 0.9
    assert abs(np.mean(a[:, 1] - a[:, 0])) < 10.0  # ms
    assert np.corrcoef(a[:, 2], a[:, 3])[0, 1] > 0.95
    assert np.max(np.abs(a[:, 4] - a[:, 5])) < 3.0  # beats/min
    infarct = a[:, 6] == 1
    assert a[infarct, 7].mean() > a[~infarct, 7].mean() + 1.0
