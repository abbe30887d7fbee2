#!/usr/bin/env bash
# One short run on a GPU machine (the device tool), everything in one call so
# every ratio comes from one run on one card. Steps, in this order:
#   0. the card (nvidia-smi), and mixerlab's libraries: the carried
#      gpu_bundle/ (scripts/gpu_bundle.sh, made on the dev machine), cuBLAS
#      from the CUDA toolkit or PyTorch's wheels; else a build in build-gpu/;
#   1. the CUDA tests (every kernel and mixer, whole-model logits, against the
#      CPU reference), rerun with MIXERLAB_CUDA_DEBUG=1 when they fail, so the
#      failing launch is named by file and line;
#   2. mixerlab bench-cuda: copy and SGEMM limits, each op's rate, the dwconv /
#      scan / attention cores for L = 196 ... 32,761 at width 384; then the long
#      sequences again with L2 flushed;
#   3. mambaout_femto and mambaout_tiny at 224², batch 1 and 64, float32,
#      launched and as a CUDA graph;
#   4. a short sweep on the GPU (experiments/gpu_check_mixers.ini) through the
#      SQLite store (the database stays in a scratch folder; its export is
#      printed into the log);
#   5. PyTorch + timm on the same card (scripts/pytorch_ref.py): cuDNN's
#      depthwise conv and SDPA, the eager models;
#   6. torch.compile reduce-overhead last, with whatever time is left, so a
#      slow compile loses nothing else;
#   7. the targets of the CUDA issue, as ratios of numbers from this run, each
#      beside its kernels' test result (scripts/gpu_targets.py).
#
# Time: the whole check ends within GPU_CHECK_BUDGET seconds (default 420).
# Every step runs under `timeout`, its limit the smaller of its own and what is
# left of the budget (less 20 s kept for the targets table); a step that finds
# less than 5 s left is reported as skipped. Own limits: 10 + 15 + 10 s before
# the tests, tests 45 + 45 (and 45 + 45 for the debug reruns, only on failure),
# bench-cuda 45 + 30, forwards 8 x 15, sweep 30 + 10, PyTorch 75: 435 s in all
# (525 with the reruns) if every step ran to its limit, which the budget cuts
# short; torch.compile gets what is left. None of these steps has been timed
# on a GPU yet: the limits are several times what each should take.
#
# What comes back ($OUT, default /tmp/mixerlab_gpu_check): three files.
#   gpu_check.log       every step's output in order, each between
#                       '==> NAME: command (timeout T s, at S s)' and
#                       '<== NAME: exit RC (what that means) after D s'
#   gpu_targets.md      the targets table (also at the end of the log)
#   pytorch_ref.jsonl   PyTorch's numbers, one JSON object per measurement
#
# Libraries: mixerlab's own commands run as `env LD_LIBRARY_PATH=<bundle
# lib>:<the machine's LD_LIBRARY_PATH>:<cuBLAS's folder> ...` (the ML_ENV
# prefix below); the script never exports it, so PyTorch keeps its own
# libraries. The binaries' RUNPATH names Debian's openblas-openmp folder, which
# the GPU image need not have; LD_LIBRARY_PATH is searched before RUNPATH.
#
#   bash scripts/gpu_bundle.sh              # on the dev machine, after the build
#   bash scripts/gpu_check.sh               # on the GPU machine (carry gpu_bundle), at most 7 minutes
#   NO_COMPILE=1 bash scripts/gpu_check.sh  # leave torch.compile out
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/mixerlab_gpu_check}
BUDGET=${GPU_CHECK_BUDGET:-420}
PY=${PYTHON:-python3}
RESERVE=20 # seconds kept for the targets table and the file list
GRACE=5    # timeout -k: a step that ignores TERM is killed this much later
mkdir -p "$OUT"
export OUT PYTHONUNBUFFERED=1
log="$OUT/gpu_check.log"
rm -f "$log" "$OUT/gpu_targets.md" "$OUT/pytorch_ref.jsonl"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mixerlab_gpu_check.XXXXXX") # scratch: nothing here comes back
LB=()
command -v stdbuf >/dev/null && LB=(stdbuf -oL) # line-buffered: a step cut off by its timeout keeps its lines

