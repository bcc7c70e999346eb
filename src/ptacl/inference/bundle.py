"""The inference bundle: a self-contained folder that turns a 12-lead ECG into the 10 phenotypes.

Layout of a bundle folder::

    manifest.json        format name and version, sha256 and size of every file below
    README.md            the model card: data origin, training command, metrics, intended
                         use, governance, licence (`ptacl.inference.card`)
    config.json          model kind, ECG encoder constructor arguments, the head, embedding space
    preprocessing.json   sampling rate, samples, crop, how crops are combined, leads, DWT settings
    phenotypes.json      the head's outputs in order: columns, names, units, and `ranges`: per
                         column the physiological bounds and the training labels' range
                         (`ptacl.inference.plausibility`; bundles before it have no ranges)
    weights.safetensors  `encoder.*` the ECG encoder's state dict, `projection.*` the ECG
                         projection head of an aligned run (absent otherwise), `head.*` the linear
                         probe (`mean` (D,), `weight` (P, D), `bias` (P,), float64) or the
                         fine-tuned attention-pooling head with its target mean and SD, `ood.*`
                         the train embeddings' `mean` (D,) and `whiten` (D, D) for the
                         out-of-distribution score (threshold in config.json `ood`; optional)

Only safetensors is ever parsed as tensors: a bundle is user input, and a pickle (what
`torch.save` writes) can run code when loaded. The weights file is read once into memory, its
hash checked and the same bytes parsed, so what is verified is what is loaded. The manifest's
hashes catch a corrupted or edited file; they are not a signature — someone who can rewrite the
folder can rewrite the manifest too — so the guarantee against code execution is the
safetensors-only loading, not the hashes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import ptacl
from ptacl.atomic import atomic_folder
from ptacl.errors import PtaclError

BUNDLE_FORMAT = "ptacl-bundle"
BUNDLE_VERSION = 1
WEIGHTS = "weights.safetensors"
#: The model card (optional for reading: bundles before it have none).
README = "README.md"
JSON_FILES = ("config.json", "preprocessing.json", "phenotypes.json")
#: Parts of the weights file, by key prefix.
PARTS = ("encoder", "projection", "head", "ood")
#: The safetensors header is JSON of a few kB per hundred tensors; anything far larger is not one.
_MAX_HEADER = 100 * 2**20


class BundleError(PtaclError, ValueError):
    """A bundle that is missing, tampered with, unsafe or inconsistent; the message names the file."""


@dataclass(frozen=True)
class Bundle:
    """A verified bundle read into memory; build its modules with `ptacl.inference.modules`."""

    root: Path
    manifest: dict[str, Any]
    config: dict[str, Any]
    preprocessing: dict[str, Any]
    phenotypes: dict[str, Any]
    tensors: dict[str, dict[str, torch.Tensor]]  # part -> state dict without the prefix

    @property
    def columns(self) -> list[str]:
        """Output column names with units, e.g. 'LVEDV (mL)', in the head's order."""
        return list(self.phenotypes["columns"])


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encoder_fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over an encoder's tensors (names, dtypes, shapes, values), independent of file format.

    Two embedding sets are comparable only if made by the same encoder; storing this id beside
    them (the bundle's `config.json` has it) lets `ptacl retrieve` check that instead of trusting.
    """
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def write_bundle(
    out: str | Path,
    *,
    config: Mapping[str, Any],
    preprocessing: Mapping[str, Any],
    phenotypes: Mapping[str, Any],
    tensors: Mapping[str, Mapping[str, torch.Tensor]],
    overwrite: bool = False,
    readme: str | None = None,
) -> Path:
    """Write a bundle atomically (a temporary sibling folder renamed at the end).

    `tensors` maps a part of `PARTS` to its state dict; keys are stored as `part.name`.
    `readme`: the model card (`ptacl.inference.card`), hashed in the manifest like the rest.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists; pass --overwrite to replace it")
    unknown = set(tensors) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown weight parts {sorted(unknown)}; expected some of {PARTS}")
    flat: dict[str, torch.Tensor] = {}
    for part, state in tensors.items():
        for name, tensor in state.items():
            # safetensors refuses shared or strided storage; a fresh contiguous copy is exact.
            flat[f"{part}.{name}"] = tensor.detach().to("cpu").contiguous().clone()

    from safetensors.torch import save as save_safetensors

    documents = {
        "config.json": dict(config),
        "preprocessing.json": dict(preprocessing),
        "phenotypes.json": dict(phenotypes),
    }
    contents = {name: json.dumps(doc, indent=2).encode() for name, doc in documents.items()}
    contents[WEIGHTS] = save_safetensors(flat, metadata={"format": BUNDLE_FORMAT})
    if readme is not None:
        contents[README] = readme.encode("utf-8")
    manifest = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "ptacl_version": ptacl.__version__,
        "files": {
            name: {"sha256": sha256_bytes(data), "bytes": len(data)}
            for name, data in sorted(contents.items())
        },
    }
    contents["manifest.json"] = json.dumps(manifest, indent=2).encode()

    with atomic_folder(out, overwrite=overwrite) as tmp:
        for name, data in contents.items():
            (tmp / name).write_bytes(data)
    return out


