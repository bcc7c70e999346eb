"""Writing a run folder: make it, record the resolved config, and decide what a rerun does.

`prepare_run_dir` (under `run_lock`) writes config.yaml and paths.yaml (the layout is in
`ptacl.runs`) and returns the checkpoint to resume from: `--resume` continues a run whose
config agrees outside `RESUMABLE`; the same command run again continues or restarts its own
run; any other non-empty folder is refused unless overwritten. Only process 0 writes.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import yaml

from ptacl.runs import PATHS_FILE, RunDirError, read_checkpoint, read_run_config, run_store


def _rank() -> int:
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if name in os.environ:
            return int(os.environ[name])
    return 0


#: Settings a resumed run may change: they steer how long and how visibly it runs, not what it
#: computes (trainer.max_steps extends the schedule, see `ptacl.training.callbacks.ResyncSchedule`;
#: data.num_workers cannot change a batch, see `ptacl.training.resume`). Any other difference
#: is refused.
RESUMABLE = (
    "trainer.max_steps",
    "trainer.val_every_n_steps",
    "trainer.val_batches",
    "trainer.checkpoint_every_n_steps",
    "trainer.log_every_n_steps",
    "trainer.sanity_val_steps",
    "trainer.progress_bar",
    "trainer.compile",  # the same computation, compiled or not
    "trainer.loggers",  # where metrics go
    "data.num_workers",
)


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flat(value, f"{prefix}{key}."))
    return {k.rstrip("."): v for k, v in out.items()}


def config_conflicts(
    saved: dict[str, Any], config: Any, allowed: tuple[str, ...] = RESUMABLE
) -> list[str]:
    """Keys (dotted) outside `allowed` whose values differ between a run's saved config.yaml
    and `config`, each as "key: run A, now B"."""
    from ptacl.config import default_like, to_dict

    def flat(cfg: Any) -> dict[str, Any]:
        return _flat(yaml.safe_load(yaml.safe_dump(to_dict(cfg), sort_keys=False)))

    now, before = flat(config), _flat(saved)
    try:  # a setting added to ptacl after the run was made: the run had its default
        defaults = flat(default_like(config))
    except TypeError:
        defaults = {}
    out = []
    for key in sorted(set(now) | set(before)):
        a, b = before.get(key), now.get(key)
        if key == "data.store" and a and b and _same_store(Path(a), Path(b)):
            continue
        if key not in before and key in defaults and b == defaults[key]:
            continue
        if key not in allowed and a != b:
            out.append(f"{key}: run {a!r}, now {b!r}")
    return out


def _same_store(a: Path, b: Path) -> bool:
    """One store at two paths: the same folder, or (moved or copied) the same manifest.json
    (sizes, phenotype columns, sources) and subjects.csv (every eid and its split)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return all(
            (a / name).read_bytes() == (b / name).read_bytes()
            for name in ("manifest.json", "subjects.csv")
        )
    except OSError:
        return False


def _saved_config(out: Path) -> dict[str, Any]:
    """A run's config.yaml with data.store where `run_store` finds that store now (a run folder
    moved with its store records a path that no longer exists)."""
    saved = read_run_config(out)
    with contextlib.suppress(RunDirError):
        saved.setdefault("data", {})["store"] = str(run_store(out, saved))
    return saved


def resume_checkpoint(out: str | Path) -> Path | None:
    """The newest checkpoint a run can continue from: checkpoints/last.ckpt, or the
    hpc_ckpt_N.ckpt Lightning's SLURM auto-requeue saves on its signal (SIGUSR1) into the run
    folder, whichever was written last; None when the run has neither."""
    out = Path(out)
    found = [out / "checkpoints" / "last.ckpt", *out.glob("hpc_ckpt_*.ckpt")]
    found = [p for p in found if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns, default=None)


def _empty(out: Path) -> None:
    """Remove everything inside run folder `out` (it keeps its lock, which sits beside it)."""
    import shutil

    for entry in out.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _rerun(out: Path, config: Any) -> Path | None:
    """A command run again on its own non-empty run folder (a crash, Ctrl-C, a SLURM requeue):
    with the same config and a checkpoint it continues (returns the checkpoint); with the same
    config and no checkpoint yet it starts afresh (returns None). Anything else is refused."""
    if not (out / "config.yaml").is_file():
        raise RunDirError(
            f"{out}: the run folder is not empty and holds no run (no config.yaml); choose "
            "another --out, or pass --overwrite to replace what it holds"
        )
    conflicts = config_conflicts(_saved_config(out), config, allowed=())
    if conflicts:
        raise RunDirError(
            f"{out}: holds another run, whose config.yaml differs: {'; '.join(conflicts)}. "
            "Pass --resume to continue it with these settings (only "
            f"{', '.join(RESUMABLE)} may change), --overwrite to replace it, or choose "
            "another --out"
        )
    ckpt = resume_checkpoint(out)
    if ckpt is not None:
        _check_resumable(ckpt)
    if _rank() == 0:
        if ckpt is not None:
            print(f"{out}: the same run again: continuing it from {ckpt.name}", flush=True)
        else:
            print(f"{out}: the same run, stopped before its first checkpoint: starting it again",
                  flush=True)  # fmt: skip
            _empty(out)
    return ckpt