# step NAME LIMIT COMMAND...: runs COMMAND under timeout, framed by the
# '==>' and '<==' lines gpu_targets.py reads; returns its exit status.
step() {
    local name=$1 limit=$2 t s0 rc what
    shift 2
    t=$((BUDGET - RESERVE - GRACE - SECONDS))
    [ "$limit" -lt "$t" ] && t=$limit
    if [ "$t" -lt 5 ]; then
        echo "==> $name: $* (not started: ${SECONDS} s of the ${BUDGET} s budget used)"
        echo "<== $name: exit 124 (SKIPPED: out of time) after 0 s"
        return 124
    fi
    echo "==> $name: $* (timeout $t s, at $SECONDS s)"
    s0=$SECONDS
    timeout -k "$GRACE" "$t" "$@"
    rc=$?
    case $rc in
    0) what="ok" ;;
    77) what="skipped: no usable CUDA device" ;;
    124 | 137) what="TIMED OUT after $t s" ;;
    126 | 127) what="FAILED: could not run the command" ;;
    *) what="FAILED" ;;
    esac
    echo "<== $name: exit $rc ($what) after $((SECONDS - s0)) s"
    return $rc
}

# a step that cannot run, reported in the same frame
not_run() {
    echo "==> $1: (not started: $2)"
    echo "<== $1: exit 125 (SKIPPED: $2) after 0 s"
}

