"""Training throughput per stage: samples/s, achieved FLOP/s and MFU of the real training step.

    .venv/bin/python benchmarks/throughput.py --stage ecg_mae --size paper --device cpu \\
        --precision bf16-mixed 32-true --steps 2 --repeats 3
    .venv/bin/python benchmarks/throughput.py --stage all --size tiny small --compile both

A step is what Lightning runs for the stage: forward + loss under autocast (bf16-mixed), backward,
gradient clipping, AdamW (`build_optimizer_and_schedule`, fused on CUDA) and zero_grad, on
synthetic tensors of the stage's shapes (no store). `embed` is the ECG encoder's inference
(mean-pooled tokens, no gradient). Encoders are built from the presets' configs (tiny: ptacl/configs/
tiny, small: ptacl/configs/small, paper: ptacl/configs/*.yaml); `trainer.compile` is `compile_blocks`.

FLOPs of one step are counted with `torch.utils.flop_counter.FlopCounterMode` on an eager step
(matmuls, convolutions, attention; the CPU's fused attention kernel is added to its table: torch
does not count it); MFU = achieved FLOP/s / the device's peak: on a CPU the rate of a 1024²
matmul in the same dtype (bf16 for bf16-mixed, fp32 for 32-true) measured in this run with the
same threads, on CUDA the H200's published dense peak.

Each configuration lives in its own worker process (peak memory is its own: ru_maxrss on the
CPU, max_memory_allocated on CUDA); the workers build and warm up first, then take turns, one
block of `--steps` steps each, A B A B ..., `--repeats` rounds: a load change on a shared machine
hits every configuration alike. Reported: the median block. One JSON line per configuration,
then a table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ptacl import configs

STAGES = ("ecg_mae", "cmr_mae", "align", "finetune", "embed")
SIZES = ("tiny", "small", "paper")
PRESET_FILES = {  # stage -> (file in ptacl/configs/tiny and small, file in ptacl/configs/)
    "ecg_mae": ("ecg_mae.yaml", "ecg_mae.yaml"),
    "cmr_mae": ("cmr_mae.yaml", "cmr_mae.yaml"),
    "align": ("ptacl.yaml", "ptacl_retrieval.yaml"),
    "finetune": ("finetune.yaml", "finetune.yaml"),
    "embed": ("ptacl.yaml", "ptacl_retrieval.yaml"),  # the stage-2 ECG encoder
}
#: Published dense peaks (TFLOP/s) of the NVIDIA H200 SXM; other GPUs: --peak-tflops.
CUDA_PEAK_TFLOPS = {"bf16-mixed": 989.0, "32-true": 67.0}
#: Batch on the CPU at the paper sizes (the configs' 64-128 would take minutes a step here).
CPU_PAPER_BATCH = 8


def config_path(stage: str, size: str) -> Path:
    small_name, paper_name = PRESET_FILES[stage]
    if size == "paper":
        return configs.root() / paper_name
    return configs.root() / size / small_name


def build(stage: str, size: str, batch: int | None, device: str, overrides: Sequence[str] = ()):
    """(module, loss_fn(batch) -> loss or None, batch tensors, train?, encoder width, run config).
    `overrides`: dotted key=value settings applied to the preset's config (e.g. a width)."""
    import torch

    from ptacl.config import load_config, to_dict

    path, overrides = config_path(stage, size), list(overrides)
    g = torch.Generator().manual_seed(0)
    if stage in ("ecg_mae", "cmr_mae"):
        from ptacl.training.mae import MaePretraining, MaeRunConfig

        cfg = load_config(MaeRunConfig, path, [f"modality={stage[:3]}", *overrides])
        module = MaePretraining(to_dict(cfg))
        shape = encoder_input_shape(cfg.encoder, stage[:3])
        b = batch or default_batch(cfg, size, device)
        x = torch.randn(b, *shape, generator=g)
        return module, lambda t: module.mae(t["x"])["loss"], {"x": x}, True, cfg.encoder.width, cfg
    if stage in ("align", "embed"):
        from ptacl.training.align import AlignModule, AlignRunConfig

        cfg = load_config(AlignRunConfig, path, overrides)
        module = AlignModule(to_dict(cfg))
        b = batch or default_batch(cfg, size, device)
        tensors = align_batch(cfg, b, g)
        if stage == "embed":
            encoder = module.ecg_encoder
            return (
                encoder,
                lambda t: encoder.pool(encoder.forward_features(t["ecg"])),
                {"ecg": tensors["ecg"]},
                False,
                cfg.ecg_encoder.width,
                cfg,
            )
        local = cfg.loss.beta > 0

        def align_loss(t: dict[str, Any]) -> Any:
            out = module(t["ecg"], t["cmr"], t["r_peaks"], local=local)
            return module.losses(out, gather=False)["loss"]

        return module, align_loss, tensors, True, cfg.ecg_encoder.width, cfg
    from ptacl.phenotypes import PHENOTYPES
    from ptacl.training.finetune import FinetuneConfig, FinetuneModule

    cfg = load_config(FinetuneConfig, path, overrides)
    p = len(PHENOTYPES)
    module = FinetuneModule(to_dict(cfg), [0.0] * p, [1.0] * p)
    b = batch or default_batch(cfg, size, device)
    x = torch.randn(b, *encoder_input_shape(cfg.ecg_encoder, "ecg"), generator=g)
    tensors = {"ecg": x, "phenotypes": torch.randn(b, p, generator=g)}
    return module, module._loss, tensors, True, cfg.ecg_encoder.width, cfg


