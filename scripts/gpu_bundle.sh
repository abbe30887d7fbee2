#!/usr/bin/env bash
# Packs what a GPU machine needs to run this build without building there: the
# mixerlab binary, the two CUDA test programs, and every shared library they
# load but the C/C++ runtime (glibc, libstdc++, libgcc_s: every Linux has
# them) and CUDA's own (cuBLAS, the driver: the GPU image has them, and
# scripts/gpu_check.sh finds cuBLAS in the toolkit or PyTorch's wheels). So
# OpenBLAS (libopenblas.so.0: the binaries' RUNPATH names Debian's
# openblas-openmp folder, which the GPU image need not have), its libgfortran
# and libquadmath, libgomp, SLEEF, cJSON, inih and SQLite travel in
# gpu_bundle/lib. gpu_check.sh runs mixerlab's commands with
# LD_LIBRARY_PATH=gpu_bundle/lib (searched before the RUNPATH) and nothing
# else with it.
#
# The result, gpu_bundle/ (ignored by git), travels with the device tool's
# `carry`; the tool takes at most 64 MiB for the working tree and the carry
# together, so this script fails when the two would be more.
#
#   bash scripts/gpu_bundle.sh [BUILD_DIR]   # after a CUDA build (default build/)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
LIMIT_MIB=64
[ -x "$B/mixerlab" ] && "$B/mixerlab" --version | grep -q "cuda:     compiled in" ||
    { echo "gpu_bundle.sh: $B/mixerlab with CUDA compiled in is missing; build first (scripts/test.sh)" >&2; exit 1; }
rm -rf gpu_bundle
mkdir -p gpu_bundle/lib
cp "$B/mixerlab" "$B/tests/test_cuda_ops" "$B/tests/test_cuda_model" gpu_bundle/
bins=(gpu_bundle/mixerlab gpu_bundle/test_cuda_ops gpu_bundle/test_cuda_model)
# what is never bundled: the C/C++ runtime, CUDA's libraries and the driver's
system='/(libc|libm|libdl|librt|libpthread|libutil|ld-linux-x86-64|libstdc\+\+|libgcc_s)\.so'
cuda='/(libcublas|libcublasLt|libcudart|libcuda|libnvidia-ml)\.so'
for bin in "${bins[@]}"; do
    ldd "$bin" | awk '$3 ~ /^\// {print $3}'
done | sort -u | grep -Ev "$system|$cuda" | while read -r lib; do cp -L "$lib" gpu_bundle/lib/; done
[ -e gpu_bundle/lib/libopenblas.so.0 ] || { echo "gpu_bundle.sh: libopenblas.so.0 was not bundled" >&2; exit 1; }

# every library but the runtime's and CUDA's must now resolve from the bundle
# alone (LD_LIBRARY_PATH is searched before the RUNPATH, as on the GPU machine)
bad=0
for bin in "${bins[@]}"; do
    while read -r name path; do
        case "$name" in
        linux-vdso* | *ld-linux*) continue ;;
        esac
        if echo "/$name" | grep -Eq "$system|$cuda"; then
            continue
        elif [ "$path" != "$PWD/gpu_bundle/lib/$name" ]; then
            echo "gpu_bundle.sh: $bin: $name resolves to ${path:-nothing}, not gpu_bundle/lib" >&2
            bad=1
        fi
    done < <(LD_LIBRARY_PATH="$PWD/gpu_bundle/lib" ldd "$bin" | awk '$2 == "=>" {print $1, ($3 == "not" ? "" : $3)}')
done
[ $bad = 0 ] || exit 1

# the size the device tool counts: the working tree that travels plus this carry
bundle_kib=$(du -sk gpu_bundle | cut -f1)
tree_kib=$( (git ls-files -z --cached --others --exclude-standard | du -ck --files0-from=- 2>/dev/null || echo 0) | tail -1 | cut -f1)
total_mib=$(((bundle_kib + tree_kib + 1023) / 1024))
echo "gpu_bundle/: $((bundle_kib / 1024)) MiB; with the working tree ($((tree_kib / 1024)) MiB) $total_mib MiB of the" \
    "device tool's $LIMIT_MIB MiB; libraries: $(ls gpu_bundle/lib | tr '\n' ' ')"
if [ "$total_mib" -gt "$LIMIT_MIB" ]; then
    echo "gpu_bundle.sh: $total_mib MiB would not travel (limit $LIMIT_MIB MiB)" >&2
    exit 1
fi
