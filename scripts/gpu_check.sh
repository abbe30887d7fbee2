#!/usr/bin/env bash
# One short run on a GPU machine (the device tool): build (or reuse a carried
# build/), run the CUDA tests against the CPU reference, record the device,
# and run the PyTorch baseline in the same call so ratios come from one run.
# Everything it prints also goes to $OUT (default /tmp/mixerlab_gpu_check).
#
#   bash scripts/gpu_check.sh            # on the GPU machine, from the repository root
#
# State of the CUDA backend (see the CUDA issue): kernels for every op of
# MambaOut's skeleton and first (plain) kernels for every mixer, and the
# whole-model forward (forward --device cuda), all checked here against the
# CPU. Not written yet: fast scan/attention kernels, CUDA-graph capture, L2
# flush, the per-kernel roofline table.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/mixerlab_gpu_check}
mkdir -p "$OUT"
log="$OUT/gpu_check.log"
{
    echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), git $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.total --format=csv 2>&1 | head -3
    if [ ! -x build/mixerlab ] || ! build/mixerlab --version | grep -q "cuda:     compiled in"; then
        echo "== building"
        cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMIXERLAB_CUDA=ON >/dev/null && cmake --build build -j"$(nproc)" >/dev/null \
            || { echo "build failed"; exit 1; }
    fi
    build/mixerlab --version
    echo "== CUDA tests (kernels against the CPU reference)"
    ctest --test-dir build -R cuda --output-on-failure
    cuda_rc=$?
    echo "== mixerlab forward on the GPU (float32, CUDA events)"
    for model in mambaout_femto mambaout_tiny; do
        for b in 1 64; do
            build/mixerlab forward --model "$model" --res 224 --batch "$b" --device cuda --repeat 30 | tail -1
            build/mixerlab forward --model "$model" --res 224 --batch "$b" --device cuda --repeat 30 --cuda-graph | tail -1
        done
    done
    echo "== token mixers alone on the GPU (experiments/gpu_check_mixers.ini)"
    build/mixerlab sweep experiments/gpu_check_mixers.ini --db "$OUT/gpu_check.sqlite" 2>/dev/null | tail -1
    if command -v column >/dev/null; then fmt() { column -t -s,; }; else fmt() { cat; }; fi
    build/mixerlab export --db "$OUT/gpu_check.sqlite" --csv | cut -d, -f7,9,15,16,20,25,29 | fmt
    echo "== PyTorch baseline, same machine, same call"
    ref=../shared/reference
    [ -d "$ref" ] || ref=shared/reference
    if [ -f "$ref/pytorch_baseline.py" ]; then
        OUT="$OUT" timeout 240 python3 "$ref/pytorch_baseline.py" 2>&1 | tail -40
    else
        echo "(reference/pytorch_baseline.py not found)"
    fi
    exit $cuda_rc
} 2>&1 | tee "$log"
exit "${PIPESTATUS[0]}"
