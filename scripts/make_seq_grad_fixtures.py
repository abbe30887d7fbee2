#!/usr/bin/env python3
"""Golden loss and gradients of the sequence skeleton `seq` (models/model.h):
PyTorch autograd in float64 on a direct restatement of its math -- the token
embedding, the optional learned position embedding, timm's Gated CNN block on a
1 x L grid with a mixer in the slot (the mixers' float64 restatements of
scripts/make_mixer_fixtures.py; dwconv is checked against timm's own
GatedConvBlock here), the final LayerNorm on every position, the per-position
linear head (optionally the embedding's weight, tied) and the cross-entropy
over the labelled positions only (F.cross_entropy with ignore_index=-1).

Developer-only tool (CI never needs torch: the outputs are committed):

    bash scripts/setup_fixture_env.sh
    PYTHONPATH=/opt/timm /usr/bin/python3 scripts/make_seq_grad_fixtures.py [--out tests/fixtures/grads]

One file per case, seq_<case>.safetensors, metadata "model" = the mixerlab
model spec; tensors: every parameter under its name (F32), input [B,L] (I64
token ids), labels [B,L] (I64, -1 where nothing is asked), loss [1] (F32) and
grad.<name> for every parameter (F32). Parameters are drawn in float64 with a
fixed seed and rounded to float32; the references are computed in float64 from
the stored float32 values, then rounded.
"""
import argparse
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_mixer_fixtures as mf  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

F64 = torch.float64
LN_EPS = 1e-6

# name, model spec, vocab, classes, dim, depth, L, B, mixer settings
CASES = [
    ("dwconv_pos", "seq:dim=12,depth=2,vocab=7,pos_embed=1,kernel=5", 7, 7, 12, 2, 19, 3,
     dict(mixer="dwconv", K=5, pos=True, tie=False)),
    ("ssm_tied", "seq:mixer=ssm,dim=16,depth=1,vocab=9,tie=1,d_state=4", 9, 9, 16, 1, 23, 2,
     dict(mixer="ssm", N=4, pos=False, tie=True)),
    ("attn_causal_pos", "seq:mixer=attn_causal,head_size=4,dim=12,depth=1,vocab=5,num_classes=3,pos_embed=1",
     5, 3, 12, 1, 17, 2, dict(mixer="attn_causal", hs=4, pos=True, tie=False)),
]


def r32(t):
    return t.to(torch.float32).to(F64)


def block_params(rng, prefix, C, s):
    hid = int(8.0 / 3.0 * C)
    E = C  # conv_ratio 1
    p = {
        f"{prefix}.norm.weight": 1 + 0.2 * rng.randn(C),
        f"{prefix}.norm.bias": 0.1 * rng.randn(C),
        f"{prefix}.fc1.weight": rng.randn(2 * hid, C) / math.sqrt(C),
        f"{prefix}.fc1.bias": 0.1 * rng.randn(2 * hid),
        f"{prefix}.fc2.weight": rng.randn(C, hid) / math.sqrt(hid),
        f"{prefix}.fc2.bias": 0.1 * rng.randn(C),
    }
    if s["mixer"] == "dwconv":
        K = s["K"]
        p[f"{prefix}.conv.weight"] = 0.3 * rng.randn(E, 1, K, K)
        p[f"{prefix}.conv.bias"] = 0.1 * rng.randn(E)
    elif s["mixer"] == "ssm":
        R = math.ceil(E / 16)
        for k, v in mf.ssm_params(rng, E, s["N"], R).items():
            p[f"{prefix}.mixer.{k}"] = v
    else:
        for k, v in mf.attn_params(rng, E).items():
            p[f"{prefix}.mixer.{k}"] = v
    return p, hid, E


def mixer(prefix, p, s, c):
    """c: (B,1,L,E) -> (B,1,L,E)."""
    if s["mixer"] == "dwconv":
        K = s["K"]
        y = F.conv2d(c.permute(0, 3, 1, 2), p[f"{prefix}.conv.weight"], p[f"{prefix}.conv.bias"], padding=K // 2,
                     groups=c.shape[3])
        return y.permute(0, 2, 3, 1)
    mp = {k[len(prefix) + 7:]: v for k, v in p.items() if k.startswith(prefix + ".mixer.")}
    if s["mixer"] == "ssm":
        return mf.mixer_ssm(c, mp, {})
    return mf.mixer_attn_causal(c, mp, {"head_size": s["hs"]})


