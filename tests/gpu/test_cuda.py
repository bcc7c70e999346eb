"""The CUDA code paths: bf16 encoders, losses under autocast, fused AdamW, pinned-memory loaders
with workers, NCCL, `precision: auto` and the feature cache on a GPU.

Marked `gpu`: collected everywhere, skipped without CUDA (tests/conftest.py);
benchmarks/device_check.sh runs them on the device machine (`pytest -m gpu`). The bundle's CUDA
predictions and the feature cache's CUDA RNG replay are checked beside their CPU tests
(tests/inference/test_predictor_cuda.py, tests/training/test_feature_cache.py).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from torch.nn.parallel import DistributedDataParallel

from ptacl import configs
from ptacl.losses import global_contrastive_loss, local_contrastive_loss
from ptacl.losses.distributed import _GatherWithGrad
from ptacl.losses.nt_xent import nt_xent_loss
from ptacl.models import CmrEncoderConfig, EcgEncoderConfig, encoder_from_config
from ptacl.training.optim import OptimConfig, build_optimizer_and_schedule
from ptacl.training.trainer import TrainerConfig, build_trainer, ddp_strategy, resolve_precision

pytestmark = pytest.mark.gpu

CUDA = torch.device("cuda")
TINY = str(configs.root() / "tiny" / "ptacl.yaml")


@contextlib.contextmanager
def exact_fp32():
    """No TF32 (cuDNN convolutions use it by default): fp32 on the GPU comparable with the CPU."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.parametrize("modality", ["ecg", "cmr"])
def test_encoder_forward_backward_in_bf16(modality):
    torch.manual_seed(0)
    if modality == "ecg":
        config = EcgEncoderConfig(samples=500, width=32, depth=2, heads=2)
        shape = (2, config.leads, config.samples)
    else:
        config = CmrEncoderConfig(width=32, depth=2, heads=2)
        shape = (2, 1, config.frames, config.size, config.size)
    encoder = encoder_from_config(config, modality).to(CUDA)
    x = torch.randn(shape, device=CUDA)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        tokens = encoder.forward_features(x)  # (B, L, D)
        pooled = encoder.pool(tokens)  # (B, D)
    # (the final LayerNorm returns fp32 under autocast; the blocks' matmuls ran in bf16)
    assert torch.isfinite(tokens).all() and torch.isfinite(pooled).all()
    pooled.float().square().mean().backward()
    grads = {n: p.grad for n, p in encoder.named_parameters() if p.requires_grad}
    assert any(g is not None for g in grads.values())
    for name, grad in grads.items():
        assert grad is None or torch.isfinite(grad).all(), name


def test_contrastive_losses_under_autocast_match_the_cpu():
    """The global and NT-Xent losses turn autocast off: equal to fp32 on the CPU to 1e-5. The
    local loss runs its einsum under autocast (bf16: ~3 significant digits): within 1e-2."""
    g = torch.Generator().manual_seed(0)
    z_ecg, z_cmr = torch.randn(2, 8, 16, generator=g)
    local_ecg, local_cmr = torch.randn(2, 8, 13, 16, generator=g)

    def losses(device: torch.device) -> list[torch.Tensor]:
        a, b = z_ecg.to(device), z_cmr.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            return [
                global_contrastive_loss(a, b, 0.1),
                nt_xent_loss(a, b, 0.1),
                local_contrastive_loss(local_ecg.to(device), local_cmr.to(device), 1.0, 0.1),
            ]

    with exact_fp32():
        on_gpu = [v.cpu() for v in losses(CUDA)]
    on_cpu = losses(torch.device("cpu"))
    for i, atol in enumerate((1e-5, 1e-5, 1e-2)):
        assert on_gpu[i].dtype == torch.float32
        torch.testing.assert_close(on_gpu[i], on_cpu[i], rtol=0, atol=atol)


