#!/usr/bin/env bash
# Installs what mixerlab needs to build, test and plot on Debian 12 (as root
# or with sudo). Installs only what is missing; safe to rerun.
set -euo pipefail

pkgs=(
    build-essential cmake pkg-config git
    libopenblas-openmp-dev   # BLAS (the OpenMP build: it shares our thread pool)
    libsleef-dev             # vectorised erff/expf for GELU/SiLU
    libcjson-dev             # safetensors headers
    libsqlite3-dev sqlite3   # result store (sqlite3: the tests read databases with it)
    libinih-dev              # sweep specs
    libjpeg62-turbo-dev      # JPEG decoding (libjpeg-turbo, as Pillow)
    libpng-dev               # PNG decoding
    gnuplot-nox              # plots
    zlib1g-dev               # gzip-compressed datasets (IDX)
    dataset-fashion-mnist    # the training data of the accuracy experiments
    clang-14 libclang-rt-14-dev libomp-14-dev   # libFuzzer harnesses (tests/fuzz)
    munge slurmctld slurmd slurm-client         # the single-node Slurm cluster of test_slurm
    python3                  # test_slurm, test_sweep and test_gpu_targets use it (ports, JSON)
)
missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "setup: all packages present"
    exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
