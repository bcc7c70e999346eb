"""The T × T alignment matrix P that says which time steps of ECG and CMR correspond."""

from __future__ import annotations

import torch


def alignment_matrix(
    num_steps: int,
    sigma: float,
    circular: bool = False,
    *,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """P (T, T) float32, each row summing to 1.

    sigma = 0: the identity (hard alignment, step k matches step k only).
    sigma > 0: P_{k,t} ∝ exp(−½ (dist_{k,t} / σ)²) with dist_{k,t} = |k − t| / T, or with
    circular=True the distance around the cardiac cycle, min(|k − t|, T − |k − t|) / T.

    The kernel is symmetric; normalising rows keeps it exactly symmetric only when circular (the
    edge rows of the linear version lose neighbours on one side and so are renormalised more).
    """
    if num_steps < 1:
        raise ValueError(f"alignment_matrix: num_steps must be >= 1, got {num_steps}")
    if sigma < 0:
        raise ValueError(f"alignment_matrix: sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return torch.eye(num_steps, device=device)
    steps = torch.arange(num_steps, device=device, dtype=torch.float32)
    gap = (steps[:, None] - steps[None, :]).abs()  # (T, T)
    if circular:
        gap = torch.minimum(gap, num_steps - gap)
    # exp(-x²/2) of the distance; the diagonal is exp(0) = 1, so rows never sum to 0.
    kernel = torch.exp(-0.5 * (gap / num_steps / sigma) ** 2)
    return kernel / kernel.sum(dim=1, keepdim=True)
