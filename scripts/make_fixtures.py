#!/usr/bin/env python3
"""Generate golden test fixtures for mixerlab from the REAL timm MambaOut.

Developer-only tool (CI never needs torch: the outputs are committed):

    bash scripts/setup_fixture_env.sh
    PYTHONPATH=/opt/timm /usr/bin/python3 scripts/make_fixtures.py [--out tests/fixtures]

Writes (all safetensors, written by hand with struct+json, no `safetensors` pkg):
  mambaout_test_weights.safetensors  tiny MambaOut state_dict (timm key names, F32)
  mambaout_test_r64.safetensors      input + stem/stage/block/logits references
  mambaout_test_r97.safetensors      same at an odd resolution
  dtypes.safetensors                 F32/F16/BF16 loader conversion checks

The references are computed by timm's own modules on a float64 copy of the
model (model.double()) and cast to float32, so they do not depend on
PyTorch's float32 accumulation order.  The float32 run is compared against
it and the differences are printed.

Deterministic: rerunning produces byte-identical files (single thread, fixed
seeds, fixed key order, metadata contains no timestamps/paths).
"""
import argparse
import copy
import hashlib
import json
import math
import os
import struct
import sys

import numpy as np
import torch

import timm
from timm.models.mambaout import MambaOut

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

# ----------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------
DEPTHS = (1, 1, 2, 1)
DIMS = (16, 24, 32, 48)
NUM_CLASSES = 1000
RESOLUTIONS = (64, 97)
BATCH = 2
WEIGHT_SEED = 0
# Weight re-initialisation (timm's own init is trunc_normal(std=.02) weights,
# zero biases and LayerNorm 1/0, which makes the residual branches and the
# affine LayerNorm terms nearly invisible in the outputs).
W_GAIN = 1.0          # conv/linear weight ~ N(0, (W_GAIN / sqrt(fan_in))^2)
LIN_BIAS_STD = 0.05   # conv/linear bias ~ N(0, 0.05^2)
LN_W_STD = 0.2        # LayerNorm weight ~ 1 + N(0, 0.2^2)
LN_B_STD = 0.1        # LayerNorm bias ~ N(0, 0.1^2)

EXPECTED_TIMM = "1.0.31"

# ----------------------------------------------------------------------------
# safetensors writer (plain python)
# ----------------------------------------------------------------------------
def f32(t):
    """torch tensor (any float dtype) -> contiguous little-endian float32 numpy."""
    return t.detach().to(torch.float32).contiguous().numpy().astype("<f4")


# ----------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------
def build_model():
    torch.manual_seed(WEIGHT_SEED)
    model = MambaOut(depths=DEPTHS, dims=DIMS, num_classes=NUM_CLASSES)
    g = torch.Generator().manual_seed(WEIGHT_SEED)
    with torch.no_grad():
        for mname, m in model.named_modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                w = m.weight
                fan_in = w[0].numel()  # in/groups * kh * kw  or in_features
                w.copy_(torch.randn(w.shape, generator=g) * (W_GAIN / math.sqrt(fan_in)))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * LIN_BIAS_STD)
            elif isinstance(m, torch.nn.LayerNorm):
                m.weight.copy_(1.0 + torch.randn(m.weight.shape, generator=g) * LN_W_STD)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * LN_B_STD)
            elif len(list(m.parameters(recurse=False))) > 0:
                raise RuntimeError(f"unexpected parametrised module {mname}: {type(m)}")
    model.eval()
    return model


def layernorm_eps(model):
    """eps of every LayerNorm, grouped by where it sits."""
    groups = {"stem": set(), "downsample": set(), "blocks": set(), "head": set()}
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.LayerNorm):
            if name.startswith("stem."):
                groups["stem"].add(m.eps)
            elif ".downsample." in name:
                groups["downsample"].add(m.eps)
            elif ".blocks." in name:
                groups["blocks"].add(m.eps)
            elif name.startswith("head."):
                groups["head"].add(m.eps)
            else:
                raise RuntimeError(name)
    out = {}
    for k, v in groups.items():
        assert len(v) == 1, (k, v)
        out[k] = next(iter(v))
    return out


def block_hparams(model):
    """Per-stage hidden width / split of the GatedConvBlocks, as timm computed them."""
    info = []
    for i, st in enumerate(model.stages):
        b = st.blocks[0]
        info.append({
            "dim": DIMS[i],
            "hidden": b.fc2.in_features,
            "fc1_out": b.fc1.out_features,
            "split_g_i_c": list(b.split_indices),
            "conv_kernel": list(b.conv.kernel_size),
            "conv_padding": list(b.conv.padding),
            "conv_groups": b.conv.groups,
        })
    return info


