"""The bundle format: round trip, and refusal of tampered, pickled or inconsistent bundles."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from builders import beats_ecg, tiny_encoder

from ptacl.embedding.crops import crop_starts
from ptacl.inference import BundleError, Predictor, encoder_fingerprint, read_bundle
from ptacl.inference.bundle_format import WEIGHTS, sha256_bytes
from ptacl.schema import ECG_FS


@pytest.fixture
def bundle(tiny_bundle: Path, tmp_path: Path) -> Path:
    """A private copy each test may damage."""
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


def rehash(bundle: Path, name: str) -> None:
    """Update the manifest after editing `name`, as a careless (not malicious) tool would not."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    data = (bundle / name).read_bytes()
    manifest["files"][name] = {"sha256": sha256_bytes(data), "bytes": len(data)}
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_round_trip_keeps_every_tensor(tiny_bundle: Path) -> None:
    encoder = tiny_encoder()
    loaded = read_bundle(tiny_bundle)
    assert set(loaded.tensors) == {"encoder", "head", "ood"}
    for name, tensor in encoder.state_dict().items():
        torch.testing.assert_close(loaded.tensors["encoder"][name], tensor, rtol=0, atol=0)
    assert loaded.config["embedding"]["encoder_id"] == encoder_fingerprint(encoder.state_dict())
    model = Predictor(loaded).model.encoder
    x = torch.from_numpy(np.stack([beats_ecg(70, 1.0)[:, :2500]]))
    torch.testing.assert_close(model(x), encoder(x), rtol=0, atol=0)


def test_tampered_weights_are_refused(bundle: Path) -> None:
    data = bytearray((bundle / WEIGHTS).read_bytes())
    data[-3] ^= 0x01  # one bit of one tensor value
    (bundle / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=rf"{WEIGHTS}: sha256 .* does not match the manifest"):
        read_bundle(bundle)


def test_tampered_json_is_refused(bundle: Path) -> None:
    path = bundle / "phenotypes.json"
    path.write_text(path.read_text().replace("LVEDV", "LVESV", 1))
    with pytest.raises(BundleError, match=r"phenotypes\.json: sha256"):
        read_bundle(bundle)


class _Payload:
    """Unpickling this would run code: it must never be unpickled."""

    def __reduce__(self):
        return (Path("/tmp/ptacl-pickle-ran").touch, ())


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_pickled_weights_are_refused_without_unpickling(bundle: Path, writer: str) -> None:
    marker = Path("/tmp/ptacl-pickle-ran")
    marker.unlink(missing_ok=True)
    state = {"encoder.x": torch.zeros(2), "payload": _Payload()}
    with open(bundle / WEIGHTS, "wb") as f:
        if writer == "torch.save":
            torch.save(state, f)
        else:
            pickle.dump(state, f)
    rehash(bundle, WEIGHTS)  # even with a matching hash
    reason = "zip archive" if writer == "torch.save" else "Python pickle"
    with pytest.raises(
        BundleError, match=rf"{WEIGHTS}: refused, not a safetensors file: .*{reason}"
    ):
        read_bundle(bundle)
    assert not marker.exists()


def test_garbage_weights_are_refused(bundle: Path) -> None:
    (bundle / WEIGHTS).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    rehash(bundle, WEIGHTS)
    with pytest.raises(BundleError, match=f"{WEIGHTS}: refused"):
        read_bundle(bundle)


def without_architecture(bundle: Path) -> None:
    """Make `bundle` one from before the weights recorded config.json's architecture."""
    from safetensors.torch import load_file, save_file

    save_file(load_file(bundle / WEIGHTS), bundle / WEIGHTS, metadata={"format": "ptacl-bundle"})
    rehash(bundle, WEIGHTS)


