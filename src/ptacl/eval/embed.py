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

from collections.abc import Callable
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
    from torch.utils.data import DataLoader, Subset

    from ptacl.data.datasets import CmrDataset
    from ptacl.data.store import Store
    from ptacl.embedding.crops import store_outputs
    from ptacl.eval.metrics import local_similarity
    from ptacl.inference.bundle import encoder_fingerprint
    from ptacl.models.local import cmr_local_embeddings

    store = store if isinstance(store, Store) else Store.open(store)
    has_ecg, has_cmr = encoders.ecg is not None, encoders.cmr is not None
    both = has_ecg and has_cmr
    # Inputs shaped as each encoder was built for (a tiny config may crop 500 samples).
    crop = encoders.ecg.samples if has_ecg else 2500
    frames = encoders.cmr.frames if has_cmr else 26
    rows = store.indices(split, ecg=has_ecg, cmr=has_cmr)
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
    for module in (encoders.ecg, encoders.cmr, encoders.ecg_head, encoders.cmr_head):
        if module is not None:
            module.to(device).eval()
    chunks = [rows[i : i + chunk] for i in range(0, len(rows), chunk)]
    cmr_batches: Any = iter(())
    if has_cmr:
        cmr_set = CmrDataset(store, split, train=False, augment=None, frames=frames)
        position = {int(r): k for k, r in enumerate(cmr_set.rows)}
        cmr_batches = iter(
            DataLoader(
                Subset(cmr_set, [position[int(r)] for r in rows]),
                batch_size=chunk,
                shuffle=False,
                num_workers=num_workers,
            )
        )
    ecg_fn = _ecg_crop_outputs(encoders, local=both) if has_ecg else None
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("ecg", "cmr", "ecg_proj", "cmr_proj")}
    align_sum, align_count = None, 0
    if progress:
        from tqdm import tqdm

        chunks = tqdm(chunks, desc=f"embed {split}", unit="chunk")
    for part in chunks:
        ecg_local = cmr_local = None
        if ecg_fn is not None:
            out = store_outputs(
                ecg_fn,
                store,
                part,
                crop=crop,
                batch_size=batch_size,
                device=device,
                chunk=len(part),
                with_peaks=both,
            )
            pooled = torch.from_numpy(out["embedding"]).float()  # (n, D), mean over crops
            parts["ecg"].append(pooled.numpy())
            if encoders.ecg_head is not None:  # the projection of the crop average, as predict
                parts["ecg_proj"].append(encoders.ecg_head(pooled.to(device)).float().cpu().numpy())
            if both:
                # ECG local steps: the mean over the recording's crops with a complete beat
                weight = out["local_weight"][:, 0]  # share of such crops
                valid = weight > 0
                ecg_local = torch.from_numpy(out["local"][valid] / weight[valid, None]).float()
        if has_cmr:
            cine = next(cmr_batches)["cmr"]  # (n, 1, F, H, W), the same rows in the same order
            cmr_local_parts = []
            for b in range(0, len(cine), batch_size):
                tokens = encoders.cmr.forward_features(cine[b : b + batch_size].to(device))
                pooled_cmr = encoders.cmr.pool(tokens)
                parts["cmr"].append(pooled_cmr.float().cpu().numpy())
                if encoders.cmr_head is not None:
                    parts["cmr_proj"].append(encoders.cmr_head(pooled_cmr).float().cpu().numpy())
                if both:
                    local = cmr_local_embeddings(
                        encoders.cmr.time_tokens(tokens), encoders.num_steps
                    )
                    if _local_through_heads(encoders):
                        local = encoders.cmr_head(local)
                    cmr_local_parts.append(local.float().cpu())  # (b, T, D')
            if both:
                cmr_local = torch.cat(cmr_local_parts)
        if ecg_local is not None and cmr_local is not None and len(ecg_local):
            ecg_local = ecg_local.reshape(len(ecg_local), encoders.num_steps, -1)
            cmr_local = cmr_local[torch.from_numpy(valid)]
            if ecg_local.shape[-1] == cmr_local.shape[-1]:
                sim = local_similarity(ecg_local, cmr_local)  # (B_valid, T, T)
                total = sim.sum(dim=0).numpy()
                align_sum = total if align_sum is None else align_sum + total
                align_count += len(sim)
    arrays = {k: np.concatenate(v) for k, v in parts.items() if v}
    meta = {
        "model": encoders.source,
        # what `ptacl retrieve` checks against a bundle's encoder_id (`ptacl export` writes it)
        "ecg_encoder_id": encoder_fingerprint(encoders.ecg.state_dict()) if has_ecg else None,
        "kind": encoders.kind,
        "store": str(store.root),
        "split": split,
        "subjects": len(rows),
        "inputs": f"ECG: mean over its {crop}-sample crops (ptacl.embedding.crops); "
        f"{frames} CMR frames",
        "alignment_subjects": align_count,
    }
    eids = store.subjects["eid"].astype(str).to_numpy()[rows]
    return Embeddings(
        eids=np.asarray(eids, dtype=str),
        phenotypes=np.asarray(store.phenotypes[rows], dtype=np.float32),
        phenotype_names=tuple(store.manifest.get("phenotypes", PHENOTYPES)),
        alignment=None if align_sum is None else (align_sum / align_count).astype(np.float32),
        meta=meta,
        **arrays,
    )
