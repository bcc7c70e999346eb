"""ptacl.eval.metrics against hand-computed values, the tie rule included, and against the
evaluation's own ranking (`ptacl.eval.retrieval`), which was written separately."""

import numpy as np
import torch

from ptacl.eval.collapse import top1_candidates
from ptacl.eval.metrics import (
    alignment_accuracy,
    alignment_chance,
    local_similarity,
    own_rank,
    retrieval_hits,
    temporal_alignment_hits,
)


def test_retrieval_hits_by_hand():
    z_ecg = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # ECG 0 finds CMR 0 first; ECG 1 finds CMR 2 (cos 0.99) before its own (cos 0.6)
    z_cmr = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.1, 1.0]])
    hits = retrieval_hits(z_ecg, z_cmr, (1, 2, 3))
    # ECG 2 = (1,1)/√2: cos with CMR 0 0.707, CMR 1 0.990, CMR 2 0.774 -> own CMR 2 is second
    assert hits.tolist() == [1, 3, 3]


def test_retrieval_ties_go_to_the_lower_index():
    # every CMR is the same vector: all similarities tie, so the ranking is by position and
    # only ECG 0 finds its own CMR first; ECG i's own CMR is at rank i
    z_ecg = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    z_cmr = torch.tensor([[2.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    assert own_rank(torch.ones(3, 3)).tolist() == [0, 1, 2]
    assert retrieval_hits(z_ecg, z_cmr, (1, 2, 3)).tolist() == [1, 2, 3]


def test_validation_top1_is_the_evaluations_top1_on_ties():
    # rows of 0.5 / 1.5 entries: many exact ties (half the CMRs equal to their own ECG). The
    # in-batch top-1 hits of validation must be the queries whose top-1 candidate in the
    # evaluation's ranking (ptacl.eval.retrieval, own CMR included) is their own CMR
    gen = torch.Generator().manual_seed(0)
    z_ecg = torch.randint(0, 2, (40, 5), generator=gen).float() + 0.5
    z_cmr = z_ecg.clone()
    z_cmr[::2] = torch.randint(0, 2, (20, 5), generator=gen).float() + 0.5
    top1 = top1_candidates(z_ecg.numpy(), z_cmr.numpy(), exclude_self=False)
    expected = int((top1 == np.arange(40)).sum())
    assert 0 < expected < 40
    assert retrieval_hits(z_ecg, z_cmr, (1,)).tolist() == [expected]


def test_local_similarity_is_cosine():
    ecg_local = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    cmr_local = torch.tensor([[[3.0, 3.0], [0.0, -1.0]]])
    r = float(1 / np.sqrt(2))
    torch.testing.assert_close(
        local_similarity(ecg_local, cmr_local), torch.tensor([[[r, 0.0], [r, -1.0]]])
    )


def test_temporal_alignment_hits_by_hand():
    steps = 5
    similarity = torch.zeros(1, steps, steps)
    best = [0, 2, 4, 3, 0]  # exact for k=0,3; off by 1 for k=1; off by 2 for k=2; 4 for k=4
    similarity[0, torch.arange(steps), torch.tensor(best)] = 1.0
    assert temporal_alignment_hits(similarity, tolerance=0).tolist() == [2]
    assert temporal_alignment_hits(similarity, tolerance=1).tolist() == [3]
    # around the cycle step 4 -> 0 is one step away
    assert temporal_alignment_hits(similarity, tolerance=1, circular=True).tolist() == [4]


def test_alignment_ties_go_to_the_earliest_step():
    # a constant matrix: every row's best-ranked CMR step is t = 0, so only k = 0 is exact and
    # k = 0, 1 are within ±1 (and, circular, k = T − 1 too)
    flat = np.ones((4, 4))
    assert alignment_accuracy(flat) == 1 / 4
    assert alignment_accuracy(flat, 1) == 2 / 4
    assert alignment_accuracy(flat, 1, circular=True) == 3 / 4
    assert temporal_alignment_hits(torch.ones(1, 4, 4), 0).tolist() == [1]


def test_alignment_accuracy_and_its_chance_level():
    assert alignment_accuracy(np.eye(13)) == 1.0
    shifted = np.roll(np.eye(13), 1, axis=1)  # each ECG step most similar to the next CMR step
    assert alignment_accuracy(shifted) == 0.0
    assert alignment_accuracy(shifted, 1) == 12 / 13  # the last step wraps round to t = 0
    assert alignment_accuracy(shifted, 1, circular=True) == 1.0
    assert alignment_chance(13) == 1 / 13
    assert alignment_chance(13, 1) == (3 * 13 - 2) / 13**2
    assert alignment_chance(13, 1, circular=True) == 3 / 13
    # the chance level is what random matrices give on average
    rng = np.random.default_rng(0)
    mean = np.mean([alignment_accuracy(rng.normal(size=(13, 13)), 1) for _ in range(3000)])
    assert abs(mean - alignment_chance(13, 1)) < 0.01
