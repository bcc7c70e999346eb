"""Reading an inference bundle: every file verified before it is trusted (the format and its
writer: `ptacl.inference.bundle_format`).

Only safetensors is ever parsed as tensors: a bundle is user input, and a pickle (what
`torch.save` writes) can run code when loaded. The weights file is read once into memory, its
hash checked and the same bytes parsed, so what is verified is what is loaded. The manifest's
hashes catch a corrupted or edited file; they are not a signature — someone who can rewrite the
folder can rewrite the manifest too — so the guarantee against code execution is the
safetensors-only loading, not the hashes.

Before anything is read, every file the manifest lists is checked against its `bytes` (a
multi-GB file is refused from its size alone) and must be a plain file, not a symlink; then all
of them, the model card included, are hashed. The settings are checked against sane ranges
(`check_settings`) and the architecture in config.json against the one the weights file's header
records at export (`ARCHITECTURE_KEY`), so a re-hashed edit that changes the model (attention
heads, say, which no tensor shape reveals) is refused too.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import ptacl
from ptacl.inference.bundle_format import (
    ARCHITECTURE_KEY,
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    ENDPOINTS,
    INTERVALS,
    JSON_FILES,
    PARTS,
    README,
    WEIGHTS,
    Bundle,
    BundleError,
    architecture,
    sha256_bytes,
)

#: The safetensors header is JSON of a few kB per hundred tensors; anything far larger is not one.
_MAX_HEADER = 100 * 2**20
#: The largest manifest.json read; a real one is about 1 kB.
_MAX_MANIFEST = 2**20
#: The largest size the manifest may claim for a file: the JSON documents and the model card are
#: kB, the weights of the paper's largest encoder (ViT-B) about 0.35 GB.
MAX_BYTES = {name: 16 * 2**20 for name in (*JSON_FILES, README, INTERVALS, ENDPOINTS)} | {
    WEIGHTS: 4 * 2**30
}


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


def _open_regular(path: Path, size: Any, limit: int) -> int:
    """A descriptor of `path`, checked before a byte is read: a plain file (no symlink, no
    device) of exactly `size` bytes, which the manifest states, and at most `limit`."""
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= limit:
        raise BundleError(
            f"{path}: the manifest gives {size!r} bytes; expected a size up to {limit} bytes"
        )
    try:
        fd = os.open(
            path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        )
    except FileNotFoundError:
        raise BundleError(f"{path}: missing from the bundle") from None
    except OSError as err:  # ELOOP: a symlink
        if path.is_symlink():
            raise BundleError(f"{path}: refused, a symlink (to {os.readlink(path)})") from None
        raise BundleError(f"{path}: cannot be opened: {err.strerror}") from None
    info = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = "refused, not a plain file"
    elif info.st_size != size:
        problem = (
            f"{info.st_size} bytes, the manifest says {size}; the file was changed after "
            "export (nothing of it was read)"
        )
    if problem:
        os.close(fd)
        raise BundleError(f"{path}: {problem}")
    return fd


def _read_json(root: Path, name: str, expected: Mapping[str, Any]) -> Any:
    """A listed JSON file of the bundle, verified (`_read_verified`) and parsed."""
    try:
        return json.loads(_read_verified(root, name, expected).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{root / name}: not valid JSON: {e}") from e


def _read_verified(root: Path, name: str, expected: Mapping[str, Any]) -> bytes:
    path = root / name
    fd = _open_regular(path, expected.get("bytes"), MAX_BYTES[name])
    with os.fdopen(fd, "rb") as file:
        data = file.read(int(expected["bytes"]) + 1)  # +1: a file grown since the check
    if len(data) != expected["bytes"]:
        raise BundleError(f"{path}: changed while it was read")
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
    manifest, files = _read_manifest(root)
    if README in files:
        _read_verified(root, README, files[README])
    elif (root / README).exists():
        raise BundleError(f"{root / README}: not listed in the manifest, so not verifiable")

    documents: dict[str, dict[str, Any]] = {}
    for name in JSON_FILES:
        documents[name] = _read_json(root, name, files[name])
        if not isinstance(documents[name], dict):
            raise BundleError(f"{root / name}: not a JSON object")

    data, tensors = _read_weights(root, files[WEIGHTS])
    phenotypes = documents["phenotypes.json"]
    if not isinstance(phenotypes.get("columns"), list) or not phenotypes["columns"]:
        raise BundleError(f"{root / 'phenotypes.json'}: has no 'columns' list")
    intervals = None
    if INTERVALS in files:
        intervals = _read_intervals(root, files[INTERVALS], phenotypes["columns"])
    elif (root / INTERVALS).exists():
        raise BundleError(f"{root / INTERVALS}: not listed in the manifest, so not verifiable")
    endpoints = None
    if ENDPOINTS in files:
        endpoints = _read_endpoints(root, files[ENDPOINTS], documents["config.json"])
    elif (root / ENDPOINTS).exists():
        raise BundleError(f"{root / ENDPOINTS}: not listed in the manifest, so not verifiable")
    _check_architecture(root, documents["config.json"], _metadata(data))
    check_settings(root, documents["config.json"], documents["preprocessing.json"])
    return Bundle(
        root=root,
        manifest=manifest,
        config=documents["config.json"],
        preprocessing=documents["preprocessing.json"],
        phenotypes=phenotypes,
        tensors=tensors,
        intervals=intervals,
        endpoints=endpoints,
    )


def _read_manifest(root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A bundle's manifest.json, checked (size, format, version, the files it must and may
    list, each listed file's size), and its 'files' table."""
    manifest_path = root / "manifest.json"
    if not root.is_dir():
        raise BundleError(f"{root}: not a folder; a bundle is the folder `ptacl export` writes")
    if not manifest_path.is_file():
        raise BundleError(f"{root}: not a bundle (no manifest.json); make one with `ptacl export`")
    if manifest_path.is_symlink() or manifest_path.stat().st_size > _MAX_MANIFEST:
        raise BundleError(
            f"{manifest_path}: refused, a symlink or over {_MAX_MANIFEST} bytes (ptacl's are ~1 kB)"
        )
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
    unknown = sorted(set(files) - set(MAX_BYTES))
    if unknown:
        raise BundleError(f"{manifest_path}: lists files a bundle does not hold: {unknown}")
    for name, entry in files.items():  # every size before any content: a bad one costs no read
        if not isinstance(entry, dict):
            raise BundleError(f"{manifest_path}: the entry of {name} is not a table")
        os.close(_open_regular(root / name, entry.get("bytes"), MAX_BYTES[name]))
    return manifest, files