def _not_safetensors_reason(data: bytes) -> str | None:
    """Why `data` is not a safetensors file, or None. Looks at bytes only; never unpickles.

    A safetensors file opens with its header length (u64, little-endian) and the header's JSON
    `{`. Only a file failing that is classified, since a header length can itself start with
    0x80, the byte that opens a pickle.
    """
    if len(data) >= 10:
        size = int.from_bytes(data[:8], "little")
        if size <= min(len(data) - 8, _MAX_HEADER) and data[8:9] == b"{":
            return None
    if data[:4] == b"PK\x03\x04":
        return "it is a zip archive (what torch.save writes), which holds a pickle"
    if data[:1] == b"\x80" and len(data) > 1 and data[1] <= 5:
        return f"it is a Python pickle (protocol {data[1]})"
    if len(data) < 10:
        return f"it has {len(data)} bytes, too short for a safetensors header"
    return "it does not start with a safetensors header"


def _read_verified(root: Path, name: str, expected: Mapping[str, Any]) -> bytes:
    path = root / name
    if not path.is_file():
        raise BundleError(f"{path}: missing from the bundle")
    data = path.read_bytes()
    if name == WEIGHTS:
        # Named before the hash check so a pickle is reported as a pickle, not as an edit.
        reason = _not_safetensors_reason(data)
        if reason:
            raise BundleError(f"{path}: refused, not a safetensors file: {reason}")
    digest = sha256_bytes(data)
    if digest != expected.get("sha256"):
        raise BundleError(
            f"{path}: sha256 {digest} does not match the manifest's {expected.get('sha256')}; "
            "the file was changed after export"
        )
    return data


def read_bundle(path: str | Path) -> Bundle:
    """Read and verify a bundle: manifest, hashes, safetensors-only weights, known parts.

    Shapes are checked against the config when the modules are built
    (`ptacl.inference.modules.build_modules`), since only the model code knows them.
    """
    root = Path(path)
    manifest_path = root / "manifest.json"
    if not root.is_dir():
        raise BundleError(f"{root}: not a folder; a bundle is the folder `ptacl export` writes")
    if not manifest_path.is_file():
        raise BundleError(f"{root}: not a bundle (no manifest.json); make one with `ptacl export`")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{manifest_path}: not valid JSON: {e}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{manifest_path}: not a {BUNDLE_FORMAT} manifest")
    if manifest.get("version") != BUNDLE_VERSION:
        raise BundleError(
            f"{manifest_path}: bundle format version {manifest.get('version')}, this ptacl "
            f"({ptacl.__version__}) reads version {BUNDLE_VERSION}"
        )
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise BundleError(f"{manifest_path}: has no 'files' table")
    for name in (*JSON_FILES, WEIGHTS):
        if name not in files:
            raise BundleError(f"{manifest_path}: does not list {name}")

    documents: dict[str, dict[str, Any]] = {}
    for name in JSON_FILES:
        data = _read_verified(root, name, files[name])
        try:
            documents[name] = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BundleError(f"{root / name}: not valid JSON: {e}") from e

    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors

    data = _read_verified(root, WEIGHTS, files[WEIGHTS])
    try:
        flat = load_safetensors(data)
    except SafetensorError as e:
        raise BundleError(f"{root / WEIGHTS}: refused, not a valid safetensors file: {e}") from e
    tensors: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in flat.items():
        part, _, name = key.partition(".")
        if part not in PARTS or not name:
            raise BundleError(f"{root / WEIGHTS}: unexpected tensor {key!r}; parts are {PARTS}")
        tensors.setdefault(part, {})[name] = tensor
    for part in ("encoder", "head"):
        if part not in tensors:
            raise BundleError(f"{root / WEIGHTS}: holds no {part} tensors")

    phenotypes = documents["phenotypes.json"]
    if not isinstance(phenotypes.get("columns"), list) or not phenotypes["columns"]:
        raise BundleError(f"{root / 'phenotypes.json'}: has no 'columns' list")
    return Bundle(
        root=root,
        manifest=manifest,
        config=documents["config.json"],
        preprocessing=documents["preprocessing.json"],
        phenotypes=phenotypes,
        tensors=tensors,
    )
