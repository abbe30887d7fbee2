#!/usr/bin/env bash
# "Adding a token mixer is one file family plus its registry line": a
# throw-away mixer copied from identity into a copy of the tree builds,
# appears in `mixerlab list`, runs with `mixerlab mixer --name`, and the whole
# suite passes with it (every test loops over the registry).
# usage: test_new_mixer.sh SOURCE_DIR
set -u
src=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
mkdir -p "$tmp/tree"
# the tree as it is (tracked and untracked files), without build folders or .git
tar -C "$src" --exclude='./build*' --exclude=./.git --exclude=./gpu_bundle -cf - . | tar -C "$tmp/tree" -xf - ||
    fail "cannot copy the tree"
cd "$tmp/tree" || exit 1
sed 's/identity/throwaway/g; s/IDENTITY/THROWAWAY/g' blocks/identity.h >blocks/throwaway.h
sed 's/identity/throwaway/g; s/IDENTITY/THROWAWAY/g; s/the ablation control/a copy of identity, for a test/' \
    blocks/identity.c >blocks/throwaway.c
echo 'MIXER(throwaway)' >>blocks/mixer_list.h
# nothing else: no CMake edit, no test edit
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMIXERLAB_CUDA=OFF >"$tmp/cfg.log" 2>&1 || fail "configure: $(tail -5 "$tmp/cfg.log")"
cmake --build build -j"$(nproc)" >"$tmp/build.log" 2>&1 || fail "build: $(grep -m5 -i error "$tmp/build.log")"
build/mixerlab list | grep -q "^  throwaway " || fail "throwaway is not in mixerlab list"
build/mixerlab mixer --name throwaway --random --channels 8 --res 4x5 --repeat 1 >"$tmp/out" 2>&1 ||
    fail "mixer --name throwaway: $(cat "$tmp/out")"
build/mixerlab info mambaout_test:mixer=throwaway --res 64 >/dev/null 2>&1 || fail "info with mixer=throwaway"
ctest --test-dir build -E test_new_mixer --output-on-failure >"$tmp/ctest.log" 2>&1 ||
    fail "the suite with the new mixer: $(grep -E 'FAIL|Failed|\*\*\*' "$tmp/ctest.log" | head -10)"
echo "a new mixer from one file family and one registry line: builds, listed, runs, suite passes ($(grep -o '[0-9]* tests passed' "$tmp/ctest.log" || grep 'tests passed' "$tmp/ctest.log"))"
