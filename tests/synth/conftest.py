"""One small cohort written through the CLI, shared by the tests that read files back."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptacl.cli import synth

COHORT_SUBJECTS = 3
COHORT_SEED = 7


@pytest.fixture(scope="session")
def cohort_spec() -> tuple[int, int]:
    """(subjects, seed) of the shared cohort."""
    return COHORT_SUBJECTS, COHORT_SEED


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "cohort"
    args = ["--out", str(out), "--subjects", str(COHORT_SUBJECTS), "--seed", str(COHORT_SEED)]
    assert synth.main([*args, "--workers", "1", "--preview", "--quiet"]) == 0
    return out
