"""Where the crops of a recording start: the one rule evaluation, export and predict share.

The encoder sees `crop` samples (2,500 = 5 s at 500 Hz); a 10-s recording is covered by its two
non-overlapping halves and the outputs are averaged. A recording whose length is not a multiple
of the crop (5-10 s records) gets ceil(S / crop) crops spread evenly from its start to its end,
so every sample is seen and none twice more than needed.

Why every crop and not the first one: a deployed bundle is given a whole recording, and the
paper fixes no evaluation crop (training crops are random, so any 5-s window is in
distribution). Averaging over crops uses all of the recording, and using the same rule in
`ptacl evaluate` (`ptacl.eval.embed.compute_embeddings`), in the probe fitted by `ptacl export`
and in `ptacl predict` makes the probe a user deploys the probe the report scored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from ptacl.data.store import Store


def crop_starts(length: int, crop: int) -> list[int]:
    """Start indices of the crops covering `length` samples; raises ValueError if too short."""
    if length < crop:
        raise ValueError(f"{length} samples is shorter than the model's crop of {crop} samples")
    n = math.ceil(length / crop)
    if n == 1:
        return [0]
    return [round(i * (length - crop) / (n - 1)) for i in range(n)]


def take_crops(ecg: np.ndarray, length: int, crop: int) -> np.ndarray:
    """(12, S) -> (K, 12, crop), the crops of the first `length` samples (see `crop_starts`)."""
    return np.stack([ecg[:, s : s + crop] for s in crop_starts(length, crop)])


def crop_peaks(r_peaks: np.ndarray, start: int, crop: int, width: int = 32) -> np.ndarray:
    """R peaks (sample indices of the recording) inside [start, start + crop), relative to the
    crop's start, padded with -1 to `width` (as the datasets pad them; extra peaks dropped)."""
    peaks = np.asarray(r_peaks, dtype=np.int64) - start
    peaks = peaks[(peaks >= 0) & (peaks < crop)][:width]
    out = np.full(width, -1, dtype=np.int64)
    out[: len(peaks)] = peaks
    return out


def run_over_crops(
    fn: Callable[..., dict[str, torch.Tensor]],
    ecgs: Sequence[np.ndarray],
    lengths: Sequence[int],
    crop: int,
    *,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    peaks: Sequence[np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Apply `fn` to every crop of every recording and average its outputs per recording.

    fn: crops (n, 12, crop) -> {name: (n, K)}; ecgs[i] (12, S_i) preprocessed, of which the first
    lengths[i] samples are valid. With `peaks` (each recording's R-peak sample indices), fn is
    called as fn(crops, crop_peaks) with crop_peaks (n, 32) relative to each crop (`crop_peaks`).
    Returns {name: (len(ecgs), K) float64}.
    """
    starts = [crop_starts(int(n), crop) for n in lengths]
    crops = [take_crops(np.asarray(e), int(n), crop) for e, n in zip(ecgs, lengths)]
    owner = torch.from_numpy(np.concatenate([np.full(len(c), i) for i, c in enumerate(crops)]))
    batch = torch.from_numpy(np.concatenate(crops).astype(np.float32))  # (N, 12, crop)
    crop_r_peaks = None
    if peaks is not None:
        crop_r_peaks = torch.from_numpy(
            np.stack([crop_peaks(p, s, crop) for p, st in zip(peaks, starts) for s in st])
        )  # (N, 32)
    parts: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for start in range(0, len(batch), batch_size):
            x = batch[start : start + batch_size].to(device)
            if crop_r_peaks is None:
                out = fn(x)
            else:
                out = fn(x, crop_r_peaks[start : start + batch_size].to(device))
            for key, value in out.items():
                parts.setdefault(key, []).append(value.double().cpu())
    counts = torch.bincount(owner, minlength=len(ecgs)).unsqueeze(1).double()  # (R, 1)
    means = {}
    for key, values in parts.items():
        stacked = torch.cat(values)  # (N, K)
        total = torch.zeros(len(ecgs), stacked.shape[1], dtype=torch.float64).index_add_(
            0, owner, stacked
        )
        means[key] = (total / counts).numpy()
    return means


def store_outputs(
    fn: Callable[..., dict[str, torch.Tensor]],
    store: Store,
    rows: np.ndarray,
    *,
    crop: int,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    chunk: int = 256,
    with_peaks: bool = False,
) -> dict[str, np.ndarray]:
    """`fn`'s outputs averaged over the crops (`run_over_crops`) of the store's ECGs at `rows`,
    read `chunk` recordings at a time; with_peaks: fn also gets each crop's R peaks.
    Returns {name: (len(rows), K) float64}, empty arrays ({}) for no rows."""
    lengths = store.subjects["ecg_length"].to_numpy()
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(rows), chunk):
        part = [int(i) for i in rows[start : start + chunk]]
        ecgs = [np.asarray(store.ecg[i], dtype=np.float32) for i in part]
        out = run_over_crops(
            fn,
            ecgs,
            [int(lengths[i]) for i in part],
            crop,
            batch_size=batch_size,
            device=device,
            peaks=[store.peaks(i) for i in part] if with_peaks else None,
        )
        for key, value in out.items():
            parts.setdefault(key, []).append(value)
    return {key: np.concatenate(value) for key, value in parts.items()}
