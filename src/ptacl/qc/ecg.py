"""Checks a raw ECG must pass before it enters the store or a prediction; each failure names
file and reason. `prepare` and `predict` both call `validate_record` (or `validate_ecg` for a
bare array), so what one refuses the other refuses too.

Beyond "is it an ECG at all" (shape, finite, long enough, no flat lead, beats that look alike),
plausibility rules catch files that read fine but would teach or tell the model nonsense:

- saturation: a lead stuck at its extreme value (`STUCK_SECONDS`), or clipped there beat after
  beat (`CLIP_PLATEAUS` flat tops); z-scoring hides both from the model;
- amplitude in mV: a unit error (µV read as mV is x1000, a x100 scale slip) makes every lead
  tens of mV (`MAX_MEDIAN_MV`), a V-for-mV error leaves nothing (`MIN_LARGEST_MV`); z-scoring
  would hide it too;
- sample rate: the beat rate at the stated rate must be a heart rate (`HEART_RATE_BPM`) and
  agree with the device's own measurement where the file has one (CardioSoft
  `VentricularRate`; `RATE_RATIO`): a header saying 250 Hz over 500 Hz data halves every rate;
- lead sanity: where the file holds the limb leads itself, III = II - I (Einthoven) and
  aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2 (Goldberger) must hold (`LEAD_RESIDUAL_*`);
  devices compute these leads from I and II, so a violation means swapped or mislabelled leads;
- copied channels (`error`): a precordial lead equal (or correlated above `COPY_CORRELATION`)
  to another lead: V1-V6 all lead II, V1-V6 holding the limb leads, V5 a copy of V6;
- polarity (`warning`): a QRS pointing away from the heart's usual direction in I, II, aVF and
  V6 at once, aVR positive: the whole recording inverted (a sign slip), unless the heart is
  unusual (see `_check_polarity`).

Identity is judged over a cohort (`identity_findings`, called by `prepare`; `predict` pairs
nothing and does not judge it): a file's own patient id (CardioSoft `PatientInfo/PID`, DICOM
`PatientID`) that differs from the eid it is filed under is a warning only, since nothing says
the two come from one numbering (UK Biobank files carry one application's eids, the PID may be
`0`, empty or a hospital's id; see FORMATS.md). Only positive evidence refuses: a PID equal to
the eid of another subject of the same cohort (the file may be that subject's).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptacl.ecg.peaks import beat_similarity, detect_r_peaks
from ptacl.io.errors import InputError
from ptacl.io.records import EcgRecord, stated_rate
from ptacl.schema import ECG_FS, LEADS

#: Shortest usable recording: one 2,500-sample training crop at 500 Hz.
MIN_SECONDS = 2500 / ECG_FS
#: A lead whose range stays below this (mV, two LSBs of a UK Biobank file) carries no signal.
FLAT_MV = 0.01
#: The local loss needs at least one complete beat, i.e. two R peaks.
MIN_PEAKS = 2
#: Detected beats must look alike (see `ptacl.ecg.beat_similarity`): noise scores ~0.2,
#: synthetic and real ECGs > 0.99, alternating beat shapes (bigeminy-like) > 0.8.
MIN_SIMILARITY = 0.5

#: The widest ECG deflection is flat at its very top for a few ms (an R apex: <= 8 ms in the
#: synthetic UK Biobank-like cohort, 5 ms in pydicom's real recording); 100 ms at the lead's
#: extreme value is a saturated amplifier or a disconnected electrode.
STUCK_SECONDS = 0.1
#: A flat top of at least this long (s; 3 samples at 500 Hz) at the lead's extreme value...
PLATEAU_SECONDS = 0.006
#: ...repeated on this many beats is clipping: 40 real-shaped recordings showed at most one
#: per lead, a recording clipped at 40 % of its peak shows one per beat (10 in 10 s at 60 bpm).
CLIP_PLATEAUS = 4
#: Clipping is judged only on leads at least this large (mV): on a small lead of a few dozen
#: LSBs several beats may share one top value without any clipping.
CLIP_MIN_MV = 0.5
#: The median lead's peak-to-peak above this (mV) is a unit error: resting ECG deflections stay
#: below ~5 mV (the AHA asks amplifiers for +-5 mV), baseline wander adds a few; the synthetic
#: cohort's largest lead reaches 7.8 mV, its median lead far less.
MAX_MEDIAN_MV = 15.0
#: The largest lead's peak-to-peak below this (mV) is a unit error the other way: every ECG
#: has a QRS of well over 0.5 mV in some lead (the smallest largest lead of 40 synthetic
#: recordings: 0.96 mV; low-voltage criteria are < 0.5 mV in the limb leads only).
MIN_LARGEST_MV = 0.2
#: Heart rates (bpm) a resting ECG can show at its stated sampling rate.
HEART_RATE_BPM = (20.0, 250.0)
#: The rate from our R peaks may differ from the device's own (missed or extra beats, ectopy),
#: but not by a factor of two: that is the sampling rate, not the heart.
RATE_RATIO = (0.7, 1.4)
#: Limb-lead laws: residual RMS allowed, absolute (mV) and relative to lead II's RMS. Digital
#: derivation leaves rounding (2.5 µV in UK Biobank-like files, 0 in pydicom's); independent
#: electrode noise on every lead, as in our test fixtures, leaves under 20 µV.
LEAD_RESIDUAL_MV = 0.05
LEAD_RESIDUAL_OF_II = 0.25

#: Two leads correlated above this at the same amplitude (RMS within `COPY_AMPLITUDE`) are one
#: signal twice. Each precordial lead is its own chest electrode against Wilson's central
#: terminal, each limb lead a difference of limb electrodes: separate electrodes see different
#: projections of the heart's dipole, at different distances, with their own contact and muscle
#: noise. Measured: neighbouring leads correlate at most 0.989 in pydicom's real recording and
#: 0.997 in 200 `ptacl synth` recordings (dipole model with electrode noise). A narrow QRS loop
#: can make two neighbouring leads nearly proportional, hence the amplitude condition too.
COPY_CORRELATION = 0.999
COPY_AMPLITUDE = 0.05
#: QRS dominance (max + min) / (max - min) of the median beat, in [-1, 1]: below -this is a
#: clearly negative QRS, above it a clearly positive one. 200 `ptacl synth` recordings with a
#: right axis reach -0.14 in lead II; an inverted normal recording is near -0.8.
DOMINANCE = 0.3
#: Leads whose QRS is positive in a usual heart (an axis between -30 and +90 degrees: I, II,
#: aVF; the lateral precordial V6) and the one negative (aVR, opposite to them all).
_USUALLY_POSITIVE = ("I", "II", "aVF", "V6")
_USUALLY_NEGATIVE = ("aVR",)
_PRECORDIAL = ("V1", "V2", "V3", "V4", "V5", "V6")

_LIMB_LAWS = {  # lead -> its value from I and II
    "III": (-1.0, 1.0),
    "aVR": (-0.5, -0.5),
    "aVL": (1.0, -0.5),
    "aVF": (-0.5, 1.0),
}


@dataclass(frozen=True)
class EcgCheck:
    """What the checks found in a usable ECG: its R peaks (indices at its own rate) and the
    doubts that do not refuse it (one line each, for qc.csv or a prediction's status)."""

    peaks: np.ndarray
    warnings: tuple[str, ...] = ()


def validate_ecg(
    signal: np.ndarray,
    fs: float,
    source: str | Path,
    *,
    r_peaks: np.ndarray | None = None,
    derived: tuple[str, ...] = (),
    device_rate: float | None = None,
) -> np.ndarray:
    """`check_ecg`'s R peaks: raise InputError unless `signal` is a usable ECG."""
    return check_ecg(
        signal, fs, source, r_peaks=r_peaks, derived=derived, device_rate=device_rate
    ).peaks


def check_ecg(
    signal: np.ndarray,
    fs: float,
    source: str | Path,
    *,
    r_peaks: np.ndarray | None = None,
    derived: tuple[str, ...] = (),
    device_rate: float | None = None,
) -> EcgCheck:
    """Raise InputError unless (12, S) mV `signal` is a usable ECG; return its R peaks and
    warnings.

    Checks (see the module docstring): shape, finite values, at least `MIN_SECONDS` long, no
    flat, stuck or clipped lead, amplitudes in mV, at least `MIN_PEAKS` R peaks that look like
    heartbeats at a heart rate, agreeing with `device_rate` (bpm, the file's own measurement)
    when given, and the limb-lead laws for leads not in `derived` (computed by the reader).
    `r_peaks` (indices at `fs`) skips the detection when they are already known.
    """
    signal = np.asarray(signal)
    fs = stated_rate(fs, source)  # a rate of 0, NaN or a list: one line, not a ZeroDivisionError
    if signal.ndim != 2 or signal.shape[0] != len(LEADS):
        raise InputError(source, f"expected ({len(LEADS)}, samples), got shape {signal.shape}")
    bad = ~np.isfinite(signal)
    if bad.any():
        leads = [LEADS[k] for k in np.flatnonzero(bad.any(axis=1))]
        raise InputError(source, f"{int(bad.sum())} NaN or infinite samples in leads {leads}")
    seconds = signal.shape[1] / fs
    if seconds < MIN_SECONDS - 1e-9:
        raise InputError(
            source,
            f"too short: {seconds:.2f} s ({signal.shape[1]} samples at {fs:g} Hz), "
            f"need {MIN_SECONDS:g} s ({int(MIN_SECONDS * ECG_FS)} samples at {ECG_FS} Hz)",
        )
    span = np.ptp(signal, axis=1)
    flat = [LEADS[k] for k in np.flatnonzero(span < FLAT_MV)]
    if flat:
        raise InputError(source, f"flat line in leads {flat} (range below {FLAT_MV} mV)")
    _check_saturation(signal, fs, source)
    _check_amplitude(span, source)
    peaks = detect_r_peaks(signal, fs) if r_peaks is None else np.asarray(r_peaks)
    if len(peaks) < MIN_PEAKS:
        raise InputError(source, f"no detectable R peaks ({len(peaks)} found, need {MIN_PEAKS})")
    similarity = beat_similarity(signal, fs, peaks)
    if similarity < MIN_SIMILARITY:
        raise InputError(
            source,
            f"no detectable R peaks: the {len(peaks)} candidate beats do not look alike "
            f"(median QRS correlation {similarity:.2f} < {MIN_SIMILARITY})",
        )
    _check_rate(peaks, fs, source, device_rate)
    _check_limb_leads(signal, source, derived)
    _check_copies(signal, source)
    warnings = [w for w in (_check_polarity(signal, fs, peaks),) if w]
    return EcgCheck(peaks=peaks, warnings=tuple(warnings))


def validate_record(record: EcgRecord) -> np.ndarray:
    """`check_record`'s R peaks: raise InputError unless the record is a usable ECG."""
    return check_record(record).peaks


def check_record(record: EcgRecord) -> EcgCheck:
    """`check_ecg` on a record read from a file, with what the file says about itself: its
    derived leads and the device's heart rate."""
    return check_ecg(
        record.signal,
        record.fs,
        record.source,
        derived=record.derived,
        device_rate=record.meta.get("ventricular_rate"),
    )


def identity_findings(
    patient_ids: Mapping[str, str], cohort: Collection[str]
) -> dict[str, tuple[str, str]]:
    """Judge the patient ids ECG files name (`patient_ids`: eid filed under -> the file's own
    id) against the eids of the whole `cohort`: eid -> ("error" | "warning", reason).

    A file naming another subject of the cohort is an error (it may be that subject's ECG:
    pairing it would attach it to the wrong CMR and phenotypes); two files naming each other's
    eid are a swap, both errors. Any other id that differs from the eid (`0`, another
    numbering) is a warning: a file's id alone is no evidence of a swap. Numbers compare as
    numbers (`01038021` names eid 1038021); an empty id says nothing.
    """
    by_key = {_id_key(eid): eid for eid in cohort}
    named = {eid: by_key.get(_id_key(pid)) for eid, pid in patient_ids.items()}
    out: dict[str, tuple[str, str]] = {}
    for eid, pid in patient_ids.items():
        other = named[eid]
        if not pid.strip() or other == eid:
            continue
        if other is None:
            out[eid] = (
                "warning",
                f"the file names patient {pid.strip()!r}, not its eid {eid!r}: kept, since a "
                "file's own id need not be the eid it is filed under",
            )
        elif named.get(other) == eid:
            out[eid] = (
                "error",
                f"swapped with eid {other}'s file: this file names patient {pid.strip()!r} "
                f"(eid {other}) and eid {other}'s names this eid; neither ECG is paired",
            )
        else:
            out[eid] = (
                "error",
                f"the file names patient {pid.strip()!r}, the eid of another subject of this "
                f"cohort: it may be eid {other}'s ECG, so it is not paired with eid {eid}'s CMR",
            )
    return out


def _id_key(identifier: str) -> str:
    """One spelling of an id: numbers without leading zeros, anything else as written."""
    text = identifier.strip()
    return str(int(text)) if text.isdigit() else text


def _runs(mask: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


def _check_saturation(signal: np.ndarray, fs: float, source: str | Path) -> None:
    plateau = max(3, round(PLATEAU_SECONDS * fs))
    for k, lead in enumerate(signal):
        span = float(np.ptp(lead))
        for extreme in (float(lead.max()), float(lead.min())):
            runs = _runs(np.abs(lead - extreme) <= 1e-6 * span)
            if runs.max() >= STUCK_SECONDS * fs:
                raise InputError(
                    source,
                    f"lead {LEADS[k]} stuck at {extreme:.3g} mV for {runs.max() / fs:.2f} s "
                    "(saturated amplifier or loose electrode)",
                )
            tops = int((runs >= plateau).sum())
            if span >= CLIP_MIN_MV and tops >= CLIP_PLATEAUS:
                raise InputError(
                    source,
                    f"lead {LEADS[k]} clipped: {tops} flat tops at {extreme:.3g} mV "
                    f"(at most {CLIP_PLATEAUS - 1} in an unclipped recording)",
                )


def _check_amplitude(span: np.ndarray, source: str | Path) -> None:
    median, largest = float(np.median(span)), float(span.max())
    if median > MAX_MEDIAN_MV:
        raise InputError(
            source,
            f"implausible amplitude: the median lead spans {median:.3g} mV (an ECG: a few mV); "
            "wrong units (µV read as mV?) or scale",
        )
    if largest < MIN_LARGEST_MV:
        raise InputError(
            source,
            f"implausible amplitude: the largest lead spans {largest:.3g} mV (an ECG's QRS: "
            "over 0.5 mV in some lead); wrong units (V read as mV?) or scale",
        )


def _check_rate(
    peaks: np.ndarray, fs: float, source: str | Path, device_rate: float | None
) -> None:
    rate = 60.0 * fs / float(np.median(np.diff(peaks)))
    low, high = HEART_RATE_BPM
    if not low <= rate <= high:
        raise InputError(
            source,
            f"beats at {rate:.0f} bpm at the stated {fs:g} Hz, outside {low:g}-{high:g} bpm: "
            "is the sampling rate right?",
        )
    if device_rate is not None and device_rate > 0:
        ratio = rate / device_rate
        if not RATE_RATIO[0] <= ratio <= RATE_RATIO[1]:
            raise InputError(
                source,
                f"sampling rate inconsistent: at the stated {fs:g} Hz the strip beats at "
                f"{rate:.0f} bpm, the file's own measurement says {device_rate:g} bpm "
                f"(x{ratio:.2f}); is the stated rate right?",
            )


def _check_limb_leads(signal: np.ndarray, source: str | Path, derived: tuple[str, ...]) -> None:
    lead_i, lead_ii = signal[LEADS.index("I")], signal[LEADS.index("II")]
    allowed = max(LEAD_RESIDUAL_MV, LEAD_RESIDUAL_OF_II * float(np.sqrt(np.mean(lead_ii**2))))
    for lead, (a, b) in _LIMB_LAWS.items():
        if lead in derived:
            continue
        residual = signal[LEADS.index(lead)] - (a * lead_i + b * lead_ii)
        rms = float(np.sqrt(np.mean(residual**2)))
        if rms > allowed:
            law = {"III": "II - I", "aVR": "-(I + II)/2", "aVL": "I - II/2", "aVF": "II - I/2"}
            raise InputError(
                source,
                f"limb leads inconsistent: {lead} differs from {law[lead]} by {rms:.3g} mV RMS "
                f"(allowed {allowed:.3g}); leads swapped or mislabelled?",
            )


def _check_copies(signal: np.ndarray, source: str | Path) -> None:
    """Error when a precordial lead repeats another lead (see `COPY_CORRELATION`; `=` exactly,
    `~` nearly): channels copied or written twice, which no set of separate electrodes records."""
    centred = signal.astype(np.float64) - signal.mean(axis=1, keepdims=True)
    correlation = np.corrcoef(centred)
    rms = np.sqrt(np.mean(centred**2, axis=1))
    copies = []
    for lead in _PRECORDIAL:
        k = LEADS.index(lead)
        # limb leads and the precordial leads before this one (each pair once)
        for j in range(k):
            same_size = abs(rms[k] - rms[j]) <= COPY_AMPLITUDE * max(rms[k], rms[j])
            if correlation[k, j] > COPY_CORRELATION and same_size:
                same = "=" if np.array_equal(signal[k], signal[j]) else "~"
                copies.append(f"{lead} {same} {LEADS[j]}")
                break
    if copies:
        raise InputError(
            source,
            f"leads copied: {', '.join(copies)} (correlation > {COPY_CORRELATION}, same "
            f"amplitude within {COPY_AMPLITUDE:.0%}); separate electrodes never record one "
            "signal, so channels were duplicated or mislabelled",
        )


def _qrs_dominance(signal: np.ndarray, fs: float, peaks: np.ndarray) -> np.ndarray | None:
    """Per lead, (max + min) / (max - min) of the median beat's QRS (R peak -50..+60 ms) over
    its baseline (the median beat's median): +1 all upward, -1 all downward. None without a
    whole beat."""
    before, after = int(0.3 * fs), int(0.4 * fs)
    beats = [
        signal[:, p - before : p + after] for p in peaks if before <= p <= signal.shape[1] - after
    ]
    if not beats:
        return None
    median = np.median(np.stack(beats), axis=0).astype(np.float64)
    median -= np.median(median, axis=1, keepdims=True)
    qrs = median[:, before - int(0.05 * fs) : before + int(0.06 * fs)]
    high, low = qrs.max(axis=1), qrs.min(axis=1)
    return (high + low) / np.maximum(high - low, 1e-12)


def _check_polarity(signal: np.ndarray, fs: float, peaks: np.ndarray) -> str | None:
    """A warning when the QRS is clearly negative in I, II, aVF and V6 and positive in aVR.

    That is every lead of a usual heart turned over: a recording stored with inverted polarity.
    It stays a warning because a real heart can come close: dextrocardia and right/left arm
    electrode reversal invert lead I and aVR, a ventricular rhythm or severe right ventricular
    hypertrophy gives an extreme ("northwest") axis with negative I, II and aVF.
    """
    dominance = _qrs_dominance(signal, fs, peaks)
    if dominance is None:
        return None
    down = all(dominance[LEADS.index(lead)] < -DOMINANCE for lead in _USUALLY_POSITIVE)
    up = all(dominance[LEADS.index(lead)] > DOMINANCE for lead in _USUALLY_NEGATIVE)
    if not (down and up):
        return None
    return (
        f"QRS negative in {', '.join(_USUALLY_POSITIVE)} and positive in aVR: every lead "
        "inverted? (a sign error; dextrocardia, arm-electrode reversal or an extreme axis can "
        "also do it)"
    )
