"""Evaluate a run: retrieval (Table 1), linear probe and optionally FN+AP (Table 2), report.

    ptacl evaluate --model RUN --data STORE --out DIR [--finetune] [--probe ols|ridge] [--overwrite]
    ptacl evaluate --model none [--like RUN] --data STORE --out DIR   (random-init baseline)

Writes DIR/metrics.json, DIR/report.md, DIR/figures/*.png and the embeddings used
(DIR/embeddings_{train,test}.npz, DIR/embeddings_paired_test.npz).

- Retrieval (runs with both encoders): ECG queries against the CMR database of the paired test
  subjects, in the projection-head space when the run has heads (what stage 2 aligns), else on
  mean-pooled tokens; with the random-ranking baseline. The query's own CMR is not a candidate
  unless --include-self (the paper's literal protocol; metrics.json and report.md say which).
  Ranked by cosine similarity, or with --ranking csls by CSLS's hub-corrected score (a CMR
  close to every ECG stops taking the top places); metrics.json holds the ranking's hubness
  (k-occurrence skewness, ...) either way.
- Linear probe: OLS (or ridge) on mean-pooled ECG embeddings of every train-split ECG, scored
  on every test-split ECG; for a run holding only a CMR encoder (CMR MAE or SimCLR: the imaging
  upper bound) the same on CMR embeddings. With no more train subjects than features + 1, OLS
  is under-determined: a warning, and a note in metrics.json and report.md (use --probe ridge).
  Its per-patient prediction interval (split conformal, fitted on the val split's residuals,
  nominal --interval-level) with its coverage and mean width on the scored split.
- --finetune: `ptacl finetune` of the run's ECG encoder into DIR/finetune, scored on the same
  test ECGs (--finetune-config YAML and --finetune-set key=value configure it). Without
  --finetune-config, the shipped preset whose ECG encoder has the run's width, depth and heads
  (demo/, small/, tiny/finetune.yaml; else the paper's finetune.yaml), and it says which.
CIs: percentile bootstrap over test subjects (--n-boot replicates, --seed).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def build_parser() -> argparse.ArgumentParser:
    from ptacl.cli.common import at_least_one
    from ptacl.schema import INTERVAL_LEVEL

    parser = argparse.ArgumentParser(
        prog="ptacl evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="run folder, or `none` for random init")
    parser.add_argument("--data", type=Path, required=True, help="prepared store")
    parser.add_argument("--out", type=Path, required=True, help="output folder (new or empty)")
    parser.add_argument("--overwrite", action="store_true", help="empty a used output folder first")
    parser.add_argument("--split", default="test", choices=["val", "test"], help="scored split")
    parser.add_argument("--probe", default="ols", choices=["ols", "ridge"])
    parser.add_argument(
        "--interval-level",
        type=float,
        default=INTERVAL_LEVEL,
        help="nominal coverage of the LP's conformal prediction intervals, fitted on the val "
        "split and measured on the scored one (as `ptacl export --interval-level`)",
    )
    parser.add_argument("--finetune", action="store_true", help="also fine-tune (FN+AP)")
    parser.add_argument("--finetune-config", type=Path, help="YAML for the fine-tune")
    parser.add_argument(
        "--finetune-set", action="append", default=[], metavar="key=value",
        help="fine-tune config override (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--endpoints",
        type=Path,
        help="YAML of the clinical endpoints over the shipped endpoints.yaml (LVEF < 50 %%, "
        "<= 40 %%, LV hypertrophy, LV dilation); scored from the embedding, FN+AP and the "
        "classic ECG criteria of each recording (the clinician's baseline)",
    )
    parser.add_argument(
        "--endpoints-set", action="append", default=[], metavar="key=value",
        help="endpoint config override (repeatable), e.g. lvh.enabled=false, min_positives=5",
    )  # fmt: skip
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 3, 5, 10, 15])
    parser.add_argument("--match-sd", type=float, default=0.5)
    parser.add_argument(
        "--include-self",
        action="store_true",
        help="keep the query's own CMR among the candidates (the paper's 'all patients in the "
        "CMR database'; it always matches); default: excluded, the stricter protocol",
    )
    parser.add_argument(
        "--ranking",
        default="cosine",
        choices=["cosine", "csls"],
        help="cosine similarity (the paper's), or CSLS: cosine minus half the candidate's mean "
        "cosine to its --csls-k most similar queries (Conneau et al. 2018's hub correction)",
    )
    parser.add_argument("--csls-k", type=at_least_one, default=10, help="CSLS neighbourhood size")
    parser.add_argument("--n-boot", type=at_least_one, default=1000, help="bootstrap replicates")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap / random-init seed")
    parser.add_argument(
        "--like",
        help="with `none`: random encoders of the modalities and architecture of this run "
        "(else both, at the paper's sizes)",
    )
    parser.add_argument("--batch-size", type=at_least_one, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ptacl.eval.conformal import check_level  # after parsing: --help imports no numpy

    try:
        check_level(args.interval_level)  # before minutes of embedding
    except ValueError as e:
        parser.error(str(e))
    from ptacl.atomic import OutputBusy, output_lock
    from ptacl.config import ConfigError
    from ptacl.data.store import Store, StoreError
    from ptacl.eval.embed import EmbedError
    from ptacl.eval.endpoints import load_endpoints
    from ptacl.eval.evaluate import EvaluateOptions, evaluate
    from ptacl.runs import RunDirError

    if args.finetune and args.split != "test":
        print("ptacl evaluate: --finetune scores the test split; drop --split", file=sys.stderr)
        return 2
    if args.out.exists() and any(args.out.iterdir()) and not args.overwrite:
        print(
            f"ptacl evaluate: {args.out}: not empty; choose a new --out or pass --overwrite",
            file=sys.stderr,
        )
        return 2
    try:
        endpoints = load_endpoints(args.endpoints, args.endpoints_set)  # before any work
    except ConfigError as e:
        print(f"ptacl evaluate: {e}", file=sys.stderr)
        return 2
    options = EvaluateOptions(
        endpoints=endpoints,
        model=str(args.model),
        out=args.out,
        split=args.split,
        probe=args.probe,
        interval_level=args.interval_level,
        ks=tuple(args.ks),
        match_sd=args.match_sd,
        include_self=args.include_self,
        ranking=args.ranking,
        csls_k=args.csls_k,
        n_boot=args.n_boot,
        seed=args.seed,
        like=args.like,
        batch_size=args.batch_size,
        device=args.device,
        progress=not args.no_progress,
        command="ptacl evaluate " + " ".join(argv if argv is not None else sys.argv[2:]),
    )
    try:
        store = Store.open(args.data)
        with output_lock(args.out):  # one evaluation per folder, emptied under the lock
            if args.out.exists():
                shutil.rmtree(args.out)  # --overwrite: what a used or interrupted one left
            finetune = _finetune_step(args, store) if args.finetune else None
            return evaluate(options, store, finetune=finetune)
    except (ConfigError, EmbedError, RunDirError, StoreError, OutputBusy) as e:
        print(f"ptacl evaluate: {e}", file=sys.stderr)
        return 2


def _finetune_step(args: argparse.Namespace, store: Any) -> Callable[[Path], int]:
    """FN+AP as `ptacl finetune` runs it, configured by --finetune-config and --finetune-set."""

    def step(run_dir: Path) -> int:
        from ptacl.errors import Stopped
        from ptacl.run_write import prepare_run_dir
        from ptacl.stage_config import load_stage_config
        from ptacl.training.finetune import FinetuneConfig, fit

        overrides = [f"model={args.model}", f"data.store={store.root}", *args.finetune_set]
        config = args.finetune_config
        if config is None:
            config, why = preset_finetune_config(args.model, args.like)
            print(f"ptacl evaluate: fine-tune config {why}", flush=True)
        cfg = load_stage_config(FinetuneConfig, config, overrides)  # the model's architecture
        prepare_run_dir(run_dir, cfg, resume=False)
        try:
            return fit(cfg, store, run_dir, None, n_boot=args.n_boot)
        except Stopped as stop:  # its "run the same command again" is refused here: --out used
            raise Stopped(
                f"{stop.reason} of the fine-tune",
                str(args.out),
                "run the same command with --overwrite to start the evaluation again",
                int(stop.code),
            ) from None

    return step


#: Where a run's fine-tune size is looked for, first match wins (demo and small share a size).
PRESETS = ("demo", "small", "tiny")
SIZE_KEYS = ("width", "depth", "heads")


def preset_finetune_config(model: str, like: str | None = None) -> tuple[Path, str]:
    """The fine-tune config for run `model` (or, for `none`, run `like`): the shipped preset
    whose ECG encoder has the run's width, depth and heads, since a preset's budget is sized
    for its models (the paper's 20,000 steps on a width-32 model would run for hours on a CPU);
    the paper's finetune.yaml when none matches. Returns the path and why it was picked."""
    import yaml

    from ptacl import configs
    from ptacl.runs import encoder_section, read_run_config

    run = like if model == "none" else model
    paper = configs.path("finetune.yaml")
    section = None if run is None else encoder_section(read_run_config(run), "ecg")
    if not section:
        return paper, "finetune.yaml (the paper's size: no run's ECG encoder to match)"
    size = {k: section.get(k) for k in SIZE_KEYS}
    described = ", ".join(f"{k} {v}" for k, v in size.items())
    for preset in PRESETS:
        path = configs.path(f"{preset}/finetune.yaml")
        shipped = yaml.safe_load(path.read_text(encoding="utf-8"))["ecg_encoder"]
        if all(shipped.get(k) == v for k, v in size.items()):
            return path, (
                f"{preset}/finetune.yaml: its ECG encoder has the run's size ({described}); "
                "--finetune-config picks another"
            )
    return paper, (
        f"finetune.yaml (the paper's 20,000 steps): no shipped preset has the run's ECG "
        f"encoder size ({described}); --finetune-config picks another"
    )


if __name__ == "__main__":
    sys.exit(main())