def block(prefix, p, s, hid, E, x):
    """timm's GatedConvBlock on x (B,1,L,C): x + fc2(GELU(g) * cat(i, mixer(c)))."""
    n = F.layer_norm(x, (x.shape[-1],), p[f"{prefix}.norm.weight"], p[f"{prefix}.norm.bias"], eps=LN_EPS)
    u = n @ p[f"{prefix}.fc1.weight"].T + p[f"{prefix}.fc1.bias"]
    g, i, c = torch.split(u, [hid, hid - E, E], dim=-1)
    c = mixer(prefix, p, s, c)
    v = F.gelu(g) * torch.cat((i, c), dim=-1)
    return x + v @ p[f"{prefix}.fc2.weight"].T + p[f"{prefix}.fc2.bias"]


def forward(p, s, tok, labels, depth, C, K):
    B, L = tok.shape
    x = p["embed.weight"][tok]  # (B,L,C)
    if s["pos"]:
        x = x + p["pos_embed"][:, :L]
    x = x.reshape(B, 1, L, C)
    for j in range(depth):
        x = block(f"blocks.{j}", p, s, p["_hid"], p["_E"], x)
    x = F.layer_norm(x, (C,), p["norm.weight"], p["norm.bias"], eps=LN_EPS).reshape(B, L, C)
    w = p["embed.weight"] if s["tie"] else p["head.weight"]
    logits = x @ w.T + p["head.bias"]
    return F.cross_entropy(logits.reshape(-1, K), labels.reshape(-1), ignore_index=-1)


def check_dwconv_against_timm(p, s, C):
    """The restated block equals timm's own GatedConvBlock (dwconv case)."""
    from functools import partial

    from timm.models.mambaout import GatedConvBlock
    blk = GatedConvBlock(dim=C, expansion_ratio=8 / 3, kernel_size=s["K"], conv_ratio=1.0,
                        norm_layer=partial(torch.nn.LayerNorm, eps=LN_EPS), act_layer=torch.nn.GELU).double().eval()
    sd = {k[len("blocks.0."):]: v for k, v in p.items() if k.startswith("blocks.0.")}
    blk.load_state_dict(sd, strict=True)
    x = torch.randn(2, 1, 13, C, dtype=F64, generator=torch.Generator().manual_seed(5))
    ref = blk(x)
    ours = block("blocks.0", p, s, p["_hid"], p["_E"], x)
    err = (ref - ours).abs().max().item() / ref.abs().max().item()
    assert err < 1e-12, f"restated block differs from timm's GatedConvBlock: {err}"
    print(f"  dwconv block == timm GatedConvBlock (rel {err:.1e})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/grads")
    a = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(a.out, exist_ok=True)
    for ci, (case, spec, V, K, C, depth, L, B, s) in enumerate(CASES):
        rng = mf.Rng(1000 + ci)
        p = {"embed.weight": 0.5 * rng.randn(V, C)}
        if s["pos"]:
            p["pos_embed"] = 0.3 * rng.randn(1, L, C)
        for j in range(depth):
            bp, hid, E = block_params(rng, f"blocks.{j}", C, s)
            p.update(bp)
        p["norm.weight"] = 1 + 0.2 * rng.randn(C)
        p["norm.bias"] = 0.1 * rng.randn(C)
        if not s["tie"]:
            p["head.weight"] = rng.randn(K, C) / math.sqrt(C)
        p["head.bias"] = 0.1 * rng.randn(K)
        params = {k: r32(torch.as_tensor(v, dtype=F64)).requires_grad_(True) for k, v in p.items()}
        params["_hid"], params["_E"] = hid, E
        g = np.random.default_rng(2000 + ci)
        tok = torch.from_numpy(g.integers(0, V, size=(B, L)).astype(np.int64))
        lab = g.integers(0, K, size=(B, L)).astype(np.int64)
        lab[g.random((B, L)) < 0.6] = -1  # most positions ask nothing, as in the tasks
        lab[0, -1] = 1
        labels = torch.from_numpy(lab)
        if s["mixer"] == "dwconv":
            check_dwconv_against_timm(params, s, C)
        loss = forward(params, s, tok, labels, depth, C, K)
        names = [k for k in params if not k.startswith("_")]
        grads = torch.autograd.grad(loss, [params[k] for k in names])
        tensors = {}
        for k in names:
            tensors[k] = params[k].detach().to(torch.float32).numpy()
        tensors["input"] = tok.numpy()
        tensors["labels"] = labels.numpy()
        tensors["loss"] = np.array([loss.item()], dtype=np.float32)
        for k, gr in zip(names, grads):
            tensors["grad." + k] = gr.to(torch.float32).numpy()
        path = os.path.join(a.out, f"seq_{case}.safetensors")
        write_safetensors(path, list(tensors.items()), metadata={"model": spec})
        print(f"{path}: {spec}, B={B} L={L}, loss {loss.item():.8f}, {len(names)} parameters")


if __name__ == "__main__":
    main()
