"""Gradient accumulation whose contrastive negatives grow with it: a feature cache (GradCache,
Gao et al. 2021; open_clip's `--accum-freq`).

Plain accumulation of k micro-batches of B solves k separate InfoNCE problems of B negatives.
Here, for align and SimCLR with `trainer.accumulate_grad_batches: k`, one optimizer step

1. embeds all k micro-batches without a graph (pass 1) and keeps only the embeddings,
2. computes the loss over the k·B cached embeddings (of every process: the losses gather) and
   its gradient with respect to them,
3. re-embeds each micro-batch with a graph (pass 2) and backpropagates the cached gradient.

The parameter gradients are those of one batch of k·B (to rounding) at the activation memory of
B, for one extra forward without a graph (≈ +⅓ compute). Pass 2 replays each micro-batch with
the torch RNG state pass 1 saw, so dropout or masks drawn in the model agree. Batch norms see
each micro-batch on its own (as in plain accumulation): their running statistics are restored
after pass 1 so that they move k times per step, not 2k, and a head with a batch norm normalises
with the statistics of B (of world·B under sync BN), not of k·B; only without batch norms
(`head.norm: none`) is the gradient exactly that of one k·B batch.

    step = FeatureCacheStep(k, grad_clip)          # in the LightningModule's __init__
    losses = step(module, batch, embed, loss_of)    # in training_step; None until the k-th batch
    step.clip(module, optimizer)                    # in on_before_optimizer_step

`ContrastiveModule` wires the three into a LightningModule, for align and SimCLR alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import lightning as L
import torch
from torch import nn

from ptacl.training.optim import stage_optimizers

Embeddings = dict[str, torch.Tensor]


def _rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


@contextlib.contextmanager
def _replayed_rng(state: tuple[torch.Tensor, torch.Tensor | None], device: torch.device):
    """Run the block from the RNG `state`; afterwards the RNG continues as before the block."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], device)
        yield


@contextlib.contextmanager
def kept_running_stats(module: nn.Module) -> Iterator[None]:
    """Batch norms' running statistics as they were before the block (pass 1 must not move them:
    pass 2 does, once per micro-batch, as plain accumulation would)."""
    norms = [
        m for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]  # fmt: skip
    saved = [
        [b.clone() for b in (m.running_mean, m.running_var, m.num_batches_tracked)] for m in norms
    ]
    try:
        yield
    finally:
        for m, (mean, var, count) in zip(norms, saved):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(count)


def cached_backward(
    embed: Callable[[Any], Embeddings],
    loss_of: Callable[[Embeddings], dict[str, torch.Tensor]],
    chunks: Sequence[Any],
    backward: Callable[[torch.Tensor], None] = torch.Tensor.backward,
    *,
    model: nn.Module | None = None,
    sync: Callable[[bool], contextlib.AbstractContextManager] | None = None,
) -> dict[str, torch.Tensor]:
    """Accumulate into the parameters' .grad the gradient of `loss_of` over all `chunks` at once.

    embed(chunk) -> {name: (B_i, ...)} embeddings; floating ones carry gradient, the others
    (masks) are only concatenated. loss_of(concatenated) -> {"loss", ...}. `backward` runs a
    backward pass (Lightning's `manual_backward`, which scales under 16-bit precision); `model`:
    whose batch norms pass 1 must leave alone; sync(last) -> a context for each pass-2 backward
    that lets DDP all-reduce only in the last one. Returns the losses, detached.
    """
    if not chunks:
        raise ValueError("cached_backward: no micro-batch")
    states, cache = [], []
    with (
        torch.no_grad(),
        kept_running_stats(model) if model is not None else contextlib.nullcontext(),
    ):
        for chunk in chunks:
            device = _device_of(chunk)
            states.append(_rng_state(device))
            cache.append(embed(chunk))
    names = [k for k, v in cache[0].items() if v.is_floating_point()]
    joined = {k: torch.cat([c[k] for c in cache]) for k in cache[0]}  # (k·B, ...) each
    for name in names:
        joined[name].requires_grad_(True)
    losses = loss_of(joined)
    grads = torch.autograd.grad(losses["loss"], [joined[k] for k in names], allow_unused=True)
    sizes = [c[names[0]].shape[0] for c in cache]
    per_chunk = [
        torch.zeros_like(joined[k]).split(sizes) if g is None else g.split(sizes)
        for k, g in zip(names, grads)
    ]  # per name: k tensors (B_i, ...)
    for i, (chunk, state) in enumerate(zip(chunks, states)):
        with _replayed_rng(state, _device_of(chunk)):
            out = embed(chunk)
        # d(surrogate)/d(out[k]) is exactly the cached gradient: backprop it through the model
        surrogate = sum((out[k] * per_chunk[j][i]).sum() for j, k in enumerate(names))
        with sync(i == len(chunks) - 1) if sync is not None else contextlib.nullcontext():
            backward(surrogate)
    return {k: v.detach() for k, v in losses.items()}


