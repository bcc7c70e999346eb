import pytest
import torch
from torch import nn

from ptacl.models.heads import (
    HeadConfig,
    head_config_from_state,
    projection_head,
    projection_head_from_state,
)


def mean_pairwise_cosine(z: torch.Tensor) -> float:
    unit = nn.functional.normalize(z, dim=-1)
    sim = unit @ unit.T
    n = len(z)
    return float((sim.sum() - sim.diagonal().sum()) / (n * (n - 1)))


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_shapes_for_pooled_and_local_inputs(norm):
    head = projection_head(16, HeadConfig(hidden=8, dim=4, norm=norm))
    assert head(torch.randn(5, 16)).shape == (5, 4)
    assert head(torch.randn(5, 13, 16)).shape == (5, 13, 4)


def test_layouts_and_round_trip_from_state():
    torch.manual_seed(0)
    for norm, keys in (("batch", {"0.weight", "1.running_mean", "3.weight"}),
                       ("none", {"0.weight", "2.weight"})):  # fmt: skip
        head = projection_head(16, HeadConfig(hidden=8, dim=4, norm=norm))
        head(torch.randn(6, 16))  # moves the batch norm's running statistics off their start
        state = head.state_dict()
        assert keys <= set(state)
        assert head_config_from_state(state) == HeadConfig(hidden=8, dim=4, norm=norm)
        rebuilt = projection_head_from_state(state, 16)
        assert not rebuilt.training
        x = torch.randn(3, 16)
        torch.testing.assert_close(rebuilt(x), head.eval()(x))


def test_not_a_head_is_refused():
    with pytest.raises(ValueError, match="projection head"):
        head_config_from_state({"weight": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="norm"):
        projection_head(4, HeadConfig(norm="layer"))  # type: ignore[arg-type]


def test_batch_norm_removes_the_direction_all_subjects_share():
    """Pooled MAE features are one shared vector plus small subject differences (mean cosine
    0.99); the plain head keeps them parallel, the batch-norm head spreads them apart."""
    torch.manual_seed(0)
    shared = 5 * torch.randn(64)
    x = shared + 0.3 * torch.randn(32, 64)  # (B, D)
    assert mean_pairwise_cosine(x) > 0.95
    plain = projection_head(64, HeadConfig(hidden=64, dim=32, norm="none"))
    normed = projection_head(64, HeadConfig(hidden=64, dim=32, norm="batch"))
    with torch.no_grad():
        assert mean_pairwise_cosine(plain(x)) > 0.9
        assert mean_pairwise_cosine(normed(x)) < 0.5  # what is left: the mean of the ReLU
