"""The marker `ptacl synth` leaves in a cohort folder, so a store (and every bundle trained on
it) can say its data were synthetic."""

from __future__ import annotations

import json
from pathlib import Path

#: Written by `ptacl synth` into the cohort folder, beside phenotypes.csv.
SYNTH_MARKER = "cohort.json"
#: What synth wrote before the marker: the generator's truth table, beside phenotypes.csv.
_LEGACY = "truth.csv"
#: The cohort generator's version: bumped whenever the same seed would draw other data, so old
#: and new cohorts are told apart. A marker without one is version 1.
#:   1  LVEF 59 ± 6 % clipped to 38-78 %; the ECG carries no ejection-fraction information
#:   2  a reduced-EF tail (prior infarction, cardiomyopathy) that the ECG shows through QRS
#:      widening, left bundle branch block, Q waves and rate; covariates.csv written
GENERATOR_VERSION = 2


def marker_contents(subjects: int, seed: int) -> str:
    import ptacl

    return json.dumps(
        {"generator": "ptacl synth", "generator_version": GENERATOR_VERSION,
         "ptacl_version": ptacl.__version__, "subjects": subjects, "seed": seed,
         "covariates": {"file": "covariates.csv",
                        "sex": "UK Biobank field 31: 0 female, 1 male",
                        "height_cm": "UK Biobank field 50: standing height (cm)",
                        "weight_kg": "UK Biobank field 21002: weight (kg)"}},
        indent=2,
    )  # fmt: skip


def generator_version(marker: Path) -> int:
    """The generator version a cohort's marker records: 1 for a marker written before versions
    were (or for the legacy truth.csv)."""
    if marker.name != SYNTH_MARKER:
        return 1
    try:
        return int(json.loads(marker.read_text(encoding="utf-8")).get("generator_version", 1))
    except (ValueError, OSError, AttributeError, TypeError):
        return 1


def find_synth_marker(inputs: list[Path]) -> Path | None:
    """The synth marker (or legacy truth.csv) in a cohort folder holding one of `inputs`: the
    folder of a phenotype file, the parent of an ecg/ or cmr/ folder. None when there is none."""
    folders: list[Path] = []
    for path in inputs:
        folders += [path.parent] if path.is_file() else [path, path.parent]
    for folder in folders:
        marker = folder / SYNTH_MARKER
        if marker.is_file():
            try:
                if json.loads(marker.read_text(encoding="utf-8")).get("generator") == "ptacl synth":
                    return marker
            except (ValueError, OSError, AttributeError):
                continue
        if (folder / _LEGACY).is_file() and (folder / "phenotypes.csv").is_file():
            return folder / _LEGACY
    return None
