"""The marker `ptacl synth` leaves in a cohort folder, so a store (and every bundle trained on
it) can say its data were synthetic."""

from __future__ import annotations

import json
from pathlib import Path

#: Written by `ptacl synth` into the cohort folder, beside phenotypes.csv.
SYNTH_MARKER = "cohort.json"
#: What synth wrote before the marker: the generator's truth table, beside phenotypes.csv.
_LEGACY = "truth.csv"


def marker_contents(subjects: int, seed: int) -> str:
    import ptacl

    return json.dumps(
        {"generator": "ptacl synth", "ptacl_version": ptacl.__version__,
         "subjects": subjects, "seed": seed},
        indent=2,
    )  # fmt: skip


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
