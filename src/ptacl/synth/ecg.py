"""A 12-lead resting ECG from a moving heart dipole (vectorcardiogram) model.

Each beat is a sum of P, QRS (septal, main LV, terminal) and T dipole components: 3-D
directions with Gaussian time courses. The dipole's potential is evaluated at nine electrodes
(RA, LA, LL, V1–V6) placed on the torso, and leads are formed from electrode potentials as an
electrocardiograph does, so Einthoven's and Goldberger's relations hold exactly before
quantisation; noise is added at the electrodes, so they keep holding with noise.

What ties the ECG to the heart (the signal a model can learn):
  QRS voltage up with LV mass and down with body size (electrodes farther away),
  QRS duration up with LV size, RV size turns the QRS vector right and anterior (axis, V1),
  heart rate with respiratory variability, and the T-wave end set by the same QTc latent that
  sets end-systole in the cine.
What ties it to systolic function (generator version 2; never the EF itself as an amplitude,
only conduction and scar that go with a failing ventricle, see `_ventricular_activation`):
  the QRS widens as EF falls below 55 % (intraventricular conduction delay), a left bundle
  branch block grows likelier (`latents.lbbb_probability`): wide, notched, discordant T; a
  prior infarct leaves pathological Q waves in its territory and less QRS voltage; and the
  rate rises (set in `latents.py`, so the cine's rate too).
What hides it (as in reality): heart orientation, electrode placement, habitus, conductivity,
baseline wander, mains hum, muscle noise, and a heart rate that differs from the cine's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ptacl.synth.geometry import qrs_duration_s
from ptacl.synth.latents import Latents, qt_seconds

LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
FS = 500
SAMPLES = 5000
MEDIAN_SAMPLES = 600
MEDIAN_R_INDEX = 300  # the R peak's sample in the median beat
UV_PER_LSB = 5

# Electrode positions (cm) relative to the heart's centre: x to the subject's left, y down,
# z anterior. Limb electrodes stand for the roots of the limbs (Einthoven's triangle).
_LIMBS = np.array([[-14.7, -8.5, 0.0], [14.7, -8.5, 0.0], [0.0, 17.0, 0.0]])  # RA, LA, LL
_CHEST = np.array(
    [
        [-4.5, 0.0, 6.5],  # V1 4th intercostal space, right sternal border
        [-0.5, 0.0, 7.0],  # V2
        [3.0, 1.0, 7.0],  # V3
        [6.0, 2.0, 6.0],  # V4 5th space, mid-clavicular line
        [8.5, 2.0, 3.5],  # V5 anterior axillary line
        [10.0, 2.0, 0.0],  # V6 mid-axillary line
    ]
)
_GAIN = 250.0  # mV per dipole unit at 1 cm: puts lead II R near 1 mV for an average heart


@dataclass(frozen=True)
class Ecg:
    """A rendered ECG: leads in mV before quantisation, and what the device would report."""

    signal_mv: np.ndarray  # (12, SAMPLES) float64, LEADS order
    median_mv: np.ndarray  # (12, MEDIAN_SAMPLES) median beat, R at MEDIAN_R_INDEX
    r_peaks: np.ndarray  # (P,) int64 true R-peak samples in the strip
    measurements: dict[str, float]


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def _rotation(rng: np.random.Generator, degrees: tuple[float, float, float]) -> np.ndarray:
    """A random rotation with independent normal angles (s.d. in degrees) about x, y, z."""
    ax, ay, az = np.deg2rad(rng.normal(0.0, degrees))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _leads(phi: np.ndarray) -> np.ndarray:
    """Electrode potentials (9, S) in RA, LA, LL, V1..V6 order -> the 12 leads (12, S)."""
    ra, la, ll = phi[0], phi[1], phi[2]
    wct = (ra + la + ll) / 3.0  # Wilson's central terminal
    limb = [la - ra, ll - ra, ll - la, ra - (la + ll) / 2, la - (ra + ll) / 2, ll - (ra + la) / 2]
    return np.vstack([np.array(limb), phi[3:] - wct])


def synth_ecg(lat: Latents, rng: np.random.Generator) -> Ecg:
    """Render a 10 s, 500 Hz, 12-lead ECG for one subject."""
    t = np.arange(SAMPLES) / FS
    rr_mean = 60.0 / lat.hr_ecg_bpm

    # --- beat timing: respiratory sinus arrhythmia plus irregular variability
    resp_f, resp_ph = rng.uniform(0.2, 0.33), rng.uniform(0, 2 * np.pi)
    rsa = rng.uniform(0.01, 0.05)
    beats = [rng.uniform(-rr_mean, 0.0)]
    while beats[-1] < t[-1] + rr_mean:
        last = beats[-1]
        wobble = 1.0 + rsa * np.sin(2 * np.pi * resp_f * last + resp_ph) + rng.normal(0, 0.012)
        beats.append(last + rr_mean * wobble)
    r_times = np.array(beats)

    # --- the subject's heart and torso
    qrs_own = qrs_duration_s(lat) * np.exp(rng.normal(0.0, 0.085))  # conduction varies per person
    # Intraventricular conduction delay: the QRS widens as the ventricle fails (QRS > 120 ms in
    # a third of heart-failure patients: Kashani & Barold, JACC 2005;46:2183; longer QRS goes
    # with LV dysfunction in Framingham: Dhingra et al., Hypertension 2006;47:861). 1.2 % per
    # EF point below 55 % is this generator's choice (EF 35 %: +24 %).
    qrs = qrs_own * (1.0 + 0.012 * lat.ef_deficit)
    qt = qt_seconds(lat.qtc_ms, rr_mean)
    pr = lat.pr_ms / 1000.0
    p_dur = rng.uniform(0.085, 0.115)
    # QRS voltage explains LV mass only in part (Sokolow-Lyon vs mass: r ~ 0.3-0.5): tissue and
    # blood conductivity, myocyte properties and geometry vary a lot between people.
    lv_amp = (lat.lvm_g / 85.0) * np.exp(rng.normal(0.0, 0.3))
    rv_amp = 0.28 * (lat.rvedv_ml / 155.0) ** 1.5 * np.exp(rng.normal(0.0, 0.3))
    orient = _rotation(rng, (10.0, 12.0, 20.0))  # the heart's anatomical orientation
    t_jitter = orient @ rng.normal(0.0, 0.35, 3)
    t_scale = rng.uniform(0.2, 0.35)
    if lat.lbbb:  # the left ventricle is activated slowly through muscle, from the right septum
        qrs += rng.uniform(0.035, 0.06)
    comps, main_amp, main_dir = _ventricular_activation(lat, qrs, lv_amp, rv_amp, orient)
    p_dir = orient @ _unit([0.5, 0.8, 0.2])
    comps.insert(0, (-0.5 * qrs - pr + p_dur / 2, p_dur / 5, p_dur / 5, 0.1, p_dir))
    # T wave: slow rise, faster fall; its end (peak + 2.5 fall sigmas) is QRS onset + QT. The
    # end stays where the subject's own conduction puts it (and end-systole with it): a wider
    # QRS starts earlier and lengthens the QT by half its widening, as in LBBB (Bogossian et
    # al., Heart Rhythm 2014;11:2273). Its secondary T wave is discordant to the QRS and larger.
    t_fall = 0.035 * qt / 0.4
    t_end = qt - 0.5 * qrs_own
    qt_measured = qt + 0.5 * (qrs - qrs_own)
    if lat.lbbb:
        t_dir, t_amp = _unit(-main_dir + t_jitter), 1.4 * main_amp * t_scale
    else:
        t_dir, t_amp = _unit(main_dir + t_jitter), main_amp * t_scale  # T roughly concordant
    comps.append((t_end - 2.5 * t_fall, 1.8 * t_fall, t_fall, t_amp, t_dir))

    # --- dipole over time (3, S), with a respiratory swing of amplitude
    dipole = np.zeros((3, SAMPLES))
    for r in r_times:
        for off, s_rise, s_fall, amp, direction in comps:
            centre = r + off
            lo, hi = np.searchsorted(t, [centre - 5 * s_rise, centre + 5 * s_fall])
            if hi <= lo:
                continue
            x = t[lo:hi] - centre
            shape = np.exp(-0.5 * (x / np.where(x < 0, s_rise, s_fall)) ** 2)
            dipole[:, lo:hi] += (amp * direction)[:, None] * shape[None, :]
    dipole *= 1.0 + 0.05 * np.sin(2 * np.pi * resp_f * t + resp_ph)[None, :]

    # --- electrodes: torso size (habitus) and placement errors move them
    torso = (lat.bsa_m2 / 1.88) ** 0.5 * (lat.weight_kg / lat.height_cm**2 * 1e4 / 26.5) ** 0.25
    torso *= np.exp(rng.normal(0.0, 0.05))
    chest = _CHEST * torso + rng.normal(0.0, 1.0, _CHEST.shape)
    chest[:, 1] += rng.normal(0.0, 1.2)  # the whole row one intercostal space off, or not
    electrodes = np.vstack([_LIMBS * torso, chest])  # (9, 3)
    dist = np.linalg.norm(electrodes, axis=1, keepdims=True)
    lead_field = _GAIN * electrodes / dist**3  # (9, 3)
    clean = lead_field @ dipole  # (9, S) potentials in mV
    noisy = clean + _electrode_noise(rng, t)

    r_peaks = np.rint(r_times * FS).astype(np.int64)
    r_peaks = r_peaks[(r_peaks >= 0) & (r_peaks < SAMPLES)]
    signal = _leads(noisy)
    median = _median_beat(signal, r_peaks)
    rr_ms = float(np.mean(np.diff(r_peaks))) * 1000.0 / FS
    measurements = {
        "VentricularRate": round(60000.0 / rr_ms),
        "PQInterval": _ms(pr, rng),
        "PDuration": _ms(p_dur, rng),
        "QRSDuration": _ms(qrs, rng),
        "QTInterval": _ms(qt_measured, rng),
        "QTCInterval": round(qt_measured * 1000.0 / np.sqrt(rr_ms / 1000.0)),
        "RRInterval": round(rr_ms),
        "PPInterval": round(rr_ms),
        **_axes_and_voltage(_leads(clean), r_peaks, qrs),
        "QRSNum": len(r_peaks),
        "POnset": MEDIAN_R_INDEX - round((0.5 * qrs + pr) * FS),
        "POffset": MEDIAN_R_INDEX - round((0.5 * qrs + pr - p_dur) * FS),
        "QOnset": MEDIAN_R_INDEX - round(0.5 * qrs * FS),
        "QOffset": MEDIAN_R_INDEX + round(0.5 * qrs * FS),
        "TOffset": min(MEDIAN_R_INDEX + round(t_end * FS), MEDIAN_SAMPLES - 1),
    }
    return Ecg(signal_mv=signal, median_mv=median, r_peaks=r_peaks, measurements=measurements)


#: Outward normals of the infarct territories (heart coordinates: x left, y down, z anterior):
#: anterior wall and septum (LAD), inferior wall (RCA), lateral wall (LCx).
_TERRITORY_NORMAL = {1: (0.0, 0.2, 1.0), 2: (0.0, 1.0, -0.2), 3: (1.0, 0.0, -0.3)}


def _ventricular_activation(
    lat: Latents, qrs: float, lv_amp: float, rv_amp: float, orient: np.ndarray
) -> tuple[list[tuple], float, np.ndarray]:
    """QRS dipole components [(offset from R (s), sigma rise, sigma fall, amplitude,
    direction)], and the amplitude and direction of the main QRS vector (the T follows it).

    Normal conduction: septum left to right, the LV free wall, the basal terminal forces.
    Left bundle branch block (Strauss et al., Am J Cardiol 2011;107:927; Surawicz et al.,
    JACC 2009;53:976): the septum is activated right to left (no septal q in I, V5, V6; QS or
    rS in V1), the RV early, the LV late and in two waves (a broad notched R in I, aVL, V5, V6).
    A prior infarct (Thygesen et al., Fourth universal definition of MI, Circulation
    2018;138:e618): scar gives no current, so the early QRS vector points away from the
    territory (Q waves in the leads facing it) and the QRS loses voltage; Q waves follow
    infarct size (Moon et al., JACC 2004;44:554). Their strengths are this generator's.
    """
    scar = lat.infarct_pct / 100.0
    lv_amp_alive = lv_amp * (1.0 - scar)
    lv_dir = orient @ _unit([0.72, 0.55, -0.42])
    rv_dir = orient @ _unit([-0.75, 0.25, 0.6])
    if lat.lbbb:
        early, late = orient @ _unit([0.6, 0.35, -0.2]), orient @ _unit([0.7, 0.05, -0.7])
        main_vec = lv_amp_alive * (early + late)
        comps = [
            (-0.32 * qrs, 0.07 * qrs, 0.07 * qrs, 0.15 * lv_amp_alive, orient @ _unit([0.6, 0.3, -0.3])),
            (-0.25 * qrs, 0.08 * qrs, 0.08 * qrs, 0.5 * rv_amp, rv_dir),
            (-0.1 * qrs, 0.1 * qrs, 0.1 * qrs, 0.65 * lv_amp_alive, early),
            (0.18 * qrs, 0.1 * qrs, 0.12 * qrs, 0.7 * lv_amp_alive, late),
        ]  # fmt: skip
    else:
        main_vec = lv_amp_alive * lv_dir + rv_amp * rv_dir
        comps = [
            (-0.3 * qrs, 0.07 * qrs, 0.07 * qrs, 0.1 * lv_amp_alive, orient @ _unit([-0.5, 0.3, 0.8])),
            (0.0, 0.12 * qrs, 0.12 * qrs, np.linalg.norm(main_vec), _unit(main_vec)),
            (0.28 * qrs, 0.09 * qrs, 0.09 * qrs, 0.25 * lv_amp_alive + 0.5 * rv_amp, orient @ _unit([-0.35, -0.6, -0.6])),
        ]  # fmt: skip
    if scar > 0.0:
        away = -(orient @ _unit(_TERRITORY_NORMAL[lat.infarct_territory]))
        comps.append((-0.28 * qrs, 0.09 * qrs, 0.09 * qrs, 2.5 * scar * lv_amp, away))
    return comps, float(np.linalg.norm(main_vec)), _unit(main_vec)


def _ms(seconds: float, rng: np.random.Generator) -> int:
    """An interval as the device measures it: to the nearest 2 ms, with a few ms of error."""
    return int(2 * round((seconds * 1000.0 + rng.normal(0.0, 3.0)) / 2))


def _electrode_noise(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Baseline wander, mains hum and muscle noise at each of the nine electrodes (mV)."""
    n = 9
    level = rng.uniform(0.2, 1.0)  # how restless / badly prepared this recording is
    freq = rng.uniform(0.05, 0.5, (n, 2))
    phase = rng.uniform(0, 2 * np.pi, (n, 2))
    amp = rng.uniform(0.0, 0.12, (n, 2)) * level
    wander = (amp[:, :, None] * np.sin(2 * np.pi * freq[:, :, None] * t + phase[:, :, None])).sum(1)
    hum = rng.uniform(0.0, 0.012, (n, 1)) * np.sin(
        2 * np.pi * 50.0 * t + rng.uniform(0, 2 * np.pi, (n, 1))
    )
    emg_sd = rng.uniform(0.003, 0.012, (n, 1)) * level
    emg_sd[:3] *= 2.0  # limb electrodes pick up more skeletal muscle
    white = rng.standard_normal((n, t.size + 1)) * emg_sd
    return wander + hum + 0.5 * (white[:, 1:] + white[:, :-1])


