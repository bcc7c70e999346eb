import contextlib
import gzip
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from raw_cohort import (
    cardiosoft_xml,
    phenotype_row,
    synthetic_ecg_uv,
    write_phenotypes,
    write_subject,
)

import ptacl.data.prepare as prepare_module
import ptacl.data.process as process_module
from ptacl.cli.prepare import main
from ptacl.cmr import preprocess_cmr
from ptacl.data.augment_cmr import frame_indices
from ptacl.data.datasets import CmrDataset, EcgDataset, PairedDataset
from ptacl.data.prepare import prepare_store
from ptacl.data.splits import assign_splits
from ptacl.data.store import Store
from ptacl.data.store_write import StoreWriter, write_store
from ptacl.ecg import preprocess_ecg
from ptacl.io import read_cmr, read_ecg
from ptacl.phenotypes import PHENOTYPES
from ptacl.qc import validate_ecg


@pytest.fixture
def cohort(tmp_path):
    """1001-1003 paired (1003 without seg), 1004 ECG only, 1005 CMR only; phenotypes for
    1001, 1002, 1004 and 1009 (which has no images)."""
    for eid in ("1001", "1002"):
        write_subject(tmp_path, eid)
    write_subject(tmp_path, "1003", seg=False)
    write_subject(tmp_path, "1004", cmr=False)
    write_subject(tmp_path, "1005", ecg=False)
    write_phenotypes(tmp_path / "phenotypes.csv", ["1001", "1002", "1004", "1009"])
    return tmp_path


def _prepare(root, out="store", **kwargs):
    kwargs.setdefault("progress", False)
    return prepare_store(root / "ecg", root / "cmr", root / "phenotypes.csv", root / out, **kwargs)


def _qc(result):
    return pd.read_csv(result.qc, dtype=str, keep_default_na=False)


def _qc_of(store):
    return pd.read_csv(store.root / "qc.csv", dtype=str, keep_default_na=False)


def test_round_trip_files_to_dataset_give_the_same_values(cohort):
    result = _prepare(cohort)
    assert result.counts == {
        "paired": 3,
        "ecg_only": 1,
        "cmr_only": 1,
        "rejected": 0,
        "no_images": 1,
    }
    store = Store.open(result.store)
    assert list(store.subjects["eid"]) == ["1001", "1002", "1003", "1004", "1005"]
    assert list(store.subjects["paired"]) == [True, True, True, False, False]

    # ECG: what the readers and preprocessing give, through the store (float16) to the item
    path = cohort / "ecg" / "1002_20205_2_0.xml"
    record = read_ecg(path)
    expected = preprocess_ecg(record.signal, record.fs)
    peaks = validate_ecg(record.signal, record.fs, path)
    item = EcgDataset(store, None, train=False, augment=None)[1]
    assert item["eid"] == "1002"
    np.testing.assert_allclose(item["ecg"].numpy(), expected[:, :2500], atol=2e-3, rtol=1e-3)
    inside = peaks[peaks < 2500]
    assert item["r_peaks"][: len(inside)].tolist() == inside.tolist()
    assert (item["r_peaks"][len(inside) :] == -1).all()

    # CMR: frames 0, 2, ..., of the preprocessed cine, within the uint8 quantisation
    cine, info = preprocess_cmr(read_cmr(cohort / "cmr" / "1001" / "sa.nii.gz"))
    assert info["centre_from"] == "seg"
    item = CmrDataset(store, None, train=False, augment=None)[0]
    np.testing.assert_allclose(
        item["cmr"][0].numpy(), cine[frame_indices(26)], atol=0.5 / 255 + 1e-6
    )

    # phenotypes: row k of the CSV holds phenotype_row(k); NaN for a subject without a row
    paired = PairedDataset(store, None, train=False, ecg_augment=None, cmr_augment=None)
    items = {paired[k]["eid"]: paired[k] for k in range(len(paired))}
    np.testing.assert_array_equal(items["1002"]["phenotypes"].numpy(), np.float32(phenotype_row(1)))
    assert torch.isnan(items["1003"]["phenotypes"]).all()
    assert store.manifest["with_phenotypes"] == 3 and store.manifest["phenotypes"] == list(
        PHENOTYPES
    )


