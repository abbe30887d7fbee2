#!/usr/bin/env bash
# Installs what is missing, builds, runs the whole CTest suite, then builds
# again with AddressSanitizer + UndefinedBehaviorSanitizer and runs the suite
# under it. Exit status is non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure

# The sanitizer build leaves the CUDA backend out: nvcc links no sanitizer runtime,
# and the host code it would check is the same C the build above tested.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMIXERLAB_SANITIZE=ON -DMIXERLAB_CUDA=OFF
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1:allocator_may_return_null=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure
