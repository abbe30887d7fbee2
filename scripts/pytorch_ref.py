#!/usr/bin/env python3
"""The PyTorch side of scripts/gpu_check.sh: what a researcher gets from
PyTorch + timm on the same GPU, in the same call as mixerlab's own numbers.

Float32 with TF32 off throughout (as mixerlab's default). Timing as mixerlab
times (harness/cuda_measure.h): a sample is N back-to-back calls between two
CUDA events, N so that a sample spans at least 1 ms (at most 1000), queued
behind a busy kernel (torch.cuda._sleep) that outlasts the host's queueing of
one call; the median of the samples, per call. Prints Markdown rows and appends
one JSON object per measurement to $OUT/pytorch_ref.jsonl, each written as soon
as it is measured (a run stopped by its time limit keeps what it finished).

Parts, run in the order given by gpu_check.sh:
  mixers   cuDNN's depthwise 7x7 conv and scaled_dot_product_attention (full
           and causal) alone, batch 1, for each --tokens
  eager    timm's mambaout_femto and mambaout_tiny at 224^2, batch 1 and 64
  compile  torch.compile(mode="reduce-overhead") of mambaout_tiny, batch 1 then
           64 (about a minute per case, compile time printed)

  python3 scripts/pytorch_ref.py [--part mixers,eager,compile] [--no-compile] [--tokens 196,784,...]
"""
import argparse
import json
import math
import os
import sys
import time