def test_qc_lists_every_subject_and_phenotype_rows_without_images(cohort):
    qc = _qc(_prepare(cohort))
    assert list(qc.columns) == [
        "eid",
        "status",
        "modality",
        "file",
        "reason",
        "warning",
        "patient_id",
    ]
    assert set(qc["eid"]) == {"1001", "1002", "1003", "1004", "1005", "1009"}
    row = qc[qc["eid"] == "1009"].iloc[0]
    assert (row["status"], row["modality"]) == ("no_images", "phenotypes")
    assert row["file"].endswith("phenotypes.csv") and "no ECG or CMR" in row["reason"]
    assert (qc.loc[qc["eid"] != "1009", "reason"] == "").all()


def _flat_xml(path):
    path.write_bytes(cardiosoft_xml(np.zeros((12, 5000))))


@pytest.mark.parametrize(
    ("damage", "modality", "file", "reason"),
    [
        (
            lambda r: _flat_xml(r / "ecg" / "1002_20205_2_0.xml"),
            "ecg",
            "1002_20205_2_0.xml",
            "flat",
        ),
        (
            lambda r: (r / "ecg" / "1002_20205_2_0.xml").write_bytes(
                (r / "ecg" / "1002_20205_2_0.xml").read_bytes()[:3000]
            ),
            "ecg",
            "1002_20205_2_0.xml",
            "XML",
        ),
        (
            lambda r: (r / "cmr" / "1002" / "sa.nii.gz").write_bytes(
                (r / "cmr" / "1002" / "sa.nii.gz").read_bytes()[:2000]
            ),
            "cmr",
            "sa.nii.gz",
            "NIfTI",
        ),
        (lambda r: os.remove(r / "cmr" / "1002" / "sa.nii.gz"), "cmr", "1002", "sa.nii.gz"),
    ],
    ids=["flat-ecg", "truncated-xml", "truncated-nifti", "folder-without-sa"],
)
def test_a_bad_file_rejects_its_modality_and_names_file_and_reason(
    cohort, damage, modality, file, reason
):
    damage(cohort)
    result = _prepare(cohort)
    qc = _qc(result)
    row = qc[(qc["eid"] == "1002") & (qc["modality"] == modality)].iloc[0]
    assert row["status"] == ("cmr_only" if modality == "ecg" else "ecg_only")
    assert row["file"].endswith(file) and reason in row["reason"]
    store = Store.open(result.store)
    k = list(store.subjects["eid"]).index("1002")
    assert store.subjects["has_ecg"][k] == (modality != "ecg")
    assert store.subjects["has_cmr"][k] == (modality != "cmr")


def test_a_subject_with_no_usable_file_is_rejected_not_stored(cohort):
    _flat_xml(cohort / "ecg" / "1004_20205_2_0.xml")
    result = _prepare(cohort)
    assert result.counts["rejected"] == 1
    assert "1004" not in list(Store.open(result.store).subjects["eid"])
    assert _qc(result).set_index("eid").loc["1004", "status"] == "rejected"


