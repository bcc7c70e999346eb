"""`ptacl prepare` under faults: absurd labels, refused files, a second writer, debris, a full
disk. Each test names the fault of docs/reliability.md it backs."""

import errno
import os
import signal
import sys
import time

import numpy as np
import pandas as pd
import pytest
from raw_cohort import phenotype_row, write_phenotypes, write_subject

import ptacl.data.prepare as prepare_module
import ptacl.data.process as process_module
from faults import alive, descendants, hold_lock, holders, ptacl_process
from ptacl.atomic import lock_path
from ptacl.cli.prepare import main
from ptacl.data.store import Store
from ptacl.phenotypes import PHENOTYPES


@pytest.fixture
def ecg_cohort(tmp_path):
    """Four ECG-only subjects 1001-1004 and a phenotype table for them."""
    for eid in ("1001", "1002", "1003", "1004"):
        write_subject(tmp_path, eid, cmr=False)
    write_phenotypes(tmp_path / "phenotypes.csv", ["1001", "1002", "1003", "1004"])
    return tmp_path


def _argv(root, out="store", *extra):
    return ["--ecg", str(root / "ecg"), "--phenotypes", str(root / "phenotypes.csv"),
            "--out", str(root / out), "--quiet", *extra]  # fmt: skip


def test_absurd_labels_become_nan_with_their_reason_in_qc(ecg_cohort, capsys):
    table = pd.read_csv(ecg_cohort / "phenotypes.csv", dtype={"eid": str})
    table.loc[0, "LVEDV (mL)"] = -55
    table.loc[1, "LVEF (%)"] = 150
    table.loc[2, "LVM (g)"] = 1e30
    table.loc[3, "RVSV (mL)"] = np.inf
    table = table.drop(columns=["LVCO (L/min)"])  # a missing column must be said, not hidden
    table.to_csv(ecg_cohort / "phenotypes.csv", index=False)
    assert main(_argv(ecg_cohort)) == 0
    captured = capsys.readouterr()
    assert "phenotype values set to NaN: 4 (belonging to 4 subjects)" in captured.out
    assert "no usable value in 1 phenotype column(s)" in captured.err and "LVCO" in captured.err
    store = Store.open(ecg_cohort / "store")
    phen = pd.DataFrame(store.phenotypes, columns=list(PHENOTYPES), index=store.subjects["eid"])
    assert np.isnan(phen.loc["1001", "LVEDV (mL)"]) and phen.loc["1001", "LVESV (mL)"] == 50
    assert np.isnan(phen.loc["1002", "LVEF (%)"]) and phen.loc["1002", "LVEDV (mL)"] == 130
    assert np.isnan(phen.loc["1003", "LVM (g)"]) and np.isnan(phen.loc["1004", "RVSV (mL)"])
    assert phen.loc["1003", "LVEDV (mL)"] == phenotype_row(2)[0]
    assert np.isfinite(phen.to_numpy()).sum() == 4 * 9 - 4  # only the impossible values
    qc = pd.read_csv(store.root / "qc.csv", dtype=str, keep_default_na=False)
    labels = qc[qc["modality"] == "phenotypes"].set_index("eid")["reason"]
    assert "LVEDV -55 mL outside the physiological range" in labels["1001"]
    assert "LVEF 150 % outside" in labels["1002"] and "LVM 1e+30 g outside" in labels["1003"]
    assert "RVSV inf mL not finite" in labels["1004"]
    assert store.manifest["phenotype_values_set_to_nan"] == 4


def test_the_summary_counts_refused_files(ecg_cohort, capsys):
    for eid in ("1002", "1003"):
        (ecg_cohort / "ecg" / f"{eid}_20205_2_0.xml").write_text("<broken")
    assert main(_argv(ecg_cohort)) == 0
    out = capsys.readouterr().out
    assert "2 ecg_only, 0 cmr_only, 2 rejected" in out
    assert "files refused: 2 (belonging to 2 subjects)" in out


def test_a_second_prepare_into_the_same_store_is_refused(ecg_cohort, capsys):
    holder = hold_lock(ecg_cohort / "store")
    try:
        assert main(_argv(ecg_cohort)) == 2
        assert f"another ptacl process (pid {holder.pid})" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert not (ecg_cohort / "store").exists()
    # the killed holder's lock file stays (the next run takes it over and removes it); no more
    assert [p.name for p in ecg_cohort.iterdir() if p.name.startswith(".")] == [".store.lock"]


