#!/usr/bin/env python3
"""Golden fixtures for mixerlab's AdamW and learning-rate schedule, from
torch.optim.AdamW (float64) and timm's CosineLRScheduler rule restated.

Three tensors as a model would have them: a weight that decays (2-D), a bias
(1-D: no decay) and an SSM's A_log (2-D, excluded by name), six updates with
random gradients and a different learning rate each step. Developer-only:

    /usr/bin/python3 scripts/make_optim_fixtures.py [--out tests/fixtures/train]
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from safetensors_io import write_safetensors  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/train")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(20261202)
    shapes = {"fc.weight": (7, 5), "fc.bias": (7,), "mixer.A_log": (3, 4)}
    decays = {"fc.weight": True, "fc.bias": False, "mixer.A_log": False}
    # values rounded to float32 first: the C side reads them as float32
    init = {k: rng.uniform(-1, 1, s).astype(np.float32).astype(np.float64) for k, s in shapes.items()}
    steps = 6
    grads = {k: rng.normal(0, 1, (steps,) + s).astype(np.float32).astype(np.float64) for k, s in shapes.items()}
    lrs = np.array([1e-3, 3e-3, 2e-2, 5e-3, 1e-2, 4e-4])
    params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in init.items()}
    wd = 0.05
    opt = torch.optim.AdamW([{"params": [params[k]], "weight_decay": wd if decays[k] else 0.0} for k in shapes],
                            lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    for t in range(steps):
        for g in opt.param_groups:
            g["lr"] = float(lrs[t])
        for k in shapes:
            params[k].grad = torch.tensor(grads[k][t])
        opt.step()
    out = [("lrs", lrs.astype(np.float32))]
    for k in shapes:
        st = opt.state[params[k]]
        out += [(f"init.{k}", init[k].astype(np.float32)), (f"grads.{k}", grads[k].astype(np.float32)),
                (f"final.{k}", params[k].detach().numpy().astype(np.float32)),
                (f"m.{k}", st["exp_avg"].numpy().astype(np.float32)),
                (f"v.{k}", st["exp_avg_sq"].numpy().astype(np.float32))]
    path = os.path.join(args.out, "adamw.safetensors")
    write_safetensors(path, out, {"torch": torch.__version__, "weight_decay": str(wd)})
    print("wrote", path)


if __name__ == "__main__":
    main()
