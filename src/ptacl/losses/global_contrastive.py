"""Global (patient-level) InfoNCE between ECG and CMR embeddings, CLIP style."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ptacl.losses.distributed import unit_pair


def global_contrastive_loss(
    z_ecg: torch.Tensor,
    z_cmr: torch.Tensor,
    temperature: float,
    ecg_to_cmr_weight: float = 0.5,
    *,
    gather: bool = True,
) -> torch.Tensor:
    """w · L_E→C + (1 − w) · L_C→E, InfoNCE on cosine similarities over the batch.

    z_ecg, z_cmr: (B, d), row i of each from the same subject (the positive pair); every other
    subject of the batch is a negative. Returns a scalar.

        L_E→C = 1/B Σ_i −log( exp(cos(z_E^i, z_C^i)/τ) / Σ_j exp(cos(z_E^i, z_C^j)/τ) )

    gather: when a process group with several processes is running, this process's rows are
    contrasted against the features of all processes (gathered with gradient, positives offset by
    rank), so the negatives are the whole global batch. Pass False for a purely local value
    (validation batches may differ in size between processes).

    Zero vectors give cosine 0 (no NaN). Computed in at least float32 with autocast off, so a
    bf16-mixed run does not round the logits.
    """
    if z_ecg.ndim != 2 or z_ecg.shape != z_cmr.shape:
        raise ValueError(
            f"global_contrastive_loss: z_ecg {tuple(z_ecg.shape)} and z_cmr "
            f"{tuple(z_cmr.shape)} must both be (B, d)"
        )
    if temperature <= 0:
        raise ValueError(f"global_contrastive_loss: temperature must be > 0, got {temperature}")
    # Autocast off: under bf16-mixed it would run the matmul in bf16 again, and at τ = 0.07 a
    # bf16 rounding of a cosine (≈ 0.004) moves a logit by ≈ 0.06.
    with torch.autocast(device_type=z_ecg.device.type, enabled=False):
        z_ecg, z_cmr, all_ecg, all_cmr, offset = unit_pair(z_ecg, z_cmr, gather=gather)
        labels = torch.arange(z_ecg.shape[0], device=z_ecg.device) + offset
        logits_ecg_to_cmr = z_ecg @ all_cmr.T / temperature  # (B, world·B)
        logits_cmr_to_ecg = z_cmr @ all_ecg.T / temperature  # (B, world·B)
        return ecg_to_cmr_weight * F.cross_entropy(logits_ecg_to_cmr, labels) + (
            1.0 - ecg_to_cmr_weight
        ) * F.cross_entropy(logits_cmr_to_ecg, labels)
