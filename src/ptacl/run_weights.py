"""A run folder's `weights/`: one safetensors file per part a stage module declares.

    weights/<modality>_encoder.safetensors   each of the module's `encoders()`
    weights/<name>_head.safetensors          each of its `heads()` (align: ecg_head, cmr_head)

Written at the end of `fit` from the checkpoint evaluation reads by default (best.ckpt, or
last.ckpt when no validation ran: `ptacl.runs.checkpoint_path`), so reading an encoder needs
neither the optimiser state of a checkpoint nor its attribute names. Each file records which
checkpoint it came from (name, size, modification time); when that checkpoint has been written
again since (a resumed run stopped before its end), the files are stale and readers fall back
to the checkpoint, as they do for runs older than `weights/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

WEIGHTS_DIR = "weights"


def part_names(module: Any) -> dict[str, nn.Module]:
    """{"<modality>_encoder": encoder, "<name>_head": head} of a stage module (the weights
    contract: `encoders()` and `heads()`, each a {name: nn.Module})."""
    parts = {f"{name}_encoder": m for name, m in module.encoders().items()}
    return parts | {f"{name}_head": m for name, m in module.heads().items()}


def split_state(module: Any, state: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """`state` (the module's state-dict layout, e.g. a checkpoint's) split into its parts
    (`part_names`), keys relative to each part; where a part sits inside the module is read
    from the module itself, so no attribute name is assumed."""
    where = {id(m): name for name, m in module.named_modules()}
    out = {}
    for part, sub in part_names(module).items():
        prefix = f"{where[id(sub)]}."
        out[part] = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return out


def _stamp(checkpoint: Path) -> dict[str, str]:
    status = checkpoint.stat()
    return {
        "checkpoint": checkpoint.name,
        "size": str(status.st_size),
        "mtime_ns": str(status.st_mtime_ns),
    }


def write_weights(run_dir: str | Path, module: Any) -> list[Path]:
    """weights/<part>.safetensors of the run's default checkpoint (see the module doc), each
    replaced atomically; returns the paths written."""
    from safetensors.torch import save_file

    from ptacl.atomic import atomic_file
    from ptacl.runs import checkpoint_state

    checkpoint, state = checkpoint_state(run_dir, "best")
    stamp = _stamp(checkpoint)
    folder = Path(run_dir) / WEIGHTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for part, tensors in split_state(module, state).items():
        path = folder / f"{part}.safetensors"
        # clone: safetensors refuses tensors that share storage
        plain = {k: v.detach().clone().contiguous() for k, v in tensors.items()}
        with atomic_file(path) as tmp:
            save_file(plain, str(tmp), metadata=stamp)
        written.append(path)
    return written


def read_weights(run_dir: str | Path, which: str = "best") -> dict[str, dict[str, Any]] | None:
    """{part: state dict} from weights/, or None when the run has none, `which` is not the
    checkpoint they were written from, or they are stale (see the module doc). A file that
    cannot be read raises RunDirError naming it."""
    from safetensors import SafetensorError, safe_open

    from ptacl.runs import RunDirError, checkpoint_path

    folder = Path(run_dir) / WEIGHTS_DIR
    files = sorted(folder.glob("*.safetensors")) if which == "best" else []
    if not files:
        return None
    try:
        expected = _stamp(checkpoint_path(run_dir, "best"))
    except RunDirError:
        expected = None  # the checkpoints were removed: the weights are all there is
    parts = {}
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as f:
                if expected is not None and f.metadata() != expected:
                    return None  # written from an older checkpoint
                parts[path.stem] = {key: f.get_tensor(key) for key in f.keys()}
        except (SafetensorError, OSError) as err:
            raise RunDirError(f"{path}: not readable weights: {err}") from None
    return parts
