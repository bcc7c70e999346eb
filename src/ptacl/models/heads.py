"""Projection heads of the contrastive stages (PTACL stage 2, SimCLR): one builder for training,
evaluation and export, so the three never rebuild a head three ways.

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
