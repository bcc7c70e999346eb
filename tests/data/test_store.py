import numpy as np
import pandas as pd
import pytest

from ptacl.data.store import Store, StoreError
from ptacl.data.store_write import store_writer, write_store


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


def _subjects(n=5, seed=1):
    """Rows as `StoreWriter.add` takes them; row 1 has no CMR, row 3 no ECG."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        ecg = rng.standard_normal((12, 5000)).astype(np.float16)
        length = 5000 - 1000 * (i == 2)
        ecg[:, length:] = 0
        rows.append(
            {
                "eid": str(2000 + i),
                "ecg": None if i == 3 else ecg,
                "ecg_length": 0 if i == 3 else length,
                "r_peaks": None if i == 3 else np.arange(50 + i, length, 400),
                "cmr": None if i == 1 else rng.integers(0, 256, (50, 84, 84), dtype=np.uint8),
            }
        )
    return rows


def test_store_writer_writes_byte_for_byte_what_write_store_writes(tmp_path):
    rows = _subjects()
    n = len(rows)
    tables = {
        "splits": ["train", "val", "train", "test", "train"],
        "phenotypes": np.random.default_rng(2).random((n, 10)).astype(np.float32),
        "qc": pd.DataFrame({"eid": [r["eid"] for r in rows], "status": "paired"}),
        "extra_manifest": {"split_seed": 3},
    }
    with store_writer(tmp_path / "streamed", capacity=n + 3) as writer:  # spare rows are cut
        for row in rows:
            writer.add(**row)
        writer.finish(**tables)
    write_store(
        tmp_path / "saved",
        eids=[r["eid"] for r in rows],
        ecg=np.stack([np.zeros((12, 5000)) if r["ecg"] is None else r["ecg"] for r in rows]),
        cmr=np.stack(
            [np.zeros((50, 84, 84), np.uint8) if r["cmr"] is None else r["cmr"] for r in rows]
        ),
        r_peaks=[np.zeros(0, int) if r["r_peaks"] is None else r["r_peaks"] for r in rows],
        has_ecg=[r["ecg"] is not None for r in rows],
        has_cmr=[r["cmr"] is not None for r in rows],
        ecg_lengths=[r["ecg_length"] for r in rows],
        **tables,
    )
    saved = sorted(p.name for p in (tmp_path / "saved").iterdir())
    assert sorted(p.name for p in (tmp_path / "streamed").iterdir()) == saved
    for name in saved:
        assert (tmp_path / "streamed" / name).read_bytes() == (
            tmp_path / "saved" / name
        ).read_bytes(), name
    assert len(Store.open(tmp_path / "streamed")) == n
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved", "streamed"]  # no debris


def test_store_writer_publishes_nothing_on_error_or_without_finish(tmp_path):
    _write(tmp_path / "s")
    before = {p.name: p.read_bytes() for p in (tmp_path / "s").iterdir()}
    row = _subjects(1)[0]
    with (
        pytest.raises(OSError, match="disk full"),
        store_writer(tmp_path / "s", 4, overwrite=True) as w,
    ):
        w.add(**row)
        raise OSError("disk full")
    with store_writer(tmp_path / "s", 4, overwrite=True) as w:
        w.add(**row)  # left without finish(): e.g. prepare found no usable subject
    with pytest.raises(FileExistsError, match="--overwrite"), store_writer(tmp_path / "s", 4):
        pass
    assert [p.name for p in tmp_path.iterdir()] == ["s"]  # no temporary folder left behind
    assert {p.name: p.read_bytes() for p in (tmp_path / "s").iterdir()} == before
    with store_writer(tmp_path / "new", 1) as w:
        w.add(**row)
        with pytest.raises(ValueError, match="1 rows"):
            w.add(**row)
    assert not (tmp_path / "new").exists()
