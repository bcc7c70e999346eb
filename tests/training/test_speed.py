"""The fast-step switches: CPU precision `auto`, bf16-mixed on the CPU, trainer.compile, fused
AdamW and the DDP settings."""

import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy

from ptacl.config import to_dict
from ptacl.models import EcgEncoderConfig, MaeConfig
from ptacl.models.vit import Block
from ptacl.training import trainer as trainer_module
from ptacl.training.mae import MaePretraining, MaeRunConfig
from ptacl.training.optim import OptimConfig, build_optimizer_and_schedule
from ptacl.training.trainer import TrainerConfig, build_trainer, ddp_strategy, resolve_precision

pytestmark = pytest.mark.usefixtures("one_thread")


def test_cpu_auto_precision_follows_amx_and_the_encoder_width(monkeypatch):
    cpu = TrainerConfig(accelerator="cpu")
    monkeypatch.setattr(trainer_module, "cpu_has_amx_bf16", lambda: True)
    assert resolve_precision(cpu, width=512) == "bf16-mixed"
    assert resolve_precision(cpu, width=256) == "bf16-mixed"
    assert resolve_precision(cpu, width=128) == "32-true"  # narrow: casts outweigh AMX
    assert resolve_precision(cpu) == "32-true"  # width unknown: the safe choice
    assert resolve_precision(TrainerConfig(accelerator="cpu", precision="32-true"), 512) == (
        "32-true"
    )
    monkeypatch.setattr(trainer_module, "cpu_has_amx_bf16", lambda: False)
    assert resolve_precision(cpu, width=512) == "32-true"
    assert resolve_precision(TrainerConfig(accelerator="gpu"), width=64) == "bf16-mixed"


def _tiny_mae(compile_: bool = False) -> MaePretraining:
    cfg = MaeRunConfig(
        encoder=EcgEncoderConfig(samples=500, width=32, depth=2, heads=2),
        mae=MaeConfig(mask_ratio=0.75, decoder_width=16, decoder_heads=2),
        trainer=TrainerConfig(compile=compile_),
    )
    torch.manual_seed(0)
    return MaePretraining(to_dict(cfg))


def _loss(module: MaePretraining, x: torch.Tensor, bf16: bool) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)  # the same mask every call
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return module.mae(x, generator=generator)["loss"]


def test_bf16_mixed_on_cpu_matches_fp32_and_trains():
    module = _tiny_mae()
    x = torch.randn(8, 12, 500, generator=torch.Generator().manual_seed(0))
    fp32, bf16 = _loss(module, x, False), _loss(module, x, True)
    assert bf16.dtype == torch.float32  # the MSE is taken in float32 under autocast too
    # bf16 keeps 8 bits of mantissa: 2 % of the loss covers its rounding on a batch like this
    assert bf16.item() == pytest.approx(fp32.item(), rel=0.02)
    optimizer, _ = build_optimizer_and_schedule(
        module, OptimConfig(base_lr=0.05, warmup_steps=0), total_steps=100, global_batch=8
    )
    losses = []
    for _ in range(8):  # a fixed batch: the loss must go down
        loss = _loss(module, x, True)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def _compile_works() -> str | None:
    """None when torch.compile can build and run code here, else why not."""
    try:
        torch.compile(lambda t: t * 2 + 1)(torch.ones(2))
    except Exception as e:  # no C++ compiler, unsupported platform, ...
        return f"torch.compile does not work on this machine: {type(e).__name__}: {e}"
    return None


def test_compile_switch_compiles_the_blocks_and_trains_a_step():
    reason = _compile_works()
    if reason:
        pytest.skip(reason)
    module = _tiny_mae(compile_=True)
    blocks = [m for m in module.modules() if isinstance(m, Block)]
    assert len(blocks) == 3  # 2 encoder blocks + 1 decoder block
    assert all(b._compiled_call_impl is not None for b in blocks)
    # in-place compilation: the checkpoint keys stay those of an eager module
    assert module.state_dict().keys() == _tiny_mae().state_dict().keys()
    optimizer, _ = build_optimizer_and_schedule(
        module, OptimConfig(warmup_steps=0), total_steps=10, global_batch=2
    )
    before = module.mae.encoder.blocks[0].mlp[0].weight.detach().clone()
    loss = _loss(module, torch.randn(2, 12, 500), False)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert not torch.equal(before, module.mae.encoder.blocks[0].mlp[0].weight)


def test_adamw_is_fused_and_keeps_its_groups():
    module = _tiny_mae()
    optimizer, _ = build_optimizer_and_schedule(
        module, OptimConfig(head_lr_scale=1.0), total_steps=10, global_batch=8
    )
    assert optimizer.defaults["fused"] is True
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.05, 0.0]


def test_ddp_uses_bucket_views_and_a_static_graph_unless_accumulating():
    strategy = ddp_strategy()
    assert isinstance(strategy, DDPStrategy)
    assert strategy._ddp_kwargs == {"gradient_as_bucket_view": True, "static_graph": True}
    # static_graph + no_sync() breaks gradient accumulation (pytorch/pytorch#143580)
    assert ddp_strategy(4)._ddp_kwargs["static_graph"] is False


class _Ecgs(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"ecg": torch.randn(12, 500, generator=torch.Generator().manual_seed(i))}


def test_lightning_fits_in_bf16_on_the_cpu_with_compiled_blocks(tmp_path):
    reason = _compile_works()
    if reason:
        pytest.skip(reason)
    module = _tiny_mae(compile_=True)
    config = TrainerConfig(
        accelerator="cpu", precision="bf16-mixed", max_steps=2, sanity_val_steps=0,
        progress_bar=False, compile=True,
    )  # fmt: skip
    trainer = build_trainer(config, tmp_path)
    loader = torch.utils.data.DataLoader(_Ecgs(), batch_size=4)
    trainer.fit(module, loader, loader)
    torch.use_deterministic_algorithms(False)
    assert trainer.precision == "bf16-mixed" and trainer.global_step == 2
    assert trainer.optimizers[0].defaults["fused"] is True
    assert torch.isfinite(trainer.callback_metrics["val/loss"])