def default_batch(cfg: Any, size: str, device: str) -> int:
    if device == "cpu" and size == "paper":
        return min(cfg.data.batch_size, CPU_PAPER_BATCH)
    return cfg.data.batch_size


def encoder_input_shape(enc: Any, modality: str) -> tuple[int, ...]:
    if modality == "ecg":
        return (enc.leads, enc.samples)
    return (1, enc.frames, enc.size, enc.size)


def align_batch(cfg: Any, batch: int, g: Any) -> dict[str, Any]:
    """Paired ECG, CMR and R peaks (four beats per crop, so every subject has local steps)."""
    import torch

    ecg, cmr = cfg.ecg_encoder, cfg.cmr_encoder
    rr = ecg.samples // 4
    r_peaks = torch.full((batch, 32), -1)
    peaks = torch.arange(rr // 3, ecg.samples, rr)
    r_peaks[:, : len(peaks)] = peaks
    return {
        "ecg": torch.randn(batch, *encoder_input_shape(ecg, "ecg"), generator=g),
        "cmr": torch.rand(batch, *encoder_input_shape(cmr, "cmr"), generator=g),
        "r_peaks": r_peaks,
    }


def cpu_sdpa_flops() -> dict[Any, Callable[..., int]]:
    """FlopCounterMode formulas for the CPU's fused attention (forward, backward), which torch's
    table lacks: the same counts as for the CUDA flash kernel."""
    import torch
    from torch.utils import flop_counter as fc

    aten = torch.ops.aten

    def forward(q, k, v, *args, out_shape=None, **kwargs) -> int:
        return fc.sdpa_flop_count(q, k, v)

    def backward(grad_out, q, k, v, *args, out_shape=None, **kwargs) -> int:
        return fc.sdpa_backward_flop_count(grad_out, q, k, v)

    table: dict[Any, Callable[..., int]] = {}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        # FlopCounterMode passes shapes to custom formulas (it applies shape_wrapper itself)
        table[aten._scaled_dot_product_flash_attention_for_cpu] = forward
        table[aten._scaled_dot_product_flash_attention_for_cpu_backward] = backward
    return table


def matmul_peak_tflops(dtype_name: str, device: str, seconds: float = 1.0) -> float:
    """Measured rate of a 1024² × 1024² matmul in `dtype_name` (best of several timings)."""
    import torch

    dtype = torch.bfloat16 if dtype_name == "bf16-mixed" else torch.float32
    a = torch.randn(1024, 1024, device=device, dtype=dtype)
    b = torch.randn(1024, 1024, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        sync(device)
        t0 = time.perf_counter()
        for _ in range(4):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - t0) / 4)
    return 2 * 1024**3 / best / 1e12


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


