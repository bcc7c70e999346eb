"""Embeddings of one store split from any encoder run: the input of every evaluation.

A "run" is a folder written by `ptacl pretrain` (one modality: config.yaml has `modality`),
`ptacl align` (both: `ecg_encoder` and `cmr_encoder` sections) or `ptacl finetune` (the one
encoder of its `modality`, ECG by default), or the word `none`: encoders randomly initialised
from a seed (the random-init baseline; with `like=RUN` those RUN holds, with its architecture).

Which subjects: those of the split holding every modality the run has (both: paired subjects;
an ECG run: every subject with an ECG). An ECG is embedded as `ptacl predict` embeds a
recording: the mean-pooled encoder tokens (`encoder.pool`) of each of its crops of the size the
encoder was built for (2,500 samples at the paper's sizes: the two halves of a 10-s ECG, see
`ptacl.embedding.crops`), averaged. A CMR is the deterministic evaluation view of
`ptacl.data.datasets` (26 frames from end-diastole at the paper's sizes), mean-pooled. A run
with projection heads (stage 2) adds the projected embeddings, the space its global loss aligns
(the ECG's: the projection of its crop-averaged embedding). With both encoders the mean T × T
ECG–CMR local cosine similarity over subjects is kept too (the paper's Figure 2); a subject's
ECG local steps are averaged over its crops holding a complete beat.

The file is an .npz without pickles: eids (N,) str, phenotypes (N, P) float32, phenotype_names
(P,) str, ecg / cmr / ecg_proj / cmr_proj (N, ·) float32 where present, alignment (T, T)
float32 where present, meta (a JSON string; `ecg_encoder_id` is the ECG encoder's
`ptacl.inference.encoder_fingerprint`, the `encoder_id` a bundle of the same run records).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from ptacl.embedding.file import Embeddings, EmbedError
from ptacl.phenotypes import PHENOTYPES
from ptacl.runs import RunEncoders


def _local_through_heads(encoders: RunEncoders) -> bool:
    """Local steps are compared in the token space; through the projection heads when the two
    encoders' widths differ (as the align stage does)."""
    return (
        encoders.ecg is not None
        and encoders.cmr is not None
        and int(encoders.ecg.width) != int(encoders.cmr.width)
        and encoders.ecg_head is not None
        and encoders.cmr_head is not None
    )


def _ecg_crop_outputs(encoders: RunEncoders, local: bool) -> Callable[..., dict[str, torch.Tensor]]:
    """The per-crop ECG function of `compute_embeddings`: crops (n, 12, crop) [and their R peaks
    (n, 32)] -> embedding (n, D) [and local (n, T·D') with local_weight (n, 1): 0 and 0 for a
    crop without a complete beat]; `run_over_crops` averages them per recording."""
    from ptacl.models.local import ecg_local_embeddings

    encoder = encoders.ecg
    if encoder is None:
        raise ValueError("no ECG encoder")
    through_heads = _local_through_heads(encoders)

    def fn(crops: torch.Tensor, peaks: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        tokens = encoder.forward_features(crops)  # (n, L, D)
        out = {"embedding": encoder.pool(tokens)}  # (n, D)
        if local and peaks is not None:
            ecg_local, valid = ecg_local_embeddings(
                encoder.time_tokens(tokens), peaks, encoder.samples_per_step, encoders.num_steps
            )  # (n, T, D), (n,)
            if through_heads:
                ecg_local = encoders.ecg_head(ecg_local)
            keep = valid[:, None, None]
            out["local"] = torch.where(keep, ecg_local, torch.zeros_like(ecg_local)).flatten(1)
            out["local_weight"] = valid[:, None].to(ecg_local.dtype)
        return out

    return fn


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
    chunk: int = 256,
) -> Embeddings:
    """Embed every subject of `split` holding the run's modalities (see the module docstring).

    This is the one embedding of an ECG: `ptacl evaluate` (retrieval and linear probe),
    `ptacl embed` and `ptacl export` (the probe it fits and the OOD statistics) all call it, and
    `ptacl predict` computes the same from a recording (`ptacl.embedding.crops`): the encoder's
    pooled tokens averaged over the recording's crops, and the projection of that average.
    `num_workers` load the CMRs; the ECGs are read `chunk` subjects at a time.
    """
    from ptacl.data.store import Store

    store = store if isinstance(store, Store) else Store.open(store)
    has_ecg, has_cmr = encoders.ecg is not None, encoders.cmr is not None
    both = has_ecg and has_cmr
    # Inputs shaped as each encoder was built for (a tiny config may crop 500 samples).
    crop = encoders.ecg.samples if has_ecg else 2500
    frames = encoders.cmr.frames if has_cmr else 26
    rows = _subject_rows(encoders, store, split, crop)
    for module in (encoders.ecg, encoders.cmr, encoders.ecg_head, encoders.cmr_head):
        if module is not None:
            module.to(device).eval()
    chunks = [rows[i : i + chunk] for i in range(0, len(rows), chunk)]
    cmr_batches = _cmr_batches(store, split, rows, frames, chunk, num_workers) if has_cmr else None
    ecg_fn = _ecg_crop_outputs(encoders, local=both) if has_ecg else None
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("ecg", "cmr", "ecg_proj", "cmr_proj")}
    alignment = _AlignmentSum()
    if progress:
        from tqdm import tqdm

        chunks = tqdm(chunks, desc=f"embed {split}", unit="chunk")
    for part in chunks:
        ecg_local = cmr_local = valid = None
        if ecg_fn is not None:
            ecg_local, valid = _ecg_pass(
                ecg_fn,
                encoders,
                store,
                part,
                parts,
                crop=crop,
                batch_size=batch_size,
                device=device,
                local=both,
            )
        if cmr_batches is not None:
            cine = next(cmr_batches)["cmr"]  # (n, 1, F, H, W), the same rows in the same order
            cmr_local = _cmr_pass(encoders, cine, parts, batch_size, device, local=both)
        if ecg_local is not None and cmr_local is not None and len(ecg_local):
            alignment.add(ecg_local, cmr_local[torch.from_numpy(valid)], encoders.num_steps)
    return _assemble(encoders, store, split, rows, parts, alignment, crop=crop, frames=frames)


