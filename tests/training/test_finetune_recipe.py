"""The fine-tuning recipe of `ptacl.training.finetune` (issue 23): layer-wise lr decay, the
LP-FT head (ridge of the frozen pooled vectors), best checkpoint and early stopping by
validation R²."""

from __future__ import annotations

from typing import ClassVar

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ptacl.config import to_dict
from ptacl.eval.metrics import r2_from_sums, r2_sums
from ptacl.eval.probe import r2_per_phenotype
from ptacl.models import EcgEncoderConfig
from ptacl.training.finetune import (
    AttentionPoolConfig,
    FinetuneConfig,
    FinetuneModule,
    early_stopping,
    selection,
)
from ptacl.training.lp_ft import init_head_from_ridge, pooled_features, ridge_fit, select_ridge
from ptacl.training.optim import OptimConfig, build_optimizer_and_schedule, layer_decay_scales
from ptacl.training.trainer import TrainerConfig, build_trainer

TINY = FinetuneConfig(
    ecg_encoder=EcgEncoderConfig(samples=500, width=32, depth=2, heads=2),
    head=AttentionPoolConfig(heads=2),
)


def tiny_module(outputs: int = 3) -> FinetuneModule:
    torch.manual_seed(0)
    return FinetuneModule(to_dict(TINY), [0.0] * outputs, [1.0] * outputs)


# --- layer-wise lr decay --------------------------------------------------------------------


def test_layer_decay_gives_each_block_its_hand_computed_lr():
    module = tiny_module()  # depth 2: embeddings layer 0, blocks layers 1 and 2, norm layer 3
    cfg = OptimConfig(base_lr=1e-3, warmup_steps=0, head_lr_scale=10.0, layer_decay=0.5)
    optimizer, _ = build_optimizer_and_schedule(module, cfg, total_steps=4, global_batch=256)
    lrs = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert len(lrs) == len(list(module.parameters()))  # every parameter, once
    encoder = module.encoder
    expected = {
        "patch_embed": 1e-3 * 0.125,  # 0.5^(2 + 1 − 0)
        "lead_embed": 1e-3 * 0.125,
        "time_embed": 1e-3 * 0.125,
        "blocks.0": 1e-3 * 0.25,  # 0.5^(2 + 1 − 1)
        "blocks.1": 1e-3 * 0.5,  # 0.5^(2 + 1 − 2)
        "norm": 1e-3,  # the final norm: layer depth + 1
    }
    seen = set()
    for name, p in encoder.named_parameters():
        prefix = next(k for k in expected if name == k or name.startswith(k + "."))
        assert lrs[id(p)] == pytest.approx(expected[prefix]), name
        seen.add(prefix)
    assert seen == set(expected)
    for p in module.head.parameters():  # the head: head_lr_scale, no layer decay
        assert lrs[id(p)] == pytest.approx(1e-2)
    # weights decay, biases and norms do not, in every layer group
    decays = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert decays[id(encoder.blocks[0].mlp[0].weight)] == 0.05
    assert decays[id(encoder.blocks[0].mlp[0].bias)] == 0.0


def test_layer_decay_scales_leave_the_heads_out_and_one_keeps_the_old_groups():
    module = tiny_module()
    scales = layer_decay_scales(module, 0.75)
    assert {id(p) for p in module.encoder.parameters()} == set(scales)
    assert scales[id(module.encoder.blocks[1].attn.qkv.weight)] == pytest.approx(0.75)
    cfg = OptimConfig(base_lr=1e-3, warmup_steps=0, head_lr_scale=10.0)  # layer_decay 1
    optimizer, _ = build_optimizer_and_schedule(module, cfg, total_steps=4, global_batch=256)
    assert len(optimizer.param_groups) == 4  # body / head x decay / none, as before


# --- LP-FT: the head from a ridge fit -------------------------------------------------------


