"""The ECG criteria a clinician reads for LV hypertrophy and LV systolic dysfunction.

    ecg_criteria(signal (C, S), peaks (P,), fs, leads) -> {criterion: value}, NaN unmeasurable

From the median beat of the 12 leads (`median_beat`), the QRS is delimited on all leads at once
(`qrs_bounds`); each lead's Q, R and S are measured against the level at QRS onset
(`lead_waves`); then the classic criteria (`CRITERIA`, sources in `criteria_from_waves`).
Amplitudes come out in the units of the signal: millivolts for a recording, the store's
per-lead z units for `ptacl prepare`'s store (which z-scores each lead, so absolute voltage
thresholds such as Sokolow-Lyon >= 3.5 mV do not apply there; durations, rate, Q waves and the
left bundle branch block pattern keep their meaning). Pure numpy: no delineation library.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: What `ecg_criteria` returns, in this order (the model's feature columns).
CRITERIA: tuple[str, ...] = (
    "heart_rate_bpm",
    "qrs_ms",
    "sokolow_lyon",
    "cornell_voltage",
    "cornell_product",
    "peguero_lo_presti",
    "limb_qrs_max",
    "precordial_qrs_max",
    "q_wave_leads",
    "lbbb",
    "t_lateral",
)
#: The median beat's window around the R peak, in seconds (before, after).
WINDOW = (0.3, 0.5)
#: The QRS is where the summed slope of all leads exceeds this share of its QRS peak
#: (above the slope's floor); short dips (an R apex, a notch) inside it are bridged.
SLOPE_SHARE = 0.08
BRIDGE_S = 0.012
#: Search limits of the QRS around the R peak (s): onset within 150 ms before it, offset
#: within 200 ms after (a left bundle branch block's QRS lasts up to ~180 ms).
QRS_SEARCH = (0.15, 0.2)
#: Leads where a Q wave may count as pathological (Thygesen et al., Fourth universal definition
#: of myocardial infarction, Circulation 2018;138:e618: aVR never, III and V1 alone are normal
#: variants); V2-V3 accept a shorter Q (20 ms) than the others (30 ms).
Q_LEADS = ("I", "II", "aVL", "aVF", "V2", "V3", "V4", "V5", "V6")
Q_SHORT_LEADS = ("V2", "V3")
LIMB = ("I", "II", "III", "aVR", "aVL", "aVF")
PRECORDIAL = ("V1", "V2", "V3", "V4", "V5", "V6")


@dataclass(frozen=True)
class Waves:
    """One lead's QRS as `lead_waves` measures it: R and S amplitudes (>= 0), the initial Q's
    depth (>= 0) and duration (s; 0: none), and the T's signed amplitude, all against the
    level at QRS onset."""

    r: float
    s: float
    q: float
    q_s: float
    t: float


def median_beat(
    signal: np.ndarray, peaks: np.ndarray, fs: float, window: tuple[float, float] = WINDOW
) -> tuple[np.ndarray, int] | None:
    """The sample-wise median over beats of (C, S) `signal` in a window around each R peak
    (`peaks`, sample indices): ((C, W) median beat, the R peak's index in it), or None when
    no beat's window lies wholly inside the signal."""
    before, after = round(window[0] * fs), round(window[1] * fs)
    peaks = np.asarray(peaks, dtype=np.int64)
    peaks = peaks[(peaks >= before) & (peaks + after < signal.shape[-1])]
    if len(peaks) == 0:
        return None
    beats = np.stack([signal[:, p - before : p + after + 1] for p in peaks])  # (B, C, W)
    return np.median(beats, axis=0), before


def qrs_bounds(beat: np.ndarray, r: int, fs: float) -> tuple[int, int] | None:
    """(onset, offset) sample indices of the QRS of a (C, W) median beat with its R peak at
    index r, or None when the beat has no QRS (flat).

    The summed absolute slope of all leads (smoothed over 10 ms) rises from a floor (its 10th
    percentile over the beat) to a peak in the QRS; the QRS is the run of samples around the
    R peak above SLOPE_SHARE of the way from floor to peak, dips shorter than BRIDGE_S bridged
    (the slope vanishes at an R apex), within QRS_SEARCH of the R peak. One threshold for
    every lead: a "global" QRS as the device's 12-lead measurement (onset earliest, offset
    latest over the leads)."""
    slope = np.abs(np.gradient(beat, axis=-1)).sum(axis=0) * fs  # (W,) units per second
    width = max(round(0.01 * fs), 1)
    slope = np.convolve(slope, np.ones(width) / width, mode="same")
    lo, hi = (
        max(r - round(QRS_SEARCH[0] * fs), 0),
        min(r + round(QRS_SEARCH[1] * fs), len(slope) - 1),
    )
    floor, top = np.percentile(slope, 10), slope[lo : hi + 1].max()
    if not np.isfinite(top) or top <= floor or top <= 0:
        return None
    above = slope >= floor + SLOPE_SHARE * (top - floor)  # (W,)
    above[:lo] = above[hi + 1 :] = False
    edges = np.flatnonzero(np.diff(np.r_[0, above.astype(np.int8), 0]))
    runs = edges.reshape(-1, 2)  # [start, stop) of each run above the threshold
    keep = [runs[0]]
    for start, stop in runs[1:]:  # bridge the short dips
        if start - keep[-1][1] < round(BRIDGE_S * fs):
            keep[-1] = np.array([keep[-1][0], stop])
        else:
            keep.append(np.array([start, stop]))
    near = min(
        keep,
        key=lambda run: 0 if run[0] <= r < run[1] else min(abs(run[0] - r), abs(run[1] - 1 - r)),
    )
    return int(near[0]), int(near[1] - 1)


def lead_waves(trace: np.ndarray, onset: int, offset: int, fs: float) -> Waves:
    """Q, R, S and T of one lead's (W,) median beat, its QRS from `onset` to `offset`.

    The reference level is the mean over the 10 ms before QRS onset (the isoelectric level at
    the end of the PR segment). The QRS is cut into waves where it crosses that level, as
    electrocardiographs label them (Q: an initial negative wave; R, R': positive; S, S':
    negative after the first R); a wave whose peak stays within 5 % of the lead's largest
    excursion is noise and is ignored. R is the tallest positive wave, S the deepest negative
    one after the first R, Q the initial negative wave's depth and its duration from QRS onset
    until the trace comes back to the level (a QS complex, no positive wave: the whole QRS).
    An initial negative wave deeper than the tallest R (QS, Qr) is the S of the voltage
    criteria as well as a Q. The T is the largest excursion from 80 ms after QRS offset to
    400 ms after onset (or the beat's end)."""
    ref = float(np.mean(trace[max(onset - round(0.01 * fs), 0) : onset + 1]))
    x = trace[onset : offset + 1] - ref  # (n,)
    big = float(np.abs(x).max()) if len(x) else 0.0
    label = np.where(x > 0.05 * big, 1, np.where(x < -0.05 * big, -1, 0)) if big > 0 else x * 0
    waves: list[tuple[int, int, float]] = []  # (sign, index of its peak, its peak's size)
    for i in np.flatnonzero(label):
        size = abs(float(x[i]))
        if waves and waves[-1][0] == label[i]:
            if size > waves[-1][2]:
                waves[-1] = (int(label[i]), int(i), size)
        else:
            waves.append((int(label[i]), int(i), size))
    positive = [w for w in waves if w[0] > 0]
    r = max((w[2] for w in positive), default=0.0)
    q = q_s = s = 0.0
    if waves and waves[0][0] < 0:
        back = np.flatnonzero(x[waves[0][1] :] >= 0)
        q = waves[0][2]
        q_s = (waves[0][1] + back[0] if len(back) else len(x)) / fs
    if positive:
        first_r = waves.index(positive[0])
        s = max((w[2] for w in waves[first_r + 1 :] if w[0] < 0), default=0.0)
    else:  # QS complex
        q_s = (len(x) - 1) / fs
    if q > r:  # QS or Qr: the initial wave is the lead's main negative deflection
        s = max(s, q)
    t_lo, t_hi = offset + round(0.08 * fs), min(onset + round(0.4 * fs), len(trace))
    seg = trace[t_lo:t_hi] - ref
    t = float(seg[int(np.argmax(np.abs(seg)))]) if len(seg) else float("nan")
    return Waves(r=r, s=s, q=q, q_s=q_s, t=t)


def pathological_q(w: Waves, lead: str) -> bool:
    """A Q wave that counts as a sign of infarction (Thygesen et al. 2018, see Q_LEADS): at
    least 30 ms (20 ms in V2-V3), or a QS complex; and, as the depth is in the signal's own
    units, at least a quarter of the lead's R (the Minnesota code's relative depth, Prineas et
    al., The Minnesota Code Manual, 1982) instead of 0.1 mV."""
    if w.q <= 0:
        return False
    shortest = 0.02 if lead in Q_SHORT_LEADS else 0.03
    qs = w.r <= 0
    return bool(qs or (w.q_s >= shortest - 1e-9 and w.q >= 0.25 * w.r))


def criteria_from_waves(waves: dict[str, Waves], qrs_s: float, rr_s: float) -> dict[str, float]:
    """The criteria (CRITERIA) from each lead's waves ({lead name: Waves}), the QRS duration
    and the median RR interval (s; NaN: unknown).

    - heart_rate_bpm: 60 / RR; a faster rate goes with lower EF.
    - qrs_ms: QRS duration; > 120 ms with LV dysfunction (Kashani & Barold, JACC 2005;46:2183).
    - sokolow_lyon: S V1 + max(R V5, R V6) (Sokolow & Lyon, Am Heart J 1949;37:161; LVH >= 3.5
      mV).
    - cornell_voltage: R aVL + S V3 (Casale et al., Circulation 1985;72:565; LVH > 2.8 mV men,
      > 2.0 mV women).
    - cornell_product: Cornell voltage x QRS duration in ms (Molloy et al., JACC 1992;20:1180;
      LVH > 2440 mm.ms; their 0.8 mV added for women needs mV, so not applied).
    - peguero_lo_presti: deepest S in any lead but aVR + S V4 (Peguero et al., JACC
      2017;69:1694; LVH >= 2.8 mV men, >= 2.3 mV women).
    - limb_qrs_max, precordial_qrs_max: the largest QRS peak-to-peak (R + S) of the limb and
      of the chest leads; low voltage when < 0.5 mV and < 1.0 mV (ESC 2013 / AHA/ACCF/HRS
      recommendations, Hancock et al., JACC 2009;53:992).
    - q_wave_leads: how many leads carry a pathological Q (`pathological_q`).
    - lbbb: 1 for a left bundle branch block pattern (Surawicz et al., JACC 2009;53:976): QRS
      >= 120 ms, no Q in I, V5 and V6, V1 dominantly negative (S > R).
    - t_lateral: mean T amplitude of V5 and V6 (negative: the LV "strain" pattern, Romhilt &
      Estes, Am Heart J 1968;75:752; or the discordant T of a bundle branch block).
    """
    nan = float("nan")

    def get(lead: str, wave: str) -> float:
        return float(getattr(waves[lead], wave)) if lead in waves else nan

    qrs_ms = qrs_s * 1000.0
    cornell = get("aVL", "r") + get("V3", "s")
    limb = [waves[n].r + waves[n].s for n in LIMB if n in waves]
    chest = [waves[n].r + waves[n].s for n in PRECORDIAL if n in waves]
    # aVR's QRS is negative in everyone: its QS is not the S the criterion looks for
    deepest = max((w.s for n, w in waves.items() if n != "aVR"), default=nan)
    lbbb_leads = ("I", "V1", "V5", "V6")
    if np.isfinite(qrs_ms) and all(n in waves for n in lbbb_leads):
        lbbb = float(
            qrs_ms >= 120.0
            and all(waves[n].q <= 0 for n in ("I", "V5", "V6"))
            and waves["V1"].s > waves["V1"].r
        )
    else:
        lbbb = nan
    return {
        "heart_rate_bpm": 60.0 / rr_s if rr_s > 0 else nan,
        "qrs_ms": qrs_ms,
        "sokolow_lyon": get("V1", "s") + float(np.fmax(get("V5", "r"), get("V6", "r"))),
        "cornell_voltage": cornell,
        "cornell_product": cornell * qrs_ms,
        "peguero_lo_presti": deepest + get("V4", "s"),
        "limb_qrs_max": max(limb) if limb else nan,
        "precordial_qrs_max": max(chest) if chest else nan,
        "q_wave_leads": float(sum(pathological_q(waves[n], n) for n in Q_LEADS if n in waves)),
        "lbbb": lbbb,
        "t_lateral": float(np.mean([get("V5", "t"), get("V6", "t")])),
    }


def ecg_criteria(
    signal: np.ndarray, peaks: np.ndarray, fs: float, leads: Sequence[str]
) -> dict[str, float]:
    """Every criterion (CRITERIA) of a (C, S) ECG with R peaks `peaks` (sample indices), its
    leads named `leads` (C,). A criterion that cannot be measured is NaN (no complete beat, a
    flat or non-finite recording, fewer than two beats for the rate); never an error."""
    nan = {name: float("nan") for name in CRITERIA}
    x = np.asarray(signal, dtype=np.float64)
    peaks = np.asarray(peaks, dtype=np.int64)
    if x.ndim != 2 or len(leads) != x.shape[0] or not np.all(np.isfinite(x)):
        return nan
    rr_s = float(np.median(np.diff(peaks))) / fs if len(peaks) >= 2 else float("nan")
    found = median_beat(x, peaks, fs)
    if found is None:
        return {**nan, "heart_rate_bpm": 60.0 / rr_s if rr_s > 0 else float("nan")}
    beat, r = found
    bounds = qrs_bounds(beat, r, fs)
    if bounds is None:
        return {**nan, "heart_rate_bpm": 60.0 / rr_s if rr_s > 0 else float("nan")}
    onset, offset = bounds
    waves = {name: lead_waves(beat[i], onset, offset, fs) for i, name in enumerate(leads)}
    return criteria_from_waves(waves, (offset - onset) / fs, rr_s)
