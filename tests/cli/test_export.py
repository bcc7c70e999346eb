"""`ptacl export` from run folders laid out as the training stages write them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from inference.builders import beats_ecg, probe_store_for, tiny_encoder
from ptacl.cli.export import build_parser as build_export_parser
from ptacl.cli.main import main as ptacl
from ptacl.config import save_config, to_dict
from ptacl.inference import Predictor, encoder_fingerprint
from ptacl.schema import ECG_FS


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return probe_store_for(tmp_path_factory)


def mae_run(root: Path, store: Path) -> Path:
    """An ECG MAE run: config.yaml (MaeRunConfig) and the encoder under `mae.encoder.`."""
    from ptacl.training.loaders import DataConfig
    from ptacl.training.mae import MaeRunConfig

    encoder = tiny_encoder(seed=3)
    cfg = MaeRunConfig(encoder=encoder.config, data=DataConfig(store=str(store)))
    save_config(cfg, root / "config.yaml")
    state = {f"mae.encoder.{k}": v for k, v in encoder.state_dict().items()}
    state["mae.decoder.weight"] = torch.zeros(3)
    (root / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": state}, root / "checkpoints" / "last.ckpt")
    return root


def align_run(root: Path, store: Path) -> Path:
    """An align run: `ecg_encoder.` and the projection head `ecg_head.` in the checkpoint."""
    from ptacl.models.heads import HeadConfig, projection_head

    encoder = tiny_encoder(seed=4)
    head = projection_head(16, HeadConfig(hidden=8, dim=4))
    root.mkdir(parents=True)
    config = {"ecg_encoder": to_dict(encoder.config), "data": {"store": str(store)}}
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    state = {f"ecg_encoder.{k}": v for k, v in encoder.state_dict().items()}
    state |= {f"ecg_head.{k}": v for k, v in head.state_dict().items()}
    state["cmr_head.0.weight"] = torch.zeros(8, 16)
    (root / "checkpoints").mkdir()
    torch.save({"state_dict": state}, root / "checkpoints" / "best.ckpt")
    return root


def test_export_mae_run(store: Path, tmp_path: Path, capsys) -> None:
    run = mae_run(tmp_path / "run", store)
    out = tmp_path / "bundle"
    assert ptacl(["export", "--model", str(run), "--out", str(out)]) == 0
    assert "R² on the validation split (15 subjects)" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["source"]["stage"] == "pretrain"
    assert config["source"]["checkpoint"] == "last.ckpt"  # no best.ckpt: falls back to last
    assert config["embedding"]["shared_dim"] is None
    assert config["embedding"]["encoder_id"] == encoder_fingerprint(
        tiny_encoder(seed=3).state_dict()
    )
    values = Predictor(out).predict(beats_ecg(70, 1.0), fs=ECG_FS)
    assert np.isfinite(list(values.values())).all()


def test_export_align_run_keeps_the_projection(store: Path, tmp_path: Path) -> None:
    run = align_run(tmp_path / "run", store)
    out = tmp_path / "bundle"
    assert ptacl(["export", "--model", str(run), "--out", str(out), "--data", str(store)]) == 0
    predictor = Predictor(out)
    assert predictor.bundle.config["source"]["stage"] == "align"
    assert predictor.bundle.config["embedding"]["shared_dim"] == 4
    assert predictor.embed(beats_ecg(70, 1.0), fs=ECG_FS, space="shared").shape == (4,)


def test_export_errors(store: Path, tmp_path: Path, capsys) -> None:
    assert (
        ptacl(["export", "--model", str(tmp_path / "nothing"), "--out", str(tmp_path / "b")]) == 1
    )
    assert "not a run folder" in capsys.readouterr().err
    run = mae_run(tmp_path / "run", store)
    out = tmp_path / "bundle"
    assert ptacl(["export", "--model", str(run), "--out", str(out)]) == 0
    assert ptacl(["export", "--model", str(run), "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert ptacl(["export", "--model", str(run), "--out", str(out), "--overwrite"]) == 0


def finetune_run(root: Path, store: Path) -> tuple[Path, torch.nn.Module]:
    """A fine-tune run as `ptacl finetune` writes it: FinetuneModule's state dict."""
    from ptacl.training.finetune import AttentionPoolConfig, FinetuneConfig, FinetuneModule
    from ptacl.training.loaders import DataConfig

    cfg = FinetuneConfig(
        model="none",
        ecg_encoder=tiny_encoder().config,
        head=AttentionPoolConfig(heads=2),
        data=DataConfig(store=str(store)),
    )
    torch.manual_seed(5)
    mean = [150.0, 60, 90, 60, 5, 110, 160, 70, 90, 57]
    sd = [25.0, 10, 15, 5, 1, 20, 25, 10, 15, 5]
    module = FinetuneModule(to_dict(cfg), mean, sd).eval()
    save_config(cfg, root / "config.yaml")
    (root / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": module.state_dict()}, root / "checkpoints" / "best.ckpt")
    return root, module


def test_export_finetune_run_predicts_like_the_module(store: Path, tmp_path: Path, capsys) -> None:
    run, module = finetune_run(tmp_path / "run", store)
    out = tmp_path / "bundle"
    assert ptacl(["export", "--model", str(run), "--out", str(out)]) == 0
    assert "90 % prediction intervals, coverage on the test split:" in capsys.readouterr().out
    predictor = Predictor(out)
    # the fine-tune head is calibrated too: on the run's store's val split
    assert predictor.bundle.intervals["fitted_on"]["split"] == "val"
    assert set(predictor.bundle.intervals["test"]) == set(predictor.columns)
    config = predictor.bundle.config
    assert config["source"]["stage"] == "finetune"
    assert config["head"]["kind"] == "attention_pool"
    assert config["head"]["validation_subjects"] == 15
    # One 5-s recording is exactly one crop: the bundle must give what the module gives.
    signal = beats_ecg(70, 1.0, seconds=5.0)
    predicted = predictor.predict(signal, fs=ECG_FS)
    values = np.array([predicted[c] for c in predictor.columns])
    x = torch.from_numpy(predictor.prepare(signal, fs=ECG_FS)[None])
    with torch.no_grad():
        expected = module.predict_phenotypes(x)[0].double().numpy()
    np.testing.assert_allclose(values, expected, rtol=1e-5)


def test_export_fits_the_endpoints_it_is_told_and_refuses_a_bad_one(
    store: Path, tmp_path: Path, capsys
) -> None:
    from inference.builders import ENDPOINT_OVERRIDES

    run, _ = finetune_run(tmp_path / "run", store)
    out = tmp_path / "bundle"
    bad = ["export", "--model", str(run), "--out", str(out), "--endpoints-set", "lvh.op=~"]
    assert ptacl(bad) == 2 and not out.exists()  # refused before the run is read
    err = capsys.readouterr().err
    assert err.startswith("ptacl export: ") and "lvh.op" in err and err.count("\n") == 1
    sets = [a for o in ENDPOINT_OVERRIDES for a in ("--endpoints-set", o)]
    assert ptacl(["export", "--model", str(run), "--out", str(out), *sets]) == 0
    printed = capsys.readouterr().out
    assert "P(lvsd)" in printed and "hfref: skipped, fewer than 3 positives" in printed
    predictor = Predictor(out)  # the fine-tuned encoder's embedding, fitted on the run's store
    assert predictor.endpoint_columns == ["P(lvsd)", "P(lvh)"]
    values = predictor.predict(beats_ecg(70, 1.0), fs=ECG_FS)
    assert all(0 <= values[c] <= 1 for c in predictor.endpoint_columns)


@pytest.mark.parametrize("kind", ["mae", "finetune"])
def test_n_boot_sets_the_endpoints_bootstrap_as_in_evaluate(
    store: Path, tmp_path: Path, capsys, kind: str
) -> None:
    """`ptacl export` computed the endpoints' test CIs from 1,000 replicates with no way to
    ask for fewer (or more), where `ptacl evaluate --n-boot` has one. Now --n-boot, the same
    default and meaning, said in endpoints.json and the model card; below 1 refused at once."""
    from inference.builders import ENDPOINT_OVERRIDES

    assert "--n-boot" in build_export_parser().format_help()
    assert build_export_parser().parse_args(["--model", "r", "--out", "b"]).n_boot == 1000
    run = (
        mae_run(tmp_path / "run", store)
        if kind == "mae"
        else finetune_run(tmp_path / "run", store)[0]
    )
    out = tmp_path / "bundle"
    with pytest.raises(SystemExit) as refused:
        ptacl(["export", "--model", str(run), "--out", str(out), "--n-boot", "0"])
    assert (
        refused.value.code == 2
        and "argument --n-boot: must be at least 1, got 0" in capsys.readouterr().err
    )
    sets = [a for o in ENDPOINT_OVERRIDES for a in ("--endpoints-set", o)]
    args = ["export", "--model", str(run), "--out", str(out), "--data", str(store), *sets]
    assert ptacl([*args, "--n-boot", "7"]) == 0
    doc = json.loads((out / "endpoints.json").read_text())
    assert doc["endpoints"] and doc["bootstrap"] == {"n_boot": 7, "seed": 0, "level": 0.95}
    assert all(e["test"]["AUROC"][1] is not None for e in doc["endpoints"].values())  # a CI
    assert "(7 replicates)" in (out / "README.md").read_text()


def test_align_projection_matches_the_run(store: Path, tmp_path: Path) -> None:
    run = align_run(tmp_path / "run", store)
    out = tmp_path / "bundle"
    assert ptacl(["export", "--model", str(run), "--out", str(out)]) == 0
    predictor = Predictor(out)
    state = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    from ptacl.models.heads import HeadConfig, projection_head

    head = projection_head(16, HeadConfig(hidden=8, dim=4))
    head.load_state_dict(
        {k[len("ecg_head.") :]: v for k, v in state.items() if k.startswith("ecg_head.")}
    )
    head.eval()  # batch norm on its running statistics, as at inference
    signal = beats_ecg(70, 1.0)  # two crops: the head sees their mean embedding
    pooled = predictor.embed(signal, fs=ECG_FS)
    with torch.no_grad():
        expected = head(torch.from_numpy(pooled).float()[None])[0].numpy()
    np.testing.assert_allclose(
        predictor.embed(signal, fs=ECG_FS, space="shared"), expected, rtol=1e-5, atol=1e-6
    )


def evaluate_metrics(path: Path, machine: Path) -> Path:
    """A metrics.json as `ptacl evaluate` writes it (paths of the machine in `info`)."""
    metrics = {
        "info": {
            "model": str(machine / "runs" / "run"),
            "data": str(machine / "store"),
            "split": "test",
            "date": "2026-12-01T10:00:00+00:00",
            "ptacl": "0.1.0",
            "command": f"ptacl evaluate --model {machine}/runs/run --data {machine}/store",
        },
        "bootstrap": {"n_boot": 200, "seed": 0, "level": 0.95},
        "regression": {
            "LP (ols)": {"LVEDV (mL)": {"R2": 0.5123, "n": 40, "ci": [0.41, 0.6]}},
        },
        "retrieval": {
            "protocol": "query's own CMR excluded",
            "match_sd": 0.5,
            "model": {"LVEDV (mL)": {"P@1": 0.45, "MdR": 2.0}},
            "model_ci": {"LVEDV (mL)": {"P@1": [0.3, 0.6]}},
            "random": {"LVEDV (mL)": {"P@1": 0.28}},
        },
    }
    path.write_text(json.dumps(metrics))
    return path


@pytest.mark.parametrize("kind", ["mae", "finetune"])
def test_every_bundle_carries_a_model_card_and_no_path_of_the_machine(
    store: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, kind: str
) -> None:
    run = (
        mae_run(tmp_path / "run", store)
        if kind == "mae"
        else finetune_run(tmp_path / "run", store)[0]
    )
    metrics = evaluate_metrics(tmp_path / "metrics.json", tmp_path)
    out = tmp_path / "bundle"
    assert ptacl(["export", "--model", str(run), "--out", str(out), "--metrics", str(metrics)]) == 0
    card = (out / "README.md").read_text(encoding="utf-8")
    command = "ptacl pretrain ecg" if kind == "mae" else "ptacl finetune"
    assert f"Reproduce: `{command} --config run/config.yaml --out run_again`" in card
    assert "| LVEDV (mL) | 0.512 | [0.410, 0.600] | 40 |" in card  # test R² with its CI
    assert "| LVEDV (mL) | 0.450 | [0.300, 0.600] | 0.280 | 2.0 |" in card  # retrieval
    assert "not a medical device" in card and "derived individual-level data" in card
    assert "Origin: **unknown**" in card  # the probe store records no origin
    manifest = json.loads((out / "manifest.json").read_text())
    assert "README.md" in manifest["files"]  # hashed like the rest
    machine = str(tmp_path_factory.getbasetemp())  # holds the run, the store and metrics.json
    for path in out.iterdir():
        assert machine not in path.read_bytes().decode("utf-8", "replace"), path.name
    Predictor(out)  # the card changes nothing for loading


def test_a_bad_metrics_file_fails_before_any_work(store: Path, tmp_path: Path, capsys) -> None:
    run = mae_run(tmp_path / "run", store)
    argv = ["export", "--model", str(run), "--out", str(tmp_path / "b")]
    assert ptacl([*argv, "--metrics", str(tmp_path / "missing.json")]) == 1
    assert "not a readable metrics.json" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_a_finetune_run_s_own_test_metrics_go_into_the_card(store: Path, tmp_path: Path) -> None:
    run, _ = finetune_run(tmp_path / "run", store)
    r2 = {"LVEF (%)": {"R2": 0.2345, "n": 15, "ci": [0.1, 0.3]}}
    (run / "test_metrics.json").write_text(json.dumps({"n_boot": 100, "r2": r2}))
    out = tmp_path / "bundle"
    assert ptacl(["export", "--model", str(run), "--out", str(out)]) == 0
    card = (out / "README.md").read_text(encoding="utf-8")
    assert (
        "FN+AP (this run's head)" in card and "| LVEF (%) | 0.234 | [0.100, 0.300] | 15 |" in card
    )


class _Payload:
    def __reduce__(self):  # what a hostile checkpoint would run on a full unpickle
        return (print, ("PAYLOAD RAN",))


def _hostile(run: Path, how: str) -> None:
    """Spoil an exported-to-be run folder the way issue 20's probe did."""
    ckpt = run / "checkpoints" / "last.ckpt"
    if how == "pickled":
        torch.save({"state_dict": torch.load(ckpt)["state_dict"], "x": _Payload()}, ckpt)
    elif how == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[:300])
    elif how == "yaml tag":
        text = (run / "config.yaml").read_text()
        (run / "config.yaml").write_text(
            "x: !!python/object/apply:os.system ['echo PAYLOAD RAN']\n" + text
        )
    elif how == "width edited":
        config = yaml.safe_load((run / "config.yaml").read_text())
        config["encoder"]["width"] = 24
        (run / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("pickled", "checkpoints/last.ckpt: not a readable checkpoint: UnpicklingError"),
        ("truncated", "checkpoints/last.ckpt: not a readable checkpoint: RuntimeError"),
        ("yaml tag", "config.yaml: not a readable config: ConstructorError"),
        ("width edited", "config.yaml: does not match the checkpoint's weights: size mismatch"),
    ],
)
def test_a_hostile_run_is_refused_in_one_line(
    how: str, reason: str, store: Path, tmp_path: Path, capsys
) -> None:
    """Each once a traceback (UnpicklingError, RuntimeError, ConstructorError)."""
    run = mae_run(tmp_path / "run", store)
    _hostile(run, how)
    assert ptacl(["export", "--model", str(run), "--out", str(tmp_path / "b")]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "PAYLOAD RAN" not in captured.out
    assert captured.err.strip().splitlines() == [captured.err.strip()]
    assert f"ptacl export: {run}/{reason}" in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_killed_export_leaves_no_half_bundle_and_the_rerun_succeeds(
    store: Path, tmp_path: Path
) -> None:
    """`kill -9` while the bundle's lock is held (the probe being fitted or the files written)."""
    import os
    import signal
    import time

    from faults import ptacl_process
    from ptacl.atomic import lock_path

    run = mae_run(tmp_path / "run", store)
    out = tmp_path / "bundle"
    proc = ptacl_process("export", "--model", str(run), "--out", str(out))
    deadline = time.monotonic() + 120
    while not lock_path(out).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, proc.stderr.read()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()  # nothing half-written under the bundle's name
    assert ptacl(["export", "--model", str(run), "--out", str(out)]) == 0
    Predictor(out)  # whole and verified
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "run"]


def test_a_projection_head_that_does_not_fit_the_encoder_is_refused_in_one_line(
    store: Path, tmp_path: Path, capsys
) -> None:
    """Once a size-mismatch traceback from inside the head's load_state_dict."""
    run = align_run(tmp_path / "run", store)
    ckpt = run / "checkpoints" / "best.ckpt"
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    state["ecg_head.0.weight"] = torch.zeros(8, 24)  # the encoder is 16 wide
    torch.save({"state_dict": state}, ckpt)
    assert ptacl(["export", "--model", str(run), "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "ecg_head (encoder width 16): does not match the checkpoint's weights: size" in err
