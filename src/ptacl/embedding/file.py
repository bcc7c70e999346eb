"""The embeddings file `ptacl embed` writes and `ptacl retrieve` reads as its database.

An .npz without pickles: eids (N,) str, phenotypes (N, P) float32, phenotype_names (P,) str,
ecg / cmr / ecg_proj / cmr_proj (N, ·) float32 where present, alignment (T, T) float32 where
present, meta (a JSON string). Written by `ptacl.eval.embed.compute_embeddings` (evaluation)
and read by `ptacl.inference.retrieve` (the core install): the format sits below both, so the
read side of bundles needs nothing of evaluation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ptacl.errors import PtaclError
from ptacl.phenotypes import PHENOTYPES

_ARRAYS = ("ecg", "cmr", "ecg_proj", "cmr_proj", "alignment")


class EmbedError(PtaclError, ValueError):
    """A run or embeddings file that cannot be used, with the path and the reason."""


@dataclass
class Embeddings:
    """What `ptacl embed` writes; row i of every array is subject `eids[i]`."""

    eids: np.ndarray
    phenotypes: np.ndarray
    phenotype_names: tuple[str, ...] = PHENOTYPES
    ecg: np.ndarray | None = None
    cmr: np.ndarray | None = None
    ecg_proj: np.ndarray | None = None
    cmr_proj: np.ndarray | None = None
    alignment: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {name: getattr(self, name) for name in _ARRAYS if getattr(self, name) is not None}
        np.savez(
            path,
            eids=np.asarray(self.eids, dtype=str),
            phenotypes=np.asarray(self.phenotypes, dtype=np.float32),
            phenotype_names=np.asarray(self.phenotype_names, dtype=str),
            meta=np.asarray(json.dumps(self.meta)),
            **{k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()},
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> Embeddings:
        path = Path(path)
        if not path.is_file():
            raise EmbedError(f"{path}: no such embeddings file")
        try:
            with np.load(path, allow_pickle=False) as data:
                content = {k: data[k] for k in data.files}
        except (ValueError, OSError) as e:
            raise EmbedError(f"{path}: not a readable .npz without pickles ({e})") from e
        for key in ("eids", "phenotypes", "phenotype_names", "meta"):
            if key not in content:
                raise EmbedError(f"{path}: missing array {key!r}; write it with `ptacl embed`")
        n = len(content["eids"])
        for key in ("phenotypes", "ecg", "cmr", "ecg_proj", "cmr_proj"):
            if key in content and len(content[key]) != n:
                raise EmbedError(f"{path}: {key} has {len(content[key])} rows for {n} eids")
        return cls(
            eids=content["eids"].astype(str),
            phenotypes=content["phenotypes"],
            phenotype_names=tuple(str(x) for x in content["phenotype_names"]),
            meta=json.loads(str(content["meta"])),
            **{k: content.get(k) for k in _ARRAYS},
        )
