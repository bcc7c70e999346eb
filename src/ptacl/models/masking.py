"""Random token masking for masked autoencoders, as pure functions of tensors.

Convention (as in He et al. 2022): `mask` is (B, L) with 1 = removed, 0 = kept, in the original
token order; `ids_restore` (B, L) is the permutation that puts the shuffled sequence
[kept tokens, removed tokens] back into the original order.
"""

from __future__ import annotations

import torch


def num_masked(num_tokens: int, mask_ratio: float) -> int:
    """Tokens removed per sample: round(ratio × L), keeping at least one token visible."""
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must lie in [0, 1), got {mask_ratio}")
    return min(round(mask_ratio * num_tokens), num_tokens - 1)


def random_masking(
    tokens: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep a random subset of each sample's tokens; every sample loses exactly the same number.

    tokens: (B, L, D). Returns
      visible (B, L_vis, D) with L_vis = L - num_masked(L, mask_ratio), kept tokens in shuffled
        order (the order carries no information the positional embedding has not already added);
      mask (B, L) float, 1 = removed, 0 = kept, in the original order;
      ids_restore (B, L) int64, `shuffled.gather(1, ids_restore)` is the original order.
    `generator` (on the tokens' device) makes the draw reproducible, e.g. for validation.
    """
    batch, length, width = tokens.shape
    keep = length - num_masked(length, mask_ratio)
    noise = torch.rand(batch, length, device=tokens.device, generator=generator)  # (B, L)
    ids_shuffle = torch.argsort(noise, dim=1)  # ascending: the smallest noise is kept
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :keep]  # (B, L_vis)
    visible = tokens.gather(1, ids_keep.unsqueeze(-1).expand(-1, -1, width))  # (B, L_vis, D)
    mask = torch.ones(batch, length, device=tokens.device, dtype=tokens.dtype)
    mask[:, :keep] = 0
    mask = mask.gather(1, ids_restore)  # back to the original order
    return visible, mask, ids_restore


def restore_order(shuffled: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
    """Undo the shuffle of `random_masking`: shuffled (B, L, D) -> original order (B, L, D)."""
    index = ids_restore.unsqueeze(-1).expand(-1, -1, shuffled.shape[-1])
    return shuffled.gather(1, index)
