"""A training stage's config: its YAML and overrides, with the encoder architecture of the runs
it starts from (align's `ecg_init` / `cmr_init`, fine-tune's `model`), so those runs' weights
fit the encoders the stage builds. Used by every command that starts a stage from a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from ptacl.runs import encoder_section, read_run_config

T = TypeVar("T")


def init_architecture(runs: dict[str, str | Path]) -> dict[str, dict[str, Any]]:
    """{"<modality>_encoder": section} of each init run {modality: run folder} ("" and "none"
    skipped): the encoder architecture a stage must build for that run's weights to fit. A
    run that holds no such encoder (a stage-1 run of the other modality) is a ConfigError
    naming it."""
    from ptacl.config import ConfigError

    out = {}
    for modality, run in runs.items():
        if not run or str(run) == "none":
            continue
        config = read_run_config(run)
        section = encoder_section(config, modality)
        if not section:
            other = config.get("modality")  # a stage-1 run of the other modality says which
            which = (
                f": it is a {other} run, not {modality}" if other not in (None, modality) else ""
            )
            raise ConfigError(
                f"{run}/config.yaml: this run holds no {modality.upper()} encoder{which}"
            )
        out[f"{modality}_encoder"] = section
    return out


def load_stage_config(
    cls: type[T], path: str | Path | None, overrides: Sequence[str] = (), user: Sequence[str] = ()
) -> T:
    """A stage's config: defaults <- YAML `path` <- `overrides` <- the architecture of the
    init runs it names (its `init_runs()`: `init_architecture`) <- `user` overrides (the
    command line's key=value, which may name the init runs too and may change what the run's
    weights allow: dropout, drop path)."""
    from ptacl.config import load_config, to_dict

    probe = load_config(cls, path, [*overrides, *user])
    sections = init_architecture(probe.init_runs()) if hasattr(probe, "init_runs") else {}
    if not sections:
        return probe
    base = to_dict(load_config(cls, path, overrides)) | sections  # whole sections: the run's
    return load_config(cls, None, user, base=base)


__all__ = [
    "init_architecture",
    "load_stage_config",
]
