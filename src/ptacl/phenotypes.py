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
