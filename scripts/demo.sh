#!/usr/bin/env bash
# The main job: installs what is missing, builds, prints the zoo's accounting
# table and the paper's Table 1 reproduced, times a forward of mambaout_femto,
# then runs the small default sweep (every token mixer alone, L = 64 ... 4096,
# about 15 s on 2 cores) into results/mixerlab.sqlite and draws its plots into
# plots/ (PNG and SVG).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
echo "== the zoo: exact parameters and MACs at 224x224 =="
./build/mixerlab list
echo
echo "== the MambaOut paper's Table 1, ours | paper =="
./build/mixerlab table
echo
echo "== a timed forward of mambaout_femto (random timm-style weights, batch 1, 224x224) =="
./build/mixerlab forward --model mambaout_femto --res 224 --batch 1 --repeat 10 \
    --output build/demo_logits.safetensors
echo
echo "== sweep: every token mixer alone, width 192, L = 64 ... 4096 =="
./build/mixerlab sweep experiments/demo_small.ini --db results/mixerlab.sqlite
./build/mixerlab plot demo_small --db results/mixerlab.sqlite --out plots
echo
echo "results: results/mixerlab.sqlite (mixerlab export --csv); plots: plots/demo_small_*.png"
