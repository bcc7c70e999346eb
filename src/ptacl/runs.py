"""The run folder contract: what a training stage writes, and how everything else reads it back.

A run folder, written by `ptacl pretrain`, `simclr`, `align` or `finetune`:

    config.yaml                 the resolved config (`read_run_config`); data.store absolute
    paths.yaml                  data.store relative to the run folder (`run_store`)
    checkpoints/best.ckpt       lowest validation loss; checkpoints/last.ckpt the latest state
    weights/*.safetensors       the encoders and heads of best.ckpt (`ptacl.run_weights`)
    metrics.csv, hparams.yaml, tensorboard/, figures/, ...

Which encoders a run holds (`run_modalities`) and where their architecture is
(`encoder_section`): a stage-1 run (`ptacl pretrain`, `ptacl simclr`) has `modality` and one
`encoder` section; an align run has `ecg_encoder` and `cmr_encoder`; a fine-tune run has
`stage: finetune`, its `modality` (ECG when absent, in older runs) and that modality's
`<modality>_encoder` section (the other section is an unused default). Encoders and projection
heads are read from weights/ first, which holds the parts each stage module declares
(`encoders()`, `heads()`); runs older than weights/ are read from their checkpoints, where the
encoders sit under `<modality>_encoder.` (align, SimCLR, fine-tune) or `mae.encoder.` (an MAE
run), projection heads under `<modality>_head.`, the fine-tune head under `head.` with
`target_mean` / `target_sd`.

Training, evaluation, export and inference all read runs through this module, which imports
neither Lightning nor any logger (torch only when a checkpoint is read), so evaluating or
exporting a run costs no training stack. Writing a run folder (`prepare_run_dir`, resuming,
the lock) is `ptacl.run_write`; a stage's config, with the architecture of the runs it starts
from, is `ptacl.stage_config`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ptacl.errors import PtaclError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ptacl.models.heads import AttentionPoolPhenotypes, ProjectionHead

MODALITIES = ("ecg", "cmr")


class RunDirError(PtaclError, RuntimeError):
    """A run folder that cannot be used as asked: not a run, no such checkpoint or encoder, or
    (when training) not empty without --resume, nothing to resume."""


# ----------------------------------------------------------------------------- reading a run


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The resolved config.yaml of a run, as a plain dict."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise RunDirError(f"{run_dir}: not a run folder (no config.yaml)")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:  # a tag (!!python/...) included
        raise RunDirError(f"{path}: not a readable config: {_first_line(err)}") from None
    if not isinstance(config, dict):
        raise RunDirError(f"{path}: not a readable config: a {type(config).__name__}, not a map")
    return config


#: Beside config.yaml: the store's path relative to the run folder, so a run folder moved
#: together with its store still finds it (config.yaml keeps the absolute path, which works
#: from any working directory and after the run folder alone is moved).
PATHS_FILE = "paths.yaml"


def run_store(run_dir: str | Path, config: dict[str, Any] | None = None) -> Path:
    """The store a run trained on: data.store relative to the run folder (`PATHS_FILE`) when
    it is there, else config.yaml's data.store (absolute in runs written since; an older run's
    path, relative to where it trained, is tried from here). RunDirError naming `--data` when
    neither is a store."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir) if config is None else config
    recorded = (config.get("data") or {}).get("store")
    if not recorded:
        raise RunDirError(f"{run_dir}/config.yaml names no data.store; pass --data STORE")
    tried = []
    paths = run_dir / PATHS_FILE
    if paths.is_file():
        relative = (yaml.safe_load(paths.read_text(encoding="utf-8")) or {}).get("data.store")
        if relative:
            tried.append(run_dir / relative)
    tried.append(Path(recorded))
    for path in tried:
        if (path / "manifest.json").is_file():
            return path
    where = " nor ".join(str(p) for p in dict.fromkeys(tried))
    raise RunDirError(
        f"{run_dir}: the store it trained on is not at {where} (moved?); pass --data STORE"
    )


