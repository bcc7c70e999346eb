"""Small hand-made stores for the dataset and augmentation tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ptacl.data.store_write import write_store


def make_store(out: Path, n: int = 6, seed: int = 0) -> Path:
    """n subjects: rows 0..n-3 paired, n-2 ECG-only, n-1 CMR-only; all in 'train' but row 1
    ('val'). ECG row i holds the value (i + 1) * sample_index / 1000 on lead 0, so a crop's
    position can be read back from the values; R peaks every 400 samples from 100."""
    rng = np.random.default_rng(seed)
    ecg = rng.standard_normal((n, 12, 5000)).astype(np.float32)
    ecg[:, 0] = (np.arange(n)[:, None] + 1) * np.arange(5000)[None] / 1000
    lengths = np.full(n, 5000)
    lengths[0] = 3000  # a short (6 s) recording, zero-padded after its valid length
    ecg[0, :, 3000:] = 0
    cmr = rng.random((n, 50, 84, 84)).astype(np.float32)
    cmr[:, :, 0, 0] = np.arange(50) / 49  # frame number readable from a pixel
    has_ecg = np.ones(n, bool)
    has_cmr = np.ones(n, bool)
    has_ecg[n - 1] = False
    has_cmr[n - 2] = False
    ecg[~has_ecg] = 0
    cmr[~has_cmr] = 0
    lengths[~has_ecg] = 0
    peaks = [np.arange(100, lengths[i], 400) for i in range(n)]
    phen = rng.random((n, 10)).astype(np.float32) * 100
    phen[2, 3] = np.nan
    eids = [str(1000 + i) for i in range(n)]
    splits = ["train"] * n
    splits[1] = "val"
    return write_store(
        out,
        eids=eids,
        splits=splits,
        ecg=ecg,
        cmr=cmr,
        r_peaks=peaks,
        phenotypes=phen,
        has_ecg=has_ecg,
        has_cmr=has_cmr,
        ecg_lengths=lengths,
        qc=pd.DataFrame({"eid": eids, "status": "paired"}),
    )


@pytest.fixture
def small_store(tmp_path: Path) -> Path:
    return make_store(tmp_path / "store")