def _subject_rows(encoders: RunEncoders, store: Any, split: str | None, crop: int) -> np.ndarray:
    """The store rows of `split` holding every modality of `encoders`; EmbedError when there
    are none or an ECG is shorter than the encoder's crop."""
    has_ecg = encoders.ecg is not None
    rows = store.indices(split, ecg=has_ecg, cmr=encoders.cmr is not None)
    if len(rows) == 0:
        raise EmbedError(
            f"{store.root}: split {split!r} has no subjects with {' and '.join(encoders.modalities)}"
        )
    if has_ecg:
        short = rows[store.subjects["ecg_length"].to_numpy()[rows] < crop]
        if len(short):
            eid = store.subjects["eid"].astype(str).iloc[int(short[0])]
            raise EmbedError(
                f"{store.root}: {len(short)} ECGs of split {split!r} are shorter than the "
                f"encoder's crop of {crop} samples (first: eid {eid})"
            )
    return rows


def _cmr_batches(
    store: Any, split: str | None, rows: np.ndarray, frames: int, chunk: int, num_workers: int
) -> Iterator[dict[str, torch.Tensor]]:
    """The evaluation views of the CMRs of `rows`, in that order, `chunk` subjects a batch."""
    from torch.utils.data import DataLoader, Subset

    from ptacl.data.datasets import CmrDataset

    cmr_set = CmrDataset(store, split, train=False, augment=None, frames=frames)
    position = {int(r): k for k, r in enumerate(cmr_set.rows)}
    subset = Subset(cmr_set, [position[int(r)] for r in rows])
    return iter(DataLoader(subset, batch_size=chunk, shuffle=False, num_workers=num_workers))


def _ecg_pass(
    ecg_fn: Callable[..., dict[str, torch.Tensor]],
    encoders: RunEncoders,
    store: Any,
    part: np.ndarray,
    parts: dict[str, list[np.ndarray]],
    *,
    crop: int,
    batch_size: int,
    device: str,
    local: bool,
) -> tuple[torch.Tensor | None, np.ndarray | None]:
    """Embed the ECGs of store rows `part` (crop averages, and their projection) into `parts`;
    with `local`, return the local steps (n_valid, T·D') of the recordings with a complete
    beat and the mask (n,) of those recordings, else (None, None)."""
    from ptacl.embedding.crops import store_outputs

    out = store_outputs(
        ecg_fn,
        store,
        part,
        crop=crop,
        batch_size=batch_size,
        device=device,
        chunk=len(part),
        with_peaks=local,
    )
    pooled = torch.from_numpy(out["embedding"]).float()  # (n, D), mean over crops
    parts["ecg"].append(pooled.numpy())
    if encoders.ecg_head is not None:  # the projection of the crop average, as predict
        parts["ecg_proj"].append(encoders.ecg_head(pooled.to(device)).float().cpu().numpy())
    if not local:
        return None, None
    # ECG local steps: the mean over the recording's crops with a complete beat
    weight = out["local_weight"][:, 0]  # share of such crops
    valid = weight > 0
    return torch.from_numpy(out["local"][valid] / weight[valid, None]).float(), valid


