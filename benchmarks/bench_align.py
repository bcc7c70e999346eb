"""What the local loss costs: training step time of PTACL (β = 1) and global only (β = 0).

    .venv/bin/python benchmarks/bench_align.py                  # paper-size encoders, batch 4
    .venv/bin/python benchmarks/bench_align.py --batch 8 --repeats 5 --config tiny/ptacl.yaml

Both models are built from the same config (default: the shipped ptacl_regression.yaml, the paper's
encoders, first 2 blocks frozen) with identical weights, and trained on the same batch (random
ECG/CMR with four R peaks per 5 s crop). Steps alternate PTACL, global, PTACL, ... so both see
the same machine load; a step is forward, losses, backward and an AdamW update. The local part
on its own (local embeddings from the tokens, local loss, its backward) is timed too: on a
loaded machine it is a steadier figure than the difference of two step times.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from ptacl import configs


def make_batch(module, batch: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ecg_cfg, cmr_cfg = module.ecg_encoder.config, module.cmr_encoder.config
    rr = ecg_cfg.samples // 4  # four beats per crop
    r_peaks = torch.full((batch, 32), -1)
    peaks = torch.arange(rr // 3, ecg_cfg.samples, rr)
    r_peaks[:, : len(peaks)] = peaks
    return {
        "ecg": torch.randn(batch, ecg_cfg.leads, ecg_cfg.samples, generator=g),
        "cmr": torch.rand(batch, 1, cmr_cfg.frames, cmr_cfg.size, cmr_cfg.size, generator=g),
        "r_peaks": r_peaks,
    }


def train_step(module, optimizer, batch) -> float:
    t0 = time.perf_counter()
    out = module(batch["ecg"], batch["cmr"], batch["r_peaks"], local=module.loss_config.beta > 0)
    loss = module.losses(out)["loss"]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return time.perf_counter() - t0


def local_part(module, batch) -> float:
    """Local embeddings + local loss + their backward, from fixed encoder tokens."""
    from ptacl.losses import local_contrastive_loss
    from ptacl.models.local import cmr_local_embeddings, ecg_local_embeddings

    with torch.no_grad():
        ecg_tokens = module.ecg_encoder.forward_features(batch["ecg"])
        cmr_tokens = module.cmr_encoder.forward_features(batch["cmr"])
    ecg_tokens.requires_grad_()
    cmr_tokens.requires_grad_()
    cfg = module.loss_config
    t0 = time.perf_counter()
    ecg, cmr = module.ecg_encoder, module.cmr_encoder
    ecg_local, valid = ecg_local_embeddings(
        ecg.time_tokens(ecg_tokens), batch["r_peaks"], ecg.samples_per_step, cfg.num_steps
    )
    cmr_local = cmr_local_embeddings(cmr.time_tokens(cmr_tokens), cfg.num_steps)
    loss = local_contrastive_loss(
        ecg_local, cmr_local, cfg.temperature_local, cfg.sigma, valid=valid
    )
    loss.backward()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=configs.path("ptacl_regression"))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per model")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from ptacl.config import load_config, to_dict
    from ptacl.training.align import AlignModule, AlignRunConfig
    from ptacl.training.optim import build_optimizer_and_schedule

    torch.set_num_threads(args.threads)
    models = {}
    for name, beta in (("ptacl", 1.0), ("global", 0.0)):
        torch.manual_seed(0)
        cfg = load_config(AlignRunConfig, args.config, [f"loss.beta={beta}"])
        module = AlignModule(to_dict(cfg))
        optimizer, _ = build_optimizer_and_schedule(
            module, cfg.optim, total_steps=1000, global_batch=args.batch
        )
        models[name] = (module, optimizer)
    batch = make_batch(models["ptacl"][0], args.batch)
    trainable = sum(p.numel() for p in models["ptacl"][0].parameters() if p.requires_grad)

    for module, optimizer in models.values():  # warm-up: allocator, autograd graph, AdamW state
        train_step(module, optimizer, batch)
    times: dict[str, list[float]] = {"ptacl": [], "global": [], "local part": []}
    for _ in range(args.repeats):
        for name, (module, optimizer) in models.items():
            times[name].append(train_step(module, optimizer, batch))
        times["local part"].append(local_part(models["ptacl"][0], batch))

    median = {name: statistics.median(t) for name, t in times.items()}
    fastest = {name: min(t) for name, t in times.items()}  # the least disturbed by other load
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M')}  {platform.node()}  torch {torch.__version__}  "
        f"{args.threads} threads; config {args.config.name}, batch {args.batch}, "
        f"{trainable / 1e6:.1f} M trainable, {args.repeats} alternating steps each"
    )
    print(f"{'':<12} {'median s':>9} {'min s':>8}  all (s)")
    for name, t in times.items():
        all_times = ", ".join(f"{x:.3f}" for x in t)
        print(f"{name:<12} {median[name]:>9.3f} {fastest[name]:>8.3f}  {all_times}")
    for label, stat in (("median", median), ("min", fastest)):
        print(
            f"{label}: step time PTACL / global only {stat['ptacl'] / stat['global']:.3f}; "
            f"local part / global-only step {stat['local part'] / stat['global']:.4f}"
        )


if __name__ == "__main__":
    main()
