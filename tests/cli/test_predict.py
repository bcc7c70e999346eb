"""`ptacl predict`: one CSV row per file, error rows for bad files, exit status, refusals."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# A plain module beside the inference tests; pytest puts tests/ on sys.path (root conftest).
from inference.builders import beats_ecg, bundle_for, write_cardiosoft_xml
from ptacl.cli.main import main as ptacl
from ptacl.phenotypes import PHENOTYPES


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bundle_for(tmp_path_factory)


@pytest.fixture
def xmls(tmp_path: Path) -> list[Path]:
    return [
        write_cardiosoft_xml(tmp_path / f"{1000010 + i}_20205_2_0.xml", beats_ecg(60 + 10 * i, 1.0))
        for i in range(3)
    ]


def test_all_files_ok(bundle: Path, xmls: list[Path], tmp_path: Path, capsys) -> None:
    from pydicom import examples

    files = [*xmls, Path(examples.get_path("waveform"))]
    out = tmp_path / "out" / "predictions.csv"
    code = ptacl(["predict", "--model", str(bundle), "--ecg", *map(str, files), "--out", str(out)])
    assert code == 0
    table = pd.read_csv(out, dtype={"eid": str})
    assert table["eid"].tolist() == ["1000010", "1000011", "1000012", "waveform_ecg"]
    assert (table["status"] == "ok").all(), table["status"].tolist()
    assert list(table.columns[:5]) == ["file", "eid", "status", "duration_s", "ood_score"]
    assert list(table.columns[5:15]) == list(PHENOTYPES)  # where they were before intervals
    bounds = [f"{c} {side}" for c in PHENOTYPES for side in ("lower", "upper")]
    assert list(table.columns[15:]) == bounds
    for column in PHENOTYPES:  # rounding to the unit's decimals keeps the order
        assert (table[f"{column} lower"] <= table[column]).all()
        assert (table[column] <= table[f"{column} upper"]).all()
    assert np.isfinite(table[list(PHENOTYPES)].to_numpy()).all()
    assert "4 of 4 files ok, 0 with warnings, 0 with errors" in capsys.readouterr().out


def test_bad_file_gets_a_row_and_exit_1(
    bundle: Path, xmls: list[Path], tmp_path: Path, capsys
) -> None:
    bad = tmp_path / "1000099_20205_2_0.xml"
    bad.write_bytes(b"\x00\x01 not xml")
    out = tmp_path / "p.csv"
    args = ["predict", "--model", str(bundle), "--ecg", str(xmls[0]), str(bad), str(xmls[1])]
    code = ptacl([*args, "--out", str(out), "--embeddings"])
    assert code == 1
    table = pd.read_csv(out, dtype={"eid": str}, keep_default_na=False, na_values=[""])
    assert table["status"][[0, 2]].tolist() == ["ok", "ok"]
    assert table["status"][1].startswith(f"error: {bad}")
    assert np.isnan(table.loc[1, list(PHENOTYPES)].to_numpy(float)).all()
    assert sum(c.startswith("emb_") for c in table.columns) == 16
    err = capsys.readouterr().err
    assert str(bad) in err


def test_file_list_from_at_file(bundle: Path, xmls: list[Path], tmp_path: Path) -> None:
    listing = tmp_path / "files.txt"
    listing.write_text("\n".join(map(str, xmls)) + "\n")
    out = tmp_path / "p.csv"
    assert (
        ptacl(["predict", "--model", str(bundle), "--ecg", f"@{listing}", "--out", str(out)]) == 0
    )
    assert len(pd.read_csv(out)) == 3


def test_tampered_bundle_is_refused(bundle: Path, xmls: list[Path], tmp_path: Path, capsys) -> None:
    copy = Path(shutil.copytree(bundle, tmp_path / "bundle"))
    weights = copy / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    out = tmp_path / "p.csv"
    assert ptacl(["predict", "--model", str(copy), "--ecg", str(xmls[0]), "--out", str(out)]) == 2
    assert "does not match the manifest" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc/self/fd")
def test_a_full_disk_keeps_the_old_csv_and_leaves_no_lock(
    bundle: Path, xmls: list[Path], tmp_path: Path, monkeypatch, capsys
) -> None:
    """Once `.p.csv.lock` stayed behind: the lock's pid could not be written."""
    from faults import fill_disk

    out = tmp_path / "out" / "p.csv"
    out.parent.mkdir()
    out.write_text("old\n")

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    fill_disk(monkeypatch, out.parent)
    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    code = ptacl(["predict", "--model", str(bundle), "--ecg", str(xmls[0]), "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no space left" in err.lower()
    assert sorted(p.name for p in out.parent.iterdir()) == ["p.csv"]
    assert out.read_text() == "old\n"


def test_a_warning_row_exits_0_and_values_are_written_to_a_sensible_precision(
    bundle: Path, xmls: list[Path], tmp_path: Path, capsys
) -> None:
    """Every row written, one only with a warning (a needle train, unlike the training ECGs):
    exit 0, the warning on stderr and in `status`; values to 0.1 mL / 0.01 L/min, not 16 digits."""
    from inference.builders import _GAINS

    rng = np.random.default_rng(0)
    needle = np.zeros(5000)
    needle[::400] = 5.0
    spikes = (_GAINS[:, None] * needle + rng.normal(0, 0.01, (12, 5000))).astype(np.float32)
    odd = write_cardiosoft_xml(tmp_path / "1000020_20205_2_0.xml", spikes)
    out = tmp_path / "predictions.csv"
    args = ["predict", "--model", str(bundle), "--ecg", str(xmls[0]), str(odd), "--out", str(out)]
    assert ptacl([*args, "--embeddings"]) == 0
    assert "unlike the training ECGs" in capsys.readouterr().err
    table = pd.read_csv(out, dtype=str)
    assert table["status"][0] == "ok" and table["status"][1].startswith("warning: ")
    assert table["LVEDV (mL)"].str.fullmatch(r"-?\d+\.\d").all(), table["LVEDV (mL)"].tolist()
    assert table["LVCO (L/min)"].str.fullmatch(r"-?\d+\.\d{1,2}").all()
    assert table["emb_0"].str.len().max() <= 14  # float32, not float64's 17 digits
