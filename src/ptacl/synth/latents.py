"""Latent physiology of one synthetic subject: what both the cine and the ECG are rendered from.

The marginals follow UK Biobank imaging-visit figures (LVEDV 145±33 mL, LVESV 60±18 mL,
LVEF 59±6 %, LVM 85±22 g, HR 65±10 bpm, RVEDV 155±37 mL, RVEF 56±6 %); the correlations are
the physiological ones (men and larger bodies have larger, heavier hearts; LV and RV size move
together; contractility is shared between ventricles). These are the *targets* of the phantom;
the phenotype table is measured on the phantom itself (see `cmr.py`), not copied from here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# Order of the correlated standard-normal factors drawn per subject.
_FACTORS = ("size", "mass", "contract", "rate", "rv_size", "rv_func", "qtc")
_CORR = np.array(
    [
        # size  mass  contr  rate  rvsz  rvfn  qtc
        [1.00, 0.65, -0.20, -0.15, 0.80, -0.10, 0.00],
        [0.65, 1.00, -0.05, -0.10, 0.50, -0.05, 0.05],
        [-0.20, -0.05, 1.00, 0.05, -0.15, 0.45, 0.00],
        [-0.15, -0.10, 0.05, 1.00, -0.10, 0.00, 0.10],
        [0.80, 0.50, -0.15, -0.10, 1.00, -0.20, 0.00],
        [-0.10, -0.05, 0.45, 0.00, -0.20, 1.00, 0.00],
        [0.00, 0.05, 0.00, 0.10, 0.00, 0.00, 1.00],
    ]
)
_CHOL = np.linalg.cholesky(_CORR)


@dataclass(frozen=True)
class Latents:
    """One subject's latent physiology (targets for the phantom, units in the names)."""

    male: bool
    age: int
    height_cm: float
    weight_kg: float
    bsa_m2: float
    lvedv_ml: float
    lvef_pct: float
    lvm_g: float
    rvedv_ml: float
    rvef_pct: float
    hr_cmr_bpm: float  # heart rate during the cine acquisition
    hr_ecg_bpm: float  # heart rate during the ECG, recorded at another moment
    qtc_ms: float  # rate-corrected QT: the timing latent shared by T-wave end and end-systole
    pr_ms: float

    @property
    def lvesv_ml(self) -> float:
        return self.lvedv_ml * (1.0 - self.lvef_pct / 100.0)

    @property
    def rvesv_ml(self) -> float:
        return self.rvedv_ml * (1.0 - self.rvef_pct / 100.0)

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def qt_seconds(qtc_ms: float, rr_s: float) -> float:
    """QT interval (s) at a given R-R interval; rate correction between Bazett and Fridericia."""
    return qtc_ms / 1000.0 * rr_s**0.4


def sample_latents(rng: np.random.Generator) -> Latents:
    """Draw one subject's latents."""
    male = bool(rng.random() < 0.48)
    sex = 1.0 if male else -1.0  # centred so that the cohort mean stays on target
    z = dict(zip(_FACTORS, _CHOL @ rng.standard_normal(len(_FACTORS)), strict=True))

    height = rng.normal(176.0 if male else 163.0, 7.0)
    bmi = float(np.clip(rng.lognormal(np.log(26.5), 0.15), 17.0, 45.0))
    weight = bmi * (height / 100.0) ** 2
    bsa = float(np.sqrt(height * weight / 3600.0))  # Mosteller
    bsa_z = (bsa - 1.88) / 0.2

    # Sex and body size explain part of each size factor; the rest is the subject's own.
    def mix(factor: str, w_sex: float, w_bsa: float) -> float:
        own = np.sqrt(max(1.0 - w_sex**2 - w_bsa**2, 0.0))
        return w_sex * sex + w_bsa * bsa_z + own * z[factor]

    lvedv = 145.0 + 33.0 * mix("size", 0.45, 0.30)
    lvm = 85.0 + 22.0 * mix("mass", 0.55, 0.30)
    rvedv = 155.0 + 37.0 * mix("rv_size", 0.50, 0.30)
    lvef = 59.0 + 6.0 * z["contract"] + 1.0 * (not male)
    rvef = 56.0 + 6.0 * z["rv_func"] + 1.0 * (not male)
    hr = 65.0 * np.exp(0.15 * z["rate"])
    hr_ecg = hr * np.exp(rng.normal(0.0, 0.06))
    qtc = (405.0 if male else 418.0) + 16.0 * z["qtc"]
    pr = float(np.clip(rng.normal(158.0, 20.0), 110.0, 230.0))
    return Latents(
        male=male,
        age=int(np.clip(rng.normal(63.0, 7.5), 45, 82)),
        height_cm=float(height),
        weight_kg=float(weight),
        bsa_m2=bsa,
        lvedv_ml=float(np.clip(lvedv, 70.0, 280.0)),
        lvef_pct=float(np.clip(lvef, 38.0, 78.0)),
        lvm_g=float(np.clip(lvm, 40.0, 180.0)),
        rvedv_ml=float(np.clip(rvedv, 70.0, 300.0)),
        rvef_pct=float(np.clip(rvef, 38.0, 75.0)),
        hr_cmr_bpm=float(np.clip(hr, 42.0, 110.0)),
        hr_ecg_bpm=float(np.clip(hr_ecg, 40.0, 115.0)),
        qtc_ms=float(np.clip(qtc, 360.0, 470.0)),
        pr_ms=pr,
    )
