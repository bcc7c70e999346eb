"""Gradient accumulation with a feature cache: k micro-batches of B give the gradient of one
contrastive batch of k·B (global, local and NT-Xent losses; one process and two), where plain
accumulation would give k problems of B negatives each."""

import os

import lightning as L
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_align import tiny_batch, tiny_module
from torch.utils.data import DataLoader, Dataset

from ptacl.config import to_dict
from ptacl.losses import global_contrastive_loss
from ptacl.losses.nt_xent import nt_xent_loss
from ptacl.models import EcgEncoderConfig
from ptacl.models.heads import HeadConfig
from ptacl.training.feature_cache import cached_backward
from ptacl.training.simclr import SimclrPretraining, SimclrRunConfig

K, B = 3, 2  # micro-batches per step, samples per micro-batch


def _grads(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


def _chunks(batch: dict[str, torch.Tensor], k: int) -> list[dict[str, torch.Tensor]]:
    size = batch["ecg"].shape[0] // k
    return [{n: v[i * size : (i + 1) * size] for n, v in batch.items()} for i in range(k)]


def _align_embed(module):
    return lambda c: module(c["ecg"], c["cmr"], c["r_peaks"], local=True)


def _assert_same(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys() and expected
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=1e-5, msg=name)


@pytest.mark.parametrize(
    "overrides",
    [
        ("loss.local_space=tokens",),
        ("loss.local_space=projection", "loss.sigma=0.0"),
        ("loss.local_loss=cosine",),
    ],
)
def test_align_gradients_equal_one_batch_of_k_times_b(overrides):
    module = tiny_module("head.norm=none", "freeze_blocks=0", *overrides)
    batch = tiny_batch(module, K * B, seed=1)
    batch["r_peaks"][1] = -1  # a subject without a beat: left out of the local loss
    module.losses(module(batch["ecg"], batch["cmr"], batch["r_peaks"]))["loss"].backward()
    expected = _grads(module)
    module.zero_grad()

    losses = cached_backward(_align_embed(module), module.losses, _chunks(batch, K), model=module)
    _assert_same(_grads(module), expected)
    assert set(losses) == {"loss", "global", "local"}

    # plain accumulation (k separate problems of B) differs by far more than the tolerance
    module.zero_grad()
    for chunk in _chunks(batch, K):
        (module.losses(_align_embed(module)(chunk))["loss"] / K).backward()
    gap = max((g - expected[n]).abs().max().item() for n, g in _grads(module).items())
    assert gap > 1e-3


def test_batch_norm_head_sees_each_micro_batch_and_its_statistics_move_once_per_micro_batch():
    """With a batch norm the reference is: every micro-batch through the model with a graph (its
    own statistics), one loss over the concatenation; and the running statistics move k times."""
    module = tiny_module("head.norm=batch", "freeze_blocks=0")
    batch = tiny_batch(module, K * B, seed=2)
    embed = _align_embed(module)
    outs = [embed(chunk) for chunk in _chunks(batch, K)]
    joined = {n: torch.cat([o[n] for o in outs]) for n in outs[0]}
    module.losses(joined)["loss"].backward()
    expected = _grads(module)
    expected_stats = {n: b.clone() for n, b in module.named_buffers() if "running" in n}
    assert expected_stats

    module = tiny_module("head.norm=batch", "freeze_blocks=0")  # fresh statistics
    cached_backward(_align_embed(module), module.losses, _chunks(batch, K), model=module)
    _assert_same(_grads(module), expected)
    _assert_same({n: b for n, b in module.named_buffers() if "running" in n}, expected_stats)


def test_pass_two_replays_the_random_draws_of_pass_one():
    """A model that draws (dropout) gets the same draws in both passes: otherwise the cached
    gradient would belong to other embeddings."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 4))
    x = torch.randn(K * B, 5)

    def embed(chunk):
        return {"z": model(chunk[0])}

    def loss_of(out):
        z = out["z"]
        return {"loss": global_contrastive_loss(z[:, :2], z[:, 2:], 0.1)}

    torch.manual_seed(7)
    cached_backward(embed, loss_of, [(c,) for c in x.split(B)])
    cached = _grads(model)
    model.zero_grad()
    torch.manual_seed(7)  # the same draws, one micro-batch after the other, with a graph
    outs = [embed((c,)) for c in x.split(B)]
    loss_of({"z": torch.cat([o["z"] for o in outs])})["loss"].backward()
    _assert_same(cached, _grads(model))


def _simclr(batch_size: int = B, **trainer) -> SimclrPretraining:
    torch.manual_seed(0)
    cfg = SimclrRunConfig(
        encoder=EcgEncoderConfig(samples=500, width=16, depth=1, heads=2),
        head=HeadConfig(hidden=16, dim=8, norm="none"),
    )
    config = to_dict(cfg)
    config["data"]["batch_size"] = batch_size
    config["trainer"].update(trainer)
    return SimclrPretraining(config)


def test_nt_xent_gradients_equal_one_batch_of_k_times_b():
    module = _simclr()
    g = torch.Generator().manual_seed(3)
    views = {f"view{i}": torch.randn(K * B, 12, 500, generator=g) for i in (1, 2)}
    module.loss(views["view1"], views["view2"])[0].backward()
    expected = _grads(module)
    module.zero_grad()
    chunks = [{n: v[i * B : (i + 1) * B] for n, v in views.items()} for i in range(K)]
    cached_backward(module._embed, module._train_metrics, chunks, model=module)
    _assert_same(_grads(module), expected)


# --- two processes (gloo): the cache of every process is contrasted with every other ---------

WORLD = 2


def _problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(WORLD * K * B, 7, generator=g, dtype=torch.float64)
    y = torch.randn(WORLD * K * B, 5, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    heads = torch.nn.ModuleDict({"a": torch.nn.Linear(7, 3), "b": torch.nn.Linear(5, 3)}).double()
    return x, y, heads


def _losses(out):
    return {
        "loss": global_contrastive_loss(out["a"], out["b"], 0.1, 0.3)
        + nt_xent_loss(out["a"], out["b"], 0.2)
    }


def _worker(rank: int, init_file: str, out_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        x, y, heads = _problem()
        rows = slice(rank * K * B, (rank + 1) * K * B)
        chunks = list(zip(x[rows].split(B), y[rows].split(B)))
        cached_backward(lambda c: {"a": heads["a"](c[0]), "b": heads["b"](c[1])}, _losses, chunks)
        grads = [p.grad for p in heads.parameters()]
        for grad in grads:  # what DDP does: average the parameter gradients
            dist.all_reduce(grad)
            grad /= WORLD
        if rank == 0:
            torch.save(grads, out_file)
    finally:
        dist.destroy_process_group()


def test_two_processes_with_the_cache_equal_one_process_on_the_whole_batch(tmp_path):
    out_file = tmp_path / "rank0.pt"
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(out_file)), nprocs=WORLD, join=True)
    distributed = torch.load(out_file, weights_only=True)
    x, y, heads = _problem()
    _losses({"a": heads["a"](x), "b": heads["b"](y)})["loss"].backward()
    for grad, p in zip(distributed, heads.parameters()):
        torch.testing.assert_close(grad, p.grad, rtol=0, atol=1e-5)


# --- inside a Trainer: k micro-batches of B step like one automatic step of k·B --------------


class _Views(Dataset):
    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(4)
        self.views = torch.randn(2, n, 12, 500, generator=g)

    def __len__(self) -> int:
        return self.views.shape[1]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"view1": self.views[0, i], "view2": self.views[1, i]}


class _GradientsBeforeStep(L.Callback):
    def on_before_optimizer_step(self, trainer, module, optimizer) -> None:
        self.grads = _grads(module)
        self.lr = optimizer.param_groups[0]["lr"]


def _one_step(module: SimclrPretraining, batch_size: int) -> _GradientsBeforeStep:
    probe = _GradientsBeforeStep()
    trainer = L.Trainer(
        max_steps=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[probe],
    )
    trainer.fit(module, DataLoader(_Views(K * B), batch_size=batch_size))
    return probe


def test_trainer_step_with_the_cache_equals_an_automatic_step_of_k_times_b():
    module = _simclr(accumulate_grad_batches=K, grad_clip=0.0)
    cached = _one_step(module, B)
    plain = _one_step(_simclr(K * B, grad_clip=0.0), K * B)
    _assert_same(cached.grads, plain.grads)
    assert module.trainer.global_step == 1
    # the learning rate scales with the k·B samples of the step, as with k = 1 and a batch of k·B
    assert cached.lr == pytest.approx(plain.lr)


class _NormAtStep(L.Callback):
    """The gradient norm the optimizer's update used (a post-hook: a pre-hook would run before
    the closure that Lightning hands to `step`, and so before the clipping)."""

    def on_train_start(self, trainer, module) -> None:
        def record(optimizer, args, kwargs) -> None:
            grads = [
                p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None
            ]
            self.norm = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))

        trainer.optimizers[0].register_step_post_hook(record)


def _norm_at_step(precision: str, accelerator: str, clip: float) -> float:
    probe = _NormAtStep()
    module = _simclr(accumulate_grad_batches=K, grad_clip=clip)
    trainer = L.Trainer(
        max_steps=1,
        accelerator=accelerator,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[probe],
    )
    trainer.fit(module, DataLoader(_Views(K * B), batch_size=B))
    return probe.norm


def test_the_cache_clips_the_gradient_the_optimizer_uses():
    assert _norm_at_step("32-true", "cpu", 1e-3) == pytest.approx(1e-3, rel=1e-3)
    assert _norm_at_step("32-true", "cpu", 1e6) > 1e-3  # unclipped: what was clipped above


@pytest.mark.gpu
def test_the_cache_clips_unscaled_gradients_in_16_bit():
    """Under 16-mixed the GradScaler multiplies the loss; clipping before it unscales would
    leave a norm of clip / scale."""
    assert _norm_at_step("16-mixed", "gpu", 1e-3) == pytest.approx(1e-3, rel=1e-2)


@pytest.mark.gpu
def test_feature_cache_on_cuda_equals_one_batch():
    """The two passes on the GPU (the CUDA RNG state is replayed too) against one k·B batch, in
    fp32 without TF32 so that the two computations round alike."""
    module = tiny_module("head.norm=none", "freeze_blocks=0").cuda()
    batch = {n: v.cuda() for n, v in tiny_batch(module, K * B, seed=1).items()}
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        module.losses(_align_embed(module)(batch))["loss"].backward()
        expected = _grads(module)
        module.zero_grad()
        cached_backward(_align_embed(module), module.losses, _chunks(batch, K), model=module)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    _assert_same(_grads(module), expected)