def run_reference(model, x):
    """Run timm's modules stage by stage; return dict of intermediates."""
    out = {}
    hook_store = {}

    def hook(_m, inp, outp):
        hook_store["block_in"] = inp[0].clone()
        hook_store["block_out"] = outp.clone()

    h = model.stages[2].blocks[1].register_forward_hook(hook)
    try:
        with torch.no_grad():
            s = model.stem(x)
            out["stem"] = s
            y = s
            for i, st in enumerate(model.stages):
                y = st(y)
                out[f"stage{i}"] = y
            logits = model.head(y)
            out["logits"] = logits
            out["block_in"] = hook_store["block_in"]
            out["block_out"] = hook_store["block_out"]
            # forward_features/forward_head path must agree with the manual one
            full = model(x)
            ff = model.forward_features(x)
    finally:
        h.remove()
    assert torch.equal(ff, y), "forward_features != stem -> stages"
    if not torch.equal(full, logits):
        d = (full - logits).abs().max().item()
        assert d <= 1e-6 * max(1.0, logits.abs().max().item()), f"model(x) != manual logits ({d})"
    return out


def max_rel(a32, ref):
    """(max |a-ref| / max |ref|, max |a-ref|, max elementwise |a-ref|/(|ref|+1e-3*max|ref|))."""
    a = a32.to(torch.float64)
    d = (a - ref).abs()
    scale = ref.abs().max().item()
    ew = (d / (ref.abs() + 1e-3 * scale)).max().item()
    return d.max().item() / scale, d.max().item(), ew


# ----------------------------------------------------------------------------
# dtypes fixture
# ----------------------------------------------------------------------------
def make_dtypes(path, meta_base):
    f32_vals = np.array([
        [0.0, -0.0, 1.0, -1.0, 3.1415927],
        [1e-38, -1e-40, 1.4e-45, 3.4e38, -3.4e38],      # normal min-ish, subnormals, near max
        [1e-7, -123456.789, 65504.0, 2.0 ** -24, -0.1],
    ], dtype="<f4")
    f16_vals = np.array([
        [0.0, -0.0, 1.0, -2.5, 65504.0],                # 65504 = f16 max
        [-65504.0, 6.1035156e-05, 5.9604645e-08, -5.9604645e-08, 1e-5],  # min normal, min subnormal, subnormal
        [0.33333334, -1000.1, 3.0517578e-05, 0.099975586, 2049.0],  # 2049 -> rounds to 2048
    ], dtype=np.float32).astype("<f2")
    bf16_src = torch.tensor([
        [0.0, -0.0, 1.0, -1.0, 3.1415927, 1e-40, -9.2e-41],        # pi rounds; subnormals
        [3.3e38, -3.3e38, 1.17549435e-38, 0.1, -123.456, 65504.0, 1.00390625],  # 1+2^-8 ties-to-even
    ], dtype=torch.float32)
    bf16 = bf16_src.to(torch.bfloat16)
    bf16_bits = bf16.view(torch.int16).numpy().astype("<i2")
    bf16_as_f32 = bf16.to(torch.float32).numpy().astype("<f4")
    # cross-check: top 16 bits of the float32 conversion are the bf16 bits
    top = (bf16_as_f32.view("<u4") >> 16).astype("<u2")
    assert np.array_equal(top, bf16_bits.view("<u2"))
    assert np.array_equal(bf16_as_f32.view("<u4") & 0xFFFF, np.zeros_like(bf16_as_f32.view("<u4")))
    f16_as_f32 = f16_vals.astype("<f4")

    tensors = [
        ("f32", f32_vals),
        ("f16", f16_vals),
        ("bf16", ("BF16", list(bf16_bits.shape), bf16_bits.tobytes())),
        ("f16_as_f32", f16_as_f32),
        ("bf16_as_f32", bf16_as_f32),
    ]
    meta = dict(meta_base)
    meta["description"] = ("dtype conversion checks: f16_as_f32/bf16_as_f32 are the exact "
                           "float32 values of f16/bf16; no inf/nan")
    size = write_safetensors(path, tensors, meta)
    back, _ = read_safetensors(path)
    assert np.array_equal(back["f16"].astype("<f4").view("<u4"), f16_as_f32.view("<u4"))
    assert np.array_equal(back["bf16"].view("<u4"), bf16_as_f32.view("<u4"))
    assert np.array_equal(back["f32"].view("<u4"), f32_vals.view("<u4"))
    return size