def run_modalities(config: dict[str, Any]) -> tuple[str, ...]:
    """The modalities whose encoder a run holds, from its config.yaml (see the module doc)."""
    if config.get("stage") == "finetune":  # one encoder; older ECG runs have no `modality`
        return (str(config.get("modality", "ecg")),)
    if "modality" in config:
        return (str(config["modality"]),)
    return tuple(m for m in MODALITIES if f"{m}_encoder" in config)


def encoder_section(config: dict[str, Any], modality: str) -> dict[str, Any] | None:
    """The config section describing the run's `modality` encoder (`<modality>_encoder`, or
    `encoder` for a one-modality stage-1 run), None when the run holds no such encoder."""
    if modality not in run_modalities(config):
        return None
    section = config.get(f"{modality}_encoder")
    return config.get("encoder") if section is None else section


def local_steps(config: dict[str, Any]) -> int:
    """T, the number of local (temporal) steps an align run compares (`loss.num_steps`)."""
    return int((config.get("loss") or {}).get("num_steps") or 13)


def checkpoint_path(run_dir: str | Path, which: str = "best") -> Path:
    """checkpoints/`which`.ckpt (best or last); best falls back to last when no validation has
    run (a run shorter than its validation interval has no best.ckpt)."""
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoints" / f"{which}.ckpt"
    if which == "best" and not ckpt.is_file():
        ckpt = run_dir / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        raise RunDirError(f"{run_dir}: no checkpoint ({ckpt.name}) in {ckpt.parent}")
    return ckpt


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The model state dict of a checkpoint file, read with weights_only=True (no pickled code
    runs) onto the CPU."""
    checkpoint = read_checkpoint(path)
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise RunDirError(f"{path}: not a readable checkpoint: it holds no state_dict")
    return state


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200] if text else ''}".rstrip(": ")


def read_checkpoint(path: str | Path, *, mmap: bool = False) -> Any:
    """A checkpoint file read with weights_only=True (no pickled code runs) onto the CPU;
    a file torch cannot read (truncated, pickled objects, not a checkpoint) raises RunDirError
    naming it. `mmap`: tensors stay on disk (to check a file without holding it)."""
    import pickle
    import zipfile

    import torch

    if mmap and not zipfile.is_zipfile(path):  # torch's mmap needs its zip format
        raise RunDirError(
            f"{path}: not a readable checkpoint: no zip directory (empty, truncated, or not "
            "written by torch.save)"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError:
        # not torch's text, which suggests loading the file with weights_only=False
        raise RunDirError(
            f"{path}: not a readable checkpoint: UnpicklingError: torch's weights only loading "
            "refuses it: it holds objects other than tensors and plain containers, which ptacl "
            "never unpickles (a payload, or a file ptacl did not write)"
        ) from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise RunDirError(f"{path}: not a readable checkpoint: {_first_line(err)}") from None


def checkpoint_state(
    run_dir: str | Path, which: str = "best"
) -> tuple[Path, dict[str, torch.Tensor]]:
    """The run checkpoint's path (`checkpoint_path`) and its state dict (`load_state`)."""
    ckpt = checkpoint_path(run_dir, which)
    return ckpt, load_state(ckpt)


