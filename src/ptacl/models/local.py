"""Local (per-time-step) embeddings from encoder time tokens: the inputs of the local loss.

The inputs are what an encoder's `time_tokens` returns, (B, T_enc, D), one embedding per time
step of its input, so these functions assume no token layout (`ptacl.models.registry`).
Both sequences start at end-diastole (the R peak; CMR frame 0) and cover one cardiac cycle in
T equal phase bins. Step k stands for bin k, phase [k/T, (k+1)/T) of the cycle:

- CMR: time token t already averages its bin of frames (the ViT: mean over its spatial tokens).
- ECG: for every complete beat (two consecutive R peaks), the time-token sequence (the ViT:
  lead-averaged) is linearly interpolated at the bin centres, phase (k + ½)/T of the RR
  interval, then the beats are averaged. Time token j covers samples [j·s, (j+1)·s), s the
  encoder's `samples_per_step`, and sits at its centre.

Pure functions with no parameters; vectorised (no Python loop over tokens or beats).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange


def cmr_local_embeddings(cmr_time: torch.Tensor, num_steps: int = 13) -> torch.Tensor:
    """(B, T_C, D) CMR time tokens (`encoder.time_tokens`) -> (B, T, D).

    When T_C ≠ T the sequence is linearly interpolated to T steps (bin centres matched,
    `align_corners=False`).
    """
    if cmr_time.ndim != 3:
        raise ValueError(
            f"cmr_local_embeddings: time tokens must be (B, T_C, D), got {tuple(cmr_time.shape)}"
        )
    cmr_local = cmr_time
    temporal = cmr_local.shape[1]
    if temporal == num_steps:
        return cmr_local
    resized = F.interpolate(
        rearrange(cmr_local, "b t d -> b d t"), size=num_steps, mode="linear", align_corners=False
    )
    return rearrange(resized, "b d t -> b t d")


def beat_weights(
    r_peaks: torch.Tensor, num_tokens: int, samples_per_step: float = 50, num_steps: int = 13
) -> tuple[torch.Tensor, torch.Tensor]:
    """Interpolation weights from R peaks: W (B, T, L_t) with local = W @ tokens, and valid (B,).

    r_peaks: (B, P) integer sample indices inside the crop, ascending, padded with -1. A beat is
    complete when both its peaks lie inside the crop (0 <= r < L_t·samples_per_step) and r1 > r0. Row k of
    W[i] holds the weights of the time tokens that give step k, averaged over the complete beats
    of subject i; it sums to 1, or is all zero when the subject has no complete beat
    (valid False).
    """
    if r_peaks.ndim != 2:
        raise ValueError(f"beat_weights: r_peaks must be (B, P), got {tuple(r_peaks.shape)}")
    batch = r_peaks.shape[0]
    device = r_peaks.device
    patch = samples_per_step
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
    ecg_time: torch.Tensor,
    r_peaks: torch.Tensor,
    samples_per_step: float = 50,
    num_steps: int = 13,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L_t, D) ECG time tokens (`encoder.time_tokens`), token j covering samples
    [j·samples_per_step, (j+1)·samples_per_step) of the crop -> (local, valid).

    local (B, T, D): for every complete beat between consecutive R peaks (r_peaks (B, P) sample
    indices in the crop, ascending, -1 padded), the time tokens linearly interpolated to T
    steps at the centres of T equal phase bins; averaged over the beats.
    valid (B,) bool: False where no complete beat lies in the crop; local is 0 there.
    """
    if ecg_time.ndim != 3:
        raise ValueError(
            f"ecg_local_embeddings: time tokens must be (B, L_t, D), got {tuple(ecg_time.shape)}"
        )
    if r_peaks.shape[0] != ecg_time.shape[0]:
        raise ValueError(
            f"ecg_local_embeddings: r_peaks {tuple(r_peaks.shape)} and time tokens "
            f"{tuple(ecg_time.shape)} disagree on the batch size"
        )
    weights, valid = beat_weights(
        r_peaks, ecg_time.shape[1], samples_per_step, num_steps
    )  # (B, T, L_t), (B,)
    return torch.bmm(weights.to(ecg_time.dtype), ecg_time), valid  # (B, T, D)
