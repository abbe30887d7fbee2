#!/usr/bin/env python3
"""Golden gradients of whole models: timm's own MambaOut, run by PyTorch autograd in
float64 -- the reference `mixerlab grad` and models/model_train.c are held against.

Developer-only tool (CI never needs torch: the outputs are committed):

    bash scripts/setup_fixture_env.sh      # Debian's python3-torch, python3-numpy; timm
    PYTHONPATH=/path/to/timm /usr/bin/python3 scripts/make_model_grad_fixtures.py \
        [--out tests/fixtures/grads]

The weights come from a counter-based generator that tests/test_model_train.c
restates exactly (so femto's 7.3M weights need not be committed): the parameters
sorted by name get indices i = 0, 1, ...; element k of parameter i is
    z = splitmix64_mix(((i + 1) << 32) + k),  r = 2 (z >> 40) / 2^24 - 1   (exact in double)
    ndim >= 2:  float32(r * sqrt(3 / fan_in)),  fan_in = numel / shape[0]
    ".weight" of ndim 1 (norms):  float32(1 + 0.2 r);   ".bias":  float32(0.1 r)
Input ~ N(0, 1) and random labels (numpy, fixed seeds), rounded to float32 / int64. The
references are computed in float64 from the float32 values and rounded to float32.
The loss is F.cross_entropy (mean, no smoothing); timm's model in eval() has no
dropout or drop path (drop_path_rate 0), so train and eval forwards are the same.

Files:
  model_mambaout_test.safetensors   mambaout_test (depths 1,1,2,1, dims 16,24,32,48),
      num_classes 10, input [3,3,45,45]: every weight under its timm name (for the
      command-line test), input, labels (I64), loss [1], grad.<name> (every gradient, whole)
  model_mambaout_femto.safetensors  mambaout_femto, 1000 classes, input [2,3,63,63]:
      input, labels, loss, and per parameter idx.<name> (I64, up to 64 positions: the
      largest |grad| and random ones), grad.<name> at those positions, maxabs.<name> [1]
      (max |grad| over the whole tensor) -- the whole gradients would be 29 MB
"""
import argparse
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

import timm
from timm.models.mambaout import MambaOut

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402

M64 = (1 << 64) - 1


def splitmix64_mix(x):
    """splitmix64's output function on a uint64 numpy array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def gen_param(i, name, shape):
    n = int(np.prod(shape))
    k = np.arange(n, dtype=np.uint64)
    z = splitmix64_mix((np.uint64(i + 1) << np.uint64(32)) + k)
    r = 2.0 * (z >> np.uint64(40)).astype(np.float64) / float(1 << 24) - 1.0
    if len(shape) >= 2:
        fan = n // shape[0]
        v = r * math.sqrt(3.0 / fan)
    elif name.endswith(".weight"):
        v = 1.0 + 0.2 * r
    else:
        v = 0.1 * r
    return v.astype(np.float32).reshape(shape)


def build(depths, dims, num_classes):
    model = MambaOut(depths=depths, dims=dims, num_classes=num_classes)
    sd = model.state_dict()
    names = sorted(sd.keys())
    w = {name: gen_param(i, name, tuple(sd[name].shape)) for i, name in enumerate(names)}
    model.load_state_dict({k: torch.from_numpy(v) for k, v in w.items()}, strict=True)
    return model.double().eval(), w


def run(model, x, labels):
    model.zero_grad(set_to_none=True)
    logits = model(torch.from_numpy(x).double())
    loss = F.cross_entropy(logits, torch.from_numpy(labels))
    loss.backward()
    grads = {n: p.grad.detach().numpy() for n, p in model.named_parameters()}
    return float(loss.item()), grads


def case(depths, dims, classes, B, R, seed):
    torch.manual_seed(0)
    model, w = build(depths, dims, classes)
    rs = np.random.RandomState(seed)
    x = rs.standard_normal((B, 3, R, R)).astype(np.float32)
    labels = rs.randint(0, classes, size=B).astype(np.int64)
    loss, grads = run(model, x, labels)
    return model, w, x, labels, loss, grads, rs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "grads"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    meta = {"generator": "scripts/make_model_grad_fixtures.py", "torch": torch.__version__, "timm": timm.__version__,
            "reference": "timm MambaOut in float64, torch autograd, F.cross_entropy (mean)"}

    _, w, x, labels, loss, grads, _ = case((1, 1, 2, 1), (16, 24, 32, 48), 10, 3, 45, 1)
    t = [(n, w[n]) for n in sorted(w)] + [("input", x), ("labels", labels),
                                          ("loss", np.array([loss], dtype=np.float32))]
    t += [("grad." + n, grads[n].astype(np.float32)) for n in sorted(grads)]
    path = os.path.join(args.out, "model_mambaout_test.safetensors")
    write_safetensors(path, t, dict(meta, model="mambaout_test:num_classes=10"))
    print(f"{path}: loss {loss:.8f}, {len(grads)} gradients")

    _, w, x, labels, loss, grads, rs = case((3, 3, 9, 3), (48, 96, 192, 288), 1000, 2, 63, 2)
    t = [("input", x), ("labels", labels), ("loss", np.array([loss], dtype=np.float32))]
    for n in sorted(grads):
        g = grads[n].reshape(-1)
        top = int(np.argmax(np.abs(g)))
        rest = rs.choice(g.size, size=min(g.size, 64), replace=False)
        idx = np.array([top] + [int(i) for i in rest if i != top][:63], dtype=np.int64)
        t += [("idx." + n, idx), ("grad." + n, g[idx].astype(np.float32)),
              ("maxabs." + n, np.array([np.abs(g).max()], dtype=np.float32))]
    path = os.path.join(args.out, "model_mambaout_femto.safetensors")
    write_safetensors(path, t, dict(meta, model="mambaout_femto"))
    print(f"{path}: loss {loss:.8f}, {len(grads)} gradients (sampled)")


if __name__ == "__main__":
    main()
