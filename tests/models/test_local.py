import itertools

import numpy as np
import pytest
import torch

from ptacl.models.local import beat_weights, cmr_local_embeddings, ecg_local_embeddings


def _ecg_loop_reference(ecg_tokens, grid, r_peaks, patch, num_steps):
    """Beat by beat: lead-mean tokens, np.interp at the phase-bin centres, mean over beats."""
    leads, time_tokens = grid
    tokens = ecg_tokens.detach().numpy().reshape(len(ecg_tokens), leads, time_tokens, -1)
    centres = (np.arange(time_tokens) + 0.5) * patch
    out = np.zeros((len(tokens), num_steps, tokens.shape[-1]))
    valid = np.zeros(len(tokens), dtype=bool)
    for i, subject in enumerate(tokens):
        lead_mean = subject.mean(axis=0)  # (L_t, D)
        peaks = [int(p) for p in r_peaks[i] if p >= 0]
        beats = []
        for start, end in itertools.pairwise(peaks):
            if end >= time_tokens * patch or end <= start:
                continue
            at = start + (np.arange(num_steps) + 0.5) / num_steps * (end - start)
            beats.append(
                np.stack(
                    [np.interp(at, centres, lead_mean[:, d]) for d in range(lead_mean.shape[1])],
                    axis=1,
                )
            )
        if beats:
            out[i] = np.mean(beats, axis=0)
            valid[i] = True
    return out, valid


def _lead_mean(ecg_tokens, leads):
    """What the ECG ViT's `time_tokens` gives: (B, C·L_t, D) -> (B, L_t, D)."""
    return ecg_tokens.reshape(len(ecg_tokens), leads, -1, ecg_tokens.shape[-1]).mean(dim=1)


def test_ecg_local_matches_per_beat_loop():
    g = torch.Generator().manual_seed(0)
    ecg_tokens = torch.randn(5, 3 * 20, 4, generator=g)  # 3 leads, 20 time tokens of 10 samples
    r_peaks = torch.tensor(
        [
            [3, 71, 140, -1, -1],  # two beats, the first starting inside token 0
            [10, 60, 120, 180, 199],  # four beats, the last ends in the final sample
            [50, -1, -1, -1, -1],  # one peak: no complete beat
            [-1, -1, -1, -1, -1],  # no peaks
            [20, 95, 200, -1, -1],  # the second beat ends outside the crop
        ]
    )
    local, valid = ecg_local_embeddings(
        _lead_mean(ecg_tokens, 3), r_peaks, samples_per_step=10, num_steps=7
    )
    expected, expected_valid = _ecg_loop_reference(ecg_tokens, (3, 20), r_peaks, 10, 7)
    assert local.shape == (5, 7, 4)
    np.testing.assert_array_equal(valid.numpy(), expected_valid)
    np.testing.assert_allclose(local.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert valid.tolist() == [True, True, False, False, True]
    assert (local[~valid] == 0).all()


def test_ecg_local_on_the_default_grid():
    g = torch.Generator().manual_seed(1)
    ecg_tokens = torch.randn(2, 600, 8, generator=g)
    r_peaks = torch.full((2, 32), -1)
    r_peaks[0, :4] = torch.tensor([120, 610, 1090, 1580])
    r_peaks[1, :3] = torch.tensor([400, 1400, 2400])
    local, valid = ecg_local_embeddings(_lead_mean(ecg_tokens, 12), r_peaks)
    expected, _ = _ecg_loop_reference(ecg_tokens, (12, 50), r_peaks, 50, 13)
    np.testing.assert_allclose(local.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert valid.all()


def test_ecg_local_follows_the_beat_phase():
    # token value = its own time index: step k of a beat from sample 100 to 600 (patch 50) must
    # sit at sample 100 + (k + ½)/T · 500, i.e. token coordinate (that)/50 − ½
    ecg_time = torch.arange(50, dtype=torch.float32)[None, :, None]  # (1, 50, 1)
    local, _ = ecg_local_embeddings(ecg_time, torch.tensor([[100, 600]]), num_steps=5)
    expected = [(100 + (k + 0.5) / 5 * 500) / 50 - 0.5 for k in range(5)]
    np.testing.assert_allclose(local[0, :, 0].numpy(), expected, rtol=1e-6)


def test_ecg_weights_rows_sum_to_one_and_gradient_reaches_beat_tokens():
    r_peaks = torch.tensor([[100, 600, 1100, -1]])
    weights, _valid = beat_weights(r_peaks, 50, samples_per_step=50, num_steps=13)
    torch.testing.assert_close(weights.sum(dim=2), torch.ones(1, 13))
    ecg_tokens = torch.randn(1, 600, 3, requires_grad=True)
    local, _ = ecg_local_embeddings(_lead_mean(ecg_tokens, 12), r_peaks)
    local.sum().backward()
    touched = ecg_tokens.grad.abs().sum(dim=2).reshape(12, 50).sum(dim=0) > 0
    # only tokens next to the beats (samples 100..1100 -> tokens 2..21) receive a gradient
    assert touched[2:22].all() and not touched[:1].any() and not touched[23:].any()


def test_cmr_local_keeps_time_tokens_when_their_count_is_t():
    g = torch.Generator().manual_seed(2)
    cmr_time = torch.randn(2, 13, 6, generator=g)
    torch.testing.assert_close(cmr_local_embeddings(cmr_time), cmr_time)


def test_ecg_local_with_a_fractional_step():
    """An encoder whose time step is not a whole number of samples (e.g. a strided conv net
    after resampling) gets its steps placed at their true centres too."""
    ecg_time = torch.arange(40, dtype=torch.float32)[None, :, None]  # token j at (j + ½)·12.5
    local, valid = ecg_local_embeddings(ecg_time, torch.tensor([[100, 400]]), 12.5, num_steps=3)
    expected = [(100 + (k + 0.5) / 3 * 300) / 12.5 - 0.5 for k in range(3)]
    np.testing.assert_allclose(local[0, :, 0].numpy(), expected, rtol=1e-6)
    assert valid.all()


def test_cmr_local_is_interpolated_when_temporal_tokens_differ():
    # 4 temporal tokens holding their own index, 2 spatial; 8 steps: bin centres of the output
    # at (k + ½)/8 of the cycle = input coordinate (k + ½)/2 − ½, clamped to [0, 3]
    cmr_time = torch.arange(4, dtype=torch.float32)[None, :, None]
    local = cmr_local_embeddings(cmr_time, num_steps=8)
    expected = np.clip([(k + 0.5) / 2 - 0.5 for k in range(8)], 0, 3)
    np.testing.assert_allclose(local[0, :, 0].numpy(), expected, rtol=1e-6)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"\(B, T_C, D\)"):
        cmr_local_embeddings(torch.zeros(600, 2))
    with pytest.raises(ValueError, match="batch size"):
        ecg_local_embeddings(torch.zeros(1, 50, 2), torch.zeros(2, 3))