def _device_of(chunk: Any) -> torch.device:
    tensors = chunk.values() if isinstance(chunk, dict) else chunk
    return next(t.device for t in tensors if isinstance(t, torch.Tensor))


class FeatureCacheStep:
    """The manual optimizer step of a contrastive LightningModule with `accumulate` micro-batches
    (`automatic_optimization = False`; the Trainer then runs without its own accumulation and
    clipping: `build_trainer(..., feature_cache=True)`).

    Keeps the micro-batches of one step (the same batches plain accumulation would use), and at
    the k-th runs `cached_backward`, steps the optimizer and the per-step schedule; the module's
    `on_before_optimizer_step` calls `clip` (gradient norm to `grad_clip`, 0: off).
    """

    def __init__(self, accumulate: int, grad_clip: float) -> None:
        if accumulate < 1:
            raise ValueError(f"trainer.accumulate_grad_batches must be >= 1, got {accumulate}")
        self.accumulate = accumulate
        self.grad_clip = grad_clip
        self._pending: list[Any] = []

    def __call__(
        self,
        module: L.LightningModule,
        batch: Any,
        embed: Callable[[Any], Embeddings],
        loss_of: Callable[[Embeddings], dict[str, torch.Tensor]],
    ) -> dict[str, torch.Tensor] | None:
        self._pending.append(batch)
        if len(self._pending) < self.accumulate:
            return None
        chunks, self._pending = self._pending, []
        optimizer = module.optimizers()
        strategy = module.trainer.strategy
        block = getattr(strategy, "block_backward_sync", None)

        def sync(last: bool) -> contextlib.AbstractContextManager:
            # DDP all-reduces once, in the last backward, the gradient summed over micro-batches
            return contextlib.nullcontext() if last or block is None else block()

        losses = cached_backward(
            embed, loss_of, chunks, module.manual_backward, model=module, sync=sync
        )
        optimizer.step()  # clipping: `clip`, from the module's on_before_optimizer_step
        optimizer.zero_grad(set_to_none=True)
        scheduler = module.lr_schedulers()
        if scheduler is not None:
            scheduler.step()
        return losses

    def clip(self, module: L.LightningModule, optimizer: torch.optim.Optimizer) -> None:
        """Clip the gradient norm to `grad_clip`; call from `on_before_optimizer_step`, which
        Lightning runs after a 16-mixed GradScaler has unscaled the gradients (clipping right
        after the backward would clip the scaled ones)."""
        if self.grad_clip > 0 and not module.automatic_optimization:
            module.clip_gradients(
                optimizer, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm"
            )


class ContrastiveModule(L.LightningModule):
    """The optimisation the contrastive stages share (`ptacl.training.align`, `simclr`): with
    `trainer.accumulate_grad_batches` k > 1, one contrastive problem over all k·B samples (a
    `FeatureCacheStep`, manual optimisation); with k = 1, Lightning's own.

    A subclass sets `optim_config` and `batch_size`, calls `use_feature_cache` in its __init__
    and gives `_embed(batch)` (its embeddings) and `_train_metrics(embeddings)` ({"loss", ...}).
    """

    optim_config: Any
    batch_size: int

    def use_feature_cache(self, accumulate: int, grad_clip: float) -> None:
        self.accumulate = accumulate
        self.feature_cache = FeatureCacheStep(accumulate, grad_clip)
        self.automatic_optimization = accumulate == 1

    def _embed(self, batch: Any) -> Embeddings:
        raise NotImplementedError

    def _train_metrics(self, out: Embeddings) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def step_metrics(self, batch: Any) -> dict[str, torch.Tensor] | None:
        """The training metrics of `batch`; with the feature cache, those of all k·B samples at
        the k-th micro-batch (detached: the step is already taken), None before it."""
        if self.automatic_optimization:
            return self._train_metrics(self._embed(batch))
        return self.feature_cache(self, batch, self._embed, self._train_metrics)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        self.feature_cache.clip(self, optimizer)  # the Trainer clips only without the cache

    def configure_optimizers(self) -> dict[str, Any]:
        # with the feature cache the Trainer does not accumulate: the k·B samples are counted here
        batch = self.batch_size * (1 if self.automatic_optimization else self.accumulate)
        return stage_optimizers(self, self.optim_config, batch)
