"""Top-1 collapse (`ptacl.eval.collapse`): each query's best-ranked candidate, by hand."""

import numpy as np

from ptacl.eval.collapse import top1_candidates, top1_collapse
from retrieval_cases import hand_case


def test_top1_candidates_and_collapse_by_hand():
    ecg, cmr, _ = hand_case()
    # query 0 ranks 1 first, query 1 ranks 3, query 2 ranks 0, query 3 ranks 2 (self excluded)
    assert top1_candidates(ecg, cmr).tolist() == [1, 3, 0, 2]
    assert top1_candidates(ecg, cmr, chunk_size=3).tolist() == [1, 3, 0, 2]
    # identical embeddings tie everywhere: the lower position wins (the query itself if included)
    assert top1_candidates(np.ones((3, 2)), np.ones((3, 2)), exclude_self=False).tolist() == [0] * 3
    assert top1_candidates(np.ones((3, 2)), np.ones((3, 2))).tolist() == [1, 0, 0]
    # top-1s 4, 4, 4, 1, 2, -1 (no candidate): hub 4 takes 3 of 5 queries; 3 distinct of 6
    assert top1_collapse(np.array([4, 4, 4, 1, 2, -1]), 6) == {
        "top1_hub_share": 0.6,
        "top1_distinct": 3,
        "queries": 5,
        "candidates": 6,
    }
    assert top1_collapse(np.arange(4), 4)["top1_hub_share"] == 0.25  # one-to-one: 1/N
    assert top1_collapse(np.array([], dtype=int), 0)["top1_hub_share"] is None
