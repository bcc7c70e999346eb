"""Masked autoencoder (He et al. 2022) wrapped around any `TokenEncoder`.

The encoder sees only the visible tokens; a light decoder gets them back in token order with a
shared learnable mask token in every removed place, and predicts each token's raw patch. The
loss is the MSE on removed tokens only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ptacl.models.masking import restore_order
from ptacl.models.vit import Block, TokenEncoder, init_weights


@dataclass(frozen=True)
class MaeConfig:
    mask_ratio: float = 0.75
    decoder_width: int = 256
    decoder_depth: int = 1
    decoder_heads: int = 4
    mlp_ratio: float = 4.0
    norm_target: bool = False  # per-patch normalised targets (MAE's norm_pix_loss)


def normalise_patches(patches: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Zero mean, unit variance within each patch: (B, L, P) -> (B, L, P)."""
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (var + eps).sqrt()


def removed_patch_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over removed tokens only.

    pred, target: (B, L, P); mask: (B, L), 1 = removed (scored), 0 = visible (ignored).
    Returns a scalar: Σ_{b,l} mask · mean_p (pred − target)² / Σ mask.
    """
    per_token = (pred - target).pow(2).mean(dim=-1)  # (B, L)
    return (per_token * mask).sum() / mask.sum().clamp_min(1)


def mean_prediction_mse(target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The loss of predicting, for every removed token, the mean removed patch of the batch.

    A model that learned nothing about its input scores about this; the reference line for
    the reconstruction loss. target: (B, L, P); mask: (B, L). Returns a scalar.
    """
    weights = mask.unsqueeze(-1)  # (B, L, 1)
    mean_patch = (target * weights).sum(dim=(0, 1)) / weights.sum().clamp_min(1)  # (P,)
    return removed_patch_mse(mean_patch.expand_as(target), target, mask)


class MaskedAutoencoder(nn.Module):
    """MAE around `encoder`: forward_encoder -> forward_decoder -> forward_loss."""

    def __init__(self, encoder: TokenEncoder, config: MaeConfig = MaeConfig()) -> None:
        super().__init__()
        if not isinstance(encoder, TokenEncoder):
            # masking, patch targets and decoder positions need a ViT's token geometry; a
            # registered encoder without it can still be trained by align, simclr, finetune
            name = getattr(getattr(encoder, "config", None), "name", type(encoder).__name__)
            raise TypeError(f"a masked autoencoder needs a ViT TokenEncoder; {name!r} is not one")
        self.encoder = encoder
        self.config = config
        width = config.decoder_width
        self.decoder_embed = nn.Linear(encoder.width, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.decoder_pos = nn.Parameter(encoder.sincos_positions(width)[None])  # (1, L, Dd)
        self.decoder_blocks = nn.ModuleList(
            Block(width, config.decoder_heads, mlp_ratio=config.mlp_ratio)
            for _ in range(config.decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(width)
        self.decoder_pred = nn.Linear(width, encoder.patch_dim)
        for module in (
            self.decoder_embed,
            self.decoder_blocks,
            self.decoder_norm,
            self.decoder_pred,
        ):
            module.apply(init_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward_encoder(
        self,
        x: torch.Tensor,
        mask_ratio: float | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """tokens (B, L_vis, D), mask (B, L), ids_restore (B, L); see `TokenEncoder.forward_tokens`."""
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        return self.encoder.forward_tokens(x, ratio, generator)

    def forward_decoder(self, tokens: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Visible tokens (B, L_vis, D) -> predicted patches (B, L, P) in token order."""
        x = self.decoder_embed(tokens)  # (B, L_vis, Dd)
        batch, length = ids_restore.shape
        fill = self.mask_token.expand(batch, length - x.shape[1], -1)  # (B, L - L_vis, Dd)
        x = restore_order(torch.cat([x, fill], dim=1), ids_restore)  # (B, L, Dd)
        x = x + self.decoder_pos
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))  # (B, L, P)

    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """What the decoder predicts: the input's patches (B, L, P), normalised if configured."""
        patches = self.encoder.patchify(x)
        return normalise_patches(patches) if self.config.norm_target else patches

    def forward_loss(self, x: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """MSE on removed tokens. x: model input; pred (B, L, P); mask (B, L)."""
        return removed_patch_mse(pred, self.targets(x), mask)

    def forward(
        self,
        x: torch.Tensor,
        mask_ratio: float | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """loss (scalar), pred (B, L, P), mask (B, L)."""
        encoded = self.forward_encoder(x, mask_ratio, generator)
        pred = self.forward_decoder(encoded["tokens"], encoded["ids_restore"])
        return {
            "loss": self.forward_loss(x, pred, encoded["mask"]),
            "pred": pred,
            "mask": encoded["mask"],
        }

    @torch.no_grad()
    def reconstruct(
        self, x: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Pictures of what the model sees and predicts, in the input's shape and units.

        Returns `visible` (removed patches set to NaN so plots leave them blank), `prediction`
        (every patch predicted; with normalised targets each patch is given the input
        patch's own mean and scale back) and `pasted` (visible patches from the input,
        removed ones from the prediction).
        """
        patches = self.encoder.patchify(x)  # (B, L, P)
        pred = pred.to(patches.dtype)
        if self.config.norm_target:
            mean = patches.mean(dim=-1, keepdim=True)
            std = (patches.var(dim=-1, keepdim=True) + 1e-6).sqrt()
            pred = pred * std + mean
        removed = mask.bool().unsqueeze(-1)  # (B, L, 1)
        return {
            "visible": self.encoder.unpatchify(patches.masked_fill(removed, float("nan"))),
            "prediction": self.encoder.unpatchify(pred),
            "pasted": self.encoder.unpatchify(torch.where(removed, pred, patches)),
        }
