"""Local (per-time-step) embeddings from encoder tokens: the inputs of the local loss.

Both sequences start at end-diastole (the R peak; CMR frame 0) and cover one cardiac cycle in
T equal phase bins. Step k stands for bin k, phase [k/T, (k+1)/T) of the cycle:

- CMR: temporal token t already averages its bin of frames; mean over its spatial tokens.
- ECG: for every complete beat (two consecutive R peaks), the lead-averaged token sequence is
  linearly interpolated at the bin centres, phase (k + ½)/T of the RR interval, then the beats
  are averaged. Token j covers samples [j·patch, (j+1)·patch) and sits at its centre.

Pure functions with no parameters; vectorised (no Python loop over tokens or beats).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange


def cmr_local_embeddings(
    cmr_tokens: torch.Tensor, grid: tuple[int, int], num_steps: int = 13
) -> torch.Tensor:
    """(B, T_C·S, D) CMR tokens, token index t·S + s, grid (T_C, S) -> (B, T, D).

    The mean of the S spatial tokens of each temporal token; when T_C ≠ T the sequence is
    linearly interpolated to T steps (bin centres matched, `align_corners=False`).
    """
    temporal, spatial = grid
    if cmr_tokens.ndim != 3 or cmr_tokens.shape[1] != temporal * spatial:
        raise ValueError(
            f"cmr_local_embeddings: tokens {tuple(cmr_tokens.shape)} do not fit the grid "
            f"{grid} (expected (B, {temporal * spatial}, D))"
        )
    cmr_local = rearrange(cmr_tokens, "b (t s) d -> b t s d", t=temporal).mean(dim=2)  # (B, T_C, D)
    if temporal == num_steps:
        return cmr_local
    resized = F.interpolate(
        rearrange(cmr_local, "b t d -> b d t"), size=num_steps, mode="linear", align_corners=False
    )
    return rearrange(resized, "b d t -> b t d")


def beat_weights(
    r_peaks: torch.Tensor, num_tokens: int, patch: int = 50, num_steps: int = 13
) -> tuple[torch.Tensor, torch.Tensor]:
    """Interpolation weights from R peaks: W (B, T, L_t) with local = W @ tokens, and valid (B,).

    r_peaks: (B, P) integer sample indices inside the crop, ascending, padded with -1. A beat is
    complete when both its peaks lie inside the crop (0 <= r < L_t·patch) and r1 > r0. Row k of
    W[i] holds the weights of the time tokens that give step k, averaged over the complete beats
    of subject i; it sums to 1, or is all zero when the subject has no complete beat
    (valid False).
    """
    if r_peaks.ndim != 2:
        raise ValueError(f"beat_weights: r_peaks must be (B, P), got {tuple(r_peaks.shape)}")
    batch = r_peaks.shape[0]
    device = r_peaks.device
    samples = num_tokens * patch
    peaks = r_peaks.to(torch.float32)
    start, end = peaks[:, :-1], peaks[:, 1:]  # (B, P-1) each: beat n spans [start_n, end_n)
    complete = (start >= 0) & (end > start) & (end < samples)  # (B, P-1)
    phase = (torch.arange(num_steps, device=device, dtype=torch.float32) + 0.5) / num_steps
    sample_pos = start[..., None] + phase * (end - start)[..., None]  # (B, P-1, T)
    token_pos = (sample_pos / patch - 0.5).clamp(0, num_tokens - 1)  # token j centred at j+½
    left = token_pos.floor().long().clamp(max=num_tokens - 1)
    right = (left + 1).clamp(max=num_tokens - 1)
    frac = token_pos - left
    beats = complete.sum(dim=1)  # (B,)
    share = complete / beats.clamp_min(1)[:, None]  # (B, P-1): each beat's share of the mean
    # (B, T, 2·(P-1)): for each step, the two neighbouring tokens of every beat and their weights
    index = torch.cat([left, right], dim=1).transpose(1, 2)
    value = torch.cat([(1 - frac) * share[..., None], frac * share[..., None]], dim=1).transpose(
        1, 2
    )
    weights = torch.zeros(batch, num_steps, num_tokens, device=device, dtype=torch.float32)
    weights.scatter_add_(2, index, value)
    return weights, beats > 0


def ecg_local_embeddings(
    ecg_tokens: torch.Tensor,
    grid: tuple[int, int],
    r_peaks: torch.Tensor,
    patch: int = 50,
    num_steps: int = 13,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C·L_t, D) ECG tokens, token index lead·L_t + t, grid (C, L_t) -> (local, valid).

    local (B, T, D): for every complete beat between consecutive R peaks (r_peaks (B, P) sample
    indices in the crop, ascending, -1 padded), the tokens averaged over leads and linearly
    interpolated to T steps at the centres of T equal phase bins; averaged over the beats.
    valid (B,) bool: False where no complete beat lies in the crop; local is 0 there.
    """
    leads, time_tokens = grid
    if ecg_tokens.ndim != 3 or ecg_tokens.shape[1] != leads * time_tokens:
        raise ValueError(
            f"ecg_local_embeddings: tokens {tuple(ecg_tokens.shape)} do not fit the grid "
            f"{grid} (expected (B, {leads * time_tokens}, D))"
        )
    if r_peaks.shape[0] != ecg_tokens.shape[0]:
        raise ValueError(
            f"ecg_local_embeddings: r_peaks {tuple(r_peaks.shape)} and tokens "
            f"{tuple(ecg_tokens.shape)} disagree on the batch size"
        )
    # linear in the tokens, so averaging leads first equals averaging the interpolated leads
    lead_mean = rearrange(ecg_tokens, "b (c t) d -> b c t d", c=leads).mean(dim=1)  # (B, L_t, D)
    weights, valid = beat_weights(r_peaks, time_tokens, patch, num_steps)  # (B, T, L_t), (B,)
    return torch.bmm(weights.to(lead_mean.dtype), lead_mean), valid  # (B, T, D)