def test_ridge_fit_solves_the_normal_equations_per_known_column():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5))
    y = x @ rng.normal(size=(5, 2)) + rng.normal(size=(40, 2)) + 3.0
    y[:7, 1] = np.nan  # column 1 fitted on its 33 known rows
    weight, bias = ridge_fit(x, y, alpha=0.3)
    for p in range(2):
        known = np.isfinite(y[:, p])
        xk, yk = x[known], y[known, p]
        sd = xk.std(axis=0)
        z = (xk - xk.mean(axis=0)) / sd
        v = np.linalg.inv(z.T @ z + 0.3 * known.sum() * np.eye(5)) @ z.T @ (yk - yk.mean())
        w = v / sd
        np.testing.assert_allclose(weight[p], w, rtol=1e-10)
        np.testing.assert_allclose(bias[p], yk.mean() - xk.mean(axis=0) @ w, rtol=1e-10)
    # alpha -> 0 is OLS with an intercept
    weight0, bias0 = ridge_fit(x, y[:, :1], alpha=0.0)
    coef, *_ = np.linalg.lstsq(np.c_[x, np.ones(40)], y[:, 0], rcond=None)
    np.testing.assert_allclose(np.r_[weight0[0], bias0[0]], coef, rtol=1e-8)
    # no known row: the standardised mean
    w_none, b_none = ridge_fit(x, np.full((40, 1), np.nan), alpha=1.0)
    assert not w_none.any() and b_none.tolist() == [0.0]


def test_ridge_fit_penalises_each_feature_relative_to_its_spread():
    # the same alpha gives the same predictions whatever each feature's scale (a pretrained
    # encoder's pooled vectors spread by ~0.08 per dimension), and a constant feature is ignored
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 4))
    y = x @ rng.normal(size=(4, 1)) + rng.normal(size=(60, 1))
    scaled = np.c_[x * np.array([0.05, 1.0, 30.0, 0.001]), np.full(60, 7.0)]
    w, b = ridge_fit(x, y, alpha=0.1)
    ws, bs = ridge_fit(scaled, y, alpha=0.1)
    np.testing.assert_allclose(scaled @ ws[0] + bs[0], x @ w[0] + b[0], rtol=1e-9)
    assert ws[0, 4] == 0.0


def test_select_ridge_takes_each_columns_alpha_with_the_lowest_val_mse():
    rng = np.random.default_rng(1)
    x_train, x_val = rng.normal(size=(30, 8)), rng.normal(size=(50, 8))
    w_true = rng.normal(size=8)
    # column 0: exact on train and val (the least penalty wins); column 1: pure noise on train,
    # its mean on val (the most penalty wins)
    y_train = np.c_[x_train @ w_true, rng.normal(size=30)]
    y_val = np.c_[x_val @ w_true, np.full(50, y_train[:, 1].mean())]
    y_val[::3, 0] = np.nan
    alphas = (1e-1, 1e-4, 1.0, 1e3)
    weight, bias, chosen = select_ridge((x_train, y_train), (x_val, y_val), alphas)
    assert chosen.tolist() == [1e-4, 1e3]
    for p, alpha in enumerate(chosen):
        w, b = ridge_fit(x_train, y_train, alpha)
        np.testing.assert_array_equal(weight[p], w[p])
        np.testing.assert_array_equal(bias[p], b[p])


