#!/usr/bin/env python3
"""The PyTorch side of scripts/gpu_check.sh: what a researcher gets from
PyTorch + timm on the same GPU, in the same call as mixerlab's own numbers.

Float32 with TF32 off throughout (as mixerlab's default). Timing: CUDA events,
median of the timed runs after warm-up. Prints Markdown rows and appends one
JSON object per measurement to $OUT/pytorch_ref.jsonl.

  python3 scripts/pytorch_ref.py [--no-compile] [--tokens 196,784,...]
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F


def median_ms(fn, warm, iters):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (it takes about a minute per case)")
    ap.add_argument("--tokens", default="196,784,3136,4096,8100,16384,32761")
    ap.add_argument("--width", type=int, default=384)
    args = ap.parse_args()
    if args.width < 64 or args.width % 64:
        ap.error(f"--width {args.width}: attention heads are 64 wide, so the width must be a multiple of 64")
    out_dir = os.environ.get("OUT", "/tmp")
    log = open(os.path.join(out_dir, "pytorch_ref.jsonl"), "a")

    def record(**kw):
        log.write(json.dumps(kw) + "\n")
        log.flush()

    if not torch.cuda.is_available():
        sys.exit("pytorch_ref.py: no CUDA device visible to PyTorch")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = "cuda"
    print(f"## PyTorch {torch.__version__}, {torch.cuda.get_device_name(0)}, cuDNN {torch.backends.cudnn.version()}, "
          "float32, TF32 off\n")

    import timm
    print("| model | batch | eager ms | torch.compile reduce-overhead ms |\n|---|---|---|---|")
    with torch.no_grad():
        for name in ["mambaout_femto", "mambaout_tiny"]:
            model = timm.create_model(name, pretrained=False).to(dev).eval()
            for batch in [1, 64]:
                x = torch.randn(batch, 3, 224, 224, device=dev)
                eager = median_ms(lambda: model(x), 10, 30)
                record(what="model", model=name, batch=batch, impl="eager", ms=eager)
                comp = None
                if not args.no_compile and name == "mambaout_tiny":
                    try:
                        cm = torch.compile(model, mode="reduce-overhead")
                        comp = median_ms(lambda: cm(x), 10, 30)
                        record(what="model", model=name, batch=batch, impl="compile_reduce_overhead", ms=comp)
                    except Exception as e:  # a failed compile is reported, not fatal
                        print(f"(torch.compile failed for {name} batch {batch}: {str(e)[:200]})", file=sys.stderr)
                print(f"| {name} | {batch} | {eager:.3f} | {'–' if comp is None else f'{comp:.3f}'} |", flush=True)
            del model
            torch.cuda.empty_cache()

    D = args.width
    heads = D // 64
    print(f"\nToken mixers alone, batch 1, width {D} (dwconv: cuDNN depthwise 7x7, channels_last, with bias; "
          f"attention: scaled_dot_product_attention, {heads} heads of 64)\n")
    print("| L | dwconv 7x7 ms | SDPA ms | SDPA causal ms |\n|---|---|---|---|")
    with torch.no_grad():
        for L in [int(t) for t in args.tokens.split(",")]:
            side = int(L ** 0.5)
            h, w = (side, side) if side * side == L else (1, L)
            x = torch.randn(1, D, h, w, device=dev).to(memory_format=torch.channels_last)
            wt = torch.randn(D, 1, 7, 7, device=dev)
            bias = torch.randn(D, device=dev)
            dw = median_ms(lambda: F.conv2d(x, wt, bias, padding=3, groups=D), 5, 30)
            q = torch.randn(1, heads, L, 64, device=dev)
            k = torch.randn_like(q)
            v = torch.randn_like(q)
            iters = 15 if L <= 8192 else 5
            sd = median_ms(lambda: F.scaled_dot_product_attention(q, k, v), 3, iters)
            sdc = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), 3, iters)
            for impl, ms in [("dwconv7x7_cudnn", dw), ("sdpa", sd), ("sdpa_causal", sdc)]:
                record(what="mixer", impl=impl, L=L, D=D, ms=ms)
            print(f"| {L} | {dw:.4f} | {sd:.4f} | {sdc:.4f} |", flush=True)
            del x, q, k, v
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
