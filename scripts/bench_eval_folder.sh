#!/usr/bin/env bash
# Issue 12's speed check, in one run: images/s of `mixerlab eval` on a folder
# of 224 x 224 JPEGs against the forward alone, mixerlab's decoding alone
# (`preprocess`), and PyTorch's DataLoader + torchvision decoding the same
# folder with timm's transform (num_workers 0 and 1).
#
#   bash scripts/bench_eval_folder.sh [BUILD_DIR] [IMAGES] [MODEL]
#
# Needs Pillow to write the folder and python3-torch + torchvision for the
# PyTorch side (Debian's; scripts/setup_fixture_env.sh installs them).
set -euo pipefail
bin=${1:-build}/mixerlab
n=${2:-400}
model=${3:-mambaout_femto}
py=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# n JPEGs of 224 x 224 (quality 90, 4:2:0) in 10 classes: smooth colour fields
# with noise, so they compress like photos rather than like flat colour
"$py" - "$tmp/val" "$n" <<'EOF'
import os, sys
import numpy as np
from PIL import Image
root, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
yy, xx = np.mgrid[0:224, 0:224].astype(np.float32) / 224
for i in range(n):
    d = os.path.join(root, f"class{i % 10}")
    os.makedirs(d, exist_ok=True)
    a = rng.uniform(0, 6, 6)
    img = np.stack([np.sin(a[0] * xx + a[1] * yy + a[2]), np.cos(a[3] * xx - a[4] * yy), np.sin(a[5] * xx * yy)], -1)
    img = (img * 90 + 128 + rng.normal(0, 12, img.shape)).clip(0, 255).astype(np.uint8)
    Image.fromarray(img).save(os.path.join(d, f"img{i}.jpg"), quality=90)
EOF
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u '+%Y-%m-%d %H:%M UTC'); mixerlab $("$bin" version | head -1)"
echo "folder: $n JPEGs of 224x224 ($(du -sh "$tmp/val" | cut -f1)), model $model at 224, batch 50"

# decoding alone: preprocess into /dev/null (written in place, no file kept), after a warm-up run
"$bin" preprocess --model "$model" --data "$tmp/val" --res 224 --output /dev/null >/dev/null 2>&1
for w in 1 2; do
    t0=$(date +%s.%N)
    "$bin" preprocess --model "$model" --data "$tmp/val" --res 224 --workers "$w" --output /dev/null >/dev/null 2>&1
    t1=$(date +%s.%N)
    awk -v n="$n" -v w="$w" -v a="$t0" -v b="$t1" 'BEGIN { printf "mixerlab preprocess to /dev/null (decode, resize, crop, normalise), %d decoding thread(s): %.1f images/s\n", w, n / (b - a) }'
done
"$bin" forward --model "$model" --res 224 --batch 50 --repeat 5 2>/dev/null | grep -E "forward time" |
    awk '{ for (i = 1; i <= NF; i++) if ($i == "median") ms = $(i + 1); printf "mixerlab forward alone, batch 50: %.1f images/s (median %s ms)\n", 50000 / ms, ms }'
"$bin" eval --model "$model" --data "$tmp/val" --res 224 --batch 50 --json 2>/dev/null |
    awk -F: '/images_per_s/ { gsub(/[ ,\t]/, "", $2); printf "mixerlab eval (decoding ahead on 1 thread + forward): %.1f images/s\n", $2 }'
"$bin" eval --model "$model" --data "$tmp/val" --res 224 --batch 50 --workers 2 --json 2>/dev/null |
    awk -F: '/images_per_s/ { gsub(/[ ,\t]/, "", $2); printf "mixerlab eval (decoding ahead on 2 threads + forward): %.1f images/s\n", $2 }'

"$py" - "$tmp/val" "$n" <<'EOF'
import sys, time
import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms
from torchvision.transforms import InterpolationMode
root, n = sys.argv[1], int(sys.argv[2])
tf = transforms.Compose([transforms.Resize(224, interpolation=InterpolationMode.BICUBIC), transforms.CenterCrop(224),
                         transforms.ToTensor(), transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
ds = datasets.ImageFolder(root, transform=tf)
for workers in (0, 1, 2):
    dl = DataLoader(ds, batch_size=50, num_workers=workers)
    for _ in dl:  # warm the page cache and the workers' imports
        break
    t0 = time.perf_counter()
    k = sum(x.shape[0] for x, _ in dl)
    dt = time.perf_counter() - t0
    print(f"PyTorch {torch.__version__} DataLoader + torchvision (Pillow decode, Resize bicubic, CenterCrop, "
          f"ToTensor, Normalize), num_workers={workers}: {k / dt:.1f} images/s")
EOF