def prepare_run_dir(
    out: str | Path, config: Any, resume: bool, *, overwrite: bool = False
) -> Path | None:
    """Make the run folder and write the resolved `config.yaml`; return the checkpoint to
    resume from (None for a fresh run).

    A run must never mix with, or silently overwrite, another. `resume` needs a checkpoint
    (`resume_checkpoint`) and a config that agrees with the run's config.yaml outside
    `RESUMABLE`, checked before anything is written (a config.yaml rewritten by a refused
    resume would no longer describe the checkpoints). Without it, a non-empty folder that holds
    the same run (the same command run again after a crash or a SLURM requeue) continues from
    its checkpoint, or starts afresh when it died before the first one (`_rerun`); any other
    non-empty folder is refused unless `overwrite`, which empties it first. config.yaml is
    replaced atomically. Only process 0 writes: Lightning's DDP launcher re-runs the command
    once per process. Hold `run_lock(out)` around this and the training.
    """
    out = Path(out)
    path = out / "config.yaml"
    resume_from = None
    if resume:
        resume_from = resume_checkpoint(out)
        if resume_from is None:
            raise RunDirError(
                f"{out}: nothing to resume, {out / 'checkpoints' / 'last.ckpt'} does not exist; "
                "run the command without --resume to start it"
            )
        _check_resumable(resume_from)
        if path.is_file():
            conflicts = config_conflicts(_saved_config(out), config)
            if conflicts:
                raise RunDirError(
                    f"{out}: --resume with settings that differ from the run's config.yaml, "
                    f"which its checkpoints were made with: {'; '.join(conflicts)}. Only "
                    f"{', '.join(RESUMABLE)} may change on resume; start a new run otherwise"
                )
    elif overwrite:
        if _rank() == 0 and out.is_dir() and any(out.iterdir()):
            print(f"{out}: --overwrite: removing the run it held", flush=True)
            _empty(out)
    elif out.is_dir() and any(out.iterdir()):
        resume_from = _rerun(out, config)
    if _rank() == 0:
        from ptacl.atomic import atomic_file
        from ptacl.config import save_config

        out.mkdir(parents=True, exist_ok=True)
        config, relative = _store_paths(config, out)
        with atomic_file(path) as tmp:
            save_config(config, tmp)
        if relative is not None:
            with atomic_file(out / PATHS_FILE) as tmp:
                tmp.write_text(yaml.safe_dump({"data.store": relative}), encoding="utf-8")
    return resume_from


def _store_paths(config: Any, out: Path) -> tuple[Any, str | None]:
    """`config` with data.store made absolute, and that store's path relative to run folder
    `out` (None without a store): what config.yaml and `PATHS_FILE` record (`run_store`)."""
    import dataclasses

    data = getattr(config, "data", None)
    if not getattr(data, "store", ""):
        return config, None
    store = Path(data.store).resolve()
    config = dataclasses.replace(config, data=dataclasses.replace(data, store=str(store)))
    return config, os.path.relpath(store, out.resolve())


def _check_resumable(last: Path) -> None:
    """Refuse, in one line, a last.ckpt torch cannot read (a run killed by a full disk before
    checkpoints were written atomically, a hostile file), pointing at best.ckpt if readable."""
    try:
        read_checkpoint(last, mmap=True)
        return
    except RunDirError as err:
        problem = str(err)
    best = last.with_name("best.ckpt")
    try:
        step = read_checkpoint(best, mmap=True).get("global_step", "?") if best.is_file() else None
    except (RunDirError, AttributeError):
        step = None
    hint = (
        f"; the previous checkpoint {best} (step {step}) is readable: copy it over "
        f"{last.name} to resume from it"
        if step is not None
        else "; there is no other readable checkpoint: start a new run"
    )
    raise RunDirError(f"cannot resume: {problem}{hint}")


def run_lock(out: str | Path) -> contextlib.AbstractContextManager:
    """The run folder's lock (`ptacl.atomic.output_lock`), taken by process 0 only: the other
    DDP processes are its own children, re-running the command."""
    from ptacl.atomic import output_lock

    return output_lock(Path(out)) if _rank() == 0 else contextlib.nullcontext()


__all__ = [
    "RESUMABLE",
    "config_conflicts",
    "prepare_run_dir",
    "resume_checkpoint",
    "run_lock",
]
