#!/usr/bin/env python3
"""scripts/gpu_targets.py on made-up gpu_check.sh logs: a target whose number
meets its goal shows 'yes' only when its kernels' CUDA tests passed; a failed
comparison shows 'FAILED TEST', a test that did not run 'untested'.

  python3 tests/test_gpu_targets.py scripts/gpu_targets.py
"""
import json
import os
import subprocess
import sys
import tempfile

failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print(f"FAIL {what}", file=sys.stderr)


OPS_PASS = """device: H200 (made up)
  dwconv B1 31x29 C48 K7             rel err 1.2e-07
  scan core order 0 reverse 0 acc 0  rel err 3e-07
  attention HS 64 L 75               rel err 2e-07
  mixer dwconv B1 9x31 E64           rel err 1e-07
test_cuda_ops: all checks passed"""
OPS_DWCONV_FAILS = OPS_PASS.replace("test_cuda_ops: all checks passed", """FAIL tests/test_cuda_ops.c:57: dwconv B1 31x29 C48 K7 cuda vs cpu: 0.31
test_cuda_ops: 1 check(s) failed""")
# bench-cuda's mixer rows: L, grid, dwconv ms, rate, scan ms, floor ms, scan/floor, attn ms, rate, causal ms, rate
BENCH = """| L | grid | dwconv 7x7 ms | dwconv rate | scan ms | scan floor ms | scan / floor | attn ms | attn rate | causal ms | causal rate |
|---|---|---|---|---|---|---|---|---|---|---|
| 4096 | 64x64 | 0.0100 | 1260 GB/s (42%) | 0.0150 | 0.0065 | 2.3x | 0.700 | 36.8 TFLOP/s (71%) | 0.400 | 32.2 TFLOP/s |
| 16384 | 128x128 | 0.0300 | 1680 GB/s (57%) | 0.0600 | 0.0260 | 3.1x | 11.000 | 37.5 TFLOP/s (72%) | 5.000 | 41.2 TFLOP/s |"""
COLD = BENCH.replace("1680 GB/s (57%)", "1500 GB/s (51%)")


def log_text(ops, ops_rc, model_rc=0, forward_rc=0):
    parts = [("cuda_ops", ops, ops_rc), ("cuda_model", "test_cuda_model: all checks passed", model_rc),
             ("bench_cuda", BENCH, 0), ("bench_cuda_cold", COLD, 0)]
    for b, ms in [(1, 0.6), (64, 12.0)]:
        for mode in ["launched", "graph"]:
            parts.append((f"forward_mambaout_tiny_b{b}_{mode}",
                          f"forward time (CUDA events, float32): median {ms:.3f} ms, min {ms:.3f} ms over 50 samples",
                          forward_rc))
    return "".join(f"==> {n}: cmd (timeout 45 s, at 0 s)\n{body}\n<== {n}: exit {rc} (x) after 1 s\n"
                   for n, body, rc in parts)


def run(script, log, records):
    d = tempfile.mkdtemp()
    with open(os.path.join(d, "gpu_check.log"), "w") as f:
        f.write(log)
    with open(os.path.join(d, "pytorch_ref.jsonl"), "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    out = subprocess.run([sys.executable, script, d], capture_output=True, text=True)
    check(out.returncode == 0, f"gpu_targets.py exit {out.returncode}: {out.stderr}")
    rows = {}
    for line in out.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0] not in ("target",) and not cells[0].startswith("---"):
            rows[cells[0]] = cells
    return rows, out.stdout


def main():
    script = sys.argv[1]
    torch = [{"what": "mixer", "impl": "dwconv7x7_cudnn", "L": 16384, "ms": 0.2},
             {"what": "mixer", "impl": "sdpa", "L": 16384, "ms": 12.0},
             {"what": "mixer", "impl": "sdpa_causal", "L": 16384, "ms": 6.0},
             {"what": "model", "model": "mambaout_tiny", "batch": 1, "impl": "compile_reduce_overhead", "ms": 1.0},
             {"what": "model", "model": "mambaout_tiny", "batch": 64, "impl": "compile_reduce_overhead", "ms": 20.0}]
    dw = "dwconv 7x7, L = 16384: ms, ours / cuDNN"
    dw_cold = "dwconv 7x7, L = 16384: share of copy bandwidth, L2 flushed"
    attn = "attention, L = 16384: ms, ours / SDPA"
    scan = "selective scan, L = 4096: time / bandwidth floor"
    tiny1 = "mambaout_tiny 224², batch 1: ms, ours (best of launched/graph) / torch.compile"

    rows, text = run(script, log_text(OPS_PASS, 0), torch)
    check(rows.get(dw, [""] * 7)[6] == "yes" and rows[dw][5] == "passed", f"all passed, dwconv met: {rows.get(dw)}")
    check(rows.get(dw_cold, [""] * 7)[6] == "yes", f"cold dwconv 51% of copy met: {rows.get(dw_cold)}")
    check(rows.get(attn, [""] * 7)[6] == "yes", f"attention met: {rows.get(attn)}")
    check(rows.get(scan, [""] * 7)[6] == "yes", f"scan at 2.3x met: {rows.get(scan)}")
    check(rows.get("selective scan, L = 16384: time / bandwidth floor", [""] * 7)[6] == "no", "scan at 3.1x missed")
    check(rows.get(tiny1, [""] * 7)[6] == "no", f"tiny b1 0.6 ms vs 1.0 (goal 0.5) missed: {rows.get(tiny1)}")

    rows, text = run(script, log_text(OPS_DWCONV_FAILS, 1), torch)
    check(rows.get(dw, [""] * 7)[6] == "FAILED TEST", f"failed dwconv test never shows met: {rows.get(dw)}")
    check(rows.get(dw_cold, [""] * 7)[6] == "FAILED TEST", f"failed dwconv test, cold row: {rows.get(dw_cold)}")
    check(rows.get(attn, [""] * 7)[6] == "yes", f"attention's own checks passed: {rows.get(attn)}")
    check(rows.get(tiny1, [""] * 7)[6] == "FAILED TEST", f"a failed check fails the whole model: {rows.get(tiny1)}")
    check("yes" not in rows.get(dw, []), "no 'yes' beside a failed test")

    rows, text = run(script, log_text("test_cuda_ops: skipped: no CUDA device", 77, 77), torch)
    check(rows.get(dw, [""] * 7)[6] == "untested", f"skipped tests: untested: {rows.get(dw)}")
    check(rows.get(tiny1, [""] * 7)[6] == "untested", f"skipped tests, model: {rows.get(tiny1)}")

    rows, text = run(script, log_text(OPS_PASS, 0, forward_rc=124), torch)
    check(rows.get(tiny1, [""] * 7)[1] == "not measured", f"a timed-out forward is not measured: {rows.get(tiny1)}")

    rows, text = run(script, "", [])
    check("not measured" in text, "an empty log: everything not measured")
    if failures:
        print(f"test_gpu_targets: {failures} check(s) failed", file=sys.stderr)
        sys.exit(1)
    print("test_gpu_targets: all checks passed")


if __name__ == "__main__":
    main()
