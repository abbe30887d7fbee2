#!/usr/bin/env bash
# Packs what a GPU machine needs to run this build without building there
# (its image has CUDA, cuBLAS, OpenBLAS and SQLite, but not Debian's SLEEF,
# cJSON or inih): the mixerlab binary, the two CUDA test programs, and the
# shared libraries they load that are not the C/C++ runtime or CUDA's own.
# The result, gpu_bundle/ (ignored by git; 14 MB when made on the dev VM), travels with the
# device tool's `carry`; scripts/gpu_check.sh uses it when it is there.
#
#   bash scripts/gpu_bundle.sh            # after a CUDA build in build/
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/mixerlab ] && build/mixerlab --version | grep -q "cuda:     compiled in" ||
    { echo "gpu_bundle.sh: build/mixerlab with CUDA compiled in is missing; build first (scripts/test.sh)" >&2; exit 1; }
rm -rf gpu_bundle
mkdir -p gpu_bundle/lib
cp build/mixerlab build/tests/test_cuda_ops build/tests/test_cuda_model gpu_bundle/
# everything ldd resolves, less the runtime every Linux has and CUDA's libraries
for bin in gpu_bundle/mixerlab gpu_bundle/test_cuda_ops gpu_bundle/test_cuda_model; do
    ldd "$bin" | awk '$3 ~ /^\// {print $3}'
done | sort -u | grep -Ev '/(libc|libm|libdl|librt|libpthread|ld-linux-x86-64|libstdc\+\+|libgcc_s)\.so|libcublas|libcudart|/libopenblas' |
    while read -r lib; do cp -L "$lib" gpu_bundle/lib/; done
echo "gpu_bundle/: $(du -sh gpu_bundle | cut -f1), libraries: $(ls gpu_bundle/lib | tr '\n' ' ')"
