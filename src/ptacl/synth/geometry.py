"""The heart phantom's geometry over one cardiac cycle: slice-by-slice cavity and wall areas.

The LV is a truncated prolate ellipsoid (cavity and epicardium), imaged as a short-axis stack;
its base descends towards the fixed apex in systole (long-axis shortening) and the myocardium
keeps its volume, so the wall thickens as the cavity empties. The RV is the part of a disc
outside the LV epicardium (a crescent); its thickness is solved frame by frame to follow the RV
volume curve.

Every cross-section is a circle, so each slice's areas are exact closed forms: the phenotype
table is the disc-summation of these areas (as ukbb_cardiac sums voxels), and the rasterised
segmentation must agree with it up to pixelation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ptacl.synth.latents import Latents, qt_seconds

FRAMES = 50
SLICE_GAP_MM = 10.0  # slice-to-slice distance (8 mm slices + 2 mm gap, as in UK Biobank)
MYO_DENSITY = 1.05  # g/mL
_U_EQUATOR = 0.2  # the LV is widest 20 % of the way from base to apex


@dataclass(frozen=True)
class HeartGeometry:
    """Per-frame, per-slice radii in mm (arrays (F, Z)); zero where the structure is absent."""

    r_endo: np.ndarray
    r_epi: np.ndarray
    rv_radius: np.ndarray  # RV cavity disc radius
    rv_offset: np.ndarray  # distance from LV centre to RV disc centre
    rv_wall_mm: float
    frame_interval_s: float
    es_time_s: float
    mid_slice: int
    volume_curve: np.ndarray  # (F,) 1 = end-diastole, 0 = end-systole

    @property
    def n_slices(self) -> int:
        return self.r_endo.shape[1]

    def areas(self) -> dict[str, np.ndarray]:
        """Exact cross-section areas (F, Z) in mm² of LV cavity, LV myocardium and RV cavity."""
        lv = np.pi * self.r_endo**2
        myo = np.pi * self.r_epi**2 - lv
        rv = np.pi * self.rv_radius**2 - _lens(self.rv_radius, self.r_epi, self.rv_offset)
        return {"lv": lv, "myo": myo, "rv": rv}

    def phenotypes(self) -> dict[str, float]:
        """The ten ukbb_cardiac phenotypes of this phantom, by disc summation of exact areas."""
        a = self.areas()
        ml = SLICE_GAP_MM / 1000.0  # mm² x slice distance -> mL
        lv = a["lv"].sum(axis=1) * ml
        rv = a["rv"].sum(axis=1) * ml
        es = int(np.argmin(lv))
        hr = 60.0 / (FRAMES * self.frame_interval_s)
        lvedv, lvesv, rvedv, rvesv = lv[0], lv[es], rv[0], rv[es]
        return {
            "LVEDV (mL)": lvedv,
            "LVESV (mL)": lvesv,
            "LVSV (mL)": lvedv - lvesv,
            "LVEF (%)": 100.0 * (lvedv - lvesv) / lvedv,
            "LVCO (L/min)": (lvedv - lvesv) * hr / 1000.0,
            "LVM (g)": a["myo"][0].sum() * ml * MYO_DENSITY,
            "RVEDV (mL)": rvedv,
            "RVESV (mL)": rvesv,
            "RVSV (mL)": rvedv - rvesv,
            "RVEF (%)": 100.0 * (rvedv - rvesv) / rvedv,
        }


def _lens(r1: np.ndarray, r2: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Intersection area of two discs (radii r1, r2, centre distance d), elementwise."""
    r1, r2, d = np.broadcast_arrays(r1, r2, d)
    out = np.zeros(r1.shape)
    small = np.minimum(r1, r2)
    inside = d <= np.abs(r1 - r2)
    out[inside] = np.pi * small[inside] ** 2
    part = (d < r1 + r2) & ~inside & (small > 0)
    a, b, c = r1[part], r2[part], d[part]
    cos1 = np.clip((c**2 + a**2 - b**2) / (2 * c * a), -1, 1)
    cos2 = np.clip((c**2 + b**2 - a**2) / (2 * c * b), -1, 1)
    kite = (-c + a + b) * (c + a - b) * (c - a + b) * (c + a + b)
    out[part] = a**2 * np.arccos(cos1) + b**2 * np.arccos(cos2) - 0.5 * np.sqrt(np.maximum(kite, 0))
    return out


def volume_curve(t: np.ndarray, rr: float, t_es: float, pr: float) -> np.ndarray:
    """Normalised ventricular volume (1 = ED, 0 = ES) at times `t` (s) after the R peak.

    Isovolumic contraction, ejection (fast, then slowing) to end-systole at `t_es`, isovolumic
    relaxation, rapid exponential filling, diastasis, and the atrial kick that starts a
    PR-dependent time before the next R peak and completes filling at `rr`.
    """
    ivc, ivr, tau = 0.03, 0.07, 0.09
    v = np.ones_like(t)
    ej = (t >= ivc) & (t < t_es)
    u = (t[ej] - ivc) / (t_es - ivc)
    v[ej] = (1.0 - u) ** 2  # fraction of stroke volume not yet ejected
    t_fill = t_es + ivr
    t_atrial = max(rr - max(pr - 0.05, 0.06), t_fill + 0.02)
    passive_end = 0.8 * (1.0 - np.exp(-(rr - t_fill) / tau))

    def passive(x: np.ndarray) -> np.ndarray:
        return 0.8 * (1.0 - np.exp(-np.maximum(x - t_fill, 0.0) / tau))

    dia = t >= t_es
    s = np.clip((t[dia] - t_atrial) / (rr - t_atrial), 0.0, 1.0)
    v[dia] = passive(t[dia]) + (1.0 - passive_end) * (3 * s**2 - 2 * s**3)
    return v