def test_shapes_must_match_the_config(bundle: Path) -> None:
    config = json.loads((bundle / "config.json").read_text())
    config["encoder"]["kwargs"]["width"] = 32
    (bundle / "config.json").write_text(json.dumps(config))
    rehash(bundle, "config.json")
    with pytest.raises(BundleError, match=r"encoder.kwargs.width 16 at export, now 32"):
        read_bundle(bundle)
    without_architecture(bundle)  # an older bundle: the shapes still tell
    bundle_read = read_bundle(bundle)
    with pytest.raises(BundleError, match=rf"{WEIGHTS} \[encoder\]: .* wrong shape: .*\(16,\)"):
        Predictor(bundle_read)


def test_unknown_kind_and_keys_are_refused(bundle: Path) -> None:
    without_architecture(bundle)  # else refused before, as another model than the weights'
    config = json.loads((bundle / "config.json").read_text())
    config["encoder"]["kind"] = "os.system"
    (bundle / "config.json").write_text(json.dumps(config))
    rehash(bundle, "config.json")
    with pytest.raises(BundleError, match=r"unknown kind 'os\.system'"):
        Predictor(bundle)
    config["encoder"]["kind"] = "ecg_encoder"
    config["encoder"]["kwargs"]["widht"] = 16
    (bundle / "config.json").write_text(json.dumps(config))
    rehash(bundle, "config.json")
    with pytest.raises(BundleError, match="widht"):
        Predictor(bundle)


def test_missing_file_and_not_a_bundle(bundle: Path, tmp_path: Path) -> None:
    (bundle / "preprocessing.json").unlink()
    with pytest.raises(BundleError, match=r"preprocessing.json: missing"):
        read_bundle(bundle)
    with pytest.raises(BundleError, match="not a bundle"):
        read_bundle(tmp_path)
    with pytest.raises(BundleError, match="not a folder"):
        read_bundle(tmp_path / "nowhere")


def test_newer_format_version_is_refused(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["version"] = 99
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="format version 99"):
        read_bundle(bundle)


def test_export_refuses_to_overwrite(tiny_bundle: Path, probe_store: Path) -> None:
    from ptacl.export import export_with_probe

    with pytest.raises(FileExistsError, match="already exists"):
        export_with_probe(tiny_bundle, encoder=tiny_encoder(), store=probe_store, source={})


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (5000, [0, 2500]),
        (2500, [0]),
        (3000, [0, 500]),
        (4999, [0, 2499]),
        (7600, [0, 1700, 3400, 5100]),
    ],
)
def test_crop_starts(length: int, expected: list[int]) -> None:
    assert crop_starts(length, 2500) == expected


def test_crop_starts_too_short() -> None:
    with pytest.raises(ValueError, match="shorter than"):
        crop_starts(2499, 2500)


