#!/usr/bin/env python3
"""The CUDA issue's targets as ratios of numbers measured in one gpu_check.sh
run: reads $OUT/forward.tsv (mixerlab forward), $OUT/bench_cuda.md and
$OUT/bench_cuda_cold.md (mixerlab bench-cuda, warm and with L2 flushed) and $OUT/pytorch_ref.jsonl (scripts/pytorch_ref.py), prints one
Markdown table. Missing inputs show as 'not measured'.

  python3 scripts/gpu_targets.py OUT_DIR
"""
import json
import os
import sys


def main():
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0 if len(sys.argv) == 2 else 2)
    out = sys.argv[1]
    fwd = {}
    try:
        for line in open(os.path.join(out, "forward.tsv")):
            model, batch, mode, ms = line.rstrip("\n").split("\t")
            if ms != "NA":
                fwd[(model, int(batch), mode)] = float(ms)
    except OSError:
        pass
    mix = {}  # L -> dict
    try:
        for line in open(os.path.join(out, "bench_cuda.md")):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 11 and cells[0].isdigit():
                mix[int(cells[0])] = {"dw": float(cells[2]), "scan_x_floor": float(cells[6].rstrip("x")),
                                      "attn": float(cells[7]), "attn_causal": float(cells[9])}
    except (OSError, ValueError):
        pass
    cold = {}  # L -> dwconv share of copy with a cold L2
    try:
        for line in open(os.path.join(out, "bench_cuda_cold.md")):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 11 and cells[0].isdigit() and "(" in cells[3]:
                cold[int(cells[0])] = float(cells[3].split("(")[1].rstrip("%)"))
    except (OSError, ValueError):
        pass
    torch = {}
    try:
        for line in open(os.path.join(out, "pytorch_ref.jsonl")):
            r = json.loads(line)
            if r["what"] == "model":
                torch[(r["model"], r["batch"], r["impl"])] = r["ms"]
            else:
                torch[(r["impl"], r["L"])] = r["ms"]
    except OSError:
        pass

    rows = []

    def add(what, ours, ref, goal, ok):
        if ours is None or ref is None:
            rows.append((what, "not measured" if ours is None else f"{ours:.4g}",
                         "not measured" if ref is None else f"{ref:.4g}", "–", goal, "–"))
        else:
            rows.append((what, f"{ours:.4g}", f"{ref:.4g}", f"{ours / ref:.3g}", goal, "yes" if ok(ours / ref) else "no"))

    for b, goal in [(1, 0.5), (64, 0.75)]:
        times = [fwd[k] for k in [("mambaout_tiny", b, "launched"), ("mambaout_tiny", b, "graph")] if k in fwd]
        ours = min(times) if times else None
        ref = torch.get(("mambaout_tiny", b, "compile_reduce_overhead"))
        add(f"mambaout_tiny 224², batch {b}: ms, ours (best of launched/graph) / torch.compile", ours, ref,
            f"≤ {goal}", lambda r, g=goal: r <= g)
        eager = torch.get(("mambaout_tiny", b, "eager"))
        add(f"mambaout_tiny 224², batch {b}: ms, ours / PyTorch eager (for reference)", ours, eager, "–",
            lambda r: True)
    for L in sorted(mix):
        if L >= 16384:
            ref = torch.get(("dwconv7x7_cudnn", L))
            ours = mix[L]["dw"]
            add(f"dwconv 7x7, L = {L}: ms, ours / cuDNN", ours, ref, "≤ 0.25", lambda r: r <= 0.25)
            if L in cold:
                rows.append((f"dwconv 7x7, L = {L}: % of copy bandwidth, L2 flushed", f"{cold[L]:.0f}%", "100%",
                             f"{cold[L] / 100:.2f}", "≥ 0.5", "yes" if cold[L] >= 50 else "no"))
        if L >= 4096:
            add(f"attention, L = {L}: ms, ours / SDPA", mix[L]["attn"], torch.get(("sdpa", L)), "≤ 1", lambda r: r <= 1)
            add(f"causal attention, L = {L}: ms, ours / SDPA causal", mix[L]["attn_causal"],
                torch.get(("sdpa_causal", L)), "≤ 1", lambda r: r <= 1)
            r = mix[L]["scan_x_floor"]
            rows.append((f"selective scan, L = {L}: time / bandwidth floor", f"{r:.3g}", "1", f"{r:.3g}", "≤ 2.5",
                         "yes" if r <= 2.5 else "no"))
    print("| target | mixerlab | reference | ratio | goal | met |\n|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
