#!/usr/bin/env python3
"""Rewrite the initialisation of a seq checkpoint, for the initialisation pilots of
results/long_range.md (section 2): plain Python (no numpy, no torch), float32 safetensors in and out.

    scripts/seq_reinit.py IN.safetensors OUT.safetensors PARTS [SEED]

IN is a checkpoint at timm's initialisation (train --steps 1 --lr 1e-12 writes one); PARTS is a
comma-separated list of:
  embed   embed.weight ~ N(0, 1) (nn.Embedding's default)
  linear  every fc1, fc2 and head weight and its bias ~ U(+-1/sqrt(fan_in)) (nn.Linear's default)
  kw      those weights only ~ U(+-1/sqrt(fan_in)), the biases left at 0
  mamba   as kw, and fc2's weight divided by sqrt(2) (Mamba's rescale of the residual output
          projection for 2 layers); the embedding left at trunc_normal(0.02) as Mamba draws it
Everything else (norms, the scan's tensors, x_proj) is copied. SEED (default 1) seeds Python's
random module. Train from OUT with `mixerlab train --init OUT`.
"""
import json, math, random, struct, sys, array

def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    src, dst, parts = sys.argv[1], sys.argv[2], set(sys.argv[3].split(","))
    bad = parts - {"embed", "linear", "kw", "mamba"}
    if bad:
        sys.exit("seq_reinit.py: unknown part(s) %s (want embed, linear, kw, mamba)" % ",".join(sorted(bad)))
    rng = random.Random(int(sys.argv[4]) if len(sys.argv) == 5 else 1)
    raw = open(src, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    tensors = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        if v["dtype"] != "F32":
            sys.exit("seq_reinit.py: %s is %s, want F32" % (k, v["dtype"]))
        a = array.array("f")
        a.frombytes(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
        tensors[k] = a

    def fill(a, bound):
        for i in range(len(a)):
            a[i] = rng.uniform(-bound, bound)

    for k, a in tensors.items():
        shape = head[k]["shape"]
        if "embed" in parts and k == "embed.weight":
            for i in range(len(a)):
                a[i] = rng.gauss(0.0, 1.0)
        linear = k.endswith("fc1.weight") or k.endswith("fc2.weight") or k == "head.weight"
        if linear and parts & {"linear", "kw", "mamba"}:
            bound = 1.0 / math.sqrt(shape[1])
            fill(a, bound)
            if "linear" in parts:
                fill(tensors[k[:-len("weight")] + "bias"], bound)
            if "mamba" in parts and k.endswith("fc2.weight"):
                for i in range(len(a)):
                    a[i] /= math.sqrt(2.0)
    out, hdr, off = bytearray(), {}, 0
    for k, v in head.items():
        if k == "__metadata__":
            hdr[k] = v
            continue
        b = tensors[k].tobytes()
        hdr[k] = {"dtype": "F32", "shape": v["shape"], "data_offsets": [off, off + len(b)]}
        out += b
        off += len(b)
    hj = json.dumps(hdr).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + out)

if __name__ == "__main__":
    main()