def test_fused_adamw_on_cuda_steps_like_the_cpu():
    torch.manual_seed(0)
    cpu_model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.LayerNorm(32))
    gpu_model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.LayerNorm(32)).to(CUDA)
    gpu_model.load_state_dict(cpu_model.state_dict())
    x = torch.randn(4, 16)
    for model, device in ((cpu_model, "cpu"), (gpu_model, "cuda")):
        optimizer, _ = build_optimizer_and_schedule(
            model, OptimConfig(warmup_steps=0), total_steps=10, global_batch=256
        )
        assert optimizer.defaults["fused"] is True
        with exact_fp32():
            model(x.to(device)).square().mean().backward()
        optimizer.step()
    for cpu_p, gpu_p in zip(cpu_model.parameters(), gpu_model.parameters()):
        torch.testing.assert_close(gpu_p.detach().cpu(), cpu_p.detach(), rtol=0, atol=1e-6)


def test_precision_auto_is_bf16_mixed_on_a_gpu(tmp_path):
    assert resolve_precision(TrainerConfig()) == "bf16-mixed"
    trainer = build_trainer(TrainerConfig(max_steps=1), tmp_path, width=32)
    assert trainer.precision == "bf16-mixed"


@pytest.mark.parametrize("accumulate", [1, 2])
def test_tiny_align_fit_on_cuda_with_workers_and_pinned_memory(tiny_store, tmp_path, accumulate):
    """`ptacl align` on the GPU (bf16-mixed by `precision: auto`), two loader workers, pinned
    batches; with accumulate 2 the feature cache runs its two passes in bf16."""
    from ptacl.cli.align import main
    from ptacl.data.datasets import PairedDataset
    from ptacl.training.loaders import DataConfig, build_dataloader

    loader = build_dataloader(
        PairedDataset(tiny_store, "train", train=True, ecg_augment=None, cmr_augment=None),
        DataConfig(batch_size=2, num_workers=2),
        train=True,
    )
    assert loader.pin_memory and loader.num_workers == 2
    assert next(iter(loader))["ecg"].is_pinned()

    out = tmp_path / "run"
    argv = ["--data", str(tiny_store), "--out", str(out), "--config", TINY]
    argv += ["trainer.accelerator=gpu", "trainer.precision=auto", "data.num_workers=2"]
    argv += [f"trainer.accumulate_grad_batches={accumulate}", "data.batch_size=2"]
    assert main(argv) == 0
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert last["global_step"] == yaml.safe_load(Path(TINY).read_text())["trainer"]["max_steps"]
    assert all(
        torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point()
    )
    assert "train/global" in (out / "metrics.csv").read_text()


def _process_group(tmp_path) -> None:
    dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)


def test_one_gpu_ddp_with_nccl(tmp_path):
    """The NCCL collectives of the gather (all_gather forward, all_reduce backward) and DDP's
    gradient all-reduce, in one process on one GPU."""
    _process_group(tmp_path)
    try:
        torch.manual_seed(0)
        model = DistributedDataParallel(torch.nn.Linear(7, 3).to(CUDA), device_ids=[0])
        x = torch.randn(4, 7, device=CUDA)
        z = F.normalize(model(x), dim=-1)
        gathered = _GatherWithGrad.apply(z)  # NCCL all_gather even with one process
        torch.testing.assert_close(gathered, z)
        (gathered @ z.T).sum().backward()  # NCCL all_reduce in the gather's backward and DDP's
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    finally:
        dist.destroy_process_group()


def test_lightning_ddp_strategy_on_one_gpu(tmp_path):
    """Our DDP settings (bucket views, static graph) under Lightning with NCCL, one process."""
    from torch.utils.data import DataLoader, TensorDataset

    class Tiny(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(7, 3)

        def training_step(self, batch, batch_idx):
            (x,) = batch
            z = self.layer(x)
            return global_contrastive_loss(z, z.flip(0), 0.1)

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=1e-3)

    trainer = L.Trainer(
        accelerator="gpu",
        devices=1,
        strategy=ddp_strategy(),
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    try:
        trainer.fit(Tiny(), DataLoader(TensorDataset(torch.randn(8, 7)), batch_size=4))
        assert trainer.global_step == 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