PARTS = ("mixers", "eager", "compile")
SPAN_MS = 1.0
MAX_CALLS = 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", default=",".join(PARTS), help="comma-separated: mixers, eager, compile (default: all)")
    ap.add_argument("--no-compile", action="store_true", help="leave out the compile part")
    ap.add_argument("--tokens", default="196,784,3136,4096,8100,16384,32761")
    ap.add_argument("--width", type=int, default=384)
    args = ap.parse_args()
    parts = [p for p in args.part.split(",") if p]
    bad = [p for p in parts if p not in PARTS]
    if bad or not parts:
        ap.error(f"--part {args.part}: each part is one of {', '.join(PARTS)}")
    if args.no_compile and "compile" in parts:
        parts.remove("compile")
    if args.width < 64 or args.width % 64:
        ap.error(f"--width {args.width}: attention heads are 64 wide, so the width must be a multiple of 64")
    try:
        tokens = [int(t) for t in args.tokens.split(",")]
    except ValueError:
        ap.error(f"--tokens {args.tokens}: a comma-separated list of token counts")

    try:
        import torch
    except ImportError as e:
        sys.exit(f"pytorch_ref.py: PyTorch is not importable here ({e})")
    if not torch.cuda.is_available():
        sys.exit("pytorch_ref.py: no CUDA device visible to PyTorch")
    out_dir = os.environ.get("OUT", "/tmp")
    log = open(os.path.join(out_dir, "pytorch_ref.jsonl"), "a")

    def record(**kw):
        log.write(json.dumps(kw) + "\n")
        log.flush()

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    sleep = getattr(torch.cuda, "_sleep", None)
    print(f"## PyTorch {torch.__version__}, {torch.cuda.get_device_name(0)}, cuDNN {torch.backends.cudnn.version()}, "
          f"float32, TF32 off; parts: {', '.join(parts)}\n")
    print(f"Timing: a sample is N back-to-back calls between two CUDA events (N so that it spans >= {SPAN_MS:g} ms, "
          f"at most {MAX_CALLS}), " + ("queued behind a busy kernel (torch.cuda._sleep); " if sleep else
                                       "no busy kernel (torch.cuda._sleep is missing in this PyTorch); ") +
          "median per call.\n", flush=True)

    def busy(enqueue_s):
        if sleep:  # cycles at 2 GHz: at a lower clock it lasts longer, never shorter
            sleep(int(min(2 * enqueue_s * 1e6 + 20, 5000) * 2000))

    def median_ms(fn, warm, iters):
        """Per-call ms (median of iters samples) and N, the calls per sample."""
        enqueue = 0.0
        for _ in range(max(warm, 1)):
            t0 = time.perf_counter()
            fn()
            enqueue = time.perf_counter() - t0
        torch.cuda.synchronize()
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)

        def sample(calls):
            busy(enqueue)
            a.record()
            for _ in range(calls):
                fn()
            b.record()
            b.synchronize()
            return a.elapsed_time(b) / calls

        one = sample(1)
        calls = min(math.ceil(SPAN_MS / one), MAX_CALLS) if 0 < one < SPAN_MS else 1
        times = sorted(sample(calls) for _ in range(iters))
        return times[len(times) // 2], calls

    import torch.nn.functional as F
    dev = "cuda"
    if "mixers" in parts:
        D = args.width
        heads = D // 64
        print(f"Token mixers alone, batch 1, width {D} (dwconv: cuDNN depthwise 7x7, channels_last, with bias; "
              f"attention: scaled_dot_product_attention, {heads} heads of 64)\n")
        print("| L | dwconv 7x7 ms | SDPA ms | SDPA causal ms | calls per sample |\n|---|---|---|---|---|")
        with torch.no_grad():
            for L in tokens:
                side = int(L ** 0.5)
                h, w = (side, side) if side * side == L else (1, L)
                x = torch.randn(1, D, h, w, device=dev).to(memory_format=torch.channels_last)
                wt = torch.randn(D, 1, 7, 7, device=dev)
                bias = torch.randn(D, device=dev)
                dw, ndw = median_ms(lambda: F.conv2d(x, wt, bias, padding=3, groups=D), 5, 30)
                q = torch.randn(1, heads, L, 64, device=dev)
                k = torch.randn_like(q)
                v = torch.randn_like(q)
                iters = 15 if L <= 8192 else 5
                sd, nsd = median_ms(lambda: F.scaled_dot_product_attention(q, k, v), 3, iters)
                sdc, nsdc = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), 3, iters)
                for impl, ms, n in [("dwconv7x7_cudnn", dw, ndw), ("sdpa", sd, nsd), ("sdpa_causal", sdc, nsdc)]:
                    record(what="mixer", impl=impl, L=L, D=D, ms=ms, calls=n)
                print(f"| {L} | {dw:.4f} | {sd:.4f} | {sdc:.4f} | {ndw}, {nsd}, {nsdc} |", flush=True)
                del x, q, k, v
                torch.cuda.empty_cache()
        print()

    if "eager" in parts or "compile" in parts:
        import timm
    if "eager" in parts:
        print("| model | batch | eager ms | calls per sample |\n|---|---|---|---|")
        with torch.no_grad():
            for name in ["mambaout_femto", "mambaout_tiny"]:
                model = timm.create_model(name, pretrained=False).to(dev).eval()
                for batch in [1, 64]:
                    x = torch.randn(batch, 3, 224, 224, device=dev)
                    ms, n = median_ms(lambda: model(x), 10, 30)
                    record(what="model", model=name, batch=batch, impl="eager", ms=ms, calls=n)
                    print(f"| {name} | {batch} | {ms:.3f} | {n} |", flush=True)
                del model
                torch.cuda.empty_cache()
        print()

    if "compile" in parts:
        print("| model | batch | torch.compile reduce-overhead ms | calls per sample | compile + first run s |\n"
              "|---|---|---|---|---|", flush=True)
        name = "mambaout_tiny"
        with torch.no_grad():
            model = timm.create_model(name, pretrained=False).to(dev).eval()
            cm = torch.compile(model, mode="reduce-overhead", dynamic=False)
            for batch in [1, 64]:
                x = torch.randn(batch, 3, 224, 224, device=dev)
                try:
                    t0 = time.perf_counter()
                    cm(x)
                    torch.cuda.synchronize()
                    first = time.perf_counter() - t0
                    ms, n = median_ms(lambda: cm(x), 10, 30)
                except Exception as e:  # a failed compile is reported, not fatal
                    print(f"(torch.compile failed for {name} batch {batch}: {str(e)[:300]})", flush=True)
                    continue
                record(what="model", model=name, batch=batch, impl="compile_reduce_overhead", ms=ms, calls=n,
                       compile_s=round(first, 1))
                print(f"| {name} | {batch} | {ms:.3f} | {n} | {first:.0f} |", flush=True)


if __name__ == "__main__":
    main()
