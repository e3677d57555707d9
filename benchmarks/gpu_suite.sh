#!/usr/bin/env bash
# Every issue-6 benchmark in one run, for a lent GPU machine (torch + transformers there, no pipeline
# tools): `bash benchmarks/gpu_suite.sh [OUT_DIR]`. Each step has its own time limit, so one failure
# leaves the others' records; results are appended under benchmarks/results/ and copied to OUT_DIR.
# `DEVICE=cpu SMALL=1 bash benchmarks/gpu_suite.sh` is the dry run of the same steps on a CPU.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH=. PYTHONUNBUFFERED=1
out=${1:-${OUT:-/tmp/gpu_suite}}
device=${DEVICE:-cuda}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$out/nvidia_smi.csv" 2>&1
python3 -c "import torch, transformers; print(torch.__version__, transformers.__version__)" | tee "$out/versions.txt"

step() {  # step NAME SECONDS COMMAND...: run with a limit, log to OUT, never stop the suite
    local name=$1 limit=$2
    shift 2
    echo "== $name ($(date -u +%T), limit ${limit}s)"
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    echo "== $name exit $?"
    tail -n 3 "$out/$name.log"
}

if [ "${SMALL:-0}" = 1 ]; then
    small=(--size 64 --batch 2)
    step compare 300 python3 -m benchmarks.compare_transformers --device "$device" --only loss train max_batch \
        "${small[@]}"
    step profile 300 python3 -m benchmarks.profile_step --device "$device" --size 64 --out "$out/profile_step.txt"
else
    # at most 9.5 minutes in all (limits, not expected times): fits one 10-minute device call
    step compare 300 python3 -m benchmarks.compare_transformers --device "$device" --iters 10 --rounds 3 \
        --only train loss inference evaluation
    step profile 60 python3 -m benchmarks.profile_step --device "$device" --size 512 --batch 8
    step point_loss 50 python3 -m benchmarks.point_sampling_loss --device "$device" --batch 8
    step max_batch 150 python3 -m benchmarks.compare_transformers --device "$device" --iters 3 --only max_batch
fi
cp benchmarks/results/*.jsonl benchmarks/results/profile_step.txt "$out"/ 2>/dev/null
echo "results in $out"
