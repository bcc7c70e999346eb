"""Vision transformers for the two modalities: a 12-lead ECG ViT and a cine-CMR ViT.

Both encoders share one interface, which every stage (MAE, contrastive, probe, fine-tune) uses
without reaching inside:

    out = encoder.forward_tokens(x, mask_ratio=0.0)   # tokens (B, L_vis, D), mask, ids_restore
    tokens = encoder.forward_features(x)              # (B, L, D), all tokens, after the norm
    pooled = encoder.pool(tokens)                     # (B, D), mean over tokens
    encoder.grid                                      # token layout, index = row * grid[1] + col
    encoder.time_tokens(tokens)                       # (B, T, D), one per time step
    encoder.blocks                                    # nn.ModuleList, freeze the first k

Registered as "ecg_vit" and "cmr_vit" (`ptacl.models.registry`, which says what any encoder
must offer); a config section without `name` means these.

ECG: (B, 12, 2500) -> 12 leads × 50 time patches of 50 samples, token index = lead * 50 + t.
CMR: (B, 1, 26, 84, 84) -> 13 temporal × 49 spatial patches of 2×12×12, index = t * 49 + s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ptacl.models.masking import random_masking
from ptacl.models.registry import EncoderConfig, register_encoder

AttentionKind = Literal["sdpa", "plain"]


@dataclass(frozen=True)
class EcgEncoderConfig(EncoderConfig):
    name: str = "ecg_vit"
    leads: int = 12
    samples: int = 2500  # input crop length; a multiple of `patch`
    patch: int = 50  # samples per token (kernel = stride of the per-lead Conv1d)
    width: int = 512
    depth: int = 6
    heads: int = 8
    mlp_ratio: float = 4.0
    attention: AttentionKind = "sdpa"


@dataclass(frozen=True)
class CmrEncoderConfig(EncoderConfig):
    name: str = "cmr_vit"
    frames: int = 26
    size: int = 84
    patch: tuple[int, int, int] = (2, 12, 12)  # (frames, height, width) per token
    width: int = 512
    depth: int = 4
    heads: int = 8
    mlp_ratio: float = 4.0
    attention: AttentionKind = "sdpa"


class Attention(nn.Module):
    """Multi-head self-attention; `kind="plain"` is the softmax(QKᵀ/√d)V reference."""

    def __init__(self, width: int, heads: int, *, kind: AttentionKind = "sdpa") -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.kind = kind
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b l (three h d) -> three b h l d", three=3, h=self.heads)
        if self.kind == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v)  # (B, h, L, d)
        else:
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, h, L, L)
            out = scores.softmax(dim=-1) @ v  # (B, h, L, d)
        return self.proj(rearrange(out, "b h l d -> b l (h d)"))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(
        self, width: int, heads: int, *, mlp_ratio: float = 4.0, attention: AttentionKind = "sdpa"
    ) -> None:
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.norm1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads, kind=attention)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def sincos_1d(positions: torch.Tensor, width: int) -> torch.Tensor:
    """Transformer sine-cosine codes of integer positions: (N,) -> (N, width), width even."""
    if width % 2:
        raise ValueError(f"a sine-cosine code needs an even width, got {width}")
    freqs = 1.0 / 10000 ** (torch.arange(width // 2, dtype=torch.float64) / (width // 2))
    angles = positions.to(torch.float64)[:, None] * freqs[None]  # (N, width/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def init_weights(module: nn.Module) -> None:
    """MAE's initialisation: Xavier-uniform linear layers, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def patch_linear(patches: torch.Tensor, conv: nn.Conv1d | nn.Conv3d) -> torch.Tensor:
    """`conv` (kernel = stride = one patch, one input channel) applied to (B, L, P) patches in
    its own kernel order: (B, L, D) tokens. The same numbers as the convolution, computed as the
    matmul it is, so it runs on the matmul kernels, far faster than oneDNN's bf16 Conv3d on a
    CPU (measured: BENCHMARKS.md, "Training throughput", patch embeddings as matmuls)."""
    return F.linear(patches, conv.weight.flatten(1), conv.bias)


