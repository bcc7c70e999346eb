"""Local (heartbeat-phase-level) losses between ECG and CMR time steps of the same subject.

Both take local embeddings (B, T, D): step k of the ECG and step t of the CMR of one subject.
Neither has learnable parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ptacl.losses.alignment import alignment_matrix


def _check(ecg_local: torch.Tensor, cmr_local: torch.Tensor, valid: torch.Tensor | None, name: str):
    if ecg_local.ndim != 3 or ecg_local.shape != cmr_local.shape:
        raise ValueError(
            f"{name}: ecg_local {tuple(ecg_local.shape)} and cmr_local "
            f"{tuple(cmr_local.shape)} must both be (B, T, D)"
        )
    if valid is not None and valid.shape != ecg_local.shape[:1]:
        raise ValueError(
            f"{name}: valid {tuple(valid.shape)} must be (B,) = ({ecg_local.shape[0]},)"
        )


def _unit(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Unit vectors in float32; invalid subjects zeroed so nothing they hold (not even NaN)
    reaches the loss or its gradient."""
    x = x.float()
    if valid is not None:
        x = torch.where(valid[:, None, None], x, torch.zeros((), device=x.device))
    return F.normalize(x, dim=-1)


def _subject_mean(per_subject: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean of (B,) over valid subjects; 0 (still differentiable) when none is valid."""
    if valid is None:
        return per_subject.mean()
    weight = valid.to(per_subject.dtype)
    return (per_subject * weight).sum() / weight.sum().clamp_min(1.0)


def local_contrastive_loss(
    ecg_local: torch.Tensor,
    cmr_local: torch.Tensor,
    temperature: float,
    sigma: float,
    ecg_to_cmr_weight: float = 0.5,
    valid: torch.Tensor | None = None,
    circular: bool = False,
) -> torch.Tensor:
    """Contrast each time step against the other time steps of the same subject. Scalar.

    ecg_local, cmr_local: (B, T, D). valid: (B,) bool, False for subjects without a usable beat;
    they are left out of the mean, and a batch without any valid subject gives 0.

    For subject i and ECG step k, with P = alignment_matrix(T, sigma) and s_{k,t} =
    cos(z_E^(i,k), z_C^(i,t)) / τ:

        ℓ_E→C^(i,k) = − Σ_t P_{k,t} log softmax_t(s_{k,·})_t

    the cross-entropy between row k of P and the softmax over the subject's own T CMR steps.
    CMR→ECG is the same with the roles swapped (softmax over ECG steps, row t of P). Each is
    averaged over steps and subjects; the result is w · L_E→C + (1 − w) · L_C→E.
    """
    _check(ecg_local, cmr_local, valid, "local_contrastive_loss")
    if temperature <= 0:
        raise ValueError(f"local_contrastive_loss: temperature must be > 0, got {temperature}")
    num_steps = ecg_local.shape[1]
    target = alignment_matrix(num_steps, sigma, circular, device=ecg_local.device)  # (T, T)
    ecg_unit, cmr_unit = _unit(ecg_local, valid), _unit(cmr_local, valid)
    logits = torch.einsum("bkd,btd->bkt", ecg_unit, cmr_unit) / temperature  # (B, T_ecg, T_cmr)
    # E→C: for each ECG step k, a distribution over CMR steps t (last dim), target row P_k.
    ecg_to_cmr = -(target * F.log_softmax(logits, dim=2)).sum(dim=2).mean(dim=1)  # (B,)
    # C→E: for each CMR step t, a distribution over ECG steps k (dim 1), target row P_t.
    cmr_to_ecg = -(target.T * F.log_softmax(logits, dim=1)).sum(dim=1).mean(dim=1)  # (B,)
    per_subject = ecg_to_cmr_weight * ecg_to_cmr + (1.0 - ecg_to_cmr_weight) * cmr_to_ecg
    return _subject_mean(per_subject, valid)


def cosine_alignment_loss(
    ecg_local: torch.Tensor,
    cmr_local: torch.Tensor,
    sigma: float = 0.0,
    valid: torch.Tensor | None = None,
    circular: bool = False,
) -> torch.Tensor:
    """ "CosSim++" ablation: maximise the cosine of matched time steps, without negatives. Scalar.

    ecg_local, cmr_local: (B, T, D); valid as in `local_contrastive_loss`.

        loss^(i) = 1 − 1/T Σ_k Σ_t P_{k,t} cos(z_E^(i,k), z_C^(i,t))

    With sigma = 0 (the default) P is the identity and only step k of each modality is pulled
    towards step k of the other; the loss is 0 when they coincide, 2 when opposite.
    """
    _check(ecg_local, cmr_local, valid, "cosine_alignment_loss")
    num_steps = ecg_local.shape[1]
    target = alignment_matrix(num_steps, sigma, circular, device=ecg_local.device)  # (T, T)
    cosine = torch.einsum("bkd,btd->bkt", _unit(ecg_local, valid), _unit(cmr_local, valid))
    per_subject = 1.0 - (target * cosine).sum(dim=2).mean(dim=1)  # (B,)
    return _subject_mean(per_subject, valid)
