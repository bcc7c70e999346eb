import pytest
import torch

from ptacl.models.masking import num_masked, random_masking, restore_order


@pytest.mark.parametrize(("length", "ratio"), [(600, 0.75), (637, 0.9), (10, 0.0), (7, 0.5)])
def test_every_sample_loses_exactly_the_same_number(length, ratio):
    tokens = torch.randn(5, length, 8)
    visible, mask, ids_restore = random_masking(tokens, ratio)
    removed = round(ratio * length)
    assert visible.shape == (5, length - removed, 8)
    assert mask.shape == ids_restore.shape == (5, length)
    assert torch.equal(mask.sum(dim=1), torch.full((5,), float(removed)))


def test_ratios_of_the_paper():
    assert num_masked(600, 0.75) == 450
    assert num_masked(637, 0.9) == 573  # 64 CMR tokens stay visible
    assert num_masked(4, 0.99) == 3  # at least one token is always visible
    with pytest.raises(ValueError, match="mask_ratio"):
        num_masked(10, 1.0)


def test_restore_undoes_the_shuffle_and_mask_marks_the_removed_tokens():
    batch, length = 3, 20
    # token l of sample b carries the value l, so positions can be read back from the values
    tokens = torch.arange(length, dtype=torch.float32).repeat(batch, 1).unsqueeze(-1)
    tokens = tokens + 100 * torch.arange(batch).view(-1, 1, 1)
    visible, mask, ids_restore = random_masking(tokens, 0.6)
    kept_positions = (visible[..., 0] % 100).long()
    for b in range(batch):
        assert set(kept_positions[b].tolist()) == set(
            torch.nonzero(mask[b] == 0).flatten().tolist()
        )
    # pad with placeholders for the removed tokens, unshuffle: visible tokens land where they were
    filled = torch.cat([visible, torch.full((batch, length - visible.shape[1], 1), -1.0)], dim=1)
    restored = restore_order(filled, ids_restore)
    assert torch.equal(restored[mask == 0], tokens[mask == 0])
    assert torch.all(restored[mask == 1] == -1)


def test_generator_makes_the_draw_reproducible_and_samples_differ():
    tokens = torch.randn(4, 50, 2)
    a = random_masking(tokens, 0.75, torch.Generator().manual_seed(1))[1]
    b = random_masking(tokens, 0.75, torch.Generator().manual_seed(1))[1]
    c = random_masking(tokens, 0.75, torch.Generator().manual_seed(2))[1]
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # per-sample masks
