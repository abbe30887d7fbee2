#!/usr/bin/env python3
"""Golden fixtures for two visual-Mamba skeletons of mixerlab's zoo, `vmamba_test`
(hierarchical, SS2D mixer, patch merging) and `vim_test` (isotropic, bidirectional
scan, middle class token), from an independent float64 restatement of the published
architectures (vanilla VMamba, Liu et al. arXiv 2401.10166; Vim v2, Zhu et al.
arXiv 2401.09417) in mixerlab's Gated-block form -- no C code involved.

Developer-only tool (CI never needs torch: the outputs are committed):

    /usr/bin/python3 scripts/make_skeleton_fixtures.py [--out tests/fixtures/skeletons]
                                                        [--check-names build/mixerlab]

Needs only Debian's python3-torch and python3-numpy.  The token mixers `ssm_2d` and
`ssm_bidir`, the parameter recipe of the mixers and the safetensors writer are
imported from scripts/make_mixer_fixtures.py (which has no import side effects).

Writes `<model>.safetensors` per model holding every weight of the model under
mixerlab's names and shapes (exactly the list of `mixerlab info <model> --res 64
--params`, in that order), then `input` [2,3,64,64] (NCHW) and the reference
activations (see the README next to the fixtures).  Weights and input are drawn in
float64, rounded to float32 (what is stored), the reference is computed in float64
from those rounded values and cast to float32.

`--check-names BIN` additionally runs `BIN info <model> --res 64 --params` and
asserts that its (name, shape) list equals ours; it does not change the output.

Deterministic: rerunning gives byte-identical files (one thread, fixed seeds, fixed
key order, no timestamps or paths in the metadata).
"""
import argparse
import hashlib
import math
import os
import subprocess
import sys

sys.dont_write_bytecode = True        # no __pycache__ next to the scripts
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np                    # noqa: E402
import torch                          # noqa: E402
import torch.nn.functional as F       # noqa: E402

import make_mixer_fixtures as mm      # noqa: E402

F64 = torch.float64
RES = 64
BATCH = 2
NUM_CLASSES = 1000
SSM_N = 16
LN_EPS = 1e-6          # every skeleton LayerNorm of vmamba (stem, blocks, merging, head)
RMS_EPS = 1e-5         # every RMSNorm of vim
# weight recipe (besides the mixers' own, taken from make_mixer_fixtures.ssm*_params)
NORM_W_STD = 0.2       # norm weight ~ 1 + N(0, 0.2^2)
NORM_B_STD = 0.1       # norm bias   ~ N(0, 0.1^2)
CONV_B_STD = 0.05      # patch-embed conv bias and head.fc.bias ~ N(0, 0.05^2)
TOKEN_STD = 0.5        # cls_token, pos_embed ~ N(0, 0.5^2)
# terms whose removal must move the logits by more than this (max|d| / max|logits|)
VISIBLE_MIN = 1e-2
LOGITS_STD_MIN = 0.1

VMAMBA = dict(name="vmamba_test", depths=(1, 1, 1, 1), dims=(8, 16, 24, 32), patch=4,
              param_seed=7001, input_seed=7002)
VIM = dict(name="vim_test", depth=2, dim=16, patch=16, param_seed=7101, input_seed=7102)


# conventions, switched only by the sensitivity checks (never for the stored references)
_SWAP_GATE = False                    # True: c = u[..., :E], g = u[..., E:] (Mamba's x, z order)
_MERGE_ORDER = (0, 1, 2, 3)           # order of x0..x3 in the patch-merging concat


def dt_rank(c):
    return math.ceil(c / 16)


# ----------------------------------------------------------------------------
# parameters (float64, later rounded to float32)
# ----------------------------------------------------------------------------


def linear_w(rng, out_f, in_f):
    return rng.randn(out_f, in_f) / math.sqrt(in_f)


def norm_params(rng, prefix, c, bias=True):
    p = {prefix + "weight": 1 + NORM_W_STD * rng.randn(c)}
    if bias:
        p[prefix + "bias"] = NORM_B_STD * rng.randn(c)
    return p