def test_fit_probe_recovers_a_linear_relation_and_refuses_too_few_rows() -> None:
    from ptacl.export.fit import fit_probe

    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 5)).astype(np.float32)
    true = rng.standard_normal((2, 5))
    y = x @ true.T + np.array([100.0, -3.0])
    y[:10, 1] = np.nan
    head, used = fit_probe(x, y)
    np.testing.assert_allclose(head.weight.numpy(), true, atol=1e-5)
    with torch.no_grad():
        predicted = head(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(
        predicted, np.where(np.isnan(y), x @ true.T + [100.0, -3.0], y), atol=1e-4
    )
    assert used.tolist() == [200, 190]
    with pytest.raises(ValueError, match="6 training subjects"):
        fit_probe(x[:6], y[:6])


def test_predict_is_deterministic(tiny_bundle: Path) -> None:
    signal = beats_ecg(80, 0.9)
    a = Predictor(tiny_bundle).predict(signal, fs=ECG_FS)
    b = Predictor(tiny_bundle).predict(signal, fs=ECG_FS)
    assert a == b


def test_header_length_starting_with_the_pickle_byte_is_still_safetensors() -> None:
    """A header of 0x..80 bytes opens the file with 0x80, like a pickle: found by a real run."""
    from safetensors.torch import load, save

    from ptacl.inference.bundle import _not_safetensors_reason

    for pad in range(200):
        data = save({"x": torch.zeros(2)}, metadata={"pad": "a" * pad})
        if data[0] == 0x80:
            break
    else:
        pytest.fail("no padding gave a header length with low byte 0x80")
    assert _not_safetensors_reason(data) is None
    torch.testing.assert_close(load(data)["x"], torch.zeros(2))
    assert "Python pickle" in _not_safetensors_reason(pickle.dumps({"x": 1}))


# ------------------------------------------------ hostile bundles (issue 20, docs/reliability.md)


def test_a_huge_sparse_weights_file_is_refused_from_its_size_alone(bundle: Path) -> None:
    """Once read whole (3.4 GB of memory, 2 minutes) before its hash was found wrong."""
    import resource

    with open(bundle / WEIGHTS, "r+b") as file:
        file.truncate(3 * 2**30)  # sparse: no disk used
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(BundleError, match=rf"{WEIGHTS}: {3 * 2**30} bytes, the manifest says"):
        read_bundle(bundle)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 256 * 1024


def test_a_size_beyond_any_bundle_is_refused_even_when_the_manifest_agrees(bundle: Path) -> None:
    with open(bundle / WEIGHTS, "r+b") as file:
        file.truncate(5 * 2**30)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"][WEIGHTS]["bytes"] = 5 * 2**30
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"the manifest gives 5368709120 bytes; expected a size"):
        read_bundle(bundle)


def test_the_model_card_is_verified_and_symlinks_are_refused(bundle: Path) -> None:
    """A symlink to /etc/passwd in the card's place once loaded and predicted `ok`."""
    card = bundle / "README.md"
    text = card.read_text()
    card.write_text(text.replace("#", "=", 1))  # same size: only the hash can tell
    with pytest.raises(BundleError, match=r"README.md: sha256 .* does not match"):
        read_bundle(bundle)
    card.unlink()
    card.symlink_to("/etc/passwd")
    rehash(bundle, "README.md")  # even with its hash and size in the manifest
    with pytest.raises(BundleError, match=r"README.md: refused, a symlink \(to /etc/passwd\)"):
        read_bundle(bundle)
    card.unlink()
    card.write_text(text)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"]["../../etc/passwd"] = manifest["files"].pop("README.md")
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"lists files a bundle does not hold: \['\.\./\.\./etc"):
        read_bundle(bundle)


def _edit(bundle: Path, name: str, path: str, value) -> None:
    doc = json.loads((bundle / name).read_text())
    *parents, key = path.split(".")
    node = doc
    for part in parents:
        node = node[part]
    node[key] = value
    (bundle / name).write_text(json.dumps(doc))
    rehash(bundle, name)


@pytest.mark.parametrize(
    ("name", "path", "value", "reason"),
    [
        ("config.json", "encoder.kwargs.heads", 4, r"encoder.kwargs.heads 2 at export, now 4"),
        ("preprocessing.json", "samples", -1, r"samples: -1; must be an integer >= 1"),
        ("preprocessing.json", "crop", 0, r"crop: 0; must be an integer between 1 and 5000"),
        ("preprocessing.json", "fs", 0, r"fs: 0; must be a finite number"),
        (
            "preprocessing.json",
            "dwt.level",
            99,
            r"dwt.level: 99; must be an integer between 1 and 9",
        ),
        ("config.json", "ood.threshold", float("nan"), r"ood.threshold: nan; must be a finite"),
        ("config.json", "ood.threshold", -1.0, r"ood.threshold: -1.0; must be a finite"),
    ],
)
def test_rehashed_edits_that_change_the_model_are_refused(
    bundle: Path, name: str, path: str, value, reason: str
) -> None:
    """Each once taken silently (predictions changed, the OOD check off) or a traceback."""
    _edit(bundle, name, path, value)
    with pytest.raises(BundleError, match=rf"{name}: .*{reason}"):
        read_bundle(bundle)
