"""`write_tiny_store`: the small prepared store of the training and CLI tests. A plain module
beside the root conftest (pytest puts tests/ on sys.path), like faults.py: a test that needs a
fresh store (under its own umask, say) imports it; `from conftest import` would find whichever
folder's conftest was imported first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ptacl.data.store_write import write_store


def write_tiny_store(out: Path, seed: int = 0) -> Path:
    """A store of 12 subjects: rows 0-8 paired (0-6 train, 7-8 val), 9 ECG-only (train),
    10 CMR-only (test), 11 ECG-only (test). ECGs are z-scored-like sines with noise, cines a beating disc, so a
    model has structure to learn; R peaks every 400 samples (72 bpm at 500 Hz)."""
    rng = np.random.default_rng(seed)
    n = 12
    time = np.arange(5000) / 500
    freq = rng.uniform(1.0, 1.5, (n, 12, 1))
    ecg = np.sin(2 * np.pi * freq * time) + 0.1 * rng.standard_normal((n, 12, 5000))
    yy, xx = np.mgrid[-1:1:84j, -1:1:84j]
    radius = 0.3 + 0.1 * np.cos(2 * np.pi * np.arange(50) / 50)  # (F,) one cardiac cycle
    cmr = (yy**2 + xx**2 < radius[:, None, None] ** 2).astype(np.float32) * 0.8
    cmr = np.clip(cmr[None] + 0.05 * rng.random((n, 50, 84, 84)), 0, 1).astype(np.float32)
    has_ecg = np.ones(n, bool)
    has_cmr = np.ones(n, bool)
    has_ecg[10] = False
    has_cmr[[9, 11]] = False
    ecg[~has_ecg] = 0
    cmr[~has_cmr] = 0
    eids = [str(2_000_000 + i) for i in range(n)]
    splits = ["train"] * 7 + ["val", "val", "train", "test", "test"]
    return write_store(
        out,
        eids=eids,
        splits=splits,
        ecg=ecg,
        cmr=cmr,
        r_peaks=[np.arange(200, 5000, 400) if has_ecg[i] else np.array([], int) for i in range(n)],
        phenotypes=rng.uniform(20, 200, (n, 10)).astype(np.float32),
        has_ecg=has_ecg,
        has_cmr=has_cmr,
        qc=pd.DataFrame({"eid": eids, "status": "ok"}),
    )
