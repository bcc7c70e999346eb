"""Embeddings of one store split from any encoder run: the input of every evaluation.

A "run" is a folder written by `ptacl pretrain` (one modality: config.yaml has `modality`),
`ptacl align` (both: `ecg_encoder` and `cmr_encoder` sections) or `ptacl finetune` (the one
encoder of its `modality`, ECG by default), or the word `none`: encoders randomly initialised
from a seed (the random-init baseline; with `like=RUN` those RUN holds, with its architecture).

Which subjects: those of the split holding every modality the run has (both: paired subjects;
an ECG run: every subject with an ECG). Inputs are the deterministic evaluation views of
`ptacl.data.datasets` (the centre ECG crop and the CMR frames each encoder was built for: 2,500 samples and
26 frames at the paper's sizes). Embeddings are the
mean-pooled encoder tokens (`encoder.pool`); a run with projection heads (stage 2) adds the
projected embeddings, the space its global loss aligns. With both encoders the mean T × T
ECG–CMR local cosine similarity over subjects is kept too (the paper's Figure 2).

The file is an .npz without pickles: eids (N,) str, phenotypes (N, P) float32, phenotype_names
(P,) str, ecg / cmr / ecg_proj / cmr_proj (N, ·) float32 where present, alignment (T, T)
float32 where present, meta (a JSON string).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ptacl.phenotypes import PHENOTYPES

_ARRAYS = ("ecg", "cmr", "ecg_proj", "cmr_proj", "alignment")


class EmbedError(ValueError):
    """A run or embeddings file that cannot be used, with the path and the reason."""


@dataclass
class RunEncoders:
    """The encoders (and projection heads) a run holds; absent parts are None."""

    kind: str  # none | pretrain-ecg | pretrain-cmr | simclr-ecg | simclr-cmr | align | finetune
    source: str
    ecg: nn.Module | None = None
    cmr: nn.Module | None = None
    ecg_head: nn.Module | None = None
    cmr_head: nn.Module | None = None
    num_steps: int = 13  # T of the local embeddings

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m in ("ecg", "cmr") if getattr(self, m) is not None)


@dataclass
class Embeddings:
    """What `ptacl embed` writes; row i of every array is subject `eids[i]`."""

    eids: np.ndarray
    phenotypes: np.ndarray
    phenotype_names: tuple[str, ...] = PHENOTYPES
    ecg: np.ndarray | None = None
    cmr: np.ndarray | None = None
    ecg_proj: np.ndarray | None = None
    cmr_proj: np.ndarray | None = None
    alignment: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {name: getattr(self, name) for name in _ARRAYS if getattr(self, name) is not None}
        np.savez(
            path,
            eids=np.asarray(self.eids, dtype=str),
            phenotypes=np.asarray(self.phenotypes, dtype=np.float32),
            phenotype_names=np.asarray(self.phenotype_names, dtype=str),
            meta=np.asarray(json.dumps(self.meta)),
            **{k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()},
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> Embeddings:
        path = Path(path)
        if not path.is_file():
            raise EmbedError(f"{path}: no such embeddings file")
        try:
            with np.load(path, allow_pickle=False) as data:
                content = {k: data[k] for k in data.files}
        except (ValueError, OSError) as e:
            raise EmbedError(f"{path}: not a readable .npz without pickles ({e})") from e
        for key in ("eids", "phenotypes", "phenotype_names", "meta"):
            if key not in content:
                raise EmbedError(f"{path}: missing array {key!r}; write it with `ptacl embed`")
        n = len(content["eids"])
        for key in ("phenotypes", "ecg", "cmr", "ecg_proj", "cmr_proj"):
            if key in content and len(content[key]) != n:
                raise EmbedError(f"{path}: {key} has {len(content[key])} rows for {n} eids")
        return cls(
            eids=content["eids"].astype(str),
            phenotypes=content["phenotypes"],
            phenotype_names=tuple(str(x) for x in content["phenotype_names"]),
            meta=json.loads(str(content["meta"])),
            **{k: content.get(k) for k in _ARRAYS},
        )


def _find(config: Any, key: str) -> Any:
    """First value of `key` anywhere in a nested config dict (None if absent)."""
    if isinstance(config, dict):
        if key in config:
            return config[key]
        for value in config.values():
            found = _find(value, key)
            if found is not None:
                return found
    return None


def _heads(run_dir: Path, widths: dict[str, int]) -> dict[str, nn.Module]:
    """Projection heads found in a run's checkpoint, by modality (see ptacl.models.heads)."""
    from ptacl.models.heads import projection_head_from_state

    ckpt = run_dir / "checkpoints" / "best.ckpt"
    if not ckpt.is_file():
        ckpt = run_dir / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    heads = {}
    for modality, width in widths.items():
        pattern = re.compile(rf"^(?:.*\.)?{modality}_head\.(.+)$")
        weights = {m.group(1): v for k, v in state.items() if (m := pattern.match(k))}
        if weights:
            heads[modality] = projection_head_from_state(weights, width)
    return heads


