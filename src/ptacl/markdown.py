"""Metrics -> Markdown: the one place that formats numbers, intervals and tables.

`ptacl evaluate`'s report.md (`ptacl.eval.report`), `ptacl benchmark`'s tables.md
(`ptacl.benchmark`) and `ptacl compare` all write their tables through these functions, so
a number, a missing value, an interval and a mean over seeds read the same everywhere:

    0.512                     a point value (ranks with 2 decimals, everything else 3)
    0.512 [0.401, 0.598]      with its bootstrap 95 % CI
    0.512 ± 0.020             mean ± sd over seeds
    0.512 ± 0.020 [0.40, 0.60] ... and the per-seed bootstrap CIs' bounds averaged over seeds
    –                         not computed, undefined (NaN) or missing

Pure string work: no numpy, pandas or torch import (and outside `ptacl.eval`, whose package
imports torch), so `ptacl benchmark --help` and `ptacl compare` stay quick.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from ptacl.phenotypes import split_name

DASH = "–"
#: Ranks (mean and median rank of the first match) get 2 decimals, rates and R² 3.
RANK_METRICS = ("MnR", "MdR")


def digits_for(metric: str) -> int:
    """Decimals a metric is shown with: 2 for ranks, 3 for P@k and R²."""
    return 2 if metric in RANK_METRICS else 3


def short(column: str) -> str:
    """'LVEDV (mL)' -> 'LVEDV'."""
    return split_name(column)[0]


def _known(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def fmt(value: float | None, digits: int = 3) -> str:
    """A number with `digits` decimals, or the dash for None / NaN."""
    return f"{value:.{digits}f}" if _known(value) else DASH


def interval(ci: Sequence[float | None] | None, digits: int = 3) -> str:
    """'[lo, hi]', or '' when either bound is missing."""
    if not ci or len(ci) != 2 or not all(_known(c) for c in ci):
        return ""
    return f"[{fmt(ci[0], digits)}, {fmt(ci[1], digits)}]"


def cell(point: float | None, ci: Sequence[float | None] | None = None, digits: int = 3) -> str:
    """A point value with its interval: '0.512 [0.401, 0.598]' (no interval for a dash)."""
    text = fmt(point, digits)
    bounds = interval(ci, digits) if text != DASH else ""
    return f"{text} {bounds}" if bounds else text


def _values(values: Iterable[float | None]) -> list[float]:
    return [float(v) for v in values if _known(v)]


def mean_sd(values: Iterable[float | None], digits: int = 3) -> str:
    """Mean ± sd (ddof 1) of the known values; one value as it is; none: the dash."""
    known = _values(values)
    if not known:
        return DASH
    if len(known) == 1:
        return fmt(known[0], digits)
    return f"{fmt(statistics.mean(known), digits)} ± {fmt(statistics.stdev(known), digits)}"


def mean_ci(cis: Iterable[Sequence[float | None] | None]) -> list[float] | None:
    """The per-seed intervals' bounds averaged over the seeds that have one (None: none has).

    Beside a mean ± sd over seeds this is the typical width of one run's test-set uncertainty,
    while the sd is the spread over training seeds: two different things, both shown."""
    whole = [c for c in cis if c and len(c) == 2 and all(_known(b) for b in c)]
    if not whole:
        return None
    return [statistics.mean(float(c[0]) for c in whole), statistics.mean(float(c[1]) for c in whole)]  # fmt: skip


def mean_sd_ci(
    values: Sequence[float | None], cis: Sequence[Sequence[float | None] | None], digits: int = 3
) -> str:
    """'mean ± sd [lo, hi]' with [lo, hi] from `mean_ci` of the per-seed bootstrap CIs."""
    text = mean_sd(values, digits)
    bounds = interval(mean_ci(cis), digits) if text != DASH else ""
    return f"{text} {bounds}" if bounds else text


def mean_of_all(values: Sequence[float | None], digits: int = 3) -> str:
    """The plain mean, only when every value is known: a mean over fewer phenotypes would not
    compare with the other rows."""
    known = _values(values)
    return fmt(sum(known) / len(known), digits) if known and len(known) == len(values) else DASH


def table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table: header, rule, one line per row."""
    lines = [_line(head), "|" + "---|" * len(head)]
    lines += [_line(row) for row in rows]
    return "\n".join(lines)


def _line(cells: Sequence[str]) -> str:
    return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"  # an empty cell: "| |"