class TokenEncoder(nn.Module):
    """Shared body of both encoders: patch embedding + position, blocks, final norm.

    Subclasses define `embed` (input -> (B, L, D) tokens with positions added) and the patch
    geometry (`patchify`, `unpatchify`, `patch_dim`) that an MAE needs for its targets.
    """

    grid: tuple[int, int]
    width: int

    def __init__(self, *, width: int, depth: int, heads: int, mlp_ratio: float, attention) -> None:
        super().__init__()
        self.width = width
        self.blocks = nn.ModuleList(
            Block(width, heads, mlp_ratio=mlp_ratio, attention=attention) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(width)

    @property
    def num_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def patch_dim(self) -> int:
        raise NotImplementedError

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sincos_positions(self, width: int) -> torch.Tensor:
        """Fixed sine-cosine codes (L, width) of the token grid: the start of the learnable
        positional embeddings, here and in an MAE decoder."""
        raise NotImplementedError

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def unpatchify(self, patches: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_tokens(
        self, x: torch.Tensor, mask_ratio: float = 0.0, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Encode the visible tokens of `x`.

        Returns tokens (B, L_vis, D) after the final norm; mask (B, L), 1 = removed, in token
        order; ids_restore (B, L). Without masking L_vis = L, mask is all 0 and ids_restore the
        identity, so callers need no special case.
        """
        tokens = self.embed(x)  # (B, L, D)
        if mask_ratio > 0:
            tokens, mask, ids_restore = random_masking(tokens, mask_ratio, generator)
        else:
            batch, length, _ = tokens.shape
            mask = tokens.new_zeros(batch, length)
            ids_restore = torch.arange(length, device=tokens.device).expand(batch, length)
        for block in self.blocks:
            tokens = block(tokens)
        return {"tokens": self.norm(tokens), "mask": mask, "ids_restore": ids_restore}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """All tokens (B, L, D), in token order."""
        return self.forward_tokens(x)["tokens"]

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """Mean over tokens: (B, L, D) -> (B, D)."""
        return tokens.mean(dim=1)

    def time_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """One embedding per time step: (B, L, D) tokens -> (B, grid[0 or 1], D)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.forward_features(x))


@register_encoder("ecg_vit", modality="ecg", config=EcgEncoderConfig)
class EcgEncoder(TokenEncoder):
    """ECG ViT: one Conv1d(kernel = stride = patch) shared by all leads, lead + time positions.

    Sharing the patch embedding across leads makes a lead's token depend only on its own
    signal; which lead it came from is told by the lead embedding alone.
    """

    def __init__(self, config: EcgEncoderConfig = EcgEncoderConfig()) -> None:
        if config.samples % config.patch:
            raise ValueError(f"samples {config.samples} is not a multiple of patch {config.patch}")
        super().__init__(
            width=config.width,
            depth=config.depth,
            heads=config.heads,
            mlp_ratio=config.mlp_ratio,
            attention=config.attention,
        )
        self.config = config
        self.grid = (config.leads, config.samples // config.patch)
        self.patch_embed = nn.Conv1d(1, config.width, config.patch, stride=config.patch)
        # Learnable, but started from sine-cosine codes (lead in the first half of the width,
        # time in the second), as MAE's fixed ones: from a random start an MAE predicts only
        # the mean for far longer while attention learns which tokens are neighbours.
        codes = self.sincos_positions(config.width).view(*self.grid, config.width)
        half = config.width // 2
        self.lead_embed = nn.Parameter(torch.zeros(config.leads, config.width))
        self.time_embed = nn.Parameter(torch.zeros(self.grid[1], config.width))
        with torch.no_grad():
            self.lead_embed[:, :half] = codes[:, 0, :half]
            self.time_embed[:, half:] = codes[0, :, half:]
        self.apply(init_weights)
        nn.init.xavier_uniform_(self.patch_embed.weight.view(config.width, -1))
        nn.init.zeros_(self.patch_embed.bias)

    @property
    def patch_dim(self) -> int:
        return self.config.patch

    @property
    def samples(self) -> int:
        """Input length: x is (B, leads, samples)."""
        return self.config.samples

    @property
    def samples_per_step(self) -> int:
        """ECG samples per time token (the patch)."""
        return self.config.patch

    def time_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, C·T, D) tokens, index lead·T + t -> (B, T, D): the mean over leads per time
        patch (the local loss is linear in them, so the lead mean can be taken first)."""
        leads, steps = self.grid
        if tokens.ndim != 3 or tokens.shape[1] != leads * steps:
            raise ValueError(
                f"ECG tokens {tuple(tokens.shape)} do not fit the grid {self.grid} "
                f"(expected (B, {leads * steps}, D))"
            )
        return rearrange(tokens, "b (c t) d -> b c t d", c=leads).mean(dim=1)

    def sincos_positions(self, width: int) -> torch.Tensor:
        """(L, width) codes in token order: lead in the first half, time in the second."""
        leads, times = torch.meshgrid(
            torch.arange(self.grid[0]), torch.arange(self.grid[1]), indexing="ij"
        )
        half = width // 2
        return torch.cat(
            [sincos_1d(leads.flatten(), half), sincos_1d(times.flatten(), width - half)], dim=1
        )

    def _check(self, x: torch.Tensor) -> None:
        expected = (self.config.leads, self.config.samples)
        if x.ndim != 3 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"ECG input must be (B, {expected[0]}, {expected[1]}), got {tuple(x.shape)}"
            )

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        tokens = patch_linear(self.patchify(x), self.patch_embed)  # (B, L, D), L = C*T
        position = self.lead_embed[:, None, :] + self.time_embed[None, :, :]  # (C, T, D)
        return tokens + position.flatten(0, 1)  # (B, L, D)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S) -> (B, L, patch) in token order."""
        self._check(x)
        return rearrange(x, "b c (t p) -> b (c t) p", p=self.config.patch)

    def unpatchify(self, patches: torch.Tensor) -> torch.Tensor:
        """(B, L, patch) -> (B, C, S)."""
        return rearrange(patches, "b (c t) p -> b c (t p)", c=self.grid[0])


@register_encoder("cmr_vit", modality="cmr", config=CmrEncoderConfig)
class CmrEncoder(TokenEncoder):
    """Cine-CMR ViT: Conv3d(kernel = stride = (2, 12, 12)) tubelets, learnable positions."""

    def __init__(self, config: CmrEncoderConfig = CmrEncoderConfig()) -> None:
        pf, ph, pw = config.patch
        if config.frames % pf or config.size % ph or config.size % pw:
            raise ValueError(
                f"CMR input {config.frames}×{config.size}×{config.size} is not a multiple of "
                f"patch {config.patch}"
            )
        super().__init__(
            width=config.width,
            depth=config.depth,
            heads=config.heads,
            mlp_ratio=config.mlp_ratio,
            attention=config.attention,
        )
        self.config = config
        self.grid = (config.frames // pf, (config.size // ph) * (config.size // pw))
        self.patch_embed = nn.Conv3d(1, config.width, config.patch, stride=config.patch)
        # learnable, started from sine-cosine codes (see EcgEncoder)
        self.pos_embed = nn.Parameter(self.sincos_positions(config.width))
        self.apply(init_weights)
        nn.init.xavier_uniform_(self.patch_embed.weight.view(config.width, -1))
        nn.init.zeros_(self.patch_embed.bias)

    @property
    def patch_dim(self) -> int:
        return math.prod(self.config.patch)

    @property
    def frames(self) -> int:
        """Input frames: x is (B, 1, frames, size, size)."""
        return self.config.frames

    def time_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T·S, D) tokens, index t·S + s -> (B, T, D): the mean over the spatial tokens of
        each temporal token (which covers `patch[0]` frames)."""
        temporal, spatial = self.grid
        if tokens.ndim != 3 or tokens.shape[1] != temporal * spatial:
            raise ValueError(
                f"CMR tokens {tuple(tokens.shape)} do not fit the grid {self.grid} "
                f"(expected (B, {temporal * spatial}, D))"
            )
        return rearrange(tokens, "b (t s) d -> b t s d", t=temporal).mean(dim=2)

    def sincos_positions(self, width: int) -> torch.Tensor:
        """(L, width) codes in token order: time in half the width, row and column in a
        quarter each."""
        side = self.config.size // self.config.patch[1]
        t, h, w = torch.meshgrid(
            torch.arange(self.grid[0]), torch.arange(side), torch.arange(side), indexing="ij"
        )
        half, quarter = width // 2, width // 4
        return torch.cat(
            [
                sincos_1d(t.flatten(), half),
                sincos_1d(h.flatten(), quarter),
                sincos_1d(w.flatten(), width - half - quarter),
            ],
            dim=1,
        )

    def _check(self, x: torch.Tensor) -> None:
        c = self.config
        expected = (1, c.frames, c.size, c.size)
        if x.ndim != 5 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"CMR input must be (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}"
            )

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return patch_linear(self.patchify(x), self.patch_embed) + self.pos_embed  # (B, L, D)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, F, H, W) -> (B, L, pf*ph*pw) in token order."""
        self._check(x)
        pf, ph, pw = self.config.patch
        return rearrange(x, "b 1 (f pf) (h ph) (w pw) -> b (f h w) (pf ph pw)", pf=pf, ph=ph, pw=pw)

    def unpatchify(self, patches: torch.Tensor) -> torch.Tensor:
        """(B, L, pf*ph*pw) -> (B, 1, F, H, W)."""
        pf, ph, pw = self.config.patch
        side = self.config.size // ph
        return rearrange(
            patches,
            "b (f h w) (pf ph pw) -> b 1 (f pf) (h ph) (w pw)",
            h=side,
            w=side,
            pf=pf,
            ph=ph,
            pw=pw,
        )
