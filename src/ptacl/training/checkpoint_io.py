"""Checkpoints written all or nothing: a full disk (or a kill) while Lightning saves
`last.ckpt` or `best.ckpt` leaves the previous file whole instead of a truncated one that
`--resume` cannot read.

`AtomicCheckpointIO` is Lightning's `TorchCheckpointIO` with the write replaced: the
checkpoint is serialised in memory first (as Lightning does), so the bytes it needs are known,
then written to a temporary sibling and renamed over the old file only when complete and
synced (`ptacl.atomic.atomic_file`). A full disk raises `NoSpace` naming the folder, the space
the checkpoint needs and the space free.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from ptacl.atomic import NoSpace, _free, atomic_file


def _write_all(path: Path, data: memoryview) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        done = 0
        while done < len(data):
            done += os.write(fd, data[done : done + (1 << 24)])
    finally:
        os.close(fd)


def save_atomically(checkpoint: dict[str, Any], path: str | Path) -> None:
    """torch.save `checkpoint` to `path`, replacing it only once the new file is complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    data = buffer.getbuffer()
    try:
        with atomic_file(path) as tmp:
            _write_all(tmp, data)
    except NoSpace as err:  # atomic_file's, which does not know the size: said here
        raise NoSpace(
            path.parent,
            f"writing {path.name} needs {len(data) / 1e6:.1f} MB ({_free(path.parent)}); "
            f"the previous {path.name}, if any, is kept whole",
        ) from err


class AtomicCheckpointIO(TorchCheckpointIO):
    """`TorchCheckpointIO` whose saves are all or nothing (`save_atomically`)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        save_atomically(checkpoint, path)
