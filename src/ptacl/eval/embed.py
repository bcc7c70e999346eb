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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ptacl.phenotypes import PHENOTYPES
from ptacl.runs import RunEncoders

_ARRAYS = ("ecg", "cmr", "ecg_proj", "cmr_proj", "alignment")


class EmbedError(ValueError):
    """A run or embeddings file that cannot be used, with the path and the reason."""


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
