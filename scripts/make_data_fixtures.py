#!/usr/bin/env python3
"""Golden fixtures for mixerlab's Fashion-MNIST preprocessing, from PyTorch.

The first training images of Debian's dataset-fashion-mnist, read here with
Python's gzip (independent of mixerlab's IDX reader), scaled to [0, 1],
resized with torch.nn.functional.interpolate(mode="bilinear",
align_corners=False) to 32 and 64, replicated to three channels and
normalised with mean 0.2860, std 0.3530: exactly what mixerlab's evaluation
transform must give. Developer-only (CI never needs torch):

    /usr/bin/python3 scripts/make_data_fixtures.py [--out tests/fixtures/data]
"""
import argparse
import gzip
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from safetensors_io import write_safetensors  # noqa: E402

DIR = "/usr/share/datasets/fashion-mnist"


def images(n):
    with gzip.open(os.path.join(DIR, "train-images-idx3-ubyte.gz"), "rb") as f:
        raw = f.read()
    assert int.from_bytes(raw[:4], "big") == 0x803
    return np.frombuffer(raw[16:16 + n * 784], dtype=np.uint8).reshape(n, 28, 28)


def labels(n):
    with gzip.open(os.path.join(DIR, "train-labels-idx1-ubyte.gz"), "rb") as f:
        raw = f.read()
    assert int.from_bytes(raw[:4], "big") == 0x801
    return np.frombuffer(raw[8:8 + n], dtype=np.uint8).astype(np.int64)


def transform(x, res):
    t = torch.from_numpy(x.astype(np.float64) / 255.0).unsqueeze(1)  # (n, 1, 28, 28)
    if res != 28:
        t = torch.nn.functional.interpolate(t, size=(res, res), mode="bilinear", align_corners=False)
    t = (t - 0.2860) / 0.3530
    return t.repeat(1, 3, 1, 1).float().numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/data")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    n = 3
    x = images(n)
    tensors = {"labels": labels(n).astype(np.float32)}
    for res in (28, 32, 64):
        tensors[f"input_r{res}"] = transform(x, res)
    path = os.path.join(args.out, "fashion_mnist_first3.safetensors")
    write_safetensors(path, list(tensors.items()), {"source": DIR, "torch": torch.__version__})
    print(f"wrote {path}: " + ", ".join(f"{k} {list(v.shape)}" for k, v in tensors.items()))


if __name__ == "__main__":
    main()
