"""The prepared store: what `ptacl prepare` writes and every training stage reads.

Layout of a store folder (all arrays row-aligned with `subjects.csv`, row i = subject i)::

    manifest.json    format version, sizes, lead order, phenotype columns, split counts, sources
    subjects.csv     eid, split (train/val/test), has_ecg, has_cmr, paired, ecg_length
    ecg.npy          float16 (N, 12, 5000)   preprocessed ECG (z-scored per lead); zero-padded
                                             after `ecg_length` samples (0 if no ECG)
    cmr.npy          uint8   (N, 50, 84, 84) min-max normalised cine x 255; zeros if no CMR
    r_peaks.npy      int32   (N, P)          R-peak sample indices into ecg.npy, padded with -1
    phenotypes.npy   float32 (N, 10)         PHENOTYPES columns; NaN where unknown
    qc.csv           every subject seen: eid, status, modality, file, reason

Arrays are opened memory-mapped, so a store larger than memory trains fine and DataLoader
workers share pages instead of copying.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ptacl.atomic import atomic_folder
from ptacl.phenotypes import PHENOTYPES

STORE_VERSION = 1
LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
ECG_FS = 500
ECG_SAMPLES = 5000
CMR_FRAMES = 50
CMR_SIZE = 84
SPLITS = ("train", "val", "test")


class StoreError(RuntimeError):
    """A store folder that is missing, incomplete or inconsistent."""


@dataclass(frozen=True)
class Store:
    """A prepared store opened for reading (arrays memory-mapped)."""

    root: Path
    subjects: pd.DataFrame  # eid, split, has_ecg, has_cmr, paired, ecg_length
    ecg: np.ndarray  # (N, 12, S) float16
    cmr: np.ndarray  # (N, F, H, W) uint8
    r_peaks: np.ndarray  # (N, P) int32, -1 padded
    phenotypes: np.ndarray  # (N, 10) float32
    manifest: dict

    @classmethod
    def open(cls, root: str | Path) -> Store:
        root = Path(root)
        if not (root / "manifest.json").is_file():
            raise StoreError(
                f"{root}: not a prepared store (no manifest.json); run `ptacl prepare`"
            )
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("version") != STORE_VERSION:
            raise StoreError(
                f"{root}: store format version {manifest.get('version')}, expected {STORE_VERSION}"
            )
        arrays = {}
        for name in ("ecg", "cmr", "r_peaks", "phenotypes"):
            path = root / f"{name}.npy"
            if not path.is_file():
                raise StoreError(f"{path}: missing from the store")
            arrays[name] = np.load(path, mmap_mode="r", allow_pickle=False)
        subjects = pd.read_csv(root / "subjects.csv", dtype={"eid": str})
        n = len(subjects)
        for name, arr in arrays.items():
            if arr.shape[0] != n:
                raise StoreError(f"{root / name}.npy has {arr.shape[0]} rows, subjects.csv {n}")
        return cls(root=root, subjects=subjects, manifest=manifest, **arrays)

    def __len__(self) -> int:
        return len(self.subjects)

    def indices(
        self, split: str | None = None, *, ecg: bool = False, cmr: bool = False
    ) -> np.ndarray:
        """Row indices of one split (None: all) holding the requested modalities."""
        keep = np.ones(len(self.subjects), dtype=bool)
        if split is not None:
            if split not in SPLITS:
                raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
            keep &= (self.subjects["split"] == split).to_numpy()
        if ecg:
            keep &= self.subjects["has_ecg"].to_numpy(dtype=bool)
        if cmr:
            keep &= self.subjects["has_cmr"].to_numpy(dtype=bool)
        return np.flatnonzero(keep)

    def peaks(self, i: int) -> np.ndarray:
        """R-peak sample indices of subject row i (padding removed)."""
        row = np.asarray(self.r_peaks[i])
        return row[row >= 0]


def write_store(
    out: str | Path,
    *,
    eids: Sequence[str],
    splits: Sequence[str],
    ecg: np.ndarray,
    cmr: np.ndarray,
    r_peaks: Sequence[np.ndarray],
    phenotypes: np.ndarray,
    has_ecg: Sequence[bool],
    has_cmr: Sequence[bool],
    qc: pd.DataFrame,
    ecg_lengths: Sequence[int] | None = None,
    extra_manifest: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a complete store atomically: into a temporary sibling folder, renamed at the end.

    An interrupted run therefore leaves no half store, and an existing store is replaced only
    with `overwrite=True`. `ecg_lengths` gives the valid samples of each ECG row (recordings
    shorter than 10 s are zero-padded; default: full length where `has_ecg`). `ecg` (N, 12, S) and `cmr` (N, F, H, W) may be float arrays (converted:
    ECG to float16, CMR in [0, 1] to uint8) or already in the store's dtypes.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists; pass --overwrite to replace it")
    n = len(eids)
    if len(set(eids)) != n:
        raise ValueError("duplicate eids in the store")
    for name, arr in (("ecg", ecg), ("cmr", cmr), ("phenotypes", phenotypes)):
        if len(arr) != n:
            raise ValueError(f"{name} has {len(arr)} rows for {n} eids")
    with atomic_folder(out) as tmp:
        np.save(tmp / "ecg.npy", np.asarray(ecg, dtype=np.float16))
        cmr = np.asarray(cmr)
        if cmr.dtype != np.uint8:
            cmr = np.clip(np.rint(cmr * 255.0), 0, 255).astype(np.uint8)
        np.save(tmp / "cmr.npy", cmr)
        width = max((len(p) for p in r_peaks), default=0)
        peaks = np.full((n, max(width, 1)), -1, dtype=np.int32)
        for i, p in enumerate(r_peaks):
            peaks[i, : len(p)] = p
        np.save(tmp / "r_peaks.npy", peaks)
        np.save(tmp / "phenotypes.npy", np.asarray(phenotypes, dtype=np.float32))
        has_ecg = np.asarray(has_ecg, dtype=bool)
        has_cmr = np.asarray(has_cmr, dtype=bool)
        subjects = pd.DataFrame(
            {
                "eid": list(eids),
                "split": list(splits),
                "has_ecg": has_ecg,
                "has_cmr": has_cmr,
                "paired": has_ecg & has_cmr,
                "ecg_length": (
                    np.where(has_ecg, np.shape(ecg)[-1], 0)
                    if ecg_lengths is None
                    else np.asarray(ecg_lengths, dtype=int)
                ),
            }
        )
        subjects.to_csv(tmp / "subjects.csv", index=False)
        qc.to_csv(tmp / "qc.csv", index=False)
        manifest = {
            "version": STORE_VERSION,
            "subjects": n,
            "paired": int(subjects["paired"].sum()),
            "ecg_only": int((has_ecg & ~has_cmr).sum()),
            "cmr_only": int((~has_ecg & has_cmr).sum()),
            "splits": {s: int((subjects["split"] == s).sum()) for s in SPLITS},
            "leads": list(LEADS),
            "ecg_fs": ECG_FS,
            "ecg_shape": list(np.shape(ecg)[1:]),
            "cmr_shape": list(np.shape(cmr)[1:]),
            "phenotypes": list(PHENOTYPES),
            **(extra_manifest or {}),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return out
