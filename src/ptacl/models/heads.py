"""Heads on top of an encoder, one definition each for training, evaluation, export and inference.

- Projection heads of the contrastive stages (PTACL stage 2, SimCLR): `projection_head`.
- The fine-tune stage's attention-pooling head (the paper's FN+AP): `AttentionPoolHead`, and
  `AttentionPoolPhenotypes`, the same head with the train split's target scaling (a bundle's
  fine-tuned head).
- The linear probe of a bundle: `LinearProbe` (its OLS fit lives in `ptacl.eval.probe`).

    head = projection_head(width, HeadConfig(hidden=512, dim=128, norm="batch"))
    z = head(pooled)                        # (B, D) -> (B, d); also (B, T, D) -> (B, T, d)
    head = projection_head_from_state(state, width)   # the same head from its tensors

Why a batch norm by default (the paper leaves the head open): the mean-pooled tokens of a
pretrained MAE are dominated by one direction shared by all subjects (the positional embeddings
and the average signal: mean pairwise cosine 0.99 for our ECG MAE, 0.96 for the CMR MAE, measured
in RESULTS.md). Through Linear-ReLU-Linear the projected embeddings stay nearly parallel, so at
τ = 0.1 every logit is about 1/τ and InfoNCE starts on a flat plateau at log B. A batch norm after
the first linear layer removes the shared direction and puts every hidden unit on the scale of the
differences between subjects — the contrast the loss needs (SimCLR v2 and MoCo v3 use the same
head). `norm="none"` keeps the plain Linear-ReLU-Linear head for comparison.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn


@dataclass(frozen=True)
class HeadConfig:
    """Projection head per modality: Linear, [BatchNorm], ReLU, Linear."""

    hidden: int = 512
    dim: int = 128
    norm: Literal["batch", "none"] = "batch"


class ProjectionHead(nn.Sequential):
    """(…, D) -> (…, d) on the last dim; leading dims are flattened around the batch norm, so
    local steps (B, T, D) go through the same head as pooled embeddings (B, D)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(*lead, -1)


def projection_head(width: int, config: HeadConfig = HeadConfig()) -> ProjectionHead:
    """The head for encoder width `width`. State keys: `0.*` first linear, with norm="batch"
    `1.*` the batch norm and `3.*` the last linear, else `2.*` the last linear."""
    if config.norm not in ("batch", "none"):
        raise ValueError(f"head.norm must be 'batch' or 'none', got {config.norm!r}")
    layers: list[nn.Module] = [nn.Linear(width, config.hidden)]
    if config.norm == "batch":
        layers.append(nn.BatchNorm1d(config.hidden))
    layers += [nn.ReLU(), nn.Linear(config.hidden, config.dim)]
    return ProjectionHead(*layers)


def head_config_from_state(state: Mapping[str, torch.Tensor]) -> HeadConfig:
    """The HeadConfig of a head's state dict (keys relative to the head)."""
    norm = "batch" if "1.running_mean" in state else "none"
    last = "3.weight" if norm == "batch" else "2.weight"
    if "0.weight" not in state or last not in state:
        raise ValueError(f"not a projection head's tensors: {sorted(state)}")
    return HeadConfig(
        hidden=int(state["0.weight"].shape[0]), dim=int(state[last].shape[0]), norm=norm
    )


def projection_head_from_state(state: Mapping[str, torch.Tensor], width: int) -> ProjectionHead:
    """The head whose tensors are `state` (keys relative to the head), in eval mode."""
    head = projection_head(width, head_config_from_state(state))
    head.load_state_dict(dict(state))
    return head.eval()


class AttentionPoolHead(nn.Module):
    """tokens (B, L, D) -> (B, P): one learned query attends over all L tokens (multi-head),
    then LayerNorm and a linear map to the P outputs."""

    def __init__(self, width: int, outputs: int, *, heads: int = 8, dropout: float = 0.0) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.zeros(1, 1, width))
        nn.init.trunc_normal_(self.query, std=0.02)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm = nn.LayerNorm(width)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(width, outputs)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(self.pooled(tokens)))  # (B, P)

    def pooled(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, D): the normalised pooled vector the output layer maps (what a
        linear probe of this head fits: `ptacl.training.finetune` starts `out` from one)."""
        query = self.query.expand(tokens.shape[0], -1, -1)  # (B, 1, D)
        pooled, _ = self.attention(query, tokens, tokens, need_weights=False)  # (B, 1, D)
        return self.norm(pooled[:, 0])

    def attention_weights(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, L): the query's attention over tokens, averaged over heads."""
        query = self.query.expand(tokens.shape[0], -1, -1)
        _, weights = self.attention(query, tokens, tokens, need_weights=True)  # (B, 1, L)
        return weights[:, 0]


class AttentionPoolPhenotypes(nn.Module):
    """The fine-tune stage's attention-pooling head with its train-split target scaling:
    tokens (B, L, D) -> (B, P) in the phenotypes' units, as
    `ptacl.training.finetune.FinetuneModule.predict_phenotypes` computes them. State keys:
    `pool.*` (the `AttentionPoolHead`), `target_mean`, `target_sd`."""

    def __init__(self, width: int, outputs: int, *, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.pool = AttentionPoolHead(width, outputs, heads=heads, dropout=dropout)
        self.register_buffer("target_mean", torch.zeros(outputs))
        self.register_buffer("target_sd", torch.ones(outputs))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.pool(tokens) * self.target_sd + self.target_mean  # (B, P)


class LinearProbe(nn.Module):
    """phenotypes = (embedding - mean) @ weight.T + bias, computed in float64.

    Centring on the training mean keeps `bias` at the phenotypes' mean instead of the difference
    of two large numbers, and float64 keeps OLS coefficients of a nearly collinear embedding
    from cancelling catastrophically (float32 lost whole mL in such a case).
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("mean", torch.zeros(in_features, dtype=torch.float64))
        self.register_buffer("weight", torch.zeros(out_features, in_features, dtype=torch.float64))
        self.register_buffer("bias", torch.zeros(out_features, dtype=torch.float64))

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        """embedding (B, D) -> (B, P) float64."""
        return (embedding.double() - self.mean) @ self.weight.T + self.bias
