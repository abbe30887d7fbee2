#!/usr/bin/env python3
"""Golden gradient fixtures for mixerlab's mixer backwards: PyTorch autograd in
float64 on the float64 restatement of each mixer's published math (the one in
scripts/make_mixer_fixtures.py, plus dwconv and identity here) -- independent of
any C code.

Developer-only tool (CI never needs torch: the outputs are committed):

    bash scripts/setup_fixture_env.sh      # Debian's python3-torch, python3-numpy
    /usr/bin/python3 scripts/make_grad_fixtures.py [--out tests/fixtures/grads]

One safetensors file per case, `<case>.safetensors` (the case starts with the
mixer's name), every tensor F32:

    input        [B,H,W,E]  channels-last, token t = h*W + w
    <param> ...             every mixer parameter under its bare name
    grad_output  [B,H,W,E]  the random upstream gradient g
    output       [B,H,W,E]  y = mixer(input)
    grad_input   [B,H,W,E]  d<y, g>/d input
    grad.<param> ...        d<y, g>/d param, for every parameter

Inputs, parameters and g are drawn in float64 and rounded to float32 (what is
stored); the references are computed in float64 from those stored values and
then rounded to float32, so only the C side's own float32 rounding shows.

Before writing, each case's autograd gradients are checked against central
differences of the same float64 forward along random directions (for the
input and every parameter tensor), to 1e-7 relative.  Deterministic: one
thread, a fixed seed per case, fixed tensor order, no timestamps or paths.
"""
import argparse
import hashlib
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_mixer_fixtures as mf  # noqa: E402
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

F64 = torch.float64


