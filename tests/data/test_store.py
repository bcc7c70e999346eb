import numpy as np
import pandas as pd
import pytest

from ptacl.data.store import Store, StoreError, write_store


def _write(out, n=4, overwrite=False):
    rng = np.random.default_rng(0)
    return write_store(
        out,
        eids=[str(1000 + i) for i in range(n)],
        splits=["train", "train", "val", "test"][:n],
        ecg=rng.standard_normal((n, 12, 5000)).astype(np.float32),
        cmr=rng.random((n, 50, 84, 84)).astype(np.float32),
        r_peaks=[np.array([10, 500, 990]), np.array([7]), np.array([], int), np.array([3, 4])][:n],
        phenotypes=rng.random((n, 10)),
        has_ecg=[True, True, False, True][:n],
        has_cmr=[True, False, True, True][:n],
        qc=pd.DataFrame({"eid": [str(1000 + i) for i in range(n)], "status": "ok"}),
        overwrite=overwrite,
    )


def test_round_trip(tmp_path):
    _write(tmp_path / "s")
    store = Store.open(tmp_path / "s")
    assert len(store) == 4
    assert store.ecg.dtype == np.float16 and store.cmr.dtype == np.uint8
    assert list(store.peaks(0)) == [10, 500, 990] and list(store.peaks(2)) == []
    assert list(store.indices("train", ecg=True, cmr=True)) == [0]
    assert list(store.indices(cmr=True)) == [0, 2, 3]
    assert store.manifest["paired"] == 2
    assert list(store.subjects["ecg_length"]) == [5000, 5000, 0, 5000]


def test_never_overwrites_without_permission(tmp_path):
    _write(tmp_path / "s")
    with pytest.raises(FileExistsError, match="--overwrite"):
        _write(tmp_path / "s")
    _write(tmp_path / "s", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["s"]  # no temporary folder left behind


def test_not_a_store(tmp_path):
    with pytest.raises(StoreError, match="not a prepared store"):
        Store.open(tmp_path)