main() {
    echo "== gpu_check $(date -u '+%Y-%m-%d %H:%M UTC'), git $(git rev-parse --short HEAD 2>/dev/null || echo unknown), budget $BUDGET s"
    step gpu 10 nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.total --format=csv

    # 0. mixerlab and its libraries
    local M="" T="" lib="" ok=1
    if [ -f gpu_bundle/mixerlab ]; then
        chmod +x gpu_bundle/mixerlab gpu_bundle/test_cuda_ops gpu_bundle/test_cuda_model 2>/dev/null # the copy may drop exec bits
        M=gpu_bundle/mixerlab T=gpu_bundle lib="$PWD/gpu_bundle/lib"
    else
        echo "== no gpu_bundle/ carried: building in build-gpu/ (needs Debian's SLEEF, cJSON and inih headers)"
        step build 240 bash -c 'cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DMIXERLAB_CUDA=ON >/dev/null &&
            cmake --build build-gpu -j"$(nproc)" >/dev/null'
        M=build-gpu/mixerlab T=build-gpu/tests
    fi
    lib="$lib${LD_LIBRARY_PATH:+${lib:+:}$LD_LIBRARY_PATH}"
    # cuBLAS is opened by mixerlab at its first product (dlopen of libcublas.so.13, the loader's path first):
    # when the loader cannot see it, add the toolkit's or PyTorch's wheels' folder (nvidia/cu13/lib;
    # CUDA 12: nvidia/cublas/lib) to mixerlab's own LD_LIBRARY_PATH
    local want=libcublas.so.13 d dirs seen=""
    for d in ${lib//:/ }; do [ -e "$d/$want" ] && seen=$d; done
    if [ -z "$seen" ] && ! ldconfig -p 2>/dev/null | grep -q "$want"; then
        dirs=$(timeout 15 "$PY" -c 'import importlib.util as u, os
s = u.find_spec("nvidia")
for r in (s.submodule_search_locations or []) if s else []:
    print(os.path.join(r, "cu13", "lib")); print(os.path.join(r, "cublas", "lib"))' 2>/dev/null)
        for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib $dirs; do
            if [ -e "$d/$want" ]; then
                lib="$lib${lib:+:}$d"
                echo "== $want from $d"
                break
            fi
        done
    fi
    local missing
    missing=$( [ -f "$M" ] && env LD_LIBRARY_PATH="$lib" ldd "$M" 2>&1 | awk '/not found/ {print $1}' | tr '\n' ' ')
    echo "== mixerlab's commands run with LD_LIBRARY_PATH=${lib:-(unset)}"
    ML_ENV=(env "LD_LIBRARY_PATH=$lib" "${LB[@]}")
    [ -n "$lib" ] || ML_ENV=(env "${LB[@]}")
    local why=""
    if [ ! -f "$M" ]; then
        why="no mixerlab binary ($M)"
    elif [ -n "$missing" ]; then
        why="mixerlab's libraries not found here: $missing"
    fi
    if [ -z "$why" ]; then
        step version 10 "${ML_ENV[@]}" "$M" --version || why="mixerlab --version failed"
    fi
    [ -n "$why" ] && { ok=0; echo "== mixerlab cannot run here: $why; only the PyTorch steps follow"; }

    # 1. the CUDA tests, first
    local ops_rc=125 model_rc=125
    if [ $ok = 1 ]; then
        step cuda_ops 45 "${ML_ENV[@]}" "$T/test_cuda_ops"
        ops_rc=$?
        step cuda_model 45 "${ML_ENV[@]}" "$T/test_cuda_model" tests/fixtures
        model_rc=$?
        # a failure again with a wait after every launch: the first failing kernel is named by file and line
        if [ $ops_rc != 0 ] && [ $ops_rc != 77 ]; then
            step cuda_ops_debug 45 env MIXERLAB_CUDA_DEBUG=1 "${ML_ENV[@]}" "$T/test_cuda_ops"
        fi
        if [ $model_rc != 0 ] && [ $model_rc != 77 ]; then
            step cuda_model_debug 45 env MIXERLAB_CUDA_DEBUG=1 "${ML_ENV[@]}" "$T/test_cuda_model" tests/fixtures
        fi
    else
        for s in cuda_ops cuda_model; do not_run $s "$why"; done
    fi

    # 2-4. mixerlab on the GPU
    if [ $ok = 1 ]; then
        step bench_cuda 45 "${ML_ENV[@]}" "$M" bench-cuda --iters 20
        # the long sequences with L2 flushed before every run: at L = 16,384 the dwconv's 50 MB is about the
        # L2's size, so the warm numbers partly measure the cache
        step bench_cuda_cold 30 "${ML_ENV[@]}" "$M" bench-cuda --iters 10 --cold --tokens 4096,16384,32761
        local model b mode
        for model in mambaout_femto mambaout_tiny; do
            for b in 1 64; do
                for mode in launched graph; do
                    step "forward_${model}_b${b}_$mode" 15 "${ML_ENV[@]}" "$M" forward --model "$model" --res 224 \
                        --batch "$b" --device cuda --repeat 50 $([ $mode = graph ] && echo --cuda-graph)
                done
            done
        done
        step sweep 30 "${ML_ENV[@]}" "$M" sweep experiments/gpu_check_mixers.ini --db "$WORK/gpu_check.sqlite"
        step sweep_export 10 "${ML_ENV[@]}" "$M" export --db "$WORK/gpu_check.sqlite" --csv
    else
        for s in bench_cuda bench_cuda_cold sweep; do not_run $s "$why"; done
    fi

    # 5-6. PyTorch on the same card: never with mixerlab's LD_LIBRARY_PATH
    step torch_mixers_eager 75 "$PY" scripts/pytorch_ref.py --part mixers,eager
    if [ -n "${NO_COMPILE:-}" ]; then
        not_run torch_compile "NO_COMPILE is set"
    else
        step torch_compile 600 "$PY" scripts/pytorch_ref.py --part compile
    fi

    # 7. the targets, from this log and the JSONL
    sleep 1 # tee has written every line above before the log is read
    echo "==> targets: $PY scripts/gpu_targets.py $log (at $SECONDS s)"
    timeout 10 "$PY" scripts/gpu_targets.py "$log" "$OUT/pytorch_ref.jsonl" >"$OUT/gpu_targets.md" 2>&1
    echo "<== targets: exit $? (see the table below)"
    cat "$OUT/gpu_targets.md"
    rm -rf "$WORK"
    echo
    echo "== $SECONDS s of the $BUDGET s budget; files in $OUT:"
    (cd "$OUT" && ls -l)
    case "$ops_rc$model_rc" in
    00) return 0 ;;
    7777) return 77 ;;
    *) return 1 ;;
    esac
}

main 2>&1 | tee "$log"
exit "${PIPESTATUS[0]}"