def mixer_dwconv(c, p, cfg):
    """Depthwise KxK conv, zero padding K/2, with bias (MambaOut's token mixer)."""
    K = p["conv.weight"].shape[-1]
    x = c.permute(0, 3, 1, 2)
    y = F.conv2d(x, p["conv.weight"], p["conv.bias"], padding=K // 2, groups=c.shape[3])
    return y.permute(0, 2, 3, 1)


def mixer_identity(c, p, cfg):
    return c * 1.0


MIXERS = dict(mf.MIXERS, dwconv=mixer_dwconv, identity=mixer_identity)

DESCRIPTION = dict(mf.DESCRIPTION,
                   dwconv="depthwise KxK conv2d, zero padding K//2, groups=E, with bias",
                   identity="y = x")

# (case, mixer, seed, config): awkward sizes, a few KB each.  ssm_b runs over two
# 64-step chunks and has one channel whose softplus input straddles the threshold 20
# (make_mixer_fixtures' THRESHOLD_CASE); ssm_2d_a has two chunks in every scan order;
# attn_causal_a has two 64-query blocks.
CASES = [
    ("dwconv_a", "dwconv", 1101, dict(B=1, H=5, W=7, E=9, K=5)),
    ("identity_a", "identity", 1201, dict(B=2, H=3, W=5, E=7)),
    ("ssm_a", "ssm", 1301, dict(B=2, H=3, W=5, E=11, N=5, R=3)),
    ("ssm_b", "ssm", 1302, dict(B=1, H=9, W=8, E=6, N=4, R=2)),
    ("ssm_bidir_a", "ssm_bidir", 1401, dict(B=1, H=3, W=7, E=11, N=3, R=2)),
    ("ssm_2d_a", "ssm_2d", 1501, dict(B=1, H=7, W=11, E=6, N=3, R=2)),
    ("attn_a", "attn", 1601, dict(B=1, H=5, W=7, E=8, head_size=4)),
    ("attn_causal_a", "attn_causal", 1701, dict(B=1, H=9, W=8, E=6, head_size=3)),
]


def make_params(case, mixer, rng, cfg):
    E = cfg["E"]
    if mixer == "dwconv":
        K = cfg["K"]
        p = {"conv.weight": 0.3 * rng.randn(E, 1, K, K), "conv.bias": 0.3 * rng.randn(E)}
        return {k: mf.r32(v) for k, v in p.items()}
    if mixer == "identity":
        return {}
    return mf.make_params(case, mixer, rng, cfg)


def forward(mixer, c, p, cfg):
    return MIXERS[mixer](c, p, cfg)


def check_directional(mixer, c, p, cfg, g, grads):
    """<grad, d> against (J(x + h d) - J(x - h d)) / 2h for a random direction d per tensor."""
    gen = torch.Generator().manual_seed(7)
    names = ["input"] + list(p)
    for name in names:
        base = c if name == "input" else p[name]
        d = torch.randn(base.shape, generator=gen, dtype=F64)
        h = 1e-5

        def J(sign):
            cc = c + sign * h * d if name == "input" else c
            pp = dict(p)
            if name != "input":
                pp[name] = p[name] + sign * h * d
            return float((forward(mixer, cc, pp, cfg) * g).sum())

        num = (J(1) - J(-1)) / (2 * h)
        ana = float((grads[name] * d).sum())
        scale = max(abs(ana), float(grads[name].abs().sum()) * 1e-3, 1e-30)
        err = abs(num - ana) / scale
        assert err < 1e-7, (mixer, name, num, ana, err)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "tests", "fixtures", "grads"))
    args = ap.parse_args()
    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    written = []
    for case, mixer, seed, cfg in CASES:
        rng = mf.Rng(seed)
        B, H, W, E = cfg["B"], cfg["H"], cfg["W"], cfg["E"]
        c = mf.r32(rng.randn(B, H, W, E))
        p = make_params(case, mixer, rng, cfg)
        g = mf.r32(rng.randn(B, H, W, E))
        leaves = {"input": c.clone().requires_grad_(True)}
        leaves.update({k: v.clone().requires_grad_(True) for k, v in p.items()})
        y = forward(mixer, leaves["input"], {k: leaves[k] for k in p}, cfg)
        (y * g).sum().backward()
        grads = {k: v.grad.detach().clone() for k, v in leaves.items()}
        y = y.detach()
        check_directional(mixer, c, p, cfg, g, grads)
        if case == mf.THRESHOLD_CASE:
            pre = []
            mf._PRE_COLLECT = pre
            forward(mixer, c, p, cfg)
            mf._PRE_COLLECT = None
            ch = torch.stack([q[:, mf.THRESHOLD_CHANNEL] for q in pre])
            above, below = int((ch > 20).sum()), int((ch <= 20).sum())
            assert above >= 3 and below >= 3, (above, below)
            print(f"  {case}: channel {mf.THRESHOLD_CHANNEL} softplus input in [{float(ch.min()):.3f}, "
                  f"{float(ch.max()):.3f}], {above} tokens > 20, {below} <= 20")
        print(f"  {case}: output max {float(y.abs().max()):.3f}, grad_input max "
              f"{float(grads['input'].abs().max()):.3f}; directional checks passed")
        meta = {"mixer": mixer, "case": case, "B": str(B), "H": str(H), "W": str(W), "E": str(E),
                "L": str(H * W), "seed": str(seed), "description": DESCRIPTION[mixer],
                "reference": ("PyTorch autograd in float64 on the float64 restatement, from the stored "
                              "float32 input/params/grad_output, results cast to float32; generator "
                              "scripts/make_grad_fixtures.py"),
                "torch_version": torch.__version__, "numpy_version": np.__version__}
        for k in ("N", "R", "K", "head_size"):
            if k in cfg:
                meta[k] = str(cfg[k])
        f32 = lambda t: t.to(torch.float32).numpy()  # noqa: E731
        tensors = [("input", f32(c))]
        tensors += [(k, f32(v)) for k, v in p.items()]
        tensors += [("grad_output", f32(g)), ("output", f32(y)), ("grad_input", f32(grads["input"]))]
        tensors += [(f"grad.{k}", f32(grads[k])) for k in p]
        path = os.path.join(out_dir, f"{case}.safetensors")
        size = write_safetensors(path, tensors, meta)
        back, hdr = read_safetensors(path)
        assert list(back) == [n for n, _ in tensors] and hdr.get("__metadata__") == meta
        for n, a in tensors:
            assert np.array_equal(back[n], a), n
        written.append((path, size))
    total = 0
    print("\nwritten:")
    for path, size in written:
        with open(path, "rb") as f:
            h = hashlib.sha256(f.read()).hexdigest()
        total += size
        print(f"  {os.path.relpath(path)}  {size} bytes  sha256 {h[:16]}")
    print(f"  total {total} bytes")
    assert total < 100 * 1024
    return 0


if __name__ == "__main__":
    sys.exit(main())