class Worker:
    """One configuration, built in this process: `warm_up`, then `block(steps)` -> seconds."""

    def __init__(self, spec: dict[str, Any]) -> None:
        import torch

        from ptacl.training.optim import build_optimizer_and_schedule
        from ptacl.training.trainer import compile_blocks

        self.spec = spec
        self.device = spec["device"]
        torch.manual_seed(0)
        module, loss_fn, tensors, train, width, cfg = build(
            spec["stage"], spec["size"], spec["batch"], self.device, spec["set"]
        )
        self.module = module.to(self.device).train(train)
        self.compile = lambda: compile_blocks(self.module)  # after the FLOP count
        self.loss_fn, self.train, self.width = loss_fn, train, width
        self.batch = {k: v.to(self.device) for k, v in tensors.items()}
        self.size = len(next(iter(tensors.values())))
        self.clip = cfg.trainer.grad_clip
        self.optimizer = None
        if train:
            self.optimizer, _ = build_optimizer_and_schedule(
                self.module, cfg.optim, total_steps=10_000, global_batch=self.size
            )
        self.autocast = torch.autocast(
            "cuda" if self.device == "cuda" else "cpu",
            dtype=torch.bfloat16,
            enabled=spec["precision"] == "bf16-mixed",
            cache_enabled=False,  # as Lightning's bf16-mixed: weights cast at every use
        )

    def step(self) -> None:
        import torch

        if not self.train:
            with torch.inference_mode(), self.autocast:
                self.loss_fn(self.batch)
            return
        with self.autocast:
            loss = self.loss_fn(self.batch)
        loss.backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def count_flops(self) -> int:
        """FLOPs of one step, counted on an eager step (compiled code hides its ops)."""
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False, custom_mapping=cpu_sdpa_flops())
        with counter:
            self.step()
        return counter.get_total_flops()

    def warm_up(self) -> float:
        t0 = time.perf_counter()
        for _ in range(2):  # compilation, allocator, optimizer state
            self.step()
        sync(self.device)
        return time.perf_counter() - t0

    def block(self, steps: int) -> float:
        sync(self.device)
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step()
        sync(self.device)
        return time.perf_counter() - t0

    def peak_memory_mib(self) -> float:
        import torch

        if self.device == "cuda":
            return torch.cuda.max_memory_allocated() / 2**20
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the whole process


def serve(spec: dict[str, Any]) -> None:
    """Worker process: build, warm up, count, then answer "run" lines until "quit"."""
    import torch

    torch.set_num_threads(spec["threads"])
    worker = Worker(spec)
    flops = worker.count_flops()
    if spec["compile"]:
        worker.compile()
    warm = worker.warm_up()
    send({"ready": True, "flops_per_step": flops, "warmup_s": warm, "batch": worker.size})
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        send({"seconds": worker.block(spec["steps"])})
    send({"peak_mem_mib": worker.peak_memory_mib(), "width": worker.width})


def send(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


def receive(process: subprocess.Popen) -> dict[str, Any]:
    for line in process.stdout:
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"worker exited with {process.wait()}: see its stderr above")


def measure(specs: list[dict[str, Any]], repeats: int, peaks: dict[str, float]) -> list[dict]:
    """Start a worker per spec, then run their blocks interleaved; one result per spec."""
    workers = []
    for spec in specs:  # started one at a time: a building worker must not slow another's block
        cmd = [sys.executable, __file__, "--serve", json.dumps(spec)]
        process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        workers.append((spec, process, receive(process), []))
    for _ in range(repeats):
        for _spec, process, _ready, blocks in workers:
            process.stdin.write("run\n")
            process.stdin.flush()
            blocks.append(receive(process)["seconds"])
    results = []
    for spec, process, ready, blocks in workers:
        process.stdin.write("quit\n")
        process.stdin.flush()
        final = receive(process)
        process.wait()
        seconds = statistics.median(blocks) / spec["steps"]
        samples = ready["batch"] / seconds
        tflops = ready["flops_per_step"] / seconds / 1e12
        peak = peaks[spec["precision"]]
        results.append(
            {
                **{k: spec[k] for k in ("stage", "size", "device", "precision", "compile")},
                **({"set": spec["set"]} if spec["set"] else {}),
                "batch": ready["batch"],
                "threads": spec["threads"],
                "samples_per_s": round(samples, 3),
                "step_s": round(seconds, 4),
                "step_s_blocks": [round(b / spec["steps"], 4) for b in blocks],
                "gflop_per_sample": round(ready["flops_per_step"] / ready["batch"] / 1e9, 3),
                "tflops": round(tflops, 4),
                "peak_tflops": round(peak, 3),
                "mfu": round(tflops / peak, 4),
                "peak_mem_mib": round(final["peak_mem_mib"]),
                "width": final["width"],
                "warmup_s": round(ready["warmup_s"], 1),
            }
        )
    return results