def test_the_visit_read_is_chosen_and_every_other_file_listed_with_its_reason(cohort):
    later = cohort / "ecg" / "1001_20205_3_0.xml"
    (cohort / "ecg" / "1001_20205_2_0.xml").rename(later)
    write_subject(cohort, "1001", cmr=False, name="1001_20205_2_1.xml")
    write_subject(cohort, "1001", cmr=False, name="1001_20205_2_2.xml")
    write_subject(cohort, "1001", cmr=False, name="1001_6025_2_0.xml")  # stress ECG
    (cohort / "ecg" / "README.txt").write_text("export notes")
    write_subject(cohort, "1006", cmr=False, name="1006_20205_3_0.xml")  # repeat visit only
    result = _prepare(cohort)
    qc = _qc(result)
    rows = qc[(qc["eid"] == "1001") & (qc["modality"] == "ecg")].set_index("file")["reason"]
    rows.index = [name.rsplit("/", 1)[-1] for name in rows.index]
    assert rows["1001_20205_2_1.xml"] == ""
    assert "superseded: instance 2_1" in rows["1001_20205_2_2.xml"]
    assert rows[later.name] == "ignored: instance 3, not the visit read (--instance 2)"
    assert "field 6025, not 20205" in rows["1001_6025_2_0.xml"]
    assert set(qc[qc["eid"] == "1001"]["status"]) == {"paired"}
    by_file = qc.set_index("file")
    assert by_file.loc[str(cohort / "ecg" / "README.txt"), "status"] == "ignored"
    assert by_file.loc[str(cohort / "ecg" / "1006_20205_3_0.xml"), "status"] == "ignored"
    assert "1006" not in list(Store.open(result.store).subjects["eid"])
    assert result.ignored_files == 4

    # the repeat visit, asked for: 1001 and 1006 by their instance-3 files, the rest ignored
    repeat = _prepare(cohort, "repeat", instance=3)
    eids = list(Store.open(repeat.store).subjects["eid"])
    assert eids == ["1001", "1002", "1003", "1005", "1006"]
    assert Store.open(repeat.store).manifest["ukb_instance"] == 3


def test_duplicate_eids_reject_the_modality_naming_both_files(cohort):
    other = cohort / "ecg" / "1001.npz"
    np.savez(other, signal=synthetic_ecg_uv(1) / 1000, fs=500)
    qc = _qc(_prepare(cohort))
    rows = qc[(qc["eid"] == "1001") & (qc["modality"] == "ecg")].set_index("file")
    assert len(rows) == 2 and set(rows["status"]) == {"cmr_only"}
    for path in rows.index:
        assert "duplicate eid 1001" in rows.loc[path, "reason"]
    assert str(other) in rows.loc[str(cohort / "ecg" / "1001_20205_2_0.xml"), "reason"]


def test_workers_give_the_same_store(cohort):
    one = Store.open(_prepare(cohort, "one").store)
    two = Store.open(_prepare(cohort, "two", workers=2).store)
    pd.testing.assert_frame_equal(one.subjects, two.subjects)
    for name in ("ecg", "cmr", "r_peaks", "phenotypes"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))
    pd.testing.assert_frame_equal(_qc_of(one), _qc_of(two))  # inputs are the same files


def test_splits_are_reproducible_for_a_seed_and_stratified():
    eids = [str(5000 + k) for k in range(200)]
    groups = ["paired"] * 150 + ["ecg_only"] * 50
    a = assign_splits(eids, groups, val=0.1, test=0.2, seed=3)
    assert a == assign_splits(eids[::-1], groups[::-1], val=0.1, test=0.2, seed=3)[::-1]
    assert a != assign_splits(eids, groups, val=0.1, test=0.2, seed=4)
    assert a[:150].count("test") == 30 and a[:150].count("val") == 15
    assert a[150:].count("test") == 10 and a[150:].count("val") == 5
    with pytest.raises(ValueError, match="val"):
        assign_splits(eids, groups, val=0.5, test=0.5, seed=0)


def test_an_interrupted_run_leaves_no_half_store(cohort, monkeypatch):
    calls = []
    real = process_module.process_subject

    def interrupted(*job):
        calls.append(job)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*job)

    monkeypatch.setattr(process_module, "process_subject", interrupted)
    before = set(os.listdir(cohort))
    with pytest.raises(KeyboardInterrupt):
        _prepare(cohort)
    assert set(os.listdir(cohort)) == before  # no store, no scratch or temporary folder


