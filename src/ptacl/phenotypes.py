"""The ten CMR phenotypes, named as in the ukbb_cardiac table (Bai et al.), with their units."""

from __future__ import annotations

#: Column names exactly as ukbb_cardiac writes them, in the paper's order.
PHENOTYPES: tuple[str, ...] = (
    "LVEDV (mL)",
    "LVESV (mL)",
    "LVSV (mL)",
    "LVEF (%)",
    "LVCO (L/min)",
    "LVM (g)",
    "RVEDV (mL)",
    "RVESV (mL)",
    "RVSV (mL)",
    "RVEF (%)",
)


def split_name(column: str) -> tuple[str, str]:
    """'LVEDV (mL)' -> ('LVEDV', 'mL')."""
    name, _, unit = column.partition(" (")
    return name, unit.rstrip(")")


#: Short names ('LVEDV') in the same order.
PHENOTYPE_NAMES: tuple[str, ...] = tuple(split_name(c)[0] for c in PHENOTYPES)
#: Units ('mL') in the same order.
PHENOTYPE_UNITS: tuple[str, ...] = tuple(split_name(c)[1] for c in PHENOTYPES)

#: Hard physiological bounds per column (adult hearts, rest, CMR): a value outside is not a
#: heart but a unit, scale or sign error, a corrupted file or a broken model. Deliberately wide,
#: several times the UK Biobank reference ranges (Petersen et al. 2017, J Cardiovasc Magn Reson
#: 19:18: LVEDV 93-232 mL, LVM 56-152 g, LVEF 51-76 % in healthy adults), so that severe
#: disease (dilated hearts of 400+ mL, hypertrophy of 400+ g, EF of 10 %) stays inside.
PHYSIOLOGICAL_RANGES: dict[str, tuple[float, float]] = {
    "LVEDV (mL)": (20.0, 600.0),
    "LVESV (mL)": (5.0, 500.0),
    "LVSV (mL)": (5.0, 300.0),
    "LVEF (%)": (5.0, 90.0),
    "LVCO (L/min)": (0.5, 20.0),
    "LVM (g)": (20.0, 600.0),
    "RVEDV (mL)": (20.0, 600.0),
    "RVESV (mL)": (5.0, 500.0),
    "RVSV (mL)": (5.0, 300.0),
    "RVEF (%)": (5.0, 90.0),
}


#: UK Biobank showcase fields of the ukbb_cardiac phenotypes (category "Cardiac MRI", returned
#: from Bai et al.'s pipeline): field ID -> (ptacl column, showcase field title). Columns of a
#: showcase export are named `24100-2.0` (ukbconv CSV), `f.24100.2.0` (ukbconv R/tab) or
#: `p24100_i2` (Research Analysis Platform); `ptacl.io.read_phenotypes` maps them through this
#: table for the visit asked for.
#:
#: Provenance: FORMATS.md gives no field IDs and the showcase pages themselves could not be
#: fetched here. The IDs and titles are as public code that reads these exact columns names
#: them: Research Analysis Platform exports titled "LV end diastolic volume | Instance 2
#: (participant - p24100_i2)" and "LV ejection fraction | ... p24103_i2"; scripts mapping
#: 24100-24109 in order to the ten titles below; another reading 24100-24106 and 24109 as LVEDV,
#: LVESV, LVSV, LVEF, LV cardiac output, LV mass, RVEDV and RVEF. Check them against
#: https://biobank.ndph.ox.ac.uk/showcase/field.cgi?id=24100 (etc.) before relying on them;
#: the label checks (SV = EDV - ESV, EF = 100 SV / EDV) catch a swapped pair.
#: A different field or unit: `ptacl prepare --phenotype-map`.
UKB_FIELDS: dict[str, tuple[str, str]] = {
    "24100": ("LVEDV (mL)", "LV end diastolic volume"),
    "24101": ("LVESV (mL)", "LV end systolic volume"),
    "24102": ("LVSV (mL)", "LV stroke volume"),
    "24103": ("LVEF (%)", "LV ejection fraction"),
    "24104": ("LVCO (L/min)", "LV cardiac output"),
    "24105": ("LVM (g)", "LV myocardial mass"),
    "24106": ("RVEDV (mL)", "RV end diastolic volume"),
    "24107": ("RVESV (mL)", "RV end systolic volume"),
    "24108": ("RVSV (mL)", "RV stroke volume"),
    "24109": ("RVEF (%)", "RV ejection fraction"),
}
