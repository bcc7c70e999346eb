"""The demo preset's MAE training step with 4 decoder heads against 2, side by side.

    .venv/bin/python benchmarks/bench_decoder_heads.py            # both MAEs, 10 steps, 3 repeats

Why: the demo's decoders are 32 wide, so 4 heads are 8-dimensional, and the CPU's
scaled_dot_product_attention over the decoder's full token sequence (600 ECG, 637 CMR tokens)
is several times slower per FLOP at head dimension 8 than at 16. A step is forward + masked
loss + backward + AdamW on random inputs of the demo's shapes (batch 32), one thread, the two
settings alternating within each repeat so that a load change hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time


def step_seconds(modality: str, heads: int, steps: int) -> float:
    import torch

    from ptacl.config import from_dict, load_yaml
    from ptacl.configs import path as config_path
    from ptacl.models.mae import MaeConfig, MaskedAutoencoder
    from ptacl.models.registry import encoder_from_config

    torch.manual_seed(0)
    data = load_yaml(config_path(f"demo/{modality}_mae"))
    mae_config = from_dict(MaeConfig, {**data["mae"], "decoder_heads": heads})
    mae = MaskedAutoencoder(encoder_from_config(data["encoder"], modality), mae_config)
    x = torch.randn(32, 12, 2500) if modality == "ecg" else torch.rand(32, 1, 26, 84, 84)
    optimiser = torch.optim.AdamW(mae.parameters(), lr=1e-3)
    for i in range(steps + 2):  # two warm-up steps
        if i == 2:
            start = time.perf_counter()
        loss = mae(x)["loss"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for modality in ("ecg", "cmr"):
        times: dict[int, list[float]] = {4: [], 2: []}
        for _ in range(args.repeats):
            for heads in times:
                times[heads].append(step_seconds(modality, heads, args.steps))
        four, two = statistics.median(times[4]), statistics.median(times[2])
        print(
            f"{modality} MAE, demo preset, 1 thread: 4 heads {four:.3f} s/step, "
            f"2 heads {two:.3f} s/step, ratio {four / two:.2f}"
        )


if __name__ == "__main__":
    main()