def _profile(z: np.ndarray, base: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Squared-radius profile of a truncated ellipsoid along the stack, in [0, 1]."""
    u = (z[None, :] - base[:, None]) / length[:, None]
    h = 1.0 - ((u - _U_EQUATOR) / (1.0 - _U_EQUATOR)) ** 2
    return np.where((u >= 0) & (u <= 1), np.maximum(h, 0.0), 0.0)


def build_geometry(lat: Latents, rng: np.random.Generator) -> HeartGeometry:
    """Solve the phantom's radii so its volumes follow the subject's latent targets."""
    rr = 60.0 / lat.hr_cmr_bpm
    dt = rr / FRAMES
    qrs_s = qrs_duration_s(lat)
    # End-systole is aortic valve closure, which coincides with the end of the T wave: the same
    # QTc latent sets both, measured from QRS onset (half a QRS before the R peak).
    t_es = qt_seconds(lat.qtc_ms, rr) - 0.5 * qrs_s + rng.normal(0.0, 0.008)
    t = np.arange(FRAMES) * dt
    v = volume_curve(t, rr, t_es, lat.pr_ms / 1000.0)

    lv_vol = (lat.lvesv_ml + (lat.lvedv_ml - lat.lvesv_ml) * v) * 1000.0  # mm³
    rv_vol = (lat.rvesv_ml + (lat.rvedv_ml - lat.rvesv_ml) * v) * 1000.0
    myo_vol = lat.lvm_g / MYO_DENSITY * 1000.0

    length_ed = 86.0 * (lat.lvedv_ml / 145.0) ** (1 / 3) * np.exp(rng.normal(0.0, 0.05))
    descent = rng.uniform(10.0, 15.0) * (lat.lvef_pct / 59.0)  # mitral annular excursion
    apex_wall = rng.uniform(5.0, 8.0)
    above = rng.uniform(2.0, 22.0)  # the stack starts 0-2 slices above the LV base
    n_slices = int(np.ceil((above + length_ed + apex_wall) / SLICE_GAP_MM))
    z = np.arange(n_slices) * SLICE_GAP_MM

    base = above + descent * (1.0 - v)  # (F,)
    length = above + length_ed - base
    h_endo = _profile(z, base, length)
    h_epi = _profile(z, base, length + apex_wall)
    ring = np.pi * SLICE_GAP_MM
    r_endo = np.sqrt(lv_vol / (ring * h_endo.sum(axis=1)))[:, None] * np.sqrt(h_endo)
    # Incompressible myocardium: epicardium encloses cavity + fixed muscle volume at every frame.
    r_epi = np.sqrt((lv_vol + myo_vol) / (ring * h_epi.sum(axis=1)))[:, None] * np.sqrt(h_epi)
    r_epi = np.where(r_endo > 0, np.maximum(r_epi, r_endo + 3.0), r_epi)

    rv_base = above - rng.uniform(2.0, 10.0)  # the RV outflow reaches above the LV base
    rv_len = np.full(FRAMES, above - rv_base + length_ed * rng.uniform(0.85, 0.95))
    h_rv = np.sqrt(_profile(z, np.full(FRAMES, rv_base), rv_len))
    # The RV is the part of a disc outside the LV epicardium: a crescent of thickness `w` on the
    # LV-RV axis whose horns meet the epicardium at +-`span` around that axis. Given both, the
    # disc's radius and centre distance follow from the geometry of the horn points.
    span = np.deg2rad(rng.uniform(75.0, 100.0))

    def rv_disc(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        reach = r_epi + w
        safe = np.maximum(2 * (reach - r_epi * np.cos(span)), 1e-9)
        off = (reach**2 - r_epi**2) / safe
        return reach - off, off  # radius, centre distance

    def rv_area(scale: np.ndarray) -> np.ndarray:
        rho, off = rv_disc(scale[:, None] * h_rv)
        return (np.pi * rho**2 - _lens(rho, r_epi, off)).sum(axis=1) * SLICE_GAP_MM

    lo, hi = np.zeros(FRAMES), np.full(FRAMES, 60.0)
    for _ in range(40):  # bisection, all frames at once; RV area grows with crescent thickness
        mid = 0.5 * (lo + hi)
        too_big = rv_area(mid) > rv_vol
        hi = np.where(too_big, mid, hi)
        lo = np.where(too_big, lo, mid)
    thickness = 0.5 * (lo + hi)[:, None] * h_rv
    rv_radius, rv_off = rv_disc(thickness)
    rv_radius = np.where(thickness > 0, rv_radius, 0.0)  # no RV in this slice
    rv_off = np.where(thickness > 0, rv_off, 0.0)
    mid_slice = int(np.argmin(np.abs(z - (above + 0.45 * length_ed))))
    return HeartGeometry(
        r_endo=r_endo,
        r_epi=r_epi,
        rv_radius=rv_radius,
        rv_offset=rv_off,
        rv_wall_mm=float(rng.uniform(2.5, 4.0)),
        frame_interval_s=float(np.float32(dt)),  # the value the NIfTI header can hold
        es_time_s=float(t_es),
        mid_slice=mid_slice,
        volume_curve=v,
    )


def qrs_duration_s(lat: Latents) -> float:
    """Typical QRS duration for this heart: grows, modestly, with LV size and mass.

    Population studies find only weak-to-moderate correlations of QRS duration with LV size
    (conduction differs between people far more), so the exponents are small and `synth_ecg`
    adds a larger individual factor.
    """
    return 0.088 * (lat.lvedv_ml / 145.0) ** 0.2 * (lat.lvm_g / 85.0) ** 0.1
