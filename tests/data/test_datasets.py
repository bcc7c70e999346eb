import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ptacl.data.augment_cmr import CmrAugmentConfig, frame_indices
from ptacl.data.augment_ecg import EcgAugmentConfig
from ptacl.data.datasets import CmrDataset, EcgDataset, PairedDataset
from ptacl.data.store import Store

CROP_ONLY = EcgAugmentConfig(ft_surrogate_p=0.0, jitter_p=0.0, rescale_p=0.0)


def _start_of(window: np.ndarray, full: np.ndarray) -> int:
    """Where the (12, 2500) window was cut from `full` (12, S); random leads make it unique."""
    hits = [s for s in range(full.shape[1] - 2499) if np.array_equal(full[:, s : s + 2500], window)]
    assert len(hits) == 1
    return hits[0]


def test_ecg_items_have_the_agreed_shapes_and_values(small_store):
    store = Store.open(small_store)
    ds = EcgDataset(small_store, None, train=False, augment=None)
    assert len(ds) == 5  # the CMR-only subject has no ECG
    item = ds[2]
    assert item["ecg"].shape == (12, 2500) and item["ecg"].dtype == torch.float32
    assert item["r_peaks"].shape == (32,) and item["r_peaks"].dtype == torch.int64
    assert item["phenotypes"].shape == (10,) and torch.isnan(item["phenotypes"][3])
    assert item["eid"] == "1002" and item["index"] == 2
    np.testing.assert_array_equal(item["ecg"].numpy(), store.ecg[2, :, :2500].astype(np.float32))
    assert item["r_peaks"][:6].tolist() == list(range(100, 2500, 400))
    assert (item["r_peaks"][6:] == -1).all()


def test_training_crops_move_the_r_peaks_with_them(small_store):
    store = Store.open(small_store)
    ds = EcgDataset(small_store, "train", train=True, augment=CROP_ONLY, seed=1)
    starts = set()
    for _ in range(10):
        item = ds[0]  # row 0: only 3000 valid samples
        full = store.ecg[0].astype(np.float32)
        start = _start_of(item["ecg"].numpy(), full)
        assert start <= 500
        starts.add(start)
        expected = [p - start for p in range(100, 3000, 400) if 0 <= p - start < 2500]
        peaks = item["r_peaks"].tolist()
        assert peaks[: len(expected)] == expected and set(peaks[len(expected) :]) <= {-1}
    assert len(starts) > 1


def test_validation_items_are_deterministic(small_store):
    ds = EcgDataset(small_store, None, train=False, augment=EcgAugmentConfig())
    assert torch.equal(ds[0]["ecg"], ds[0]["ecg"])
    cm = CmrDataset(small_store, None, train=False, augment=CmrAugmentConfig())
    assert torch.equal(cm[0]["cmr"], cm[0]["cmr"])


def test_cmr_items_sample_every_second_frame_from_end_diastole(small_store):
    ds = CmrDataset(small_store, None, train=False, augment=None)
    assert len(ds) == 5  # the ECG-only subject has no CMR
    item = ds[0]
    assert item["cmr"].shape == (1, 26, 84, 84) and item["cmr"].dtype == torch.float32
    frames = item["cmr"][0, :, 0, 0].numpy() * 49  # pixel (0, 0) holds the frame number / 49
    np.testing.assert_allclose(frames, frame_indices(26), atol=0.2)


def test_paired_dataset_holds_only_pairs_and_collates(small_store):
    ds = PairedDataset(
        small_store,
        None,
        train=True,
        ecg_augment=EcgAugmentConfig(),
        cmr_augment=CmrAugmentConfig(),
    )
    assert (
        len(ds) == 4
        and len(PairedDataset(small_store, "val", train=False, ecg_augment=None, cmr_augment=None))
        == 1
    )
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["ecg"].shape == (4, 12, 2500) and batch["cmr"].shape == (4, 1, 26, 84, 84)
    assert batch["r_peaks"].shape == (4, 32) and batch["phenotypes"].shape == (4, 10)
    assert batch["eid"] == ["1000", "1001", "1002", "1003"]


def test_augmentations_repeat_under_a_seed_and_differ_between_workers(small_store):
    def epoch(seed):
        torch.manual_seed(seed)
        ds = PairedDataset(
            small_store,
            None,
            train=True,
            ecg_augment=EcgAugmentConfig(),
            cmr_augment=CmrAugmentConfig(),
            seed=5,
        )
        loader = DataLoader(ds, batch_size=1, num_workers=2, sampler=[0, 0, 0, 0])
        return [b["ecg"] for b in loader]

    first, again = epoch(0), epoch(0)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    # items 0, 1 come from worker 0 and items 2, 3 from worker 1: all four must differ
    assert len({tuple(b.flatten()[:50].tolist()) for b in first}) == 4
    assert not torch.equal(first[0], epoch(1)[0])


def test_pickling_reopens_the_store_instead_of_copying_it(small_store):
    ds = EcgDataset(small_store, None, train=True, augment=EcgAugmentConfig())
    blob = pickle.dumps(ds)
    assert len(blob) < 100_000  # the ECG array alone is 720 kB
    assert pickle.loads(blob)[1]["ecg"].shape == (12, 2500)


def test_unknown_split_is_an_error(small_store):
    with pytest.raises(ValueError, match="split"):
        EcgDataset(small_store, "training", train=False, augment=None)


def test_epoch_keys_make_items_independent_of_workers_and_resume(tiny_store):
    """(epoch, k) keys from an EpochSampler: the same batches with 0 or 2 workers, and a loader
    restored from a mid-epoch state continues with the batch the first one drew next."""
    from ptacl.training.resume import EpochSampler, ResumableLoader

    dataset = PairedDataset(
        tiny_store, "train", train=True, ecg_augment=EcgAugmentConfig(),
        cmr_augment=CmrAugmentConfig(), seed=3,
    )  # fmt: skip

    def loader(workers):
        sampler = EpochSampler(len(dataset), seed=3)
        return ResumableLoader(
            dataset, batch_size=2, sampler=sampler, drop_last=True, num_workers=workers
        )

    plain, workers = loader(0), loader(2)
    plain.sampler.set_epoch(1)
    workers.sampler.set_epoch(1)
    it = iter(plain)
    first = [next(it), next(it)]
    state = plain.state_dict()
    assert state == {"epoch": 1, "batches": 2}
    for a, b in zip(first, workers):
        assert torch.equal(a["ecg"], b["ecg"]) and torch.equal(a["cmr"], b["cmr"])
    rest = list(it)  # the epoch's 3rd batch (7 pairs: 3 batches of 2)
    restored = loader(2)
    restored.load_state_dict(state)
    again = list(restored)
    assert len(again) == len(rest) == 1
    assert torch.equal(again[0]["ecg"], rest[0]["ecg"]) and again[0]["eid"] == rest[0]["eid"]
    plain.sampler.set_epoch(2)
    assert not torch.equal(next(iter(plain))["ecg"], first[0]["ecg"])  # a new epoch, a new draw
