#!/usr/bin/env bash
# Every issue-6 benchmark in one run, for a lent GPU machine (torch + transformers there, no pipeline
# tools): `bash benchmarks/gpu_suite.sh [OUT_DIR]`. Each step has its own time limit, so one failure
# leaves the others' records; results are appended under benchmarks/results/ and copied to OUT_DIR
# (4 files: the device tool returns at most 8): suite.log, the two JSON-lines files, the sync profile.
# `DEVICE=cpu SMALL=1 bash benchmarks/gpu_suite.sh` is the dry run of the same steps on a CPU.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH=. PYTHONUNBUFFERED=1
out=${1:-${OUT:-/tmp/gpu_suite}}
device=${DEVICE:-cuda}
mkdir -p "$out"
log="$out/suite.log"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$log" 2>&1
python3 -c "import torch, transformers; print(torch.__version__, transformers.__version__)" 2>&1 | tee -a "$log"

step() {  # step NAME SECONDS COMMAND...: run with a limit, log to suite.log, never stop the suite
    local name=$1 limit=$2
    shift 2
    echo "== $name ($(date -u +%T), limit ${limit}s)" | tee -a "$log"
    timeout "$limit" "$@" >>"$log" 2>&1
    echo "== $name exit $?" | tee -a "$log"
}

if [ "${SMALL:-0}" = 1 ]; then
    small=(--size 64 --batch 2)
    step compare 300 python3 -m benchmarks compare_transformers --device "$device" --only loss train max_batch \
        "${small[@]}"
    step profile 300 python3 -m benchmarks profile_step --device "$device" --size 64 --out /tmp/profile_step_dry.txt
else
    # at most 9.5 minutes in all (limits, not expected times): fits one 10-minute device call
    step compare 300 python3 -m benchmarks compare_transformers --device "$device" --iters 10 --rounds 3 \
        --only train loss inference evaluation
    step profile 60 python3 -m benchmarks profile_step --device "$device" --size 512 --batch 8
    step point_loss 50 python3 -m benchmarks point_sampling_loss --device "$device" --batch 8
    step max_batch 150 python3 -m benchmarks compare_transformers --device "$device" --iters 3 --only max_batch
fi
cp benchmarks/results/compare_transformers.jsonl benchmarks/results/point_sampling.jsonl \
    benchmarks/results/profile_step.txt "$out"/
echo "results in $out"