def _median_beat(signal: np.ndarray, r_peaks: np.ndarray) -> np.ndarray:
    """Median across complete beats of a window with the R peak at MEDIAN_R_INDEX."""
    starts = r_peaks - MEDIAN_R_INDEX
    ok = (starts >= 0) & (starts + MEDIAN_SAMPLES <= signal.shape[1])
    windows = [signal[:, s : s + MEDIAN_SAMPLES] for s in starts[ok]]
    if not windows:  # very slow rhythm: fall back to the beat nearest the middle
        s = int(np.clip(starts[len(starts) // 2], 0, signal.shape[1] - MEDIAN_SAMPLES))
        windows = [signal[:, s : s + MEDIAN_SAMPLES]]
    median = np.median(np.stack(windows), axis=0)
    # Like the device, take the median of I and II only and derive the other limb leads from
    # them: a median does not commute with the lead sums, the derivation does.
    i, ii = median[0], median[1]
    median[2:6] = [ii - i, -(i + ii) / 2, i - ii / 2, ii - i / 2]
    return median


def _axes_and_voltage(clean: np.ndarray, r_peaks: np.ndarray, qrs: float) -> dict[str, float]:
    """Frontal QRS axis (net area in I and aVF) and the Sokolow–Lyon index, on the clean beat."""
    r = int(r_peaks[len(r_peaks) // 2])
    half = int(0.5 * qrs * FS)
    window = clean[:, max(r - half, 0) : r + half + 1]
    axis = np.degrees(np.arctan2(window[5].sum(), window[0].sum()))
    sokolow = -window[6].min() + max(window[10].max(), window[11].max())
    return {"RAxis": round(float(axis)), "SokolovLVHIndex": round(float(sokolow) * 1000.0)}
