#!/usr/bin/env python3
"""The CUDA issue's targets as ratios of numbers measured in one gpu_check.sh
run, each beside the result of the CUDA tests of the kernels it measures:
reads the check's log (the steps' output between '==> NAME: ...' and
'<== NAME: exit RC (...)' lines: the CUDA tests, bench-cuda warm and with L2
flushed, the forwards) and the PyTorch JSONL (scripts/pytorch_ref.py), prints
one Markdown table.

A target is 'met' only when its number meets the goal and its kernels' tests
passed on this card: a kernel whose comparison failed shows 'FAILED TEST', one
whose test did not run or finish shows 'untested'. The whole-model targets
need every check of test_cuda_ops and test_cuda_model to pass. Missing numbers
show as 'not measured'.

  python3 scripts/gpu_targets.py LOG [JSONL]     # JSONL: pytorch_ref.jsonl beside LOG
  python3 scripts/gpu_targets.py OUT_DIR         # OUT_DIR/gpu_check.log, OUT_DIR/pytorch_ref.jsonl
"""
import json
import os
import re
import sys

BEGIN = re.compile(r"^==> (\S+): ")
END = re.compile(r"^<== (\S+): exit (\d+)")

# Which CUDA test checks cover each target's kernels (test_cuda_ops names its
# checks by op and mixer; a FAIL line names the check that failed).
KERNEL_CHECKS = {
    "dwconv": re.compile(r"\bdwconv\b"),
    "scan": re.compile(r"\bscan\b|conv1d|\bmixer ssm"),
    "attention": re.compile(r"\battention\b|\bmixer attn"),
}
TEST_PROGRAMS = ("cuda_ops", "cuda_model")


def read_sections(path):
    """{name: {"lines": [...], "rc": int or None}} in the log's order (a
    step cut off before its end line has rc None)."""
    sections, cur = {}, None
    try:
        f = open(path, errors="replace")
    except OSError:
        return sections
    with f:
        for line in f:
            line = line.rstrip("\n")
            m = BEGIN.match(line)
            if m:
                cur = sections.setdefault(m.group(1), {"lines": [], "rc": None})
                continue
            m = END.match(line)
            if m and m.group(1) in sections:
                sections[m.group(1)]["rc"] = int(m.group(2))
                cur = None
                continue
            if cur is not None:
                cur["lines"].append(line)
    return sections


def program_state(sections, name):
    s = sections.get(name)
    if s is None:
        return "not run"
    rc = s["rc"]
    return {None: "did not finish", 0: "passed", 77: "skipped (no GPU)", 124: "timed out",
            137: "timed out"}.get(rc, f"failed (exit {rc})")


def test_results(sections):
    """(per-kernel state, whole-model state, summary lines). A state is
    'passed', 'FAILED' or why the kernel is untested. A kernel passed when
    test_cuda_ops ran to its summary line, printed the kernel's checks and
    none of them failed (in the run or its debug rerun)."""
    fails = []
    for name, s in sections.items():
        if name.split("_debug")[0] in TEST_PROGRAMS:
            fails += [l for l in s["lines"] if l.startswith("FAIL ") and l not in fails]
    ops = program_state(sections, "cuda_ops")
    model = program_state(sections, "cuda_model")
    ops_lines = sections.get("cuda_ops", {"lines": []})["lines"]
    ops_finished = any(l.startswith("test_cuda_ops: ") and ("checks passed" in l or "failed" in l) for l in ops_lines)
    kernels = {}
    for k, pat in KERNEL_CHECKS.items():
        if any(pat.search(l) for l in fails):
            kernels[k] = "FAILED"
        elif ops_finished and any(pat.search(l) and "rel err" in l for l in ops_lines):
            kernels[k] = "passed"
        else:
            kernels[k] = ops if ops != "passed" else "not checked"
    whole = "FAILED" if fails or "failed" in (ops + model) else ops if ops != "passed" else model
    summary = [f"test_cuda_ops: {ops}; test_cuda_model: {model}; {len(fails)} failed check(s)"]
    summary += [f"  {l}" for l in fails[:20]]
    return kernels, whole, summary


def table_rows(section):
    for line in section["lines"] if section else []:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 11 and cells[0].isdigit():
            yield cells


