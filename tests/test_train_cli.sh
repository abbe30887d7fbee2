#!/usr/bin/env bash
# mixerlab train end to end on Fashion-MNIST (a few hundred images): a run
# stopped by SIGTERM, SIGINT or kill -9 and resumed ends with weights
# bit-identical to an uninterrupted run; eval reads the checkpoint and gets the
# accuracy train reported; every bad input gets its documented exit code.
#   usage: test_train_cli.sh path/to/mixerlab
set -u
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
if [ ! -s /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    echo "SKIP: Debian's dataset-fashion-mnist is not installed (scripts/setup.sh installs it)"
    exit 77
fi
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2
base=(train --model mambaout_test --data fashion-mnist --limit 1280 --batch 32 --epochs 3 --eval-limit 200
      --drop-path 0.1 --seed 3 --quiet)

# the uninterrupted run
"$bin" "${base[@]}" --out "$tmp/a.safetensors" --json >"$tmp/a.json" 2>"$tmp/a.err" || fail "plain run: $(cat "$tmp/a.err")"
grep -q '"epochs":	3' "$tmp/a.json" || fail "plain run did not do 3 epochs: $(cat "$tmp/a.json")"

# stopped by a signal at some step, then resumed: the same bytes
stop_and_resume() { # name signal exit-code [the uninterrupted run's weights]
    local name=$1 sig=$2 want=$3 ref=${4:-$tmp/a.safetensors} rc
    "$bin" "${base[@]}" --out "$tmp/$name.safetensors" >/dev/null 2>"$tmp/$name.err" &
    local pid=$!
    # the signal once a first checkpoint is there (after epoch 1, or sooner with frequent ones), so that
    # the run is always stopped in the middle and resumed from a state
    for _ in $(seq 1 300); do
        [ -s "$tmp/$name.safetensors.state" ] && break
        sleep 0.02
    done
    [ "$sig" = KILL ] && sleep 0.05 # a little past the first checkpoint (after epoch 1 of 3), well before the end
    kill -s "$sig" "$pid" 2>/dev/null
    wait "$pid"
    rc=$?
    if [ "$rc" -eq 0 ]; then
        fail "$sig: the run finished before the signal (make it longer)"
    elif [ "$rc" -ne "$want" ]; then
        fail "$sig: exit $rc, want $want: $(cat "$tmp/$name.err")"
    elif [ "$sig" != KILL ] && ! grep -q "rerun the same command with --resume" "$tmp/$name.err"; then
        fail "$sig: no resume hint: $(cat "$tmp/$name.err")"
    fi
    [ -s "$tmp/$name.safetensors.state" ] || fail "$sig: no checkpoint to resume from"
    "$bin" "${base[@]}" --out "$tmp/$name.safetensors" --resume >/dev/null 2>"$tmp/$name.err" ||
        fail "$sig: --resume failed: $(cat "$tmp/$name.err")"
    cmp -s "$ref" "$tmp/$name.safetensors" || fail "$sig: resumed weights differ from the uninterrupted run's"
}
stop_and_resume term TERM 143
stop_and_resume int INT 130
base+=(--checkpoint-minutes 0.005)  # every 0.3 s: kill -9 finds a recent checkpoint
"$bin" "${base[@]}" --out "$tmp/a2.safetensors" 2>/dev/null >/dev/null || fail "run with frequent checkpoints"
cmp -s "$tmp/a2.safetensors" "$tmp/a.safetensors" || fail "checkpointing every 0.3 s changed the weights"
stop_and_resume kill KILL 137

# progressive resizing: epoch 1 at 32x32, epochs 2-3 at 40x40, every evaluation at 40x40; killed after
# a checkpoint and resumed: the same bytes; eval at 40 agrees with train's last evaluation
plain=("${base[@]}")
base+=(--res 40 --res-start 32 --res-ramp 1)
"$bin" "${base[@]}" --out "$tmp/p.safetensors" --json >"$tmp/p.json" 2>"$tmp/p.err" || fail "progressive resizing: $(cat "$tmp/p.err")"
"$bin" "${plain[@]}" --res 40 --out "$tmp/p40.safetensors" >/dev/null 2>&1 || fail "the run at 40x40 throughout"
cmp -s "$tmp/p.safetensors" "$tmp/p40.safetensors" && fail "--res-start 32 trained the same weights as 40x40 throughout"
# the ends of the schedule against plain runs: ramp 0 is 40x40 throughout; ramp 3 (of 3 epochs) trains every
# epoch at 32x32 and only evaluates at 40, so its weights are the plain 32x32 run's, bit for bit
"$bin" "${plain[@]}" --res 40 --res-start 32 --res-ramp 0 --out "$tmp/p0.safetensors" >/dev/null 2>&1 &&
    cmp -s "$tmp/p0.safetensors" "$tmp/p40.safetensors" || fail "--res-ramp 0 is not the run at 40x40 throughout"
"$bin" "${plain[@]}" --res 32 --out "$tmp/p32.safetensors" >/dev/null 2>&1 || fail "the run at 32x32 throughout"
"$bin" "${plain[@]}" --res 40 --res-start 32 --res-ramp 3 --out "$tmp/p3.safetensors" >/dev/null 2>&1 &&
    cmp -s "$tmp/p3.safetensors" "$tmp/p32.safetensors" || fail "--res-ramp 3 of 3 epochs did not train at 32x32"
stop_and_resume pkill KILL 137 "$tmp/p.safetensors"
"$bin" eval --model mambaout_test --weights "$tmp/p.safetensors" --data fashion-mnist --res 40 --limit 200 --batch 32 \
    --json >"$tmp/pe.json" || fail "eval of the progressive-resizing checkpoint"
t1=$(sed -n 's/.*"top1":	\([0-9.e-]*\).*/\1/p' "$tmp/p.json")
e1=$(sed -n 's/.*"top1":	\([0-9.e-]*\).*/\1/p' "$tmp/pe.json")
[ -n "$t1" ] && [ "$t1" = "$e1" ] || fail "progressive resizing: eval top-1 at 40 '$e1' is not train's '$t1'"
"$bin" train --model mambaout_test --data fashion-mnist --limit 320 --batch 32 --epochs 2 --eval-limit 64 --res 40 \
    --res-start 32 --res-ramp 1 --out "$tmp/pm.safetensors" >/dev/null 2>"$tmp/pm.err" &&
    grep -q "epochs 1-1 at 32x32, from epoch 2 at 40x40" "$tmp/pm.err" && grep -q "epoch 2 on: training at 40x40 (was 32x32)" "$tmp/pm.err" ||
    fail "progressive resizing: the schedule and the switch are not reported: $(cat "$tmp/pm.err")"
base=("${plain[@]}")

# random erasing: 0 is the plain run, bit for bit; 0.5 trains other weights; killed after a checkpoint and
# resumed, the same bytes as its uninterrupted run; a resume that changes it is refused, naming it
"$bin" "${base[@]}" --random-erase 0 --out "$tmp/r0.safetensors" >/dev/null 2>&1 &&
    cmp -s "$tmp/r0.safetensors" "$tmp/a.safetensors" || fail "--random-erase 0 is not the plain run"
base+=(--random-erase 0.5)
"$bin" "${base[@]}" --out "$tmp/r.safetensors" >/dev/null 2>"$tmp/r.err" || fail "random erasing: $(cat "$tmp/r.err")"
cmp -s "$tmp/r.safetensors" "$tmp/a.safetensors" && fail "--random-erase 0.5 trained the plain run's weights"
stop_and_resume rkill KILL 137 "$tmp/r.safetensors"
base=("${plain[@]}")

# data parallel (2 threads, so 2 parts of each batch): its own bits, the same twice; trains as well as the
# plain step (the last evaluation within 5 points of it on 200 images); killed after a checkpoint and resumed,
# its uninterrupted run's bytes; a resume across the switch is refused, naming it
base+=(--data-parallel)
"$bin" "${base[@]}" --out "$tmp/dp.safetensors" --json >"$tmp/dp.json" 2>"$tmp/dp.err" || fail "data parallel: $(cat "$tmp/dp.err")"
"$bin" "${base[@]}" --out "$tmp/dp2.safetensors" >/dev/null 2>&1 &&
    cmp -s "$tmp/dp.safetensors" "$tmp/dp2.safetensors" || fail "two --data-parallel runs differ"
cmp -s "$tmp/dp.safetensors" "$tmp/a.safetensors" && fail "--data-parallel gave the plain step's bits (was it on?)"
python3 - "$tmp/a.json" "$tmp/dp.json" <<'PYEOF' || fail "data parallel trains worse than the plain step"
import json, sys
a, d = (json.loads(open(p).read()) for p in sys.argv[1:3])
sys.exit(0 if abs(a["top1"] - d["top1"]) <= 0.05 and abs(a["loss"] - d["loss"]) <= 0.1 else 1)
PYEOF
stop_and_resume dpkill KILL 137 "$tmp/dp.safetensors"
base=("${plain[@]}")

# eval reads the checkpoint and agrees with train's last evaluation
"$bin" eval --model mambaout_test --weights "$tmp/a.safetensors" --data fashion-mnist --limit 200 --batch 32 --json \
    >"$tmp/e.json" || fail "eval of the checkpoint"
t1=$(sed -n 's/.*"top1":	\([0-9.e-]*\).*/\1/p' "$tmp/a.json")
e1=$(sed -n 's/.*"top1":	\([0-9.e-]*\).*/\1/p' "$tmp/e.json")
[ -n "$t1" ] && [ "$t1" = "$e1" ] || fail "eval top-1 '$e1' is not train's '$t1'"

expect() { # code needle args...
    local code=$1 needle=$2 rc
    shift 2
    "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ "$rc" -ne "$code" ] || ! grep -qF -- "$needle" "$tmp/err"; then
        fail "mixerlab $* -> exit $rc (want $code, '$needle'): $(head -3 "$tmp/err")"
    elif [ "$(grep -c 'error:' "$tmp/err")" -ne 1 ]; then
        fail "mixerlab $*: not one error line: $(cat "$tmp/err")"
    fi
}
# a state whose curve is damaged (not numbers, out of range): resumed without undefined conversions
cp "$tmp/a.safetensors.state" "$tmp/d.safetensors.state"
python3 - "$tmp/d.safetensors.state" <<'PYEOF'
import json, struct, sys
p = sys.argv[1]
b = open(p, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
h["__metadata__"]["log"] = '[{"epoch": 1e300, "step": -5, "lr": "x"}, 7, {"seconds": null}]'
t = json.dumps(h).encode()
t += b" " * ((-len(t)) % 8)
open(p, "wb").write(struct.pack("<Q", len(t)) + t + b[8 + n:])
PYEOF
"$bin" "${base[@]}" --out "$tmp/d.safetensors" --resume >/dev/null 2>"$tmp/err" || fail "resume of a state with a damaged curve: $(cat "$tmp/err")"
expect 2 "--resume: there is no training state" "${base[@]}" --out "$tmp/none.safetensors" --resume
expect 2 "it has 'lr=0.001' where this run has 'lr=0.002'" "${base[@]}" --lr 0.002 --out "$tmp/a.safetensors" --resume
expect 2 "has 'model=mambaout_test' where this run has 'model=mambaout_test:mixer=identity'" train --model mambaout_test:mixer=identity --data fashion-mnist --limit 1280 \
    --batch 32 --epochs 3 --eval-limit 200 --drop-path 0.1 --seed 3 --quiet --out "$tmp/a.safetensors" --resume
head -c 5000 "$tmp/a.safetensors.state" >"$tmp/t.safetensors.state"
expect 4 "t.safetensors.state" "${base[@]}" --out "$tmp/t.safetensors" --resume
expect 4 "unexpected tensor" eval --model mambaout_test --weights "$tmp/a.safetensors.state" --data fashion-mnist --limit 10
expect 4 "missing tensor" eval --model vmamba_test --weights "$tmp/a.safetensors" --data fashion-mnist --limit 10
expect 3 "/nonexistent" train --model mambaout_test --data fashion-mnist:dir=/nonexistent --out "$tmp/x.safetensors"
mkdir "$tmp/fm" && cp /usr/share/datasets/fashion-mnist/* "$tmp/fm/"
head -c 100000 /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz >"$tmp/fm/train-images-idx3-ubyte.gz"
expect 4 "train-images-idx3-ubyte.gz" train --model mambaout_test --data "fashion-mnist:dir=$tmp/fm" --out "$tmp/x.safetensors"
expect 2 "do not make one batch" train --model mambaout_test --data fashion-mnist --limit 10 --batch 32 --out "$tmp/x.safetensors"
expect 2 "has 5 classes but fashion-mnist has 10" train --model mambaout_test:num_classes=5 --data fashion-mnist --out "$tmp/x.safetensors"
expect 2 "has 5 classes but fashion-mnist has 10" eval --model mambaout_test:num_classes=5 --data fashion-mnist --limit 5
expect 2 "has 'random_erase=0.5' where this run has" "${base[@]}" --random-erase 0.25 --out "$tmp/r.safetensors" --resume
expect 2 "where this run has 'data_parallel=2'" "${base[@]}" --data-parallel --out "$tmp/a.safetensors" --resume
expect 2 "--data-parallel needs at least 2 threads" train --model mambaout_test --data fashion-mnist --threads 1 \
    --data-parallel --out "$tmp/x.safetensors"
expect 2 "--data-parallel and --res-start do not go together" train --model mambaout_test --data fashion-mnist \
    --data-parallel --res-start 32 --res-ramp 1 --epochs 2 --out "$tmp/x.safetensors"
expect 2 "--random-erase: '1.5' is not" train --model mambaout_test --data fashion-mnist --random-erase 1.5 --out "$tmp/x.safetensors"
expect 2 "--random-erase is for image datasets; selective-copying is a generated task" train --model seq:mixer=ssm \
    --data selective-copying:seq_len=64,tokens=4 --steps 10 --random-erase 0.5 --out "$tmp/x.safetensors"
expect 2 "--res-start and --res-ramp go together" train --model mambaout_test --data fashion-mnist --res-start 32 --out "$tmp/x.safetensors"
expect 2 "--res-ramp 4,4: want a resolution in 32..4096 and 0 <= A <= B <= the epochs (3)" train --model mambaout_test --data fashion-mnist --epochs 3 --res-start 32 --res-ramp 4 --out "$tmp/x.safetensors"
expect 2 "--res-ramp 2,1: want a resolution" train --model mambaout_test --data fashion-mnist --res-start 32 --res-ramp 2,1 --out "$tmp/x.safetensors"
expect 2 "--res-ramp: 'x' is not an integer" train --model mambaout_test --data fashion-mnist --res-start 32 --res-ramp 1,x --out "$tmp/x.safetensors"
expect 2 "--res-start is for images" train --model seq:mixer=ssm --data selective-copying:seq_len=64,tokens=4 --steps 10 \
    --res-start 32 --res-ramp 1 --out "$tmp/x.safetensors"
expect 2 "--res-start cannot change its resolution" train --model vim_test --data fashion-mnist --limit 64 --batch 32 --epochs 2 \
    --res 48 --res-start 32 --res-ramp 1 --out "$tmp/x.safetensors"
expect 2 "--data and --out are required" train --model mambaout_test --data fashion-mnist
expect 2 "--lr" train --model mambaout_test --data fashion-mnist --out "$tmp/x.safetensors" --lr 0
# a learning rate that blows the loss up: the step is named, the last good checkpoint stays
expect 1 "the loss is" train --model mambaout_test --data fashion-mnist --limit 640 --batch 32 --epochs 3 --lr 1e25 \
    --smoothing 0 --warmup-epochs 0 --quiet --checkpoint-minutes 0.00001 --out "$tmp/nan.safetensors"
bad=$(sed -n 's/.*the loss is [^ ]* at step \([0-9]*\).*/\1/p' "$tmp/err")
[ -s "$tmp/nan.safetensors.state" ] || fail "no checkpoint was kept before the NaN"
if [ -s "$tmp/nan.safetensors.state" ]; then
    kept=$(grep -ao '"step":"[0-9]*"' "$tmp/nan.safetensors.state" | head -1 | tr -dc 0-9)
    [ -n "$bad" ] && [ -n "$kept" ] && [ "$kept" -lt "$bad" ] || fail "NaN at step '$bad' but the kept checkpoint is at step '$kept'"
    "$bin" eval --model mambaout_test --weights "$tmp/nan.safetensors" --data fashion-mnist --limit 10 >/dev/null 2>&1 ||
        fail "the checkpoint kept before the NaN does not load"
fi

[ "$fails" -eq 0 ] && echo "test_train_cli: all checks passed"
[ "$fails" -eq 0 ]