def _read_weights(root: Path, expected: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """The weights file's bytes, verified against the manifest's `expected` entry, and its
    tensors by part ({"encoder": {name: tensor}, "head": ...}); both parts must be there."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors

    data = _read_verified(root, WEIGHTS, expected)
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

    return data, tensors


def _read_endpoints(root: Path, expected: Mapping[str, Any], config: Any) -> dict[str, Any]:
    """endpoints.json, verified, each model fitting config.json's embedding width."""
    from ptacl.inference.endpoints import check_endpoints

    path = root / ENDPOINTS
    doc = _read_json(root, ENDPOINTS, expected)
    embedding = config.get("embedding") if isinstance(config, Mapping) else None
    dim = embedding.get("dim") if isinstance(embedding, Mapping) else None
    dim = _number(dim, f"{root / 'config.json'}: embedding.dim", integer=True, low=1)
    problem = check_endpoints(doc, str(path), int(dim))
    if problem is not None:
        raise BundleError(problem)
    return doc


def _read_intervals(root: Path, expected: Mapping[str, Any], columns: list[Any]) -> dict[str, Any]:
    """intervals.json, verified, with a level in (0, 1) and per phenotype column a half-width
    that is a finite number >= 0 or null (unbounded): what predict adds and subtracts."""
    path = root / INTERVALS
    doc = _read_json(root, INTERVALS, expected)
    table = doc.get("columns") if isinstance(doc, dict) else None
    if not isinstance(table, dict):
        raise BundleError(f"{path}: has no 'columns' table")
    _number(doc.get("level"), f"{path}: level", integer=False, low=1e-9, high=1 - 1e-9)
    for column in columns:
        entry = table.get(column)
        width = entry.get("half_width", "missing") if isinstance(entry, dict) else "missing"
        if width is not None:
            _number(width, f"{path}: {column} half_width", integer=False, low=0)
    return doc


def half_widths(spec: dict[str, Any], columns: Sequence[str]) -> np.ndarray:
    """(P,) half-widths of `columns` from an intervals.json table (None: inf, unbounded); the
    table is written by `ptacl.eval.conformal.fit_intervals`."""
    table = spec["columns"]
    return np.array(
        [math.inf if table[c]["half_width"] is None else table[c]["half_width"] for c in columns],
        dtype=np.float64,
    )


def _metadata(data: bytes) -> dict[str, str]:
    """The `__metadata__` of a safetensors file's header (already parsed once: it is valid)."""
    size = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8 : 8 + size]).get("__metadata__") or {}
    return meta if isinstance(meta, dict) else {}