def main():
    if len(sys.argv) not in (2, 3) or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0 if len(sys.argv) == 2 else 2)
    log = sys.argv[1]
    if os.path.isdir(log):
        log = os.path.join(log, "gpu_check.log")
    jsonl = sys.argv[2] if len(sys.argv) == 3 else os.path.join(os.path.dirname(log) or ".", "pytorch_ref.jsonl")
    sections = read_sections(log)
    kernels, whole, summary = test_results(sections)

    mix = {}  # L -> dict, from bench-cuda with a warm L2
    for cells in table_rows(sections.get("bench_cuda")):
        try:
            mix[int(cells[0])] = {"dw": float(cells[2]), "scan_x_floor": float(cells[6].rstrip("x")),
                                  "attn": float(cells[7]), "attn_causal": float(cells[9])}
        except ValueError:
            pass
    cold = {}  # L -> dwconv share of copy with the L2 flushed
    for cells in table_rows(sections.get("bench_cuda_cold")):
        try:
            cold[int(cells[0])] = float(cells[3].split("(")[1].rstrip("%)"))
        except (ValueError, IndexError):
            pass
    fwd = {}  # (model, batch, mode) -> median ms
    for name, s in sections.items():
        m = re.match(r"forward_(\w+?)_b(\d+)_(launched|graph)$", name)
        if not m or s["rc"] != 0:
            continue
        for line in s["lines"]:
            t = re.search(r"^forward time .*median ([0-9.]+) ms", line)
            if t:
                fwd[(m.group(1), int(m.group(2)), m.group(3))] = float(t.group(1))
    torch = {}
    try:
        for line in open(jsonl):
            try:
                r = json.loads(line)
                if r["what"] == "model":
                    torch[(r["model"], r["batch"], r["impl"])] = r["ms"]
                else:
                    torch[(r["impl"], r["L"])] = r["ms"]
            except (ValueError, KeyError):
                pass
    except OSError:
        pass

    rows = []

    def met(ratio_ok, test):
        if test == "FAILED":
            return "FAILED TEST"
        if test != "passed":
            return "untested"
        return "yes" if ratio_ok else "no"

    def add(what, ours, ref, goal, ok, test):
        shown = "FAILED" if test == "FAILED" else test
        if ours is None or ref is None:
            rows.append((what, "not measured" if ours is None else f"{ours:.4g}",
                         "not measured" if ref is None else f"{ref:.4g}", "–", goal, shown,
                         "FAILED TEST" if test == "FAILED" else "–"))
        else:
            rows.append((what, f"{ours:.4g}", f"{ref:.4g}", f"{ours / ref:.3g}", goal, shown,
                         met(ok(ours / ref), test)))

    for b, goal in [(1, 0.5), (64, 0.75)]:
        times = [fwd[k] for k in [("mambaout_tiny", b, "launched"), ("mambaout_tiny", b, "graph")] if k in fwd]
        ours = min(times) if times else None
        ref = torch.get(("mambaout_tiny", b, "compile_reduce_overhead"))
        add(f"mambaout_tiny 224², batch {b}: ms, ours (best of launched/graph) / torch.compile", ours, ref,
            f"≤ {goal}", lambda r, g=goal: r <= g, whole)
        eager = torch.get(("mambaout_tiny", b, "eager"))
        add(f"mambaout_tiny 224², batch {b}: ms, ours / PyTorch eager (for reference)", ours, eager, "–",
            lambda r: True, whole)
    for L in sorted(mix):
        if L >= 16384:
            add(f"dwconv 7x7, L = {L}: ms, ours / cuDNN", mix[L]["dw"], torch.get(("dwconv7x7_cudnn", L)), "≤ 0.25",
                lambda r: r <= 0.25, kernels["dwconv"])
            if L in cold:
                add(f"dwconv 7x7, L = {L}: share of copy bandwidth, L2 flushed", cold[L] / 100, 1.0, "≥ 0.5",
                    lambda r: r >= 0.5, kernels["dwconv"])
        if L >= 4096:
            add(f"attention, L = {L}: ms, ours / SDPA", mix[L]["attn"], torch.get(("sdpa", L)), "≤ 1",
                lambda r: r <= 1, kernels["attention"])
            add(f"causal attention, L = {L}: ms, ours / SDPA causal", mix[L]["attn_causal"],
                torch.get(("sdpa_causal", L)), "≤ 1", lambda r: r <= 1, kernels["attention"])
            add(f"selective scan, L = {L}: time / bandwidth floor", mix[L]["scan_x_floor"], 1.0, "≤ 2.5",
                lambda r: r <= 2.5, kernels["scan"])
    if not mix:
        for what, k in [("dwconv 7x7 (bench-cuda)", "dwconv"), ("attention (bench-cuda)", "attention"),
                        ("selective scan (bench-cuda)", "scan")]:
            add(what, None, None, "see the issue", lambda r: False, kernels[k])
    print("CUDA tests: " + "\n".join(summary) + "\n")
    print("| target | mixerlab | reference | ratio | goal | kernel test | met |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
