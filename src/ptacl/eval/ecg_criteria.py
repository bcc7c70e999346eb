"""The clinician's baseline among the endpoints: the classic ECG criteria of each recording.

    store_criteria(store, rows) -> (N, F) criteria of `rows` (ptacl.ecg.criteria.CRITERIA
                                   order), NaN where one cannot be measured
    impute_train_median(train, *others) -> the arrays with NaN set to train's column medians,
                                           and those medians

`ptacl.eval.endpoint_eval` fits on them the same L2 logistic model as on an embedding (the
row `ECG criteria (logistic)`): what a model of the measurements a clinician reads scores,
beside what the learned representation scores. Computed from the prepared store only, one
recording at a time from the memory-mapped array (bounded memory), nothing trained.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ptacl.ecg.criteria import CRITERIA, ecg_criteria
from ptacl.schema import ECG_FS, LEADS

#: What the store's amplitudes are, for the reports (ptacl prepare z-scores every lead).
UNITS = (
    "amplitudes in the store's per-lead z units (ptacl prepare z-scores each lead), so the "
    "voltage criteria keep their form, not their mV thresholds; durations in ms, rate in /min"
)


def store_criteria(store: Any, rows: np.ndarray) -> np.ndarray:
    """(len(rows), len(CRITERIA)) criteria of the store's ECG rows (`ptacl.data.store.Store`),
    measured on each row's valid samples with the R peaks the store holds; NaN unmeasured."""
    fs = float(store.manifest.get("ecg_fs", ECG_FS))
    leads = list(store.manifest.get("leads", LEADS))
    lengths = store.subjects["ecg_length"].to_numpy()
    out = np.full((len(rows), len(CRITERIA)), np.nan)
    for i, row in enumerate(np.asarray(rows, dtype=np.int64)):
        length = int(lengths[row])
        signal = np.asarray(store.ecg[row, :, :length], dtype=np.float64)  # (C, S) one row read
        peaks = store.peaks(int(row))
        found = ecg_criteria(signal, peaks[peaks < length], fs, leads)
        out[i] = [found[name] for name in CRITERIA]
    return out


def impute_train_median(
    train: np.ndarray, *others: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    """([train, *others] with every NaN replaced by its column's median over `train`, the (F,)
    medians); a column never measured in train becomes 0 (constant: no weight after
    standardising)."""
    with warnings.catch_warnings():  # an all-NaN column: its median is NaN, handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        medians = np.nanmedian(train, axis=0) if len(train) else np.zeros(train.shape[1])
    medians = np.where(np.isfinite(medians), medians, 0.0)
    filled = [np.where(np.isnan(x), medians[None, :], x) for x in (train, *others)]
    return filled, medians
