"""Command-line pieces shared by the training commands (`ptacl pretrain`, `simclr`, `align`,
`finetune`). Building a parser needs neither torch nor Lightning, so `--help` is quick.

A stage's CLI does, in order:

    parser = command_parser("ptacl stage", __doc__); add_run_arguments(parser)
    args = parser.parse_intermixed_args(argv)
    return run_command("ptacl stage", args, StageConfig, fit)   # resolves, opens, prepares

where `fit(cfg, store, out, resume_from)` is the stage's, in its one file
(`ptacl.training.mae`, `simclr`, `align`, `finetune`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from ptacl.data.store import Store

T = TypeVar("T")


def at_least_one(text: str) -> int:
    """An argparse type for counts (bootstrap replicates, batch sizes, neighbours): refused when
    parsed, before any work, instead of a ValueError minutes later."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def command_parser(prog: str, doc: str, *, modality: bool = False) -> argparse.ArgumentParser:
    """A training command's parser: described by the first paragraph of `doc` (the module
    docstring), with the positional `modality` (ecg|cmr) when asked, and `--data`. Add the
    command's own options, then `add_run_arguments`."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=doc.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if modality:
        parser.add_argument("modality", choices=["ecg", "cmr"])
    parser.add_argument("--data", type=Path, help="prepared store (or data.store in the config)")
    return parser


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """--out, --config, --devices, --num-nodes, --resume, --overwrite and trailing key=value
    overrides (`ptacl.run_write.prepare_run_dir` says what a command run again does).
    Parse with `parser.parse_intermixed_args` so overrides may follow the options."""
    parser.add_argument("--out", type=Path, required=True, help="run folder (created)")
    parser.add_argument("--config", type=Path, help="YAML config (default: built-in defaults)")
    parser.add_argument("--devices", type=int, help="processes per node (sets trainer.devices)")
    parser.add_argument("--num-nodes", type=int, help="nodes (sets trainer.num_nodes)")
    again = parser.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue from checkpoints/last.ckpt, also with changed settings among those a "
        "resume may change (the same command run again continues by itself)",
    )
    again.add_argument(
        "--overwrite", action="store_true", help="empty a run folder holding another run first"
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. optim.base_lr=1e-4")


def resolve_config(cls: type[T], args: argparse.Namespace, extra: Sequence[str] = ()) -> T:
    """Defaults <- --config YAML <- --devices/--num-nodes <- `extra` <- the architecture of
    the init runs the config names <- key=value overrides (`ptacl.stage_config.load_stage_config`).

    With --resume and no --config, the run's own config.yaml takes the place of --config, and
    without --data its store is found as `ptacl.runs.run_store` finds it.
    """
    from ptacl.stage_config import load_stage_config

    overrides = list(extra)
    path = args.config
    if path is None and getattr(args, "resume", False):
        saved = Path(args.out) / "config.yaml"
        path = saved if saved.is_file() else None
        if path is not None and getattr(args, "data", None) is None:
            from ptacl.runs import run_store

            # the run's store where it is now (the run folder and store may have moved)
            overrides.insert(0, f"data.store={run_store(args.out)}")
    if args.devices is not None:
        overrides.append(f"trainer.devices={args.devices}")
    if args.num_nodes is not None:
        overrides.append(f"trainer.num_nodes={args.num_nodes}")
    return load_stage_config(cls, path, overrides, args.overrides)


def run_command(
    prog: str,
    args: argparse.Namespace,
    config_cls: type[T],
    fit: Callable[[T, Store, Path, Path | None], int],
    *,
    extra: Sequence[str] = (),
    check: Callable[[T], None] | None = None,
) -> int:
    """The body of a training command, after parsing: resolve the config (`resolve_config`
    with `--data` and then `extra` as extra overrides), require a store, `check` it and
    its loggers and callbacks (`ptacl.training.trainer.check_plugins`), open the store, prepare
    the run folder, then return `fit(cfg, store, args.out, resume_from)`.

    Resolving (an init run without such an encoder) and `check` may raise ConfigError, and so
    may `fit` (a batch larger than the train split). A ConfigError, StoreError or RunDirError is printed to stderr as "<prog>: <reason>" and returns exit code 2, and so is a run folder
    that another process is training into (its lock is held from here to the end of `fit`).
    """
    from ptacl.atomic import OutputBusy
    from ptacl.config import ConfigError
    from ptacl.data.store import Store, StoreError
    from ptacl.run_write import prepare_run_dir, run_lock
    from ptacl.runs import RunDirError
    from ptacl.training.trainer import check_plugins

    with contextlib.ExitStack() as stack:
        try:
            store_path = [f"data.store={args.data}"] if getattr(args, "data", None) else []
            cfg = resolve_config(config_cls, args, [*store_path, *extra])
            if not cfg.data.store:
                raise ConfigError("no store given: pass --data STORE (or set data.store)")
            if check is not None:
                check(cfg)
            check_plugins(cfg.trainer)
            store = Store.open(cfg.data.store)
            stack.enter_context(run_lock(args.out))
            resume_from = prepare_run_dir(args.out, cfg, args.resume, overwrite=args.overwrite)
        except (ConfigError, StoreError, RunDirError, OutputBusy) as e:
            print(f"{prog}: {e}", file=sys.stderr)
            return 2
        try:
            return fit(cfg, store, args.out, resume_from)
        except ConfigError as e:  # a setting that only the data shows wrong (batch > split)
            print(f"{prog}: {e}", file=sys.stderr)
            return 2
