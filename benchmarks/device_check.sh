#!/usr/bin/env bash
# Everything to check on a lent GPU, in one run (about 5-8 minutes on one H100/H200), and the
# same path on the CPU in seconds (`--device cpu --size tiny`, run by tests/test_throughput.py):
#
#   1. the CUDA-marked tests (`pytest -m gpu`; cuda only: on the CPU they only skip), and
#      `ptacl benchmark --preset tiny --accelerator gpu` end to end (cuda only; the CPU path is
#      tests/cli/test_benchmark.py);
#   2. stage 2 (align) at `--size` on synthetic tensors: samples/s, TFLOP/s and MFU in
#      bf16-mixed, eager and torch.compile'd (benchmarks/throughput.py, FLOPs by FlopCounterMode);
#   3. the same train step fed by the real loader from a random store built here, with the
#      machine's cores as workers: loader items/s, fed samples/s, verdict GPU- or loader-bound
#      (benchmarks/device_loader.py);
#   4. peak memory of one step: the feature cache (k = 4) against one batch of the same pairs
#      (benchmarks/bench_accumulation.py).
#
#   benchmarks/device_check.sh                          # cuda, paper size
#   benchmarks/device_check.sh --device cpu --size tiny # the same path on the CPU (seconds)
#
# Extra arguments go to benchmarks/throughput.py (e.g. --batch 256 --steps 20). PYTHON picks the
# interpreter (default: python3). Results: JSON lines in $OUT (or .)/device_check_<device>_<size>
# .jsonl, rewritten on each run (safe to rerun: the store under $OUT/.device_check is reused).
# A failing part is recorded and the others still run; the exit status is then 1.
set -uo pipefail
cd "$(dirname "$0")/.."
device=cuda
size=paper
args=()
while (($#)); do
    case "$1" in
        --device) device="$2"; shift 2 ;;
        --size) size="$2"; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
py="${PYTHON:-python3}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
outdir="${OUT:-.}"
out="$outdir/device_check_${device}_${size}.jsonl"
: > "$out"
failed=0
record() {  # name, exit status: one JSON line per part
    printf '{"check": "%s", "rc": %d}\n' "$1" "$2" >> "$out"
    if (($2)); then failed=1; echo "device_check: $1 failed (exit $2)" >&2; fi
}
steps=10 repeats=3 loader_steps=20 subjects=512 pairs=64 workers=$(nproc)
accum_config=ptacl_regression.yaml
if [[ "$device" == cpu ]]; then
    steps=1 repeats=1 loader_steps=2 subjects=16 pairs=8 workers=1 accum_config=tiny/ptacl.yaml
fi
"$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")'

if [[ "$device" == cuda ]]; then
    "$py" -m pytest -q -m gpu -p no:cacheprovider tests/gpu tests/inference/test_predictor_cuda.py \
        tests/training/test_feature_cache.py 2>&1 | tail -30
    record gpu_tests "${PIPESTATUS[0]}"
fi

if [[ "$device" == cuda ]]; then  # the whole pipeline on the GPU: synth, prepare, train, evaluate
    "$py" -m ptacl benchmark --preset tiny --seeds 1 --methods random global ptacl --no-finetune \
        --accelerator gpu --quiet --out "$outdir/.device_check_benchmark" 2>&1 | tail -5
    record benchmark_tiny_cuda "${PIPESTATUS[0]}"
fi

"$py" benchmarks/throughput.py --stage align --size "$size" --device "$device" \
    --precision bf16-mixed --compile both --steps "$steps" --repeats "$repeats" \
    --json "$out" "${args[@]}"
record throughput $?

"$py" benchmarks/device_loader.py --device "$device" --size "$size" --steps "$loader_steps" \
    --subjects "$subjects" --workers "$workers" --store "$outdir/.device_check" --json "$out"
record loader_fed $?

"$py" benchmarks/bench_accumulation.py --config "$accum_config" --device "$device" \
    --pairs "$pairs" --ks 1 4 | tee -a "$out"
record accumulation_memory "${PIPESTATUS[0]}"

echo "written: $out (gflop_per_sample: FLOPs of one paired sample's train step, FlopCounterMode)"
exit "$failed"