def test_debris_of_a_killed_run_is_removed_on_the_next(ecg_cohort, capsys):
    debris = ecg_cohort / ".store.tmp-k9"
    debris.mkdir()
    (debris / "ecg.npy").write_bytes(b"\0" * 100)
    with pytest.warns(UserWarning, match=r"removed .*\.store\.tmp-k9"):
        assert main(_argv(ecg_cohort)) == 0
    assert sorted(p.name for p in ecg_cohort.iterdir() if p.name.startswith(".")) == []


def test_too_little_space_is_refused_before_any_work(ecg_cohort, monkeypatch, capsys):
    usage = prepare_module.shutil.disk_usage(ecg_cohort)
    monkeypatch.setattr(
        prepare_module.shutil, "disk_usage", lambda p: usage._replace(free=10 * 2**20)
    )
    monkeypatch.setattr(process_module, "process_subject", lambda *a: pytest.fail("read"))
    assert main(_argv(ecg_cohort)) == 1
    err = capsys.readouterr().err
    assert "no space left on the device: a store of 4 subjects needs 0.02 GB" in err
    assert "0.01 GB free on" in err and str(ecg_cohort / "store") in err
    assert sorted(p.name for p in ecg_cohort.iterdir()) == ["ecg", "phenotypes.csv"]


def test_a_disk_that_fills_up_leaves_nothing_and_a_message(ecg_cohort, monkeypatch, capsys):
    """Once a SIGBUS (rc 135, no message) from writing into a sparse memory map."""

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    assert main(_argv(ecg_cohort)) == 1
    err = capsys.readouterr().err
    assert f"writing {ecg_cohort / 'store'} failed" in err and "no space left" in err
    assert sorted(p.name for p in ecg_cohort.iterdir()) == ["ecg", "phenotypes.csv"]
    assert not lock_path(ecg_cohort / "store").exists()


def test_saturated_and_rescaled_ecgs_are_refused_not_paired(ecg_cohort):
    """Lead II pinned at the ADC limit, every lead clipped at 40 % of its peak, and a x100
    scale slip: once all stored as usable ECGs (z-scoring hides them from the model)."""
    from raw_cohort import cardiosoft_xml, synthetic_ecg_uv

    stuck = synthetic_ecg_uv(1001)
    stuck[1, 1000:4000] = 5000.0  # µV: the top of the amplifier's range for 6 s
    stuck[1, :1000] = np.minimum(stuck[1, :1000], 4000)
    peak = np.abs(synthetic_ecg_uv(1002)).max(axis=1, keepdims=True)
    clipped = np.clip(synthetic_ecg_uv(1002), -0.4 * peak, 0.4 * peak)
    for eid, strip in (("1001", stuck), ("1002", clipped), ("1003", synthetic_ecg_uv(3) * 100)):
        (ecg_cohort / "ecg" / f"{eid}_20205_2_0.xml").write_bytes(cardiosoft_xml(strip))
    result = prepare_module.prepare_store(
        ecg_cohort / "ecg", None, None, ecg_cohort / "store", progress=False
    )
    assert result.counts["ecg_only"] == 1 and result.refused_files == 3
    qc = pd.read_csv(result.qc, dtype=str, keep_default_na=False).set_index("eid")["reason"]
    assert "lead II stuck at 5 mV for 6.00 s" in qc["1001"]
    assert "clipped" in qc["1002"] and "implausible amplitude" in qc["1003"]
    assert qc["1004"] == ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_with_workers_leaves_no_orphan_and_the_rerun_succeeds_at_once(tmp_path):
    """Once the two pool workers outlived a `kill -9` of prepare, holding `.store.lock` (their
    copy of the descriptor, inherited through fork), and every rerun was refused."""
    eids = [str(1001 + k) for k in range(24)]
    for eid in eids:
        write_subject(tmp_path, eid, cmr=False)
    write_phenotypes(tmp_path / "phenotypes.csv", eids)
    proc = ptacl_process("prepare", *_argv(tmp_path, "store", "--workers", "2"))
    workers: set[int] = set()
    deadline = time.monotonic() + 60
    while len(workers) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
        workers = descendants(proc.pid)  # the pool's workers (and spawn's resource tracker)
    assert len(workers) >= 2 and proc.poll() is None, proc.stderr.read()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    held_by = holders(lock_path(tmp_path / "store"))  # (a half-started worker, for a moment)
    rerun = main(_argv(tmp_path, "store", "--workers", "2"))
    assert rerun == 0, f"refused; right after the kill these held the lock: {held_by}"
    assert Store.open(tmp_path / "store").subjects["eid"].tolist() == eids
    deadline = time.monotonic() + 5
    while alive(workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    orphans = alive(workers)
    for pid in orphans:
        os.kill(pid, signal.SIGKILL)
    assert not orphans