def gated_block_params(rng, prefix, c, mixer, norm_bias):
    """Gated block with Hd = E = 2C (no `i` branch), fc biases off."""
    e = 2 * c
    p = norm_params(rng, prefix + "norm.", c, bias=norm_bias)
    p[prefix + "fc1.weight"] = linear_w(rng, 2 * e, c)
    if mixer == "ssm_2d":
        mp = mm.ssm2d_params(rng, e, SSM_N, dt_rank(c))
    else:
        mp = mm.ssm_params(rng, e, SSM_N, dt_rank(c))
        mp.update(mm.ssm_params(rng, e, SSM_N, dt_rank(c), "_b"))
    for k, v in mp.items():
        p[prefix + "mixer." + k] = v
    p[prefix + "fc2.weight"] = linear_w(rng, c, e)
    return p


def patch_conv_params(rng, c, patch):
    fan_in = 3 * patch * patch
    return {"patch_embed.proj.weight": rng.randn(c, 3, patch, patch) / math.sqrt(fan_in),
            "patch_embed.proj.bias": CONV_B_STD * rng.randn(c)}


def vmamba_params(cfg, rng):
    dims = cfg["dims"]
    p = patch_conv_params(rng, dims[0], cfg["patch"])
    p.update(norm_params(rng, "patch_embed.norm.", dims[0]))
    for s, (depth, c) in enumerate(zip(cfg["depths"], dims)):
        if s > 0:
            cp = dims[s - 1]
            p.update(norm_params(rng, f"stages.{s}.downsample.norm.", 4 * cp))
            p[f"stages.{s}.downsample.reduction.weight"] = linear_w(rng, c, 4 * cp)
        for j in range(depth):
            p.update(gated_block_params(rng, f"stages.{s}.blocks.{j}.", c, "ssm_2d", True))
    p.update(norm_params(rng, "head.norm.", dims[-1]))
    p["head.fc.weight"] = linear_w(rng, NUM_CLASSES, dims[-1])
    p["head.fc.bias"] = CONV_B_STD * rng.randn(NUM_CLASSES)
    return {k: mm.r32(v) for k, v in p.items()}


