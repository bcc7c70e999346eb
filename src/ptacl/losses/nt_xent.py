"""NT-Xent: SimCLR's normalised-temperature cross-entropy over two augmented views."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ptacl.losses.distributed import unit_pair


def nt_xent_loss(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float, *, gather: bool = True
) -> torch.Tensor:
    """SimCLR's loss (Chen et al. 2020): each of the 2B views against the 2B − 1 others.

    z1, z2: (B, d), row i of each a view of the same sample (the positive pair). With the 2B
    embeddings u_1..u_2B (z1 then z2) and p(a) the index of a's other view,

        L = 1/(2B) Σ_a −log( exp(cos(u_a, u_p(a))/τ) / Σ_{k ≠ a} exp(cos(u_a, u_k)/τ) )

    i.e. a 2B-way cross-entropy with the other view as the target and the anchor itself left
    out of the denominator. Returns a scalar.

    gather: when a process group with several processes is running, this process's 2B anchors
    are contrasted against the views of all processes (gathered with gradient, indices offset by
    rank), which with DDP's gradient averaging equals one process on the concatenated batch.
    Pass False for a purely local value (validation batches may differ in size).

    Zero vectors give cosine 0 (no NaN). Computed in at least float32 with autocast off, so a
    bf16 run does not round the logits.
    """
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(
            f"nt_xent_loss: z1 {tuple(z1.shape)} and z2 {tuple(z2.shape)} must both be (B, d)"
        )
    if temperature <= 0:
        raise ValueError(f"nt_xent_loss: temperature must be > 0, got {temperature}")
    with torch.autocast(device_type=z1.device.type, enabled=False):
        z1, z2, all_z1, all_z2, offset = unit_pair(z1, z2, gather=gather)
        batch, total = z1.shape[0], all_z1.shape[0]  # B here, world·B over all processes
        anchors = torch.cat([z1, z2])  # (2B, d)
        candidates = torch.cat([all_z1, all_z2])  # (2·world·B, d): every view-1, then view-2
        logits = anchors @ candidates.T / temperature  # (2B, 2·world·B)
        rows = torch.arange(batch, device=z1.device) + offset  # this process's samples
        own = torch.cat([rows, rows + total])  # where each anchor sits among the candidates
        other = torch.cat([rows + total, rows])  # its other view
        is_self = torch.zeros_like(logits, dtype=torch.bool)
        is_self[torch.arange(2 * batch, device=z1.device), own] = True
        return F.cross_entropy(logits.masked_fill(is_self, float("-inf")), other)
