"""The one top-level handler of `ptacl` (`ptacl.cli.main`): a user's mistake or a hostile file
is one line on stderr, `ptacl <command>: <file>: <reason>`, with a documented exit code; a bug
keeps its traceback and asks for a report (issue 20, docs/reliability.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from faults import read_only
from inference.builders import probe_store_for, tiny_encoder
from ptacl.cli.main import main as ptacl
from ptacl.config import save_config


class Payload:
    """A pickled object that would print if unpickled (weights_only refuses it)."""

    def __reduce__(self):
        return (print, ("PAYLOAD RAN",))


def one_line(capsys, *argv: str) -> tuple[int, str]:
    """Run the real `ptacl` entry point; its exit code and its single stderr line."""
    code = ptacl(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "PAYLOAD RAN" not in captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return code, lines[0]


def pickled_run(root: Path, store: Path) -> Path:
    """An ECG MAE run folder whose last.ckpt carries a pickled object besides its weights."""
    from ptacl.training.loaders import DataConfig
    from ptacl.training.mae import MaeRunConfig

    encoder = tiny_encoder(seed=3)
    save_config(
        MaeRunConfig(encoder=encoder.config, data=DataConfig(store=str(store))),
        root / "config.yaml",
    )
    state = {f"mae.encoder.{k}": v for k, v in encoder.state_dict().items()}
    (root / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": state, "extra": Payload()}, root / "checkpoints" / "last.ckpt")
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return probe_store_for(tmp_path_factory)


def test_embed_with_a_pickled_checkpoint(store: Path, tmp_path: Path, capsys) -> None:
    run = pickled_run(tmp_path / "run", store)
    args = ["embed", "--model", str(run), "--data", str(store), "--out", str(tmp_path / "e.npz")]
    code, line = one_line(capsys, *args)
    ckpt = run / "checkpoints" / "last.ckpt"
    assert code == 1 and f"ptacl embed: {ckpt}: not a readable checkpoint: Unpickling" in line


def test_align_with_a_pickled_init_run(tiny_store: Path, tmp_path: Path, capsys) -> None:
    run = pickled_run(tmp_path / "run", tiny_store)
    args = [
        "align",
        "--data",
        str(tiny_store),
        "--ecg-init",
        str(run),
        "--out",
        str(tmp_path / "a"),
    ]
    code, line = one_line(
        capsys, *args, "freeze_blocks=0", "loss.local_space=projection", "data.batch_size=4"
    )
    assert code == 2 and "not a readable checkpoint: UnpicklingError" in line


def test_align_with_encoders_its_local_loss_cannot_compare(tiny_store, tmp_path, capsys) -> None:
    """A config mistake found when the module is built: once a ValueError traceback."""
    args = [
        "align",
        "--data",
        str(tiny_store),
        "--out",
        str(tmp_path / "a"),
        "ecg_encoder.width=16",
    ]
    code, line = one_line(
        capsys, *args, "loss.local_space=tokens", "freeze_blocks=0", "data.batch_size=4"
    )
    assert code == 2 and "loss.local_space=tokens compares tokens directly" in line


@pytest.mark.parametrize("command", ["synth", "pretrain"])
def test_writing_into_a_read_only_folder(
    command: str, tiny_store: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir()
    read_only(monkeypatch, folder)
    out = str(folder / "out")
    argv = {
        "synth": ["synth", "--out", out, "--subjects", "2", "--quiet"],
        "pretrain": ["pretrain", "ecg", "--data", str(tiny_store), "--out", out],
    }[command]
    code, line = one_line(capsys, *argv)
    assert code == 1 and line.startswith(f"ptacl {command}: {folder}/")
    assert line.endswith(": Permission denied")


def test_an_unexpected_error_keeps_its_traceback_and_asks_for_a_report(monkeypatch, capsys):
    from ptacl.synth import cohort

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cohort, "generate_cohort", broken)
    assert ptacl(["synth", "--out", "x", "--subjects", "2"]) == 70
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError: a bug" in err
    assert (
        err.strip().splitlines()[-1].startswith("ptacl synth: an unexpected error, which is a bug")
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "--model", "run", "--data", "store", "--out", "o", "--n-boot", "0"],
        ["evaluate", "--model", "run", "--data", "store", "--out", "o", "--batch-size", "0"],
        ["evaluate", "--model", "run", "--data", "store", "--out", "o", "--csls-k", "0"],
        ["finetune", "--model", "none", "--data", "store", "--out", "o", "--n-boot", "0"],
        ["export", "--model", "run", "--out", "o", "--n-boot", "-1"],
        ["export", "--model", "run", "--out", "o", "--batch-size", "0"],
        ["predict", "--model", "b", "--ecg", "e.xml", "--out", "p.csv", "--batch-size", "0"],
        ["embed", "--model", "run", "--data", "store", "--out", "e.npz", "--batch-size", "0"],
        ["retrieve", "--model", "b", "--ecg", "e.xml", "--database", "d.npz", "--k", "0"],
    ],
    ids=[
        "evaluate-n-boot",
        "evaluate-batch-size",
        "evaluate-csls-k",
        "finetune-n-boot",
        "export-n-boot",
        "export-batch-size",
        "predict-batch-size",
        "embed-batch-size",
        "retrieve-k",
    ],
)
def test_a_count_below_one_is_refused_before_any_work(argv, tmp_path, monkeypatch, capsys):
    """--n-boot 0 reached the bootstrap's ValueError after the embedding (or the whole
    fine-tune) and ended in "a bug in ptacl"; now argparse refuses it at once (status 2)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as refused:
        ptacl(argv)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and "must be at least 1" in err and "bug" not in err
    assert not any(tmp_path.iterdir())  # nothing started