def _cmr_pass(
    encoders: RunEncoders,
    cine: torch.Tensor,
    parts: dict[str, list[np.ndarray]],
    batch_size: int,
    device: str,
    *,
    local: bool,
) -> torch.Tensor | None:
    """Embed the CMRs `cine` (n, 1, F, H, W) (mean-pooled, and their projection) into `parts`;
    with `local`, return their local steps (n, T, D'), else None."""
    from ptacl.models.local import cmr_local_embeddings

    cmr_local_parts = []
    for b in range(0, len(cine), batch_size):
        tokens = encoders.cmr.forward_features(cine[b : b + batch_size].to(device))
        pooled_cmr = encoders.cmr.pool(tokens)
        parts["cmr"].append(pooled_cmr.float().cpu().numpy())
        if encoders.cmr_head is not None:
            parts["cmr_proj"].append(encoders.cmr_head(pooled_cmr).float().cpu().numpy())
        if local:
            steps = cmr_local_embeddings(encoders.cmr.time_tokens(tokens), encoders.num_steps)
            if _local_through_heads(encoders):
                steps = encoders.cmr_head(steps)
            cmr_local_parts.append(steps.float().cpu())  # (b, T, D')
    return torch.cat(cmr_local_parts) if local else None


class _AlignmentSum:
    """The running sum of the T × T ECG–CMR local similarity over subjects (Figure 2)."""

    def __init__(self) -> None:
        self.total: np.ndarray | None = None
        self.count = 0

    def add(self, ecg_local: torch.Tensor, cmr_local: torch.Tensor, num_steps: int) -> None:
        """ecg_local (B, T·D'), cmr_local (B, T, D') of the same B subjects; skipped when the
        two widths differ (no projection heads to bring them together)."""
        from ptacl.eval.metrics import local_similarity

        ecg_local = ecg_local.reshape(len(ecg_local), num_steps, -1)
        if ecg_local.shape[-1] != cmr_local.shape[-1]:
            return
        sim = local_similarity(ecg_local, cmr_local)  # (B, T, T)
        total = sim.sum(dim=0).numpy()
        self.total = total if self.total is None else self.total + total
        self.count += len(sim)

    def mean(self) -> np.ndarray | None:
        return None if self.total is None else (self.total / self.count).astype(np.float32)


def _assemble(
    encoders: RunEncoders,
    store: Any,
    split: str | None,
    rows: np.ndarray,
    parts: dict[str, list[np.ndarray]],
    alignment: _AlignmentSum,
    *,
    crop: int,
    frames: int,
) -> Embeddings:
    """The Embeddings of `rows`: the arrays gathered in `parts`, the store's eids and
    phenotypes, the mean local alignment and what was embedded how (meta)."""
    from ptacl.inference.bundle_format import encoder_fingerprint

    arrays = {k: np.concatenate(v) for k, v in parts.items() if v}
    meta = {
        "model": encoders.source,
        # what `ptacl retrieve` checks against a bundle's encoder_id (`ptacl export` writes it)
        "ecg_encoder_id": (
            encoder_fingerprint(encoders.ecg.state_dict()) if encoders.ecg is not None else None
        ),
        "kind": encoders.kind,
        "store": str(store.root),
        "split": split,
        "subjects": len(rows),
        "inputs": f"ECG: mean over its {crop}-sample crops (ptacl.embedding.crops); "
        f"{frames} CMR frames",
        "alignment_subjects": alignment.count,
    }
    eids = store.subjects["eid"].astype(str).to_numpy()[rows]
    return Embeddings(
        eids=np.asarray(eids, dtype=str),
        phenotypes=np.asarray(store.phenotypes[rows], dtype=np.float32),
        phenotype_names=tuple(store.manifest.get("phenotypes", PHENOTYPES)),
        alignment=alignment.mean(),
        meta=meta,
        **arrays,
    )
