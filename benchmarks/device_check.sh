#!/usr/bin/env bash
# Stage 2 (align) at the paper's size on one GPU: samples/s, TFLOP/s and MFU in bf16-mixed,
# eager and torch.compile'd side by side, with the FLOPs of one paired sample (FlopCounterMode
# on the real train step: forward + backward of both encoders, heads and losses). A few minutes.
#
#   benchmarks/device_check.sh                          # cuda, paper size, batch 128
#   benchmarks/device_check.sh --device cpu --size tiny # the same path on the CPU (seconds)
#
# Extra arguments go to benchmarks/throughput.py (e.g. --batch 256 --steps 20). PYTHON picks
# the interpreter (default: python3); the results are also written to $OUT (or .) as JSON lines.
set -euo pipefail
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
steps=10 repeats=3
if [[ "$device" == cpu ]]; then steps=1 repeats=1; fi
out="${OUT:-.}/device_check_${device}_${size}.jsonl"
"${PYTHON:-python3}" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")'
PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" "${PYTHON:-python3}" benchmarks/throughput.py \
    --stage align --size "$size" --device "$device" --precision bf16-mixed --compile both \
    --steps "$steps" --repeats "$repeats" --json "$out" "${args[@]}"
echo "written: $out (gflop_per_sample: FLOPs of one paired sample's train step, FlopCounterMode)"
