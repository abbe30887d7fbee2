#!/usr/bin/env python3
"""PyTorch's CPU training step on timm's own MambaOut, timed the way
`mixerlab bench-train` times ours: a random batch and random labels, then
zero_grad, forward, cross-entropy (label smoothing 0.1), backward and
torch.optim.AdamW's step (lr 1e-4, weight decay 0.05 on ndim >= 2, as timm
groups them); one warm-up step, then the median over steps until --min-time.

    PYTHONPATH=/opt/timm /usr/bin/python3 scripts/bench_train_torch.py --model femto --res 224 --batch 8 --threads 2
    /opt/venv-torch/bin/python scripts/bench_train_torch.py --model femto --compile   # current PyPI torch

Prints one JSON object: step_ms_median, step_ms_min, samples, images_per_s, peak_rss_bytes.
"""
import argparse
import json
import resource
import statistics
import time

import torch
import torch.nn.functional as F
from timm.models.mambaout import MambaOut

CONFIGS = {"femto": ((3, 3, 9, 3), (48, 96, 192, 288)), "test": ((1, 1, 2, 1), (16, 24, 32, 48))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=sorted(CONFIGS), default="femto")
    ap.add_argument("--res", type=int, default=224)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--min-time", type=float, default=5.0)
    ap.add_argument("--max-time", type=float, default=60.0)
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the model (inductor); its compilation runs in the warm-up steps")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    depths, dims = CONFIGS[a.model]
    model = MambaOut(depths=depths, dims=dims, num_classes=a.classes).train()
    net = torch.compile(model) if a.compile else model
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4)
    x = torch.randn(a.batch, 3, a.res, a.res)
    y = torch.randint(0, a.classes, (a.batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y, label_smoothing=0.1)
        loss.backward()
        opt.step()

    t_warm = time.perf_counter()
    for _ in range(3 if a.compile else 1):  # warm-up (compilation, with --compile)
        step()
    warm_s = time.perf_counter() - t_warm
    times = []
    t_start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
        spent = time.perf_counter() - t_start
        if (len(times) >= 5 and spent >= a.min_time) or spent >= a.max_time:
            break
    med = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"torch": torch.__version__, "model": a.model, "res": a.res, "batch": a.batch,
                      "threads": a.threads, "compiled": a.compile, "warmup_s": warm_s, "step_ms_median": med, "step_ms_min": min(times),
                      "samples": len(times), "images_per_s": a.batch / (med / 1e3), "peak_rss_bytes": rss}))


if __name__ == "__main__":
    main()
