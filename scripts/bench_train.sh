#!/usr/bin/env bash
# A training step (forward, backward, AdamW) of mixerlab against PyTorch's on the
# same model, batch and threads, each PyTorch step right after one of ours:
# mambaout_femto at 224x224 batch 8, and the small test configuration at 32x32
# batch 64 (issue 10's targets). PyTorch runs as Debian's python3-torch (with
# timm from TIMM_PATH) and, when NEW_PYTHON names a venv's python with the
# current PyPI torch and timm, also as that torch eager and under torch.compile.
# Prints a Markdown table for results/cpu_benchmarks.md; run on a quiet machine.
#   usage: [NEW_PYTHON=/opt/venv-torch/bin/python] scripts/bench_train.sh [BUILD_DIR] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
threads=${2:-$(nproc)}
timm=${TIMM_PATH:-/opt/timm}
py=${PYTHON:-/usr/bin/python3}
new=${NEW_PYTHON:-}
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $threads threads, mixerlab $(git rev-parse --short HEAD)"
echo
echo "| model | res | batch | mixerlab step (median ms) | PyTorch | PyTorch step (median ms) | ratio | mixerlab planned / peak RSS (MiB) | PyTorch peak RSS (MiB) |"
echo "|---|---|---|---|---|---|---|---|---|"
for cfg in "mambaout_femto femto 224 8 10" "mambaout_test test 32 64 3"; do
    set -- $cfg
    runs=("Debian|env PYTHONPATH=$timm $py")
    [ -n "$new" ] && runs+=("PyPI eager|$new" "PyPI torch.compile|$new --compile")
    for r in "${runs[@]}"; do
        label=${r%%|*}
        cmd=${r#*|}
        extra=""
        case $cmd in *--compile) extra=--compile; cmd=${cmd% --compile} ;; esac
        # ours right before each PyTorch step, so that each ratio compares two adjacent
        # measurements: a shared VM's speed can double from one minute to the next
        # (results/cpu_benchmarks.md, 2026-12-07)
        ours=$("$build/mixerlab" bench-train --model "$1" --res "$3" --batch "$4" --threads "$threads" \
            --min-time "$5" --json)
        theirs=$($cmd scripts/bench_train_torch.py --model "$2" --res "$3" --batch "$4" --threads "$threads" \
            --min-time "$5" $extra)
        "$py" - "$1" "$3" "$4" "$label" "$ours" "$theirs" <<'PYEOF'
import json, sys
name, res, batch, label, ours, theirs = sys.argv[1:5] + [json.loads(sys.argv[5]), json.loads(sys.argv[6])]
m, t = ours["step_ms_median"], theirs["step_ms_median"]
print(f"| {name} | {res} | {batch} | {m:.2f} ({ours['samples']} steps) | {label} {theirs['torch']} "
      f"| {t:.2f} ({theirs['samples']} steps) | {m / t:.2f} | {ours['planned_bytes'] / 2**20:.1f} / "
      f"{ours['peak_rss_bytes'] / 2**20:.1f} | {theirs['peak_rss_bytes'] / 2**20:.1f} |")
PYEOF
    done
done