def load_run_encoders(
    model: str | Path, *, seed: int = 0, like: str | Path | None = None
) -> RunEncoders:
    """The encoders of run folder `model`, or random ones for `none`: seeded, both of the
    paper's sizes, or the encoders run `like` holds with its architecture (the fair random-init
    baseline for that run: an ECG MAE run gives a random ECG encoder only)."""
    from ptacl.models import encoder_from_config
    from ptacl.training.common import load_encoder, read_run_config

    if str(model) == "none":
        sections: dict[str, Any] = {"ecg": None, "cmr": None}
        if like is not None:
            config = read_run_config(like)
            for modality in ("ecg", "cmr"):
                sections[modality] = config.get(f"{modality}_encoder")
                if config.get("modality") == modality:
                    sections[modality] = config.get("encoder")
            # Only the modalities `like` holds: a paper-sized second encoder beside a tiny one
            # would not be that run's baseline (and their widths could not be compared).
            sections = {m: s for m, s in sections.items() if s is not None}
            if not sections:
                raise EmbedError(f"{like}/config.yaml: cannot tell which encoders this run holds")
        torch.manual_seed(seed)
        encoders = {m: encoder_from_config(s, m) for m, s in sections.items()}
        return RunEncoders(
            kind="none",
            source="none" if like is None else f"none (architecture of {like})",
            ecg=encoders.get("ecg"),
            cmr=encoders.get("cmr"),
        )

    run_dir = Path(model)
    if not run_dir.is_dir():
        raise EmbedError(f"{run_dir}: not a run folder (or pass `none` for random encoders)")
    config = read_run_config(run_dir)
    if config.get("stage") == "finetune":  # one encoder; older ECG runs have no `modality`
        modalities: tuple[str, ...] = (str(config.get("modality", "ecg")),)
        kind = "finetune"
    elif "modality" in config:
        modalities = (config["modality"],)
        kind = f"{config.get('stage', 'pretrain')}-{config['modality']}"  # simclr-ecg, ...
    elif "ecg_encoder" in config and "cmr_encoder" in config:
        modalities, kind = ("ecg", "cmr"), "align"
    elif "ecg_encoder" in config:
        modalities, kind = ("ecg",), str(config.get("stage", "finetune"))
    else:
        raise EmbedError(f"{run_dir}/config.yaml: cannot tell which encoders this run holds")
    out = RunEncoders(
        kind=kind, source=str(run_dir), num_steps=int(_find(config, "num_steps") or 13)
    )
    for modality in modalities:
        setattr(out, modality, load_encoder(run_dir, modality).eval())
    widths = {m: int(getattr(out, m).width) for m in out.modalities}
    for modality, head in _heads(run_dir, widths).items():
        setattr(out, f"{modality}_head", head)
    return out