# ----------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "tests", "fixtures"))
    args = ap.parse_args()
    out_dir = os.path.normpath(args.out)
    os.makedirs(out_dir, exist_ok=True)

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    print(f"torch {torch.__version__}, timm {timm.__version__}, numpy {np.__version__}")
    if timm.__version__ != EXPECTED_TIMM:
        print(f"WARNING: fixtures were designed with timm {EXPECTED_TIMM}, running {timm.__version__}")

    meta_base = {
        "generator": "scripts/make_fixtures.py",
        "torch_version": str(torch.__version__),
        "timm_version": str(timm.__version__),
    }

    model = build_model()
    eps = layernorm_eps(model)
    bh = block_hparams(model)
    sd = model.state_dict()
    assert all(v.dtype == torch.float32 for v in sd.values())

    print("LayerNorm eps:", eps)
    print("block hparams:", json.dumps(bh))

    hp_meta = dict(meta_base)
    hp_meta.update({
        "model": "timm.models.mambaout.MambaOut",
        "depths": json.dumps(list(DEPTHS)),
        "dims": json.dumps(list(DIMS)),
        "num_classes": str(NUM_CLASSES),
        "in_chans": "3",
        "kernel_size": "7",
        "expansion_ratio": "8/3",
        "conv_ratio": "1.0",
        "hidden_per_stage": json.dumps([b["hidden"] for b in bh]),
        "split_g_i_c_per_stage": json.dumps([b["split_g_i_c"] for b in bh]),
        "ln_eps_stem": repr(eps["stem"]),
        "ln_eps_downsample": repr(eps["downsample"]),
        "ln_eps_blocks": repr(eps["blocks"]),
        "ln_eps_head": repr(eps["head"]),
        "act": "GELU (exact, erf)",
        "head": "MlpHead: mean(H,W) -> norm -> pre_logits.fc -> GELU -> pre_logits.norm -> fc",
        "head_hidden": str(model.head.pre_logits.fc.out_features),
        "init": (f"seed {WEIGHT_SEED}; conv/linear w ~ N(0,({W_GAIN}/sqrt(fan_in))^2), "
                 f"b ~ N(0,{LIN_BIAS_STD}^2); LN w ~ 1+N(0,{LN_W_STD}^2), b ~ N(0,{LN_B_STD}^2)"),
    })

    sizes = {}
    wpath = os.path.join(out_dir, "mambaout_test_weights.safetensors")
    sizes[wpath] = write_safetensors(wpath, [(k, f32(v)) for k, v in sd.items()], hp_meta)
    back, _ = read_safetensors(wpath)
    for k, v in sd.items():
        assert np.array_equal(back[k], v.numpy()), k
    print(f"\nweights: {len(sd)} tensors, {sum(v.numel() for v in sd.values())} params")
    for k, v in sd.items():
        print(f"  {k:40s} {list(v.shape)}")

    model64 = copy.deepcopy(model).double().eval()

    fp_report = {}
    for R in RESOLUTIONS:
        g = torch.Generator().manual_seed(1000 + R)
        x = torch.randn(BATCH, 3, R, R, generator=g, dtype=torch.float32)
        r32 = run_reference(model, x)
        r64 = run_reference(model64, x.double())

        # layout checks: timm keeps features channels-last (NHWC)
        H = (R + 2 - 3) // 2 + 1
        H = (H + 2 - 3) // 2 + 1
        assert tuple(r64["stem"].shape) == (BATCH, H, H, DIMS[0]), r64["stem"].shape
        for i in range(4):
            assert r64[f"stage{i}"].shape[-1] == DIMS[i]
        assert r64["block_in"].shape[-1] == DIMS[2] and r64["block_out"].shape == r64["block_in"].shape
        assert tuple(r64["logits"].shape) == (BATCH, NUM_CLASSES)

        lstd = r64["logits"].std().item()
        bi, bo = r64["block_in"], r64["block_out"]
        branch_ratio = ((bo - bi).std() / bi.std()).item()
        print(f"\nR={R}: logits std {lstd:.4f}, stages[2].blocks[1] branch/shortcut std ratio {branch_ratio:.3f}")
        assert lstd >= 0.1, "logits too small for a sensitive test"
        assert branch_ratio >= 0.1, "residual branch too small for a sensitive test"

        names = ["stem", "stage0", "stage1", "stage2", "stage3", "block_in", "block_out", "logits"]
        fp_report[R] = {}
        for n in names:
            nrel, mabs, ew = max_rel(r32[n], r64[n])
            fp_report[R][n] = (nrel, mabs, ew)
            print(f"  {n:10s} {str(list(r64[n].shape)):18s} f32-vs-f64: max|d|/max|ref| {nrel:.3e}  "
                  f"max|d| {mabs:.3e}  max elementwise rel {ew:.3e}")

        meta = dict(meta_base)
        meta.update({
            "resolution": str(R),
            "batch": str(BATCH),
            "input_seed": f"torch.Generator().manual_seed({1000 + R}); torch.randn(B,3,R,R)",
            "weights": "mambaout_test_weights.safetensors",
            "layout": "input NCHW; stem/stage*/block_* NHWC (as timm returns them); logits [B,classes]",
            "reference": "timm modules on model.double() (float64), cast to float32",
            "block": "block_in/block_out = input/output of stages[2].blocks[1]",
        })
        tensors = [("input", f32(x))] + [(n, f32(r64[n])) for n in names]
        p = os.path.join(out_dir, f"mambaout_test_r{R}.safetensors")
        sizes[p] = write_safetensors(p, tensors, meta)
        back, _ = read_safetensors(p)
        assert np.array_equal(back["input"], x.numpy())

    dpath = os.path.join(out_dir, "dtypes.safetensors")
    sizes[dpath] = make_dtypes(dpath, meta_base)

    print("\nfiles:")
    total = 0
    for p, s in sizes.items():
        with open(p, "rb") as f:
            h = hashlib.sha256(f.read()).hexdigest()
        print(f"  {os.path.relpath(p)}  {s} bytes  sha256 {h[:16]}")
        total += s
    print(f"  total {total} bytes ({total / 1024 / 1024:.2f} MiB)")
    assert total < 2 * 1024 * 1024
    return 0


if __name__ == "__main__":
    sys.exit(main())
