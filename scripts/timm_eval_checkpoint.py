#!/usr/bin/env python3
"""Loads a checkpoint that `mixerlab train` wrote into timm's own MambaOut with
strict=True and evaluates it on Fashion-MNIST's test split with the same
preprocessing (pixel/255, bilinear resize with half-pixel centres when R != 28,
three channels, mean 0.2860, std 0.3530): the accuracy timm gets from our weights.

    PYTHONPATH=/opt/timm /usr/bin/python3 scripts/timm_eval_checkpoint.py CKPT.safetensors \
        --depths 1,1,2,1 --dims 16,24,32,48 [--res 32] [--limit N]

Prints one JSON object: top1, top5, loss, images (compare `mixerlab eval --json`).
"""
import argparse
import gzip
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from timm.models.mambaout import MambaOut

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors  # noqa: E402

DIR = "/usr/share/datasets/fashion-mnist"


def idx(name, magic, header):
    with gzip.open(os.path.join(DIR, name), "rb") as f:
        raw = f.read()
    assert int.from_bytes(raw[:4], "big") == magic
    return np.frombuffer(raw[header:], dtype=np.uint8)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ckpt")
    ap.add_argument("--depths", default="1,1,2,1")
    ap.add_argument("--dims", default="16,24,32,48")
    ap.add_argument("--res", type=int, default=32)
    ap.add_argument("--limit", type=int, default=10000)
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    sd, _ = read_safetensors(a.ckpt)
    model = MambaOut(depths=tuple(int(v) for v in a.depths.split(",")), dims=tuple(int(v) for v in a.dims.split(",")),
                     num_classes=10)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in sd.items()}, strict=True)
    model.eval()
    x = idx("t10k-images-idx3-ubyte.gz", 0x803, 16).reshape(-1, 28, 28)[:a.limit]
    y = torch.from_numpy(idx("t10k-labels-idx1-ubyte.gz", 0x801, 8)[:a.limit].astype(np.int64))
    top1 = top5 = 0
    loss = 0.0
    with torch.no_grad():
        for i in range(0, len(x), 500):
            t = torch.from_numpy(x[i:i + 500].astype(np.float32) / 255.0).unsqueeze(1)
            if a.res != 28:
                t = F.interpolate(t, size=(a.res, a.res), mode="bilinear", align_corners=False)
            t = ((t - 0.2860) / 0.3530).repeat(1, 3, 1, 1)
            z = model(t)
            yy = y[i:i + 500]
            loss += F.cross_entropy(z.double(), yy, reduction="sum").item()
            top = z.topk(5, dim=1).indices
            top1 += (top[:, 0] == yy).sum().item()
            top5 += (top == yy[:, None]).any(dim=1).sum().item()
    n = len(x)
    print(json.dumps({"top1": top1 / n, "top5": top5 / n, "loss": loss / n, "images": n}))


if __name__ == "__main__":
    main()
