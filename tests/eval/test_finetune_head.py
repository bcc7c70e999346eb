"""The FN+AP pieces of `ptacl.training.finetune`: attention pooling, masked loss, target stats."""

import numpy as np
import pytest
import torch

from ptacl.models.heads import AttentionPoolHead
from ptacl.training.finetune import known_target_mse, target_statistics


def test_attention_pool_shapes_and_weights():
    head = AttentionPoolHead(16, 10, heads=4)
    tokens = torch.randn(3, 7, 16)
    assert head(tokens).shape == (3, 10)
    weights = head.attention_weights(tokens)
    assert weights.shape == (3, 7)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3))


def test_attention_pool_ignores_token_order_and_attends_to_content():
    torch.manual_seed(0)
    head = AttentionPoolHead(16, 2, heads=4).eval()
    tokens = torch.randn(2, 9, 16)
    perm = torch.randperm(9)
    torch.testing.assert_close(head(tokens[:, perm]), head(tokens))  # a set function of tokens
    changed = tokens.clone()
    changed[:, 4] += 3.0
    assert not torch.allclose(head(changed), head(tokens))


def test_every_parameter_gets_a_gradient():
    head = AttentionPoolHead(16, 3, heads=2)
    tokens = torch.randn(4, 5, 16, requires_grad=True)
    head(tokens).pow(2).sum().backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert tokens.grad.abs().sum() > 0


def test_masked_mse_leaves_unknown_targets_out():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    target = torch.tensor([[0.0, float("nan")], [1.0, 1.0]])
    loss = known_target_mse(pred, target)
    assert loss.item() == pytest.approx((1 + 4 + 9) / 3)
    loss.backward()
    assert pred.grad[0, 1] == 0 and torch.isfinite(pred.grad).all()
    none_known = known_target_mse(pred, torch.full((2, 2), float("nan")))
    assert none_known.item() == 0.0


def test_target_statistics_ignore_nan_and_guard_constant_columns():
    y = np.array([[1.0, 5.0, np.nan], [3.0, 5.0, np.nan], [np.nan, 5.0, np.nan]])
    mean, sd = target_statistics(y)
    np.testing.assert_allclose(mean, [2.0, 5.0, 0.0])
    np.testing.assert_allclose(sd, [np.sqrt(2.0), 1.0, 1.0])
