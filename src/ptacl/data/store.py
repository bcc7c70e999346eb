"""The prepared store: what `ptacl prepare` writes and every training stage reads.

Layout of a store folder (all arrays row-aligned with `subjects.csv`, row i = subject i)::

    manifest.json    format version, sizes, lead order, phenotype columns, split counts, sources
    subjects.csv     eid, split (train/val/test), has_ecg, has_cmr, paired, ecg_length
    ecg.npy          float16 (N, 12, 5000)   preprocessed ECG (z-scored per lead); zero-padded
                                             after `ecg_length` samples (0 if no ECG)
    cmr.npy          uint8   (N, 50, 84, 84) min-max normalised cine x 255; zeros if no CMR
    r_peaks.npy      int32   (N, P)          R-peak sample indices into ecg.npy, padded with -1
    phenotypes.npy   float32 (N, 10)         PHENOTYPES columns; NaN where unknown
    qc.csv           every subject seen: eid, status, modality, file, reason, warning, patient_id
    covariates.csv   optional: eid, sex (0 female, 1 male), height_cm, weight_kg; empty unknown

Arrays are opened memory-mapped, so a store larger than memory trains fine and DataLoader
workers share pages instead of copying. It is written by `ptacl.data.store_write`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ptacl.errors import PtaclError

STORE_VERSION = 1
SPLITS = ("train", "val", "test")


class StoreError(PtaclError, RuntimeError):
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

    def covariates(self) -> pd.DataFrame | None:
        """(N, 3) sex, height_cm, weight_kg row-aligned with `subjects` (NaN unknown), or None
        for a store prepared without a covariate table (`ptacl prepare --covariates`)."""
        path = self.root / "covariates.csv"
        if not path.is_file():
            return None
        table = pd.read_csv(path, dtype={"eid": str})
        if table["eid"].tolist() != self.subjects["eid"].tolist():
            raise StoreError(f"{path}: its eids are not those of subjects.csv, row for row")
        return table.drop(columns="eid")
