"""Optimisation shared by every stage: AdamW with a per-step warm-up + cosine schedule, the peak
learning rate scaled with the global batch, decay on weights only, an optional higher
learning rate for freshly initialised heads, and optional layer-wise learning-rate decay over an
encoder's transformer blocks (fine-tuning: `layer_decay_scales`).

Inside a stage module, `configure_optimizers` returns
`stage_optimizers(self, cfg.optim, cfg.data.batch_size)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch import nn


@dataclass(frozen=True)
class OptimConfig:
    base_lr: float = 1.5e-4  # per 256 samples of global batch (He et al. 2022)
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 1000
    min_lr_ratio: float = 0.0  # the cosine ends at base lr × this
    # The freshly initialised heads (projection heads, the fine-tune head: each stage module's
    # `heads()`) train at base lr × this. Decision: 1 in the paper presets; a fresh head beside a pretrained encoder
    # may need more (configs/demo, configs/medium say why where they raise it).
    head_lr_scale: float = 1.0
    # Layer-wise lr decay (BEiT, MAE fine-tuning): an encoder's block i of depth trains at
    # lr × layer_decay^(depth − i), its embeddings at layer_decay^(depth + 1), its final norm and
    # the heads at lr (`layer_decay_scales`). 1 = one lr for all (every stage's default).
    layer_decay: float = 1.0


def scaled_lr(base_lr: float, global_batch: int) -> float:
    """The linear scaling rule: lr = base_lr × global batch / 256."""
    return base_lr * global_batch / 256


def warmup_cosine(
    step: int, *, warmup_steps: int, total_steps: int, min_ratio: float = 0.0
) -> float:
    """Learning-rate multiplier at optimizer step `step`: linear from 0 to 1 over the warm-up,
    then half a cosine down to `min_ratio` at `total_steps` (held there afterwards)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _decays(module: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Weights of linear and convolution layers decay; biases, norms and embeddings do not."""
    decay, seen = [], set()
    for layer in module.modules():
        if isinstance(layer, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d):
            if layer.weight.requires_grad:
                decay.append(layer.weight)
                seen.add(id(layer.weight))
    rest = [p for p in module.parameters() if p.requires_grad and id(p) not in seen]
    return decay, rest


def _head_parameters(module: nn.Module) -> set[int]:
    """The parameters of the heads a stage module declares (`heads()`, the weights contract of
    `ptacl.training.parts`); a plain module has none."""
    heads = module.heads() if hasattr(module, "heads") else {}
    return {id(p) for head in heads.values() for p in head.parameters()}


def layer_decay_scales(module: nn.Module, decay: float) -> dict[int, float]:
    """id(parameter) -> lr multiplier of layer-wise decay, as MAE's `param_groups_lrd`: in each
    encoder of `module.encoders()` (a plain module: the module itself) that has `blocks`, with
    depth = len(blocks), layer 0 is everything outside the blocks and the final `norm` (patch and
    position embeddings), layer i + 1 the block i, layer depth + 1 the final norm; a layer's
    multiplier is decay^(depth + 1 − layer). Parameters outside such encoders (the heads) are
    not in the map (multiplier 1)."""
    encoders = module.encoders().values() if hasattr(module, "encoders") else [module]
    scales: dict[int, float] = {}
    for encoder in encoders:
        blocks = getattr(encoder, "blocks", None)
        if not isinstance(blocks, nn.ModuleList):
            continue
        depth = len(blocks)
        for p in encoder.parameters():
            scales[id(p)] = decay ** (depth + 1)  # layer 0 unless a block or the norm says
        for i, block in enumerate(blocks):
            for p in block.parameters():
                scales[id(p)] = decay ** (depth - i)
        norm = getattr(encoder, "norm", None)
        for p in norm.parameters() if isinstance(norm, nn.Module) else ():
            scales[id(p)] = 1.0
    return scales


def build_optimizer_and_schedule(
    model: nn.Module, config: OptimConfig, *, total_steps: int, global_batch: int
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the trainable parameters, with a per-step warm-up + cosine schedule and the
    peak learning rate scaled with the global batch (`scaled_lr`)."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps} (set trainer.max_steps)")
    decay, no_decay = _decays(model)
    lr = scaled_lr(config.base_lr, global_batch)
    heads = _head_parameters(model) if config.head_lr_scale != 1.0 else set()
    layers = layer_decay_scales(model, config.layer_decay) if config.layer_decay != 1.0 else {}
    groups: list[dict[str, Any]] = []
    for params, weight_decay in ((decay, config.weight_decay), (no_decay, 0.0)):
        body = [p for p in params if id(p) not in heads]
        if layers:  # one group per layer multiplier, lowest multiplier first
            for scale in sorted({layers.get(id(p), 1.0) for p in body}):
                same = [p for p in body if layers.get(id(p), 1.0) == scale]
                groups.append({"params": same, "weight_decay": weight_decay, "lr": lr * scale})
        else:  # the groups of runs checkpointed before layer decay existed, for --resume
            groups.append({"params": body, "weight_decay": weight_decay})
        if heads:
            head = [p for p in params if id(p) in heads]
            groups.append(
                {"params": head, "weight_decay": weight_decay, "lr": lr * config.head_lr_scale}
            )
    # fused: one pass over each parameter instead of ~10 element-wise kernels (several launches
    # per tensor on CUDA; on a CPU the default for-loop AdamW was a third of a paper-size bf16
    # ECG MAE step: BENCHMARKS.md, "Training throughput", fused AdamW). CPU and CUDA have it.
    devices = {p.device.type for group in groups for p in group["params"]}
    fused = True if devices and devices <= {"cpu", "cuda"} else None
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=tuple(config.betas), fused=fused)
    # A fused AdamW announces that it unscales fp16 gradients itself, and for such optimizers
    # Lightning's mixed precision refuses gradient clipping (even in bf16, where nothing is
    # scaled). Saying no makes a GradScaler (16-mixed) unscale first, as for any optimizer; the
    # fused step then sees plain gradients. Clipping then works in every precision.
    optimizer._step_supports_amp_scaling = False

    def multiplier(step: int) -> float:  # a plain function: LambdaLR then saves no closure
        return warmup_cosine(
            step,
            warmup_steps=config.warmup_steps,
            total_steps=total_steps,
            min_ratio=config.min_lr_ratio,
        )

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)


def lightning_optimizers(optimizer: torch.optim.Optimizer, scheduler: Any) -> dict[str, Any]:
    """What `configure_optimizers` returns for a schedule stepped after every optimizer step."""
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def global_batch_size(trainer: L.Trainer, batch_size: int) -> int:
    """Samples per optimizer step over all processes."""
    return batch_size * trainer.world_size * trainer.accumulate_grad_batches


def stage_optimizers(
    module: L.LightningModule, config: OptimConfig, batch_size: int
) -> dict[str, Any]:
    """A stage module's `configure_optimizers`: AdamW with warm-up + cosine over the trainer's
    max_steps, the peak learning rate scaled with the global batch (`batch_size` per device)."""
    optimizer, scheduler = build_optimizer_and_schedule(
        module,
        config,
        total_steps=module.trainer.max_steps,
        global_batch=global_batch_size(module.trainer, batch_size),
    )
    return lightning_optimizers(optimizer, scheduler)
