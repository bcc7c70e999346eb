"""The demo preset's training steps with fewer, wider attention heads, side by side.

    .venv/bin/python benchmarks/bench_attention_heads.py          # 10 steps, 3 repeats
    .venv/bin/python benchmarks/bench_attention_heads.py --decoder-only   # 4 vs 2 decoder heads

Why: the demo's models are narrow (encoders 64 wide, decoders 32), and the CPU's
scaled_dot_product_attention over a full token sequence (600 ECG, 637 CMR tokens) costs more per
FLOP the smaller the head dimension: 4 encoder heads are 16-dimensional, 4 decoder heads 8.
Settings compared (encoder heads / decoder heads): 4/4 → 4/2 (`--decoder-only`, the first change
of 2026-12-06) and 4/2 → 2/2 (encoder heads of 32 dimensions, the second; a decoder of 1 head was
faster still but its ECG MAE ended further from the data: BENCHMARKS.md).
A step is forward + loss + backward + AdamW on random inputs of the demo's shapes (batch 32),
one thread, the settings alternating within each repeat so that a load change hits both alike:
the MAE step of each modality, and stage 2's encoders over every token (no masking there).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable


def _inputs(modality: str):
    import torch

    return torch.randn(32, 12, 2500) if modality == "ecg" else torch.rand(32, 1, 26, 84, 84)


def _encoder(modality: str, heads: int):
    from ptacl.config import load_yaml
    from ptacl.configs import path as config_path
    from ptacl.models.registry import encoder_from_config

    data = load_yaml(config_path(f"demo/{modality}_mae"))
    return encoder_from_config({**data["encoder"], "heads": heads}, modality), data


def _timed(params, loss: Callable, steps: int) -> float:
    import torch

    optimiser = torch.optim.AdamW(params, lr=1e-3)
    for i in range(steps + 2):  # two warm-up steps
        if i == 2:
            start = time.perf_counter()
        value = loss()
        optimiser.zero_grad()
        value.backward()
        optimiser.step()
    return (time.perf_counter() - start) / steps


def mae_step(modality: str, enc_heads: int, dec_heads: int, steps: int) -> float:
    import torch

    from ptacl.config import from_dict
    from ptacl.models.mae import MaeConfig, MaskedAutoencoder

    torch.manual_seed(0)
    encoder, data = _encoder(modality, enc_heads)
    mae = MaskedAutoencoder(
        encoder, from_dict(MaeConfig, {**data["mae"], "decoder_heads": dec_heads})
    )
    x = _inputs(modality)
    return _timed(mae.parameters(), lambda: mae(x)["loss"], steps)


def stage2_step(enc_heads: int, _: int, steps: int) -> float:
    """Both encoders over all their tokens (stage 2 masks nothing); the losses are negligible."""
    import torch

    torch.manual_seed(0)
    ecg, _ = _encoder("ecg", enc_heads)
    cmr, _ = _encoder("cmr", enc_heads)
    x_ecg, x_cmr = _inputs("ecg"), _inputs("cmr")
    params = [*ecg.parameters(), *cmr.parameters()]
    return _timed(params, lambda: ecg(x_ecg).square().mean() + cmr(x_cmr).square().mean(), steps)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--decoder-only", action="store_true", help="4/4 against 4/2")
    args = parser.parse_args()
    torch.set_num_threads(1)
    before, after = ((4, 4), (4, 2)) if args.decoder_only else ((4, 2), (2, 2))
    cases = {
        "ECG MAE": lambda e, d: mae_step("ecg", e, d, args.steps),
        "CMR MAE": lambda e, d: mae_step("cmr", e, d, args.steps),
        **(
            {}
            if args.decoder_only
            else {"stage-2 encoders": lambda e, d: stage2_step(e, d, args.steps)}
        ),
    }
    for name, step in cases.items():
        times: dict[tuple[int, int], list[float]] = {before: [], after: []}
        for _ in range(args.repeats):
            for setting in times:
                times[setting].append(step(*setting))
        old, new = statistics.median(times[before]), statistics.median(times[after])
        print(
            f"{name}, demo preset, 1 thread: heads {before[0]}/{before[1]} {old:.3f} s/step, "
            f"{after[0]}/{after[1]} {new:.3f} s/step, ratio {old / new:.2f}"
        )


if __name__ == "__main__":
    main()