@torch.no_grad()
def compute_embeddings(
    encoders: RunEncoders,
    store: Any,
    split: str | None,
    *,
    batch_size: int = 32,
    device: str = "cpu",
    num_workers: int = 0,
    progress: bool = False,
) -> Embeddings:
    """Embed every subject of `split` holding the run's modalities (see the module docstring)."""
    from torch.utils.data import DataLoader

    from ptacl.data.datasets import CmrDataset, EcgDataset, PairedDataset
    from ptacl.data.store import Store
    from ptacl.models.local import cmr_local_embeddings, ecg_local_embeddings

    store = store if isinstance(store, Store) else Store.open(store)
    has_ecg, has_cmr = encoders.ecg is not None, encoders.cmr is not None
    # Inputs shaped as each encoder was built for (a tiny config may crop 500 samples).
    crop = encoders.ecg.samples if has_ecg else 2500
    frames = encoders.cmr.frames if has_cmr else 26
    if has_ecg and has_cmr:
        dataset = PairedDataset(
            store, split, train=False, ecg_augment=None, cmr_augment=None, crop=crop, frames=frames
        )
    elif has_ecg:
        dataset = EcgDataset(store, split, train=False, augment=None, crop=crop)
    else:
        dataset = CmrDataset(store, split, train=False, augment=None, frames=frames)
    if len(dataset) == 0:
        raise EmbedError(
            f"{store.root}: split {split!r} has no subjects with {' and '.join(encoders.modalities)}"
        )
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    for module in (encoders.ecg, encoders.cmr, encoders.ecg_head, encoders.cmr_head):
        if module is not None:
            module.to(device).eval()
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("ecg", "cmr", "ecg_proj", "cmr_proj")}
    eids: list[str] = []
    pheno: list[np.ndarray] = []
    align_sum, align_count = None, 0
    if progress:
        from tqdm import tqdm

        loader = tqdm(loader, desc=f"embed {split}", unit="batch")
    for batch in loader:
        eids += list(batch["eid"])
        pheno.append(batch["phenotypes"].numpy())
        tokens = {}
        for modality in encoders.modalities:
            encoder = getattr(encoders, modality)
            tokens[modality] = encoder.forward_features(batch[modality].to(device))  # (B, L, D)
            pooled = encoder.pool(tokens[modality])  # (B, D)
            parts[modality].append(pooled.float().cpu().numpy())
            head = getattr(encoders, f"{modality}_head")
            if head is not None:
                parts[f"{modality}_proj"].append(head(pooled).float().cpu().numpy())
        if has_ecg and has_cmr:
            steps = encoders.num_steps
            ecg_local, valid = ecg_local_embeddings(
                encoders.ecg.time_tokens(tokens["ecg"]),
                batch["r_peaks"].to(device),
                encoders.ecg.samples_per_step,
                steps,
            )  # (B, T, D), (B,)
            cmr_local = cmr_local_embeddings(encoders.cmr.time_tokens(tokens["cmr"]), steps)
            if ecg_local.shape[-1] != cmr_local.shape[-1] and encoders.ecg_head is not None:
                ecg_local, cmr_local = encoders.ecg_head(ecg_local), encoders.cmr_head(cmr_local)
            if ecg_local.shape[-1] == cmr_local.shape[-1] and valid.any():
                sim = torch.einsum(
                    "bkd,btd->bkt",
                    nn.functional.normalize(ecg_local[valid].float(), dim=-1),
                    nn.functional.normalize(cmr_local[valid].float(), dim=-1),
                )  # (B_valid, T, T)
                total = sim.sum(dim=0).cpu().numpy()
                align_sum = total if align_sum is None else align_sum + total
                align_count += int(valid.sum())
    arrays = {k: np.concatenate(v) for k, v in parts.items() if v}
    meta = {
        "model": encoders.source,
        "kind": encoders.kind,
        "store": str(store.root),
        "split": split,
        "subjects": len(eids),
        "inputs": f"centre {crop} ECG samples; {frames} CMR frames",
        "alignment_subjects": align_count,
    }
    return Embeddings(
        eids=np.asarray(eids, dtype=str),
        phenotypes=np.concatenate(pheno).astype(np.float32),
        phenotype_names=tuple(store.manifest.get("phenotypes", PHENOTYPES)),
        alignment=None if align_sum is None else (align_sum / align_count).astype(np.float32),
        meta=meta,
        **arrays,
    )