def print_table(results: list[dict]) -> None:
    head = f"{'stage':<9}{'size':<6}{'dev':<5}{'precision':<11}{'compile':<8}{'batch':>6}"
    head += f"{'samples/s':>11}{'GFLOP/smp':>10}{'TFLOP/s':>9}{'MFU':>7}{'peak MiB':>9}"
    print(head)
    for r in results:
        print(
            f"{r['stage']:<9}{r['size']:<6}{r['device']:<5}{r['precision']:<11}"
            f"{r['compile']!s:<8}{r['batch']:>6}{r['samples_per_s']:>11.3f}"
            f"{r['gflop_per_sample']:>10.2f}{r['tflops']:>9.4f}{r['mfu']:>7.3f}"
            f"{r['peak_mem_mib']:>9}"
        )
    # side-by-side ratios: each configuration against its fp32 / eager twin, block by block
    by_key = {(r["stage"], r["size"], r["precision"], r["compile"]): r for r in results}
    for r in results:
        for label, twin_key in (
            ("bf16 / fp32", (r["stage"], r["size"], "32-true", r["compile"])),
            ("compiled / eager", (r["stage"], r["size"], r["precision"], False)),
        ):
            twin = by_key.get(twin_key)
            if twin is None or twin is r:
                continue
            ratios = [a / b for a, b in zip(twin["step_s_blocks"], r["step_s_blocks"])]
            print(
                f"{r['stage']} {r['size']} {r['precision']} compile={r['compile']}: {label} "
                f"speed {statistics.median(ratios):.2f}x (per round "
                f"{', '.join(f'{x:.2f}' for x in ratios)})"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stage", nargs="+", default=["ecg_mae"], choices=[*STAGES, "all"])
    parser.add_argument("--size", nargs="+", default=["tiny"], choices=SIZES)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--precision", nargs="+", default=["32-true", "bf16-mixed"], choices=list(CUDA_PEAK_TFLOPS)
    )
    parser.add_argument("--compile", default="off", choices=["off", "on", "both"])
    parser.add_argument("--batch", type=int, help="default: the config's (CPU paper: 8)")
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides, e.g. "
        "encoder.width=256 encoder.depth=4 (keys of the stage's config file)",
    )
    parser.add_argument("--steps", type=int, default=3, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of blocks (median)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peak-tflops", type=float, nargs=2, metavar=("BF16", "FP32"))
    parser.add_argument("--json", type=Path, help="also write the JSON lines here")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(json.loads(args.serve))
        return 0

    import torch

    torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no GPU")
    stages = STAGES if "all" in args.stage else args.stage
    compiles = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    if args.peak_tflops:
        peaks = dict(zip(("bf16-mixed", "32-true"), args.peak_tflops))
    elif args.device == "cuda":
        peaks = dict(CUDA_PEAK_TFLOPS)
    else:
        peaks = {p: matmul_peak_tflops(p, "cpu") for p in CUDA_PEAK_TFLOPS}
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M:%S %Z')}  {args.device}  threads {args.threads}  "
        f"load {' '.join(load)}  peak TFLOP/s "
        + ", ".join(f"{k} {v:.3f}" for k, v in peaks.items())
        + (
            "  (1024² matmul, measured now)"
            if args.device == "cpu" and not args.peak_tflops
            else ""
        ),
        flush=True,
    )
    results = []
    for stage, size in itertools.product(stages, args.size):
        specs = [
            {
                "stage": stage,
                "size": size,
                "device": args.device,
                "precision": precision,
                "compile": compiled,
                "batch": args.batch,
                "set": args.set,
                "steps": args.steps,
                "threads": args.threads,
            }
            for compiled in compiles
            for precision in args.precision
        ]
        for result in measure(specs, args.repeats, peaks):
            print(json.dumps(result), flush=True)
            results.append(result)
    if args.json:
        args.json.write_text("".join(json.dumps(r) + "\n" for r in results))
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
