#!/usr/bin/env bash
# One short run on a GPU machine (the device tool), everything in one call so
# every ratio comes from one run on one card:
#   1. use the carried gpu_bundle/ (scripts/gpu_bundle.sh, built on the dev
#      machine), or build in build-gpu/ when none travelled;
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
#   bash scripts/gpu_bundle.sh             # on the dev machine, after the build
#   bash scripts/gpu_check.sh              # on the GPU machine (carry gpu_bundle); an estimated 4 minutes
#   NO_COMPILE=1 bash scripts/gpu_check.sh # skip torch.compile (estimated 1-2 minutes)
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
    # 1. what to run: the carried bundle (scripts/gpu_bundle.sh), else build here
    if [ -x gpu_bundle/mixerlab ]; then
        export LD_LIBRARY_PATH="$PWD/gpu_bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        M=gpu_bundle/mixerlab T=gpu_bundle
    else
        echo "== building in build-gpu/ (no gpu_bundle/ carried)"
        cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DMIXERLAB_CUDA=ON >/dev/null &&
            cmake --build build-gpu -j"$(nproc)" >/dev/null || { echo "build failed"; exit 1; }
        M=build-gpu/mixerlab T=build-gpu/tests
    fi
    if ldd "$M" | grep -q "libcublas.*not found"; then # cuBLAS from the toolkit or from PyTorch's wheels
        for d in /usr/local/cuda/lib64 /usr/local/cuda/lib \
            "$(python3 -c 'import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__) + "/lib")' 2>/dev/null)"; do
            [ -d "$d" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
        done
    fi
    "$M" --version || { echo "mixerlab does not start here:"; ldd "$M" | grep "not found"; exit 1; }
    echo "== 2. CUDA tests (kernels and whole models against the CPU reference)"
    "$T/test_cuda_ops"
    ops_rc=$?
    "$T/test_cuda_model" tests/fixtures
    model_rc=$?
    cuda_rc=$((ops_rc != 0 || model_rc != 0))
    echo "test_cuda_ops exit $ops_rc, test_cuda_model exit $model_rc (0 passed, 77 skipped)"
    echo "== 3. mixerlab bench-cuda"
    timeout 120 "$M" bench-cuda --iters 20 | tee "$OUT/bench_cuda.md"
    # the long sequences again with L2 flushed before every run: at L = 16,384 the dwconv's 50 MB is
    # about the L2's size, so the warm numbers above partly measure the cache
    timeout 60 "$M" bench-cuda --iters 10 --cold --tokens 4096,16384,32761 | tail -6 | tee "$OUT/bench_cuda_cold.md"
    echo "== 4. whole models on the GPU (float32, CUDA events, median of 50 runs)"
    : >"$OUT/forward.tsv"
    for model in mambaout_femto mambaout_tiny; do
        for b in 1 64; do
            for mode in launched graph; do
                flag=""
                [ "$mode" = graph ] && flag="--cuda-graph"
                f="$OUT/forward_${model}_b${b}_$mode.txt"
                timeout 60 "$M" forward --model "$model" --res 224 --batch "$b" --device cuda --repeat 50 $flag >"$f" 2>&1
                line=$(grep "forward time" "$f" || tail -1 "$f")
                ms=$(echo "$line" | sed -n 's/.*median \([0-9.]*\) ms.*/\1/p')
                printf '%s\t%s\t%s\t%s\n' "$model" "$b" "$mode" "${ms:-NA}" >>"$OUT/forward.tsv"
                echo "$model batch $b $mode: $line"
            done
        done
    done
    echo "== 5. a sweep on the GPU through the store (experiments/gpu_check_mixers.ini)"
    timeout 120 "$M" sweep experiments/gpu_check_mixers.ini --db "$OUT/gpu_check.sqlite" 2>/dev/null | tail -1
    "$M" export --db "$OUT/gpu_check.sqlite" --csv | cut -d, -f7,9,15,16,20,25,29 | column -t -s, 2>/dev/null ||
        "$M" export --db "$OUT/gpu_check.sqlite" --csv | cut -d, -f7,9,15,16,20,25,29
    echo "== 6. PyTorch on the same card, same call"
    timeout 300 python3 scripts/pytorch_ref.py ${NO_COMPILE:+--no-compile} 2>&1 | tee "$OUT/pytorch_ref.md"
    echo "== 7. the CUDA issue's targets, ratios from this run"
    python3 scripts/gpu_targets.py "$OUT"
    exit $cuda_rc
} 2>&1 | tee "$log"
exit "${PIPESTATUS[0]}"