def _check_architecture(root: Path, config: Mapping[str, Any], metadata: Mapping[str, str]) -> None:
    """config.json must describe the model the weights were exported with (bundles from before
    this record have none to compare with)."""
    recorded = metadata.get(ARCHITECTURE_KEY)
    if recorded is None:
        return
    try:
        then = json.loads(recorded)
    except json.JSONDecodeError:
        raise BundleError(f"{root / WEIGHTS}: its recorded architecture is not JSON") from None
    now = json.loads(json.dumps(architecture(config)))  # the same types as the recorded one
    if now != then:
        changed = sorted(_differences(then, now))[:5]
        raise BundleError(
            f"{root / 'config.json'}: describes another model than the weights were exported "
            f"with: {'; '.join(changed)}; export the bundle again"
        )


def _differences(then: Any, now: Any, at: str = "") -> list[str]:
    if isinstance(then, dict) and isinstance(now, dict):
        return [
            d
            for k in sorted(set(then) | set(now))
            for d in _differences(then.get(k), now.get(k), f"{at}.{k}" if at else k)
        ]
    return [] if then == now else [f"{at} {then!r} at export, now {now!r}"]


def _number(value: Any, where: str, *, integer: bool, low: float, high: float = math.inf) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    ok = ok and (not integer or float(value).is_integer()) and math.isfinite(value)
    if not ok or not low <= value <= high:
        kind = "an integer" if integer else "a finite number"
        bound = f"between {low:g} and {high:g}" if math.isfinite(high) else f">= {low:g}"
        raise BundleError(f"{where}: {value!r}; must be {kind} {bound}")
    return value


def check_settings(root: Path, config: Mapping[str, Any], preprocessing: Mapping[str, Any]) -> None:
    """Refuse settings no export writes, whatever the hashes say: attention heads that do not
    divide the width, samples or crop < 1, fs <= 0, a DWT level beyond pywt's maximum for the
    recording (the DWT filters the whole 10-s strip, before cropping), an OOD threshold that is not finite and > 0 (NaN switched the check off)."""
    import pywt

    pre, cfg = root / "preprocessing.json", root / "config.json"
    _number(preprocessing.get("fs"), f"{pre}: fs", integer=False, low=1e-9)
    samples = _number(preprocessing.get("samples"), f"{pre}: samples", integer=True, low=1)
    _number(preprocessing.get("crop"), f"{pre}: crop", integer=True, low=1, high=samples)
    dwt = preprocessing.get("dwt")
    if not isinstance(dwt, Mapping) or dwt.get("wavelet") not in pywt.wavelist(kind="discrete"):
        raise BundleError(f"{pre}: dwt needs a discrete pywt wavelet, got {dwt!r}")
    top = pywt.dwt_max_level(int(samples), dwt["wavelet"])
    level = _number(dwt.get("level"), f"{pre}: dwt.level", integer=True, low=1, high=top)
    _number(dwt.get("drop_details"), f"{pre}: dwt.drop_details", integer=True, low=0, high=level)
    for part in ("encoder", "head"):
        section = config.get(part)
        kwargs = section.get("kwargs") if isinstance(section, Mapping) else None
        kwargs = kwargs if isinstance(kwargs, Mapping) else {}
        if "heads" in kwargs:
            heads = _number(kwargs["heads"], f"{cfg}: {part}.heads", integer=True, low=1)
            width = kwargs.get("width")
            if isinstance(width, int) and width % int(heads):
                raise BundleError(f"{cfg}: {part}.heads {heads} does not divide width {width}")
        if "samples" in kwargs:
            _number(kwargs["samples"], f"{cfg}: {part}.samples", integer=True, low=1)
    ood = config.get("ood")
    if isinstance(ood, Mapping) and "threshold" in ood:
        _number(ood["threshold"], f"{cfg}: ood.threshold", integer=False, low=1e-300)
