"""compute_embeddings: an ECG is embedded over all its crops, as a bundle embeds a recording."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ptacl.data.store import Store
from ptacl.data.store_write import write_store
from ptacl.eval.embed import EmbedError, RunEncoders, compute_embeddings
from ptacl.models import encoder_from_config


def _store(path, lengths):
    n = len(lengths)
    rng = np.random.default_rng(0)
    eids = [str(5_000_000 + i) for i in range(n)]
    return write_store(
        path,
        eids=eids,
        splits=["train"] * n,
        ecg=rng.standard_normal((n, 12, 5000)),
        cmr=np.zeros((n, 50, 84, 84), np.float32),
        r_peaks=[np.arange(200, 5000, 400)] * n,
        phenotypes=rng.uniform(50, 150, (n, 10)).astype(np.float32),
        has_ecg=[True] * n,
        has_cmr=[False] * n,
        qc=pd.DataFrame({"eid": eids, "status": "ok"}),
        ecg_lengths=lengths,
    )


def test_an_ecg_is_the_mean_of_its_crops_embeddings(tmp_path):
    store = Store.open(_store(tmp_path / "s", [5000, 3200]))
    torch.manual_seed(0)
    encoder = encoder_from_config(
        {"samples": 1000, "width": 16, "depth": 1, "heads": 2}, "ecg"
    ).eval()
    got = compute_embeddings(RunEncoders(kind="t", source="t", ecg=encoder), store, "train")
    ecg = torch.from_numpy(np.asarray(store.ecg[:], dtype=np.float32))
    with torch.no_grad():
        # 5000 samples: five crops back to back; 3200: four crops spread from 0 to 2200
        first = encoder.pool(encoder.forward_features(ecg[0].reshape(12, 5, 1000).transpose(0, 1)))
        starts = [0, 733, 1467, 2200]
        second = torch.stack([ecg[1, :, s : s + 1000] for s in starts])
        second = encoder.pool(encoder.forward_features(second))
    want = torch.stack([first.mean(0), second.mean(0)]).numpy()
    np.testing.assert_allclose(got.ecg, want, rtol=1e-5, atol=1e-6)
    assert got.eids.tolist() == ["5000000", "5000001"]


def test_an_ecg_shorter_than_the_crop_is_refused_by_name(tmp_path):
    store = Store.open(_store(tmp_path / "s", [5000, 800]))
    encoder = encoder_from_config({"samples": 1000, "width": 16, "depth": 1, "heads": 2}, "ecg")
    with pytest.raises(EmbedError, match=r"shorter than the encoder's crop of 1000.*5000001"):
        compute_embeddings(RunEncoders(kind="t", source="t", ecg=encoder), store, "train")
