"""Latent physiology of one synthetic subject: what both the cine and the ECG are rendered from.

The marginals follow UK Biobank imaging-visit figures (LVEDV 145±33 mL, LVESV 60±18 mL,
LVEF 59±6 %, LVM 85±22 g, HR 65±10 bpm, RVEDV 155±37 mL, RVEF 56±6 %); the correlations are
the physiological ones (men and larger bodies have larger, heavier hearts; LV and RV size move
together; contractility is shared between ventricles). These are the *targets* of the phantom;
the phenotype table is measured on the phantom itself (see `cmr.py`), not copied from here.

LV systolic dysfunction (generator version 2, `systolic_dysfunction` below): a healthy LVEF as
in UK Biobank's healthy reference subjects, lowered in a minority by a prior myocardial
infarction or a non-ischaemic cardiomyopathy; the ventricle dilates and the rate rises as EF
falls, and `lbbb` (left bundle branch block) becomes likelier. What the ECG makes of it is in
`ecg.py`.
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
    # Generator version 2: the causes of a reduced EF and the conduction they leave.
    infarct_pct: float = 0.0  # prior myocardial infarction: scar as % of LV myocardium (0: none)
    infarct_territory: int = 0  # 0 none, 1 anterior (LAD), 2 inferior (RCA), 3 lateral (LCx)
    cardiomyopathy: bool = False  # non-ischaemic (dilated) cardiomyopathy
    lbbb: bool = False  # left bundle branch block

    @property
    def ef_deficit(self) -> float:
        """LVEF points below 55 %, the lower limit of normal (0 at or above it): how far the
        ventricle has remodelled, the severity every EF-linked ECG mechanism scales with."""
        return max(0.0, NORMAL_LVEF_PCT - self.lvef_pct)

    @property
    def lvesv_ml(self) -> float:
        return self.lvedv_ml * (1.0 - self.lvef_pct / 100.0)

    @property
    def rvesv_ml(self) -> float:
        return self.rvedv_ml * (1.0 - self.rvef_pct / 100.0)

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


#: Guidelines call an LVEF of 55 % or more normal and 50-55 % low-normal (e.g. the MESA CMR
#: cohort, Yeboah et al., J Card Fail 2016); below it the ventricle remodels.
NORMAL_LVEF_PCT = 55.0
#: Prior myocardial infarction and non-ischaemic cardiomyopathy per sex (men, women): see
#: `systolic_dysfunction`.
_P_INFARCT = (0.055, 0.025)
_P_CARDIOMYOPATHY = (0.02, 0.01)
#: Infarct territories (anterior, inferior, lateral): LAD and RCA infarcts outnumber LCx ones.
_TERRITORY_P = (0.45, 0.40, 0.15)


def qt_seconds(qtc_ms: float, rr_s: float) -> float:
    """QT interval (s) at a given R-R interval; rate correction between Bazett and Fridericia."""
    return qtc_ms / 1000.0 * rr_s**0.4


def sample_latents(rng: np.random.Generator) -> Latents:
    """Draw one subject's latents.

    The draws of generator version 1 come first and in the same order, so the body, the sizes
    and the rates of a subject are the same as before; the version 2 draws follow them.
    """
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
    # A healthy heart's LVEF: 58 ± 5 % in men, 61 ± 5 % in women, as in UK Biobank's healthy
    # CMR reference subjects (Petersen et al., JCMR 2017;19:18); disease lowers it below.
    lvef = (58.0 if male else 61.0) + 5.0 * z["contract"]
    rvef = 56.0 + 6.0 * z["rv_func"] + 1.0 * (not male)
    hr = 65.0 * np.exp(0.15 * z["rate"])
    hr_ecg_ratio = np.exp(rng.normal(0.0, 0.06))  # the ECG is recorded at another moment
    qtc = (405.0 if male else 418.0) + 16.0 * z["qtc"]
    pr = float(np.clip(rng.normal(158.0, 20.0), 110.0, 230.0))
    age = int(np.clip(rng.normal(63.0, 7.5), 45, 82))

    infarct_pct, territory, cardiomyopathy, ef_drop = systolic_dysfunction(rng, male)
    lvef = float(np.clip(lvef - ef_drop, 20.0, 78.0))
    deficit = max(0.0, NORMAL_LVEF_PCT - lvef)
    # Remodelling: a failing ventricle dilates (Cohn et al., JACC 2000;35:569) and sympathetic
    # activation raises the resting rate (Floras, JACC 2009;54:375), both growing as EF falls;
    # the rate at the cine and at the ECG alike. Strengths are this generator's choice.
    lvedv *= 1.0 + 0.012 * deficit
    hr *= np.exp(0.008 * deficit)
    lbbb = bool(rng.random() < lbbb_probability(lvef))
    return Latents(
        male=male,
        age=age,
        height_cm=float(height),
        weight_kg=float(weight),
        bsa_m2=bsa,
        lvedv_ml=float(np.clip(lvedv, 70.0, 280.0)),
        lvef_pct=lvef,
        lvm_g=float(np.clip(lvm, 40.0, 180.0)),
        rvedv_ml=float(np.clip(rvedv, 70.0, 300.0)),
        rvef_pct=float(np.clip(rvef, 38.0, 75.0)),
        hr_cmr_bpm=float(np.clip(hr, 42.0, 110.0)),
        hr_ecg_bpm=float(np.clip(hr * hr_ecg_ratio, 40.0, 115.0)),
        qtc_ms=float(np.clip(qtc, 360.0, 470.0)),
        pr_ms=pr,
        infarct_pct=infarct_pct,
        infarct_territory=territory,
        cardiomyopathy=cardiomyopathy,
        lbbb=lbbb,
    )


def systolic_dysfunction(rng: np.random.Generator, male: bool) -> tuple[float, int, bool, float]:
    """(infarct % of LV, territory, cardiomyopathy, LVEF points lost) of one subject.

    Prevalence, decided before any method ran on the cohort: a prior myocardial infarction in
    5.5 % of men and 2.5 % of women, a non-ischaemic cardiomyopathy in 2 % and 1 %. With the
    healthy spread this puts 7.1 % of subjects below an LVEF of 50 % (10.5 % of men, 3.8 % of
    women) and 1.8 % below 40 % (40,000 draws of this function). Population figures are about
    half that: LVEF < 50 % by CMR in 1.7 % of MESA participants free of cardiovascular disease
    (Yeboah et al., Circulation 2012;126:2713); EF <= 50 % by echo in 6.0 % of Framingham men
    and 0.8 % of women, EF < 40 % in 1.2 % of all (Wang et al., Circulation 2003;108:977);
    UK Biobank's imaging visit, unlike MESA, includes people after an infarction. The modest
    enrichment is on purpose: a 15 % test split of 1,000 subjects should hold about ten
    EF < 50 % positives and a few below 40 %, not two and none. Men carry more of it.

    An infarct removes contracting muscle: 3-30 % of the LV, each % costing 0.55-1.05 EF
    points (larger scars, lower EF, as CMR infarct-size studies show; the slope is ours).
    A dilated cardiomyopathy costs 10-32 points. Every draw is made whatever applies, so the
    stream stays aligned.
    """
    sex = 0 if male else 1
    u = rng.random()
    infarct_size = rng.uniform(3.0, 30.0)
    per_pct = rng.uniform(0.55, 1.05)
    territory = 1 + int(rng.choice(3, p=_TERRITORY_P))
    cm_drop = rng.uniform(10.0, 32.0)
    if u < _P_INFARCT[sex]:
        return float(infarct_size), territory, False, float(infarct_size * per_pct)
    if u < _P_INFARCT[sex] + _P_CARDIOMYOPATHY[sex]:
        return 0.0, 0, True, float(cm_drop)
    return 0.0, 0, False, 0.0


def lbbb_probability(lvef_pct: float) -> float:
    """Chance of a left bundle branch block at this LVEF: rare with a normal ventricle (under
    1 % in middle age, rising with age: Eriksson et al., Circulation 1998;98:2494), a quarter
    of outpatients with heart failure (25 % of 5,517 in the Italian network on CHF:
    Baldasseroni et al., Am Heart J 2002;143:398). Linear in the EF deficit, 0.5 % at 55 %
    and above to 30.5 % at 30 % and below."""
    return 0.005 + 0.30 * min(max(NORMAL_LVEF_PCT - lvef_pct, 0.0) / 25.0, 1.0)
