#!/usr/bin/env bash
# The main job: installs what is missing, builds, prints the accounting table
# of the MambaOut zoo (exact parameters and MACs) and times a forward of
# mambaout_femto at 224x224 on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
echo "== the MambaOut zoo: exact parameters and MACs at 224x224 =="
./build/mixerlab list
echo
echo "== mambaout_femto in detail =="
./build/mixerlab info mambaout_femto
echo
echo "== a timed forward of mambaout_femto (random timm-style weights, batch 1, 224x224) =="
./build/mixerlab forward --model mambaout_femto --res 224 --batch 1 --repeat 10 \
    --output build/demo_logits.safetensors
