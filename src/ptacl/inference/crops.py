"""Where the crops of a recording start: the one rule export (probe fit) and predict share.

The encoder sees `crop` samples (2,500 = 5 s at 500 Hz); a 10-s recording is covered by its two
non-overlapping halves and the outputs are averaged. A recording whose length is not a multiple
of the crop (5-10 s records) gets ceil(S / crop) crops spread evenly from its start to its end,
so every sample is seen and none twice more than needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch


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


def run_over_crops(
    fn: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    ecgs: Sequence[np.ndarray],
    lengths: Sequence[int],
    crop: int,
    *,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
) -> dict[str, np.ndarray]:
    """Apply `fn` to every crop of every recording and average its outputs per recording.

    fn: crops (n, 12, crop) -> {name: (n, K)}; ecgs[i] (12, S_i) preprocessed, of which the first
    lengths[i] samples are valid. Returns {name: (len(ecgs), K) float64}.
    """
    crops = [take_crops(np.asarray(e), n, crop) for e, n in zip(ecgs, lengths)]
    owner = torch.from_numpy(np.concatenate([np.full(len(c), i) for i, c in enumerate(crops)]))
    batch = torch.from_numpy(np.concatenate(crops).astype(np.float32))  # (N, 12, crop)
    parts: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for start in range(0, len(batch), batch_size):
            out = fn(batch[start : start + batch_size].to(device))
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