def vim_params(cfg, rng):
    d = cfg["dim"]
    L = (RES // cfg["patch"]) ** 2
    p = patch_conv_params(rng, d, cfg["patch"])
    p["cls_token"] = TOKEN_STD * rng.randn(1, 1, d)
    p["pos_embed"] = TOKEN_STD * rng.randn(1, L + 1, d)
    for j in range(cfg["depth"]):
        p.update(gated_block_params(rng, f"blocks.{j}.", d, "ssm_bidir", False))
    p.update(norm_params(rng, "norm.", d, bias=False))
    p["head.fc.weight"] = linear_w(rng, NUM_CLASSES, d)
    p["head.fc.bias"] = CONV_B_STD * rng.randn(NUM_CLASSES)
    return {k: mm.r32(v) for k, v in p.items()}


# ----------------------------------------------------------------------------
# reference math (torch, float64, channels-last after the stem)
# ----------------------------------------------------------------------------


def layer_norm(x, p, prefix, eps):
    c = x.shape[-1]
    return F.layer_norm(x, (c,), p[prefix + "weight"], p[prefix + "bias"], eps=eps)


def rms_norm(x, p, prefix, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * p[prefix + "weight"]


def sub(p, prefix):
    n = len(prefix)
    return {k[n:]: v for k, v in p.items() if k.startswith(prefix)}


def gated_block(x, p, prefix, mixer, norm, trace=None):
    """x (B,H,W,C).  t = norm(x); u = t fc1^T; g = u[:E], c = u[E:]; v = SiLU(g) * mixer(c);
    x + v fc2^T.  Hd = E = 2C, no fc biases."""
    c_dim = x.shape[-1]
    e = 2 * c_dim
    t = norm(x, p, prefix + "norm.")
    u = t @ p[prefix + "fc1.weight"].T
    assert u.shape[-1] == 2 * e
    g, c = u[..., :e], u[..., e:]
    if _SWAP_GATE:
        g, c = c, g
    mp = sub(p, prefix + "mixer.")
    c2 = mm.MIXERS[mixer](c, mp, {})
    if trace is not None:
        trace.append((prefix, mixer, c, mp, c2))
    v = mm.silu(g) * c2
    r = v @ p[prefix + "fc2.weight"].T
    if trace is not None:
        trace.append((prefix, "residual_ratio", float(r.std() / x.std())))
    return x + r


def patch_embed(img, p, patch):
    y = F.conv2d(img, p["patch_embed.proj.weight"], p["patch_embed.proj.bias"], stride=patch)
    return y.permute(0, 2, 3, 1)                                   # NHWC


def patch_merge(x, p, prefix):
    B, H, W, C = x.shape
    h2, w2 = H // 2, W // 2
    x0 = x[:, 0::2, 0::2, :][:, :h2, :w2]
    x1 = x[:, 1::2, 0::2, :][:, :h2, :w2]
    x2 = x[:, 0::2, 1::2, :][:, :h2, :w2]
    x3 = x[:, 1::2, 1::2, :][:, :h2, :w2]
    xs = (x0, x1, x2, x3)
    y = torch.cat([xs[i] for i in _MERGE_ORDER], -1)
    y = layer_norm(y, p, prefix + "norm.", LN_EPS)
    return y @ p[prefix + "reduction.weight"].T


def vmamba_forward(cfg, p, img, trace=None):
    acts = {}

    def ln(x, pp, prefix):
        return layer_norm(x, pp, prefix, LN_EPS)

    x = patch_embed(img, p, cfg["patch"])
    x = ln(x, p, "patch_embed.norm.")
    acts["stem"] = x
    for s, depth in enumerate(cfg["depths"]):
        if s > 0:
            x = patch_merge(x, p, f"stages.{s}.downsample.")
        for j in range(depth):
            x = gated_block(x, p, f"stages.{s}.blocks.{j}.", "ssm_2d", ln, trace)
        acts[f"stage{s}"] = x
    t = ln(x, p, "head.norm.")
    pooled = t.mean(dim=(1, 2))
    acts["logits"] = pooled @ p["head.fc.weight"].T + p["head.fc.bias"]
    return acts


def vim_forward(cfg, p, img, trace=None):
    acts = {}

    def rms(x, pp, prefix):
        return rms_norm(x, pp, prefix, RMS_EPS)

    x = patch_embed(img, p, cfg["patch"])                           # (B,4,4,D)
    acts["stem"] = x
    B, Hp, Wp, D = x.shape
    L = Hp * Wp
    seq = x.reshape(B, L, D)                                        # raster order
    pos = L // 2
    cls = p["cls_token"].expand(B, 1, D)
    seq = torch.cat([seq[:, :pos], cls, seq[:, pos:]], 1)          # (B,L+1,D)
    seq = seq + p["pos_embed"]
    x = seq.reshape(B, 1, L + 1, D)                                 # 1-D sequence: H=1, W=L+1
    for j in range(cfg["depth"]):
        x = gated_block(x, p, f"blocks.{j}.", "ssm_bidir", rms, trace)
    acts["stage0"] = x
    tok = rms(x[:, 0, pos], p, "norm.")
    acts["logits"] = tok @ p["head.fc.weight"].T + p["head.fc.bias"]
    return acts


# ----------------------------------------------------------------------------
# independent cross-checks (numpy / explicit indices)
# ----------------------------------------------------------------------------


def np_patch_embed(img, w, b, patch):
    """Patchify by reshape + matmul (no conv)."""
    B, C, H, W = img.shape
    hp, wp = H // patch, W // patch
    x = img[:, :, :hp * patch, :wp * patch].reshape(B, C, hp, patch, wp, patch)
    x = x.transpose(0, 2, 4, 1, 3, 5).reshape(B, hp, wp, C * patch * patch)
    return x @ w.reshape(w.shape[0], -1).T + b


def np_layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def np_patch_merge(x, w, b, red):
    """Explicit loops: out[h2, w2] = [x(2h2,2w2) | x(2h2+1,2w2) | x(2h2,2w2+1) | x(2h2+1,2w2+1)]."""
    B, H, W, C = x.shape
    out = np.zeros((B, H // 2, W // 2, 4 * C))
    for i in range(H // 2):
        for j in range(W // 2):
            for q, (dh, dw) in enumerate([(0, 0), (1, 0), (0, 1), (1, 1)]):
                out[:, i, j, q * C:(q + 1) * C] = x[:, 2 * i + dh, 2 * j + dw]
    return np_layer_norm(out, w, b, LN_EPS) @ red.T


def np_ssm_bidir(c, p):
    """(explicit-sum ssm(x) + flip(explicit-sum ssm_b(flip x))) / 2, numpy."""
    B, H, W, E = c.shape
    yf = mm.np_ssm_explicit(c, p)
    pb = {"conv1d.weight": p["conv1d_b.weight"], "conv1d.bias": p["conv1d_b.bias"],
          "x_proj.weight": p["x_proj_b.weight"], "dt_proj.weight": p["dt_proj_b.weight"],
          "dt_proj.bias": p["dt_proj_b.bias"], "A_log": p["A_b_log"], "D": p["D_b"]}
    cf = c.reshape(B, H * W, E)[:, ::-1].reshape(B, H, W, E)
    yb = mm.np_ssm_explicit(np.ascontiguousarray(cf), pb)
    yb = yb.reshape(B, H * W, E)[:, ::-1].reshape(B, H, W, E)
    return (yf + yb) / 2


def check_mixers(trace):
    worst = 0.0
    ratios = []
    for item in trace:
        if item[1] == "residual_ratio":
            ratios.append(f"{item[0][:-1]} {item[2]:.2f}")
            continue
        prefix, mixer, c, mp, y = item
        cn = c.numpy()
        pn = {k: v.numpy() for k, v in mp.items()}
        y2 = mm.np_ssm2d_explicit(cn, pn) if mixer == "ssm_2d" else np_ssm_bidir(cn, pn)
        r = mm.rel(y.numpy(), y2)
        assert r < 1e-12, f"{prefix}mixer ({mixer}): torch vs numpy rel {r:.3g}"
        worst = max(worst, r)
    print(f"  [ok] every block's mixer == its numpy explicit-index formulation on the "
          f"block's actual input: worst rel err {worst:.2e} < 1e-12")
    print("  [info] residual branch std / shortcut std per block: " + ", ".join(ratios))


def neutral_value(name):
    """The value a forgotten term would have, or None for tensors that are not 'terms'."""
    leaf = name.rsplit(".", 1)[-1]
    if name in ("pos_embed", "cls_token"):
        return 0.0
    if leaf == "bias" or leaf in ("dt_projs_bias", "Ds", "D", "D_b"):
        return 0.0
    if leaf == "weight" and name.rsplit(".", 2)[-2] in ("norm", "out_norm"):
        return 1.0
    return None


def check_terms_visible(forward, cfg, p, img, logits):
    parts = []
    worst = (math.inf, "")
    ref = logits.numpy()
    for name in p:
        val = neutral_value(name)
        if val is None:
            continue
        q = dict(p)
        q[name] = torch.full_like(p[name], val)
        r = mm.rel(forward(cfg, q, img)["logits"].numpy(), ref)
        parts.append(f"{name} {r:.2g}")
        worst = min(worst, (r, name))
        assert r > VISIBLE_MIN, f"dropping {name} changes the logits by only {r:.3g}"
    print(f"  [ok] dropping any single term changes the logits (max|d|/max|logits|), "
          f"{len(parts)} terms, smallest {worst[0]:.3g} ({worst[1]}) > {VISIBLE_MIN:g}:")
    for i in range(0, len(parts), 4):
        print("       " + ", ".join(parts[i:i + 4]))


def check_conventions(forward, cfg, p, img, logits):
    """The layout choices are visible: the alternatives change the logits."""
    global _SWAP_GATE, _MERGE_ORDER
    ref = logits.numpy()
    alts = [("gate/mixer halves of fc1 swapped (c first, g second)", "_SWAP_GATE", True)]
    if "stages.1.downsample.reduction.weight" in p:
        alts.append(("patch-merge order x0,x2,x1,x3 (w-offset before h-offset)",
                     "_MERGE_ORDER", (0, 2, 1, 3)))
    parts = []
    for desc, var, val in alts:
        old = globals()[var]
        globals()[var] = val
        try:
            r = mm.rel(forward(cfg, p, img)["logits"].numpy(), ref)
        finally:
            globals()[var] = old
        assert r > VISIBLE_MIN, (desc, r)
        parts.append(f"{desc}: {r:.2g}")
    print("  [ok] convention alternatives change the logits: " + "; ".join(parts))


def float32_run(forward, cfg, p, img, acts):
    """Same math in float32 (torch CPU), against the float64 reference: the size of
    the float32 error a correct C implementation should show."""
    old = mm.F64
    mm.F64 = torch.float32            # the imported mixers allocate their state with mm.F64
    try:
        a32 = forward(cfg, {k: v.float() for k, v in p.items()}, img.float())
    finally:
        mm.F64 = old
    parts = []
    for k, v in acts.items():
        assert a32[k].dtype == torch.float32, k
        parts.append(f"{k} {mm.rel(a32[k].double().numpy(), v.numpy()):.1e}")
    print("  [info] float32 torch run vs float64 reference (max|d|/max|ref|): " + ", ".join(parts))


def check_common(cfg, p, img, acts):
    st = np_patch_embed(img.numpy(), p["patch_embed.proj.weight"].numpy(),
                        p["patch_embed.proj.bias"].numpy(), cfg["patch"])
    if "patch_embed.norm.weight" in p:
        st = np_layer_norm(st, p["patch_embed.norm.weight"].numpy(),
                           p["patch_embed.norm.bias"].numpy(), LN_EPS)
    r = mm.rel(acts["stem"].numpy(), st)
    assert r < 1e-12, r
    print(f"  [ok] stem == reshape+matmul patchify (numpy): rel err {r:.2e}")


def check_vmamba(cfg, p, img, acts):
    check_common(cfg, p, img, acts)
    worst = 0.0
    for s in range(1, len(cfg["depths"])):
        pre = f"stages.{s}.downsample."
        x = acts[f"stage{s - 1}"]
        y = patch_merge(x, p, pre).numpy()
        y2 = np_patch_merge(x.numpy(), p[pre + "norm.weight"].numpy(),
                            p[pre + "norm.bias"].numpy(), p[pre + "reduction.weight"].numpy())
        worst = max(worst, mm.rel(y, y2))
    assert worst < 1e-12, worst
    print(f"  [ok] patch merging == explicit-loop numpy version: rel err {worst:.2e}")
    x = acts["stage3"].numpy()
    t = np_layer_norm(x, p["head.norm.weight"].numpy(), p["head.norm.bias"].numpy(), LN_EPS)
    lg = t.mean(axis=(1, 2)) @ p["head.fc.weight"].numpy().T + p["head.fc.bias"].numpy()
    r = mm.rel(acts["logits"].numpy(), lg)
    assert r < 1e-12, r
    # norm-then-pool is not pool-then-norm: the order is visible
    t2 = np_layer_norm(x.mean(axis=(1, 2)), p["head.norm.weight"].numpy(),
                       p["head.norm.bias"].numpy(), LN_EPS)
    lg2 = t2 @ p["head.fc.weight"].numpy().T + p["head.fc.bias"].numpy()
    r2 = mm.rel(lg2, lg)
    assert r2 > 1e-2, r2
    print(f"  [ok] head (LN per token, mean, fc) == numpy: rel err {r:.2e}; "
          f"pooling before the LN instead would change the logits by {r2:.2g}")


def check_vim(cfg, p, img, acts):
    check_common(cfg, p, img, acts)
    x = acts["stage0"].numpy()[:, 0]
    D = x.shape[-1]
    pos = (x.shape[1] - 1) // 2
    tok = x[:, pos]
    tok = tok / np.sqrt((tok ** 2).mean(-1, keepdims=True) + RMS_EPS) * p["norm.weight"].numpy()
    lg = tok @ p["head.fc.weight"].numpy().T + p["head.fc.bias"].numpy()
    r = mm.rel(acts["logits"].numpy(), lg)
    assert r < 1e-12, r
    print(f"  [ok] head (RMSNorm of token {pos}, fc) == numpy: rel err {r:.2e}")
    # class-token position matters: putting it first (or last) changes the logits
    for where, desc in ((0, "first"), (16, "last")):
        q = dict(p)
        seqtok = acts["stem"].reshape(BATCH, -1, D)
        cls = p["cls_token"].expand(BATCH, 1, D)
        seq = torch.cat([seqtok[:, :where], cls, seqtok[:, where:]], 1) + p["pos_embed"]
        y = seq.reshape(BATCH, 1, -1, D)
        for j in range(cfg["depth"]):
            y = gated_block(y, q, f"blocks.{j}.", "ssm_bidir",
                            lambda a, pp, pr: rms_norm(a, pp, pr, RMS_EPS))
        t = rms_norm(y[:, 0, where], q, "norm.", RMS_EPS)
        lg2 = (t @ p["head.fc.weight"].T + p["head.fc.bias"]).numpy()
        r2 = mm.rel(lg2, lg)
        assert r2 > 1e-2, r2
        print(f"  [ok] class token {desc} instead of at index {pos}: logits change by {r2:.2g}")


# ----------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------


def check_names(binary, model, p):
    out = subprocess.run([binary, "info", model, "--res", str(RES), "--params"],
                         check=True, capture_output=True, text=True).stdout
    theirs = []
    for line in out.splitlines():
        if not line.strip():
            continue
        name, shape = line.split(None, 1)
        theirs.append((name, [int(s) for s in shape.strip("[] ").split(",") if s.strip()]))
    ours = [(k, list(v.shape)) for k, v in p.items()]
    assert theirs == ours, f"{model}: names/shapes differ from `{binary} info`:\n" + "\n".join(
        f"  ours {a}  theirs {b}" for a, b in zip(ours + [None] * len(theirs),
                                                   theirs + [None] * len(ours)) if a != b)
    print(f"  [ok] {len(ours)} names and shapes == `mixerlab info {model} --res {RES} --params`")


def build(model_cfg, forward, make_params, checks, binary):
    name = model_cfg["name"]
    print(f"{name}:")
    p = make_params(model_cfg, mm.Rng(model_cfg["param_seed"]))
    img = mm.r32(mm.Rng(model_cfg["input_seed"]).randn(BATCH, 3, RES, RES))
    if binary:
        check_names(binary, name, p)
    n_params = sum(v.numel() for v in p.values())
    with torch.no_grad():
        mm._PRE_COLLECT = []
        trace = []
        acts = forward(model_cfg, p, img, trace)
        pre = torch.cat([t.reshape(-1) for t in mm._PRE_COLLECT])
        mm._PRE_COLLECT = None
        for k, v in acts.items():
            assert torch.isfinite(v).all(), k
        lg = acts["logits"]
        print(f"  {len(p)} tensors, {n_params} parameters; activations: " + ", ".join(
            f"{k} {list(v.shape)} std {float(v.std()):.3g}" for k, v in acts.items()))
        dl = mm.softplus_th(pre)
        print(f"  softplus pre-activation in [{float(pre.min()):.3f}, {float(pre.max()):.3f}], "
              f"delta in [{float(dl.min()):.2e}, {float(dl.max()):.3g}]")
        std = float(lg.std())
        assert std >= LOGITS_STD_MIN, std
        print(f"  [ok] logits std {std:.3f} >= {LOGITS_STD_MIN} (max|logit| "
              f"{float(lg.abs().max()):.3f}); batch items differ by "
              f"{mm.rel(lg[0].numpy(), lg[1].numpy()):.2g} (rel)")
        check_mixers(trace)
        checks(model_cfg, p, img, acts)
        check_terms_visible(forward, model_cfg, p, img, lg)
        check_conventions(forward, model_cfg, p, img, lg)
        float32_run(forward, model_cfg, p, img, acts)
    return p, img, acts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "tests", "fixtures", "skeletons"))
    ap.add_argument("--check-names", metavar="MIXERLAB", default=None,
                    help="compare names/shapes with `MIXERLAB info <model> --res 64 --params`")
    args = ap.parse_args()
    out_dir = os.path.normpath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    common = {
        "res": str(RES), "batch": str(BATCH), "classes": str(NUM_CLASSES),
        "ssm_N": str(SSM_N), "dt_rank": "ceil(C/16), C = block width",
        "block": ("t=norm(x); u=t fc1^T; g=u[...,:E], c=u[...,E:] (Hd=E=2C, no i branch); "
                  "v=SiLU(g)*mixer(c); x=x+v fc2^T; no fc biases"),
        "init": (f"mixer params as scripts/make_mixer_fixtures.py; fc/reduction/head.fc weights "
                 f"N(0,1/fan_in); patch conv N(0,1/fan_in), bias N(0,{CONV_B_STD}^2); "
                 f"head.fc.bias N(0,{CONV_B_STD}^2); norm weight 1+N(0,{NORM_W_STD}^2), "
                 f"bias N(0,{NORM_B_STD}^2); cls_token/pos_embed N(0,{TOKEN_STD}^2)"),
        "reference": ("float64 from the stored float32 weights/input, cast to float32; "
                      "generator scripts/make_skeleton_fixtures.py"),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
    }
    models = [
        (VMAMBA, vmamba_forward, vmamba_params, check_vmamba, dict(
            model="vmamba_test", depths=",".join(map(str, VMAMBA["depths"])),
            dims=",".join(map(str, VMAMBA["dims"])),
            E=",".join(str(2 * c) for c in VMAMBA["dims"]),
            R=",".join(str(dt_rank(c)) for c in VMAMBA["dims"]), mixer="ssm_2d", norm="layernorm", ln_eps="1e-6",
            out_norm_eps="1e-5", stem="conv4x4 s4 + bias, NHWC, LayerNorm",
            downsample=("patch merging: cat(x[0::2,0::2], x[1::2,0::2], x[0::2,1::2], "
                        "x[1::2,1::2]) -> LayerNorm(4C) -> reduction (no bias)"),
            head="LayerNorm per token -> mean over H,W -> fc + bias",
            activations="stem, stage0..stage3 NHWC (after each stage's last block), logits")),
        (VIM, vim_forward, vim_params, check_vim, dict(
            model="vim_test", depth=str(VIM["depth"]), dim=str(VIM["dim"]), E=str(2 * VIM["dim"]),
            R=str(dt_rank(VIM["dim"])), patch=str(VIM["patch"]),
            mixer="ssm_bidir", norm="rmsnorm", rms_eps="1e-5",
            stem="conv16x16 s16 + bias, NHWC, no norm",
            tokens=("raster-flattened patches (L=16), cls_token inserted at index L//2=8 "
                    "(sequence 17), + pos_embed; run as H=1, W=17"),
            head="RMSNorm (norm.weight) of token 8 -> fc + bias",
            activations=("stem NHWC [2,4,4,16] (patches, before the class token), stage0 "
                         "[2,1,17,16] (after the last block, before the final norm), logits"))),
    ]

    written = []
    for cfg, forward, make_params, checks, meta_model in models:
        p, img, acts = build(cfg, forward, make_params, checks, args.check_names)
        meta = dict(meta_model)
        meta.update(common)
        meta["param_seed"] = str(cfg["param_seed"])
        meta["input_seed"] = str(cfg["input_seed"])
        tensors = [(k, v.to(torch.float32).numpy()) for k, v in p.items()]
        tensors.append(("input", img.to(torch.float32).numpy()))
        tensors += [(k, v.to(torch.float32).numpy()) for k, v in acts.items()]
        path = os.path.join(out_dir, f"{cfg['name']}.safetensors")
        size = mm.write_safetensors(path, tensors, meta)
        back, bhdr = mm.read_safetensors(path)
        bmeta = bhdr.get("__metadata__", {})
        assert list(back) == [n for n, _ in tensors] and bmeta == meta
        for n, a in tensors:
            assert np.array_equal(back[n], a), n
        written.append((path, size, tensors, len(p)))

    print("\nwritten:")
    total = 0
    for path, size, tensors, n_w in written:
        with open(path, "rb") as f:
            h = hashlib.sha256(f.read()).hexdigest()
        total += size
        print(f"  {os.path.relpath(path)}  {size} bytes  sha256 {h[:16]}  "
              f"({n_w} weights + " + ", ".join(f"{n} {list(a.shape)}" for n, a in tensors[n_w:])
              + ")")
    print(f"  total {total} bytes")
    assert total < 800 * 1024
    return 0


if __name__ == "__main__":
    sys.exit(main())
