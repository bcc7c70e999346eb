"""Lead names: match the many spellings of the 12 leads and put them in one order.

Files name leads in different ways ("I", "Lead I (Einthoven)", "AVR", "MDC_ECG_LEAD_aVR",
"v1"). Names are normalised (lower case; "lead", parentheses, spaces, "_" and "-" dropped) and
looked up in `ALIASES`. Leads III, aVR, aVL and aVF are linear in I and II (Einthoven's and
Goldberger's laws), so they are derived when a file lacks them; any other missing lead is an
error because no other lead is redundant.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ptacl.io.errors import InputError
from ptacl.schema import LEADS

#: Normalised spelling -> standard lead name.
ALIASES: dict[str, str] = {
    **{name.lower(): name for name in LEADS},
    "di": "I",
    "dii": "II",
    "diii": "III",
}

#: Limb leads that follow from I and II.
DERIVABLE: dict[str, tuple[float, float]] = {
    # lead = a * I + b * II
    "III": (-1.0, 1.0),
    "aVR": (-0.5, -0.5),
    "aVL": (1.0, -0.5),
    "aVF": (-0.5, 1.0),
}

_PREFIXES = ("mdcecglead", "lead")


def normalise_lead_name(name: str) -> str:
    """'Lead I (Einthoven)' -> 'i'; 'MDC_ECG_LEAD_aVR' -> 'avr'."""
    key = re.sub(r"\(.*?\)", "", str(name)).lower()
    key = re.sub(r"[\s_\-.:]", "", key)
    for prefix in _PREFIXES:
        if key.startswith(prefix) and len(key) > len(prefix):
            key = key[len(prefix) :]
            break
    return key


def standard_lead(name: str) -> str | None:
    """The standard name of a lead spelling, or None when it is not one of the 12."""
    return ALIASES.get(normalise_lead_name(name))


def arrange_leads(
    data: np.ndarray, names: Sequence[str], source: str | Path
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Reorder (C, S) channels named `names` into (12, S) float32 in LEADS order.

    Unknown channels are ignored. Returns the signal and the tuple of derived leads.
    Raises InputError naming `source` for a lead given twice or missing and not derivable.
    """
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[0] != len(names):
        raise InputError(source, f"{len(names)} lead names for signal of shape {data.shape}")
    rows: dict[str, int] = {}
    for i, name in enumerate(names):
        lead = standard_lead(name)
        if lead is None:
            continue
        if lead in rows:
            raise InputError(source, f"lead {lead} appears twice ({names[rows[lead]]!r}, {name!r})")
        rows[lead] = i
    out = np.empty((len(LEADS), data.shape[1]), dtype=np.float32)
    derived = []
    for k, lead in enumerate(LEADS):
        if lead in rows:
            out[k] = data[rows[lead]]
        elif lead in DERIVABLE and "I" in rows and "II" in rows:
            a, b = DERIVABLE[lead]
            out[k] = a * data[rows["I"]].astype(np.float64) + b * data[rows["II"]]
            derived.append(lead)
        else:
            why = " (derivable only from leads I and II)" if lead in DERIVABLE else ""
            raise InputError(
                source,
                f"lead {lead} missing and cannot be derived{why}; leads found: {list(names)}",
            )
    return out, tuple(derived)