class Items(torch.utils.data.Dataset):
    """ECG (12, 500) and phenotype (3,) items as the store's datasets give them."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ecg = torch.randn(n, 12, 500, generator=g)
        self.phen = self.ecg[:, :3, :50].mean(dim=2) * 4 + torch.randn(n, 3, generator=g)
        self.phen[::4, 2] = torch.nan

    def __len__(self) -> int:
        return len(self.ecg)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"ecg": self.ecg[i], "phenotypes": self.phen[i]}


def test_ridge_head_init_is_the_closed_form_ridge_and_leaves_the_rest_untouched():
    module = tiny_module()
    train, val = Items(24, seed=2), Items(10, seed=3)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    features, targets = pooled_features(module, train, batch_size=5)
    assert features.shape == (24, 32) and targets.shape == (24, 3)
    np.testing.assert_array_equal(np.isnan(targets), np.isnan(train.phen.numpy()))
    chosen, val_r2 = init_head_from_ridge(module, train, val, [0.5], batch_size=7)
    assert chosen.tolist() == [0.5, 0.5, 0.5] and val_r2.shape == (3,)
    weight, bias = ridge_fit(features, targets, 0.5)  # on the features before the init
    # the features here and inside the init come from batches of 5 and 7: float32 sums in
    # another order, which the per-feature standardisation can magnify to ~1e-5 (seen on CI)
    close = {"rtol": 1e-4, "atol": 1e-4}
    torch.testing.assert_close(
        module.head.out.weight, torch.tensor(weight, dtype=torch.float32), **close
    )
    torch.testing.assert_close(
        module.head.out.bias, torch.tensor(bias, dtype=torch.float32), **close
    )
    after = module.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"head.out.weight", "head.out.bias"}  # the encoder bit-identical
    assert module.training  # handed back in the mode it came in
    # the head now predicts what the ridge predicts
    x, _ = pooled_features(module, val, batch_size=10)
    with torch.no_grad():
        pred = module(val.ecg).double().numpy()
    np.testing.assert_allclose(pred, x @ weight.T + bias, rtol=1e-4, atol=1e-4)


# --- validation R² and the checkpoint it picks ----------------------------------------------


def test_val_r2_from_batch_sums_equals_r2_of_all_rows():
    rng = np.random.default_rng(4)
    truth = rng.normal(size=(23, 3))
    pred = truth + rng.normal(size=(23, 3))
    truth[[1, 5, 9], 1] = np.nan
    truth[:, 2] = np.nan
    truth[0, 2] = 1.0  # one known row: R² undefined
    t, p = torch.tensor(truth, dtype=torch.float32), torch.tensor(pred, dtype=torch.float32)
    sums = sum(r2_sums(p[i : i + 5], t[i : i + 5]) for i in range(0, 23, 5))
    r2 = r2_from_sums(sums).numpy()
    expected = r2_per_phenotype(t.double().numpy(), p.double().numpy(), ["a", "b", "c"])["R2"]
    np.testing.assert_allclose(r2[:2], expected.to_numpy()[:2], rtol=1e-5)
    assert np.isnan(r2[2]) and np.isnan(expected.iloc[2])


class Planted(L.LightningModule):
    """Logs planted validation scores, one per validation (every step): R² and loss disagree
    on which validation is best."""

    R2: ClassVar = [0.10, 0.30, 0.25, 0.20, 0.28, 0.15, 0.40, 0.00]  # best 0.30 at validation 2
    LOSS: ClassVar = [0.90, 0.80, 0.50, 0.60, 0.70, 0.75, 0.20, 0.10]  # best 0.50 at validation 3

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.validations = 0

    def training_step(self, batch, batch_idx):
        return (self.w - batch[0].mean()) ** 2

    def validation_step(self, batch, batch_idx):
        pass

    def on_validation_epoch_end(self) -> None:
        i = self.validations
        self.log("val/r2", self.R2[i])
        self.log("val/loss", self.LOSS[i])
        self.validations += 1

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize(("select", "best_step", "stopped_at"), [("r2", 2, 5), ("loss", 3, 6)])
def test_best_checkpoint_and_early_stop_follow_the_selected_score(
    tmp_path, select, best_step, stopped_at
):
    cfg = FinetuneConfig(select=select, patience=3)
    monitor, mode = selection(cfg)
    trainer_cfg = TrainerConfig(
        accelerator="cpu", max_steps=8, val_every_n_steps=1, checkpoint_every_n_steps=100,
        sanity_val_steps=0, progress_bar=False, log_every_n_steps=1,
    )  # fmt: skip
    trainer = build_trainer(
        trainer_cfg, tmp_path, monitor=monitor, mode=mode, callbacks=[early_stopping(cfg)]
    )
    data = DataLoader(TensorDataset(torch.ones(64, 1)), batch_size=1)
    val = DataLoader(TensorDataset(torch.ones(1, 1)), batch_size=1)
    trainer.fit(Planted(), train_dataloaders=data, val_dataloaders=val)
    torch.use_deterministic_algorithms(False)
    # validations 1, 2, … run after steps 1, 2, …: the best is validation `best_step`; patience
    # 3 stops after three more without improvement
    assert trainer.global_step == stopped_at
    best = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=True)
    assert best["global_step"] == best_step