def submodule_state(state: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """The tensors of the submodule called `name` at any depth (`name.*`, `x.name.*`), with
    keys relative to it."""
    pattern = re.compile(rf"^(?:.*\.)?{re.escape(name)}\.(.+)$")
    return {m.group(1): v for k, v in state.items() if (m := pattern.match(k))}


def encoder_weights(
    state: dict[str, torch.Tensor], config: dict[str, Any], modality: str
) -> dict[str, torch.Tensor] | None:
    """The `modality` encoder's tensors within a run's checkpoint state, None if it has none."""
    prefixes = [f"{modality}_encoder."]
    if config.get("modality") == modality:
        prefixes.append("mae.encoder.")
    for prefix in prefixes:
        weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if weights:
            return weights
    return None


def load_encoder_weights(
    run_dir: str | Path, modality: str, which: str = "best"
) -> dict[str, torch.Tensor]:
    """The `modality` encoder's state dict: weights/<modality>_encoder.safetensors when the
    run has it fresh (`ptacl.run_weights`), else from its checkpoint (`which`: best or last;
    best falls back to last when no validation has run), loaded with weights_only=True."""
    from ptacl.run_weights import read_weights

    config = read_run_config(run_dir)
    saved = read_weights(run_dir, which)
    if saved is not None and f"{modality}_encoder" in saved:
        return saved[f"{modality}_encoder"]
    ckpt, state = checkpoint_state(run_dir, which)  # a run older than weights/
    weights = encoder_weights(state, config, modality)
    if weights is None:
        prefixes = f"{modality}_encoder." + (
            " or mae.encoder." if config.get("modality") == modality else ""
        )
        raise RunDirError(f"{ckpt}: holds no {modality} encoder (no keys under {prefixes})")
    return weights


def build_run_encoder(config: dict[str, Any], modality: str, where: str) -> nn.Module:
    """The `modality` encoder of a run's architecture, randomly initialised."""
    from ptacl.models import encoder_from_config

    section = encoder_section(config, modality)
    if section is None:
        raise RunDirError(f"{where}/config.yaml: this run holds no {modality.upper()} encoder")
    return encoder_from_config(section, modality, f"{where}/config.yaml")


def load_encoder(run_dir: str | Path, modality: str, which: str = "best") -> nn.Module:
    """The run's `modality` encoder, built from its config.yaml and loaded with its weights."""
    weights = load_encoder_weights(run_dir, modality, which)  # raises if the run has none
    encoder = build_run_encoder(read_run_config(run_dir), modality, str(run_dir))
    load_weights(encoder, weights, f"{run_dir}/config.yaml")
    return encoder


def load_weights(module: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """`module.load_state_dict(state)` (strict); weights that do not fit the module built from
    `where` (a config.yaml edited after training, another run's checkpoint) raise RunDirError
    in one line instead of torch's list of every mismatch."""
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise weights_mismatch(err, where) from None


def weights_mismatch(err: RuntimeError, where: str) -> RunDirError:
    """torch's load_state_dict error (a line per mismatched tensor) as a one-line RunDirError."""
    lines = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    detail = (lines[0] if lines else str(err))[:300]
    return RunDirError(f"{where}: does not match the checkpoint's weights: {detail}{more}")


# ----------------------------------------------------------------------------- a run's heads


def projection_heads(
    state: dict[str, torch.Tensor], widths: dict[str, int]
) -> dict[str, ProjectionHead]:
    """The projection heads of an align run's checkpoint state (`<modality>_head.*`), by
    modality, for encoders of `widths`; a modality without one is left out. Their sizes come
    from the tensors, so no config layout is assumed."""
    from ptacl.models.heads import projection_head_from_state

    heads = {}
    for modality, width in widths.items():
        weights = submodule_state(state, f"{modality}_head")
        if weights:
            try:
                heads[modality] = projection_head_from_state(weights, width)
            except RuntimeError as err:  # tensors that do not fit the encoder's width
                raise weights_mismatch(err, f"{modality}_head (encoder width {width})") from None
    return heads


def run_projection_heads(
    run_dir: str | Path, which: str, widths: dict[str, int]
) -> dict[str, ProjectionHead]:
    """`projection_heads` of a run: from weights/<modality>_head.safetensors when the run has
    them fresh (`ptacl.run_weights`), else from its checkpoint."""
    from ptacl.run_weights import read_weights

    saved = read_weights(run_dir, which)
    if saved is None:
        return projection_heads(checkpoint_state(run_dir, which)[1], widths)
    state = {f"{name}.{k}": v for name, part in saved.items() for k, v in part.items()}
    return projection_heads(state, widths)


def finetune_head(
    state: dict[str, torch.Tensor], config: dict[str, Any], width: int
) -> AttentionPoolPhenotypes:
    """A fine-tune run's attention-pooling head with its target scaling (eval mode), from its
    checkpoint state and config.yaml (`head.heads`, `head.dropout`). ValueError when the state
    is not a fine-tune run's."""
    from ptacl.models.heads import AttentionPoolPhenotypes

    pool = {k[len("head.") :]: v for k, v in state.items() if k.startswith("head.")}
    if not pool or "target_mean" not in state or "target_sd" not in state:
        raise ValueError("a fine-tune checkpoint needs head.*, target_mean and target_sd")
    head_config = config.get("head") or {}
    head = AttentionPoolPhenotypes(
        width,
        int(state["target_mean"].shape[0]),
        heads=int(head_config.get("heads", 8)),
        dropout=float(head_config.get("dropout", 0.0)),
    )
    load_weights(
        head,
        {
            **{f"pool.{k}": v for k, v in pool.items()},
            "target_mean": state["target_mean"],
            "target_sd": state["target_sd"],
        },
        "the run's config.yaml (head)",
    )
    return head.eval()


@dataclass
class RunEncoders:
    """The encoders (and projection heads) a run holds; absent parts are None."""

    kind: str  # none | pretrain-ecg | pretrain-cmr | simclr-ecg | simclr-cmr | align | finetune
    source: str
    ecg: nn.Module | None = None
    cmr: nn.Module | None = None
    ecg_head: nn.Module | None = None
    cmr_head: nn.Module | None = None
    num_steps: int = 13  # T of the local embeddings

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m in MODALITIES if getattr(self, m) is not None)


def run_kind(config: dict[str, Any]) -> str:
    """none | pretrain-ecg | ... | simclr-cmr | align | finetune, from a run's config.yaml."""
    if config.get("stage") == "finetune":
        return "finetune"
    if "modality" in config:
        return f"{config.get('stage', 'pretrain')}-{config['modality']}"  # simclr-ecg, ...
    if run_modalities(config) == MODALITIES:
        return "align"
    return str(config.get("stage", "finetune"))  # an older run with only `ecg_encoder`


def load_run_encoders(
    model: str | Path, *, seed: int = 0, like: str | Path | None = None, which: str = "best"
) -> RunEncoders:
    """The encoders (eval mode) and projection heads of run folder `model`, or random ones for
    `none`: seeded, both of the paper's sizes, or the encoders run `like` holds with its
    architecture (the fair random-init baseline for that run: an ECG MAE run gives a random ECG
    encoder only)."""
    import torch

    from ptacl.models import encoder_from_config

    if str(model) == "none":
        sections: dict[str, Any] = dict.fromkeys(MODALITIES)
        if like is not None:
            config = read_run_config(like)
            # Only the modalities `like` holds: a paper-sized second encoder beside a tiny one
            # would not be that run's baseline (and their widths could not be compared).
            sections = {m: encoder_section(config, m) for m in run_modalities(config)}
            sections = {m: s for m, s in sections.items() if s is not None}
            if not sections:
                raise RunDirError(f"{like}/config.yaml: cannot tell which encoders this run holds")
        torch.manual_seed(seed)
        encoders = {m: encoder_from_config(s, m) for m, s in sections.items()}
        return RunEncoders(
            kind="none",
            source="none" if like is None else f"none (architecture of {like})",
            ecg=encoders.get("ecg"),
            cmr=encoders.get("cmr"),
        )

    run_dir = Path(model)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: not a run folder (or pass `none` for random encoders)")
    config = read_run_config(run_dir)
    modalities = run_modalities(config)
    if not modalities:
        raise RunDirError(f"{run_dir}/config.yaml: cannot tell which encoders this run holds")
    out = RunEncoders(kind=run_kind(config), source=str(run_dir), num_steps=local_steps(config))
    for modality in modalities:
        setattr(out, modality, load_encoder(run_dir, modality, which).eval())
    widths = {m: int(getattr(out, m).width) for m in out.modalities}
    for modality, head in run_projection_heads(run_dir, which, widths).items():
        setattr(out, f"{modality}_head", head)
    return out


__all__ = [
    "RunDirError",
    "RunEncoders",
    "checkpoint_path",
    "checkpoint_state",
    "encoder_section",
    "encoder_weights",
    "finetune_head",
    "load_encoder",
    "load_encoder_weights",
    "load_run_encoders",
    "load_state",
    "load_weights",
    "local_steps",
    "projection_heads",
    "read_checkpoint",
    "read_run_config",
    "run_kind",
    "run_modalities",
    "run_projection_heads",
    "run_store",
    "submodule_state",
    "weights_mismatch",
]