@contextlib.contextmanager
def _two_writes(out, capacity, *, overwrite=False):
    """`store_writer` as prepare had it before the store was streamed: rows held aside (then
    in scratch memory maps), the store then written by `write_store` in one go."""

    class Held:
        def __init__(self):
            self.eids, self.rows = [], []

        def __len__(self):
            return len(self.eids)

        def add(self, eid, *, ecg=None, ecg_length=0, r_peaks=None, cmr=None):
            self.eids.append(eid)
            self.rows.append((ecg, ecg_length, r_peaks, cmr))

        def finish(self, *, splits, phenotypes, qc, extra_manifest=None, covariates=None):
            write_store(
                out,
                eids=self.eids,
                splits=splits,
                ecg=np.stack(
                    [np.zeros((12, 5000), np.float16) if e is None else e for e, *_ in self.rows]
                ),
                cmr=np.stack(
                    [np.zeros((50, 84, 84), np.uint8) if c is None else c for *_, c in self.rows]
                ),
                r_peaks=[np.zeros(0, np.int64) if p is None else p for _, _, p, _ in self.rows],
                phenotypes=phenotypes,
                has_ecg=[e is not None for e, *_ in self.rows],
                has_cmr=[c is not None for *_, c in self.rows],
                ecg_lengths=[n for _, n, _, _ in self.rows],
                qc=qc,
                extra_manifest=extra_manifest,
                overwrite=overwrite,
                covariates=covariates,
            )

    yield Held()


def test_the_streamed_store_is_byte_for_byte_the_two_write_one(cohort, monkeypatch):
    # 1005 (CMR only) unreadable: rejected, so the arrays are cut to 4 of 5 rows
    (cohort / "cmr" / "1005" / "sa.nii.gz").write_bytes(b"not gzip")
    streamed = _prepare(cohort, "streamed")
    monkeypatch.setattr(prepare_module, "store_writer", _two_writes)
    saved = _prepare(cohort, "saved")
    assert streamed.counts == saved.counts and streamed.counts["rejected"] == 1
    names = sorted(p.name for p in saved.store.iterdir())
    assert sorted(p.name for p in streamed.store.iterdir()) == names
    for name in names:  # arrays, subjects.csv, qc.csv and manifest.json alike
        assert (streamed.store / name).read_bytes() == (saved.store / name).read_bytes(), name


@pytest.mark.parametrize("existing", [False, True], ids=["new", "over-an-old-store"])
def test_an_error_mid_prepare_leaves_no_store_and_no_debris(cohort, monkeypatch, existing):
    """An ordinary exception (here the disk filling up on the third row) mid-run."""
    if existing:
        _prepare(cohort)
    before = {p: p.read_bytes() for p in cohort.rglob("*") if p.is_file()}
    real = StoreWriter.add

    def add(self, eid, **row):
        if len(self) == 2:
            raise OSError(28, "No space left on device")
        real(self, eid, **row)

    monkeypatch.setattr(StoreWriter, "add", add)
    with pytest.raises(OSError, match="No space left"):
        _prepare(cohort, overwrite=True)
    after = {p: p.read_bytes() for p in cohort.rglob("*") if p.is_file()}
    assert after == before  # the old store (if any) untouched, nothing else written
    assert (cohort / "store").is_dir() == existing
    assert not [p for p in cohort.iterdir() if p.name.startswith(".")]


