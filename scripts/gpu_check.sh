#!/usr/bin/env bash
# One short run on a GPU machine (the device tool), everything in one call so
# every ratio comes from one run on one card:
#   1. build, or reuse a carried build/ whose binary has CUDA compiled in;
#   2. the CUDA tests: every kernel and mixer, and whole-model logits, against
#      the CPU reference (correctness before speed);
#   3. mixerlab bench-cuda: copy and SGEMM limits, each op's rate, and the
#      dwconv / scan / attention cores for L = 196 ... 32,761 at width 384;
#   4. mambaout_femto and mambaout_tiny at 224², batch 1 and 64, float32,
#      launched and as a CUDA graph;
#   5. a short sweep on the GPU (experiments/gpu_check_mixers.ini) through the
#      SQLite store;
#   6. PyTorch + timm on the same card (scripts/pytorch_ref.py): eager and
#      torch.compile reduce-overhead, cuDNN depthwise conv and SDPA;
#   7. the targets of the CUDA issue, as ratios of numbers from this run.
# Everything printed also lands in $OUT (default /tmp/mixerlab_gpu_check).
#
#   bash scripts/gpu_check.sh              # from the repository root; about 4 minutes
#   NO_COMPILE=1 bash scripts/gpu_check.sh # skip torch.compile (saves 1-2 minutes)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/mixerlab_gpu_check}
mkdir -p "$OUT"
export OUT
log="$OUT/gpu_check.log"
rm -f "$OUT/pytorch_ref.jsonl"
{
    echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), git $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.total --format=csv 2>&1 | head -3
    if ! build/mixerlab --version 2>/dev/null | grep -q "cuda:     compiled in"; then
        echo "== building (no usable carried build/)"
        cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMIXERLAB_CUDA=ON >/dev/null &&
            cmake --build build -j"$(nproc)" >/dev/null || { echo "build failed"; exit 1; }
    fi
    build/mixerlab --version
    echo "== 2. CUDA tests (kernels and whole models against the CPU reference)"
    ctest --test-dir build -R cuda --output-on-failure --timeout 120
    cuda_rc=$?
    echo "== 3. mixerlab bench-cuda"
    timeout 120 build/mixerlab bench-cuda --iters 20 | tee "$OUT/bench_cuda.md"
    echo "== 4. whole models on the GPU (float32, CUDA events, median of 50 runs)"
    : >"$OUT/forward.tsv"
    for model in mambaout_femto mambaout_tiny; do
        for b in 1 64; do
            for mode in launched graph; do
                flag=""
                [ "$mode" = graph ] && flag="--cuda-graph"
                line=$(timeout 60 build/mixerlab forward --model "$model" --res 224 --batch "$b" --device cuda \
                    --repeat 50 $flag 2>&1 | grep "forward time")
                ms=$(echo "$line" | sed -n 's/.*median \([0-9.]*\) ms.*/\1/p')
                printf '%s\t%s\t%s\t%s\n' "$model" "$b" "$mode" "${ms:-NA}" >>"$OUT/forward.tsv"
                echo "$model batch $b $mode: ${line:-failed}"
            done
        done
    done
    echo "== 5. a sweep on the GPU through the store (experiments/gpu_check_mixers.ini)"
    timeout 120 build/mixerlab sweep experiments/gpu_check_mixers.ini --db "$OUT/gpu_check.sqlite" 2>/dev/null | tail -1
    build/mixerlab export --db "$OUT/gpu_check.sqlite" --csv | cut -d, -f7,9,15,16,20,25,29 | column -t -s, 2>/dev/null ||
        build/mixerlab export --db "$OUT/gpu_check.sqlite" --csv | cut -d, -f7,9,15,16,20,25,29
    echo "== 6. PyTorch on the same card, same call"
    timeout 300 python3 scripts/pytorch_ref.py ${NO_COMPILE:+--no-compile} 2>&1 | tee "$OUT/pytorch_ref.md"
    echo "== 7. the CUDA issue's targets, ratios from this run"
    python3 scripts/gpu_targets.py "$OUT"
    exit $cuda_rc
} 2>&1 | tee "$log"
exit "${PIPESTATUS[0]}"
