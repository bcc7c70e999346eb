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
