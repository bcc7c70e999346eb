import math

import pytest
import torch

from ptacl.losses import alignment_matrix


def test_sigma_zero_is_identity():
    torch.testing.assert_close(alignment_matrix(13, 0.0), torch.eye(13))


@pytest.mark.parametrize("circular", [False, True])
@pytest.mark.parametrize("sigma", [0.0, 0.05, 0.1, 1.0])
def test_rows_sum_to_one(sigma, circular):
    p = alignment_matrix(13, sigma, circular)
    assert p.shape == (13, 13)
    torch.testing.assert_close(p.sum(dim=1), torch.ones(13))
    assert (p >= 0).all()
    # the matching step always carries the most weight
    assert (p.argmax(dim=1) == torch.arange(13)).all()


def test_formula_for_positive_sigma():
    # T = 3, σ = 0.5: weight exp(−½ (|k − t| / 3 / 0.5)²) = exp(−2 (|k − t| / 3)²)
    p = alignment_matrix(3, 0.5)
    weights = [math.exp(-2 * (gap / 3) ** 2) for gap in (0, 1, 2)]
    row0 = [w / sum(weights) for w in weights]
    mid = [weights[1], weights[0], weights[1]]
    row1 = [w / sum(mid) for w in mid]
    torch.testing.assert_close(p[0], torch.tensor(row0))
    torch.testing.assert_close(p[1], torch.tensor(row1))
    torch.testing.assert_close(p[2], torch.tensor(row0[::-1]))


def test_circular_distance_wraps_around_the_cycle():
    # T = 4, σ = 0.25: step 0's circular gaps to steps 0..3 are 0, 1, 2, 1
    p = alignment_matrix(4, 0.25, circular=True)
    weights = [math.exp(-0.5 * (gap / 4 / 0.25) ** 2) for gap in (0, 1, 2, 1)]
    torch.testing.assert_close(p[0], torch.tensor([w / sum(weights) for w in weights]))
    torch.testing.assert_close(p, p.T)  # every row sees the same neighbourhood


def test_invalid_arguments():
    with pytest.raises(ValueError, match="sigma"):
        alignment_matrix(13, -0.1)
    with pytest.raises(ValueError, match="num_steps"):
        alignment_matrix(0, 0.1)
