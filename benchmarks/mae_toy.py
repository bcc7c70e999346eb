"""Why the ECG MAE sits on the mean-prediction plateau: the same MAE on toy 12-lead signals.

    python benchmarks/mae_toy.py --signal sine --gains random --steps 200
    python benchmarks/mae_toy.py --signal sine --gains one --steps 200

Each toy ECG is one random-phase, random-rate sinusoid (or a train of narrow pulses) shared by
all leads, times a per-lead gain: `one` (all leads equal) or `random` (N(0, 1) per lead and
subject, so sign and size differ, as per-lead z-scored leads of differently oriented hearts do).
With equal gains a masked token is predictable from the visible tokens at the same time (any
lead); with random gains it needs the same time *and* its own lead's gain together, and neither
alone lowers the loss. Prints the validation masked MSE and the mean-prediction MSE every 50
steps; a plain loop (no Lightning) with the MAE of `ptacl.models` and AdamW.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from ptacl.models import EcgEncoderConfig, MaeConfig, MaskedAutoencoder, encoder_from_config
from ptacl.models.mae import mean_prediction_mse


def toy_batch(
    n: int, *, signal: str, gains: str, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(n, 12, 2500) toy ECGs at 500 Hz."""
    seconds = torch.arange(2500) / 500
    rate = 0.8 + 1.2 * torch.rand(n, 1, 1, generator=generator)  # beats per second
    phase = torch.rand(n, 1, 1, generator=generator)  # in cycles
    if gains == "random":
        gain = torch.randn(n, 12, 1, generator=generator)
    else:
        gain = torch.ones(n, 12, 1)
    cycle = rate * seconds + phase
    if signal == "sine":
        return gain * torch.sin(2 * math.pi * cycle) * math.sqrt(2)
    return gain * (4 * torch.exp(-((((cycle % 1.0) - 0.5) / 0.02) ** 2)) - 0.3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signal", choices=("sine", "pulses"), default="sine")
    parser.add_argument("--gains", choices=("one", "random"), default="random")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1.25e-3)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--decoder-width", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    encoder = encoder_from_config(
        EcgEncoderConfig(width=args.width, depth=args.depth, heads=4), "ecg"
    )
    mae = MaskedAutoencoder(encoder, MaeConfig(decoder_width=args.decoder_width, decoder_heads=4))
    optimizer = torch.optim.AdamW(mae.parameters(), lr=args.lr, betas=(0.9, 0.95))
    kind = {"signal": args.signal, "gains": args.gains}
    val = toy_batch(64, **kind, generator=torch.Generator().manual_seed(10_000 + args.seed))
    start = time.perf_counter()
    print("step  val_loss  mean_prediction  seconds")
    for step in range(1, args.steps + 1):
        loss = mae(toy_batch(args.batch, **kind))["loss"]
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(mae.parameters(), 1.0)
        optimizer.step()
        if step % 50 == 0 or step == args.steps:
            with torch.no_grad():
                out = mae(val, generator=torch.Generator().manual_seed(1))
                baseline = mean_prediction_mse(mae.targets(val), out["mask"])
            elapsed = time.perf_counter() - start
            print(f"{step:4d}  {out['loss'].item():8.4f}  {baseline.item():15.4f}  {elapsed:7.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