def test_cli_never_overwrites_without_permission(cohort, capsys):
    argv = [
        "--ecg",
        str(cohort / "ecg"),
        "--cmr",
        str(cohort / "cmr"),
        "--phenotypes",
        str(cohort / "phenotypes.csv"),
        "--out",
        str(cohort / "store"),
        "--quiet",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "3 paired, 1 ecg_only, 1 cmr_only, 0 rejected, 1 no_images" in out
    assert str(cohort / "store" / "qc.csv") in out
    stamp = (cohort / "store" / "manifest.json").stat().st_mtime_ns
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (cohort / "store" / "manifest.json").stat().st_mtime_ns == stamp
    assert main([*argv, "--overwrite", "--seed", "1"]) == 0
    assert Store.open(cohort / "store").manifest["split_seed"] == 1


def test_cli_fails_only_when_no_subject_is_usable(tmp_path, capsys):
    (tmp_path / "ecg").mkdir()
    _flat_xml(tmp_path / "ecg" / "1_20205_2_0.xml")
    (tmp_path / "ecg" / "2_20205_2_0.xml").write_bytes(gzip.compress(b"not xml"))
    assert main(["--ecg", str(tmp_path / "ecg"), "--out", str(tmp_path / "s"), "--quiet"]) == 1
    assert not (tmp_path / "s").exists()
    qc = pd.read_csv(tmp_path / "s.qc.csv")
    assert list(qc["status"]) == ["rejected", "rejected"] and qc["reason"].str.len().min() > 0
    assert "s.qc.csv" in capsys.readouterr().err


def test_cli_names_a_missing_folder(tmp_path, capsys):
    assert main(["--ecg", str(tmp_path / "nope"), "--out", str(tmp_path / "s")]) == 2
    assert "nope: ECG folder not found" in capsys.readouterr().err


def test_a_store_inside_the_ecg_folder_is_not_taken_for_ecgs(cohort):
    out = cohort / "ecg" / "store"
    for _ in range(2):
        result = prepare_store(
            cohort / "ecg", cohort / "cmr", None, out, overwrite=True, progress=False
        )
        assert result.counts["rejected"] == 0 and result.counts["paired"] == 3
    assert not _qc(result)["file"].str.startswith(str(out)).any()


def test_single_modality_subjects_do_not_reshuffle_the_pairs():
    eids = [str(5000 + k) for k in range(100)]
    pairs = assign_splits(eids, ["paired"] * 100, val=0.1, test=0.2, seed=0)
    more = assign_splits(
        [*eids, "9999"], ["paired"] * 100 + ["ecg_only"], val=0.1, test=0.2, seed=0
    )
    assert more[:100] == pairs


def test_a_phenotype_table_with_duplicate_eids_stops_the_run_naming_it(cohort, capsys):
    csv = cohort / "phenotypes.csv"
    csv.write_text(csv.read_text() + csv.read_text().splitlines()[1] + "\n")
    argv = ["--ecg", str(cohort / "ecg"), "--phenotypes", str(csv), "--out", str(cohort / "s")]
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(csv) in err and "duplicate eids ['1001']" in err
    assert not (cohort / "s").exists()


def test_a_terminated_run_leaves_no_half_store(cohort):
    """`kill` (SIGTERM) mid-run, as a cluster's time limit does: nothing is left behind."""
    script = f"""
import sys, time
import ptacl.data.process as p
real = p.process_subject
def slow(*job):
    print("working", flush=True)
    time.sleep(0.5)
    return real(*job)
p.process_subject = slow
from ptacl.cli.prepare import main
sys.exit(main(["--ecg", r"{cohort / "ecg"}", "--cmr", r"{cohort / "cmr"}",
               "--out", r"{cohort / "store"}", "--quiet"]))
"""
    before = set(os.listdir(cohort))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "working"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert set(os.listdir(cohort)) == before


def test_a_showcase_export_with_a_user_map_prepares_without_renaming(cohort, capsys):
    """Issue 15: showcase columns were refused, so every user renamed them by hand."""
    from ptacl.phenotypes import UKB_FIELDS

    rows = {"eid": ["1001", "1002"]}
    for field, (column, _) in UKB_FIELDS.items():
        k = PHENOTYPES.index(column)
        rows[f"{field}-2.0"] = [phenotype_row(0)[k], phenotype_row(1)[k]]
    rows["24105-2.0"] = ["", ""]  # LV mass from another field, through the user's map
    rows["99999-2.0"] = [100.0 + 5, 100.0]
    pd.DataFrame(rows).to_csv(cohort / "ukb.csv", index=False)
    (cohort / "map.yaml").write_text("'99999': LVM\n")
    argv = ["--ecg", str(cohort / "ecg"), "--cmr", str(cohort / "cmr"), "--phenotypes"]
    argv += [str(cohort / "ukb.csv"), "--phenotype-map", str(cohort / "map.yaml")]
    assert main([*argv, "--out", str(cohort / "store"), "--quiet"]) == 0
    store = Store.open(cohort / "store")
    phen = pd.DataFrame(store.phenotypes, columns=list(PHENOTYPES), index=store.subjects["eid"])
    np.testing.assert_allclose(phen.loc["1002", "LVEDV (mL)"], phenotype_row(1)[0], rtol=1e-6)
    assert phen.loc["1001", "LVM (g)"] == 105.0
