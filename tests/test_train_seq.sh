#!/usr/bin/env bash
# mixerlab train / eval on the generated long-range tasks (data/tasks.h) with the sequence model:
# --steps on fresh batches, evaluations on the held-out set, a run stopped by SIGTERM and resumed
# ends bit-identical to an uninterrupted one, eval of the checkpoint agrees with train, --init,
# long_range_curriculum.sh and seq_reinit.py, the scan
# learns a small selective-copying task that the local convolution cannot, --eval-seq-len, and
# every bad input gets its one-line error and exit code.
#   usage: test_train_seq.sh path/to/mixerlab
set -u
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2
task=selective-copying:seq_len=32,tokens=4,vocab=8,test=200
base=(train --model seq:mixer=ssm,dim=32 --data "$task" --steps 120 --eval-every 40 --batch 16 --lr 3e-3
      --smoothing 0 --seed 5)
json() { sed -n "s/.*\"$2\":	\([0-9.e-]*\).*/\1/p" "$1" | head -1; }

# the uninterrupted run; three evaluations
"$bin" "${base[@]}" --quiet --out "$tmp/a.safetensors" --json >"$tmp/a.json" 2>"$tmp/a.err" || fail "plain run: $(cat "$tmp/a.err")"
[ "$(json "$tmp/a.json" steps)" = 120 ] || fail "not 120 steps: $(cat "$tmp/a.json")"
[ "$(json "$tmp/a.json" epochs)" = 3 ] || fail "not 3 evaluations: $(cat "$tmp/a.json")"
[ "$(json "$tmp/a.json" images)" = 800 ] || fail "the held-out set is not 200 x 4 answers: $(cat "$tmp/a.json")"

# the same command again: the same bytes (deterministic); progress lines name steps
"$bin" "${base[@]}" --out "$tmp/b.safetensors" >/dev/null 2>"$tmp/b.err" || fail "second run"
cmp -s "$tmp/a.safetensors" "$tmp/b.safetensors" || fail "two runs of one configuration differ"
grep -q "test accuracy" "$tmp/b.err" || fail "no evaluation lines: $(head -5 "$tmp/b.err")"

# stopped by SIGTERM once a checkpoint exists, resumed: the same bytes
"$bin" "${base[@]}" --quiet --checkpoint-minutes 0.002 --out "$tmp/t.safetensors" >/dev/null 2>"$tmp/t.err" &
pid=$!
for _ in $(seq 1 500); do
    [ -s "$tmp/t.safetensors.state" ] && break
    sleep 0.01
done
kill -s TERM "$pid" 2>/dev/null
wait "$pid"
rc=$?
if [ "$rc" -eq 0 ]; then
    fail "TERM: the run finished before the signal"
elif [ "$rc" -ne 143 ]; then
    fail "TERM: exit $rc: $(cat "$tmp/t.err")"
fi
"$bin" "${base[@]}" --quiet --checkpoint-minutes 0.002 --out "$tmp/t.safetensors" --resume >/dev/null 2>"$tmp/t.err" ||
    fail "--resume: $(cat "$tmp/t.err")"
cmp -s "$tmp/a.safetensors" "$tmp/t.safetensors" || fail "resumed weights differ from the uninterrupted run's"

# eval of the checkpoint gives train's last evaluation
"$bin" eval --model seq:mixer=ssm,dim=32 --weights "$tmp/a.safetensors" --data "$task" --batch 16 --json \
    >"$tmp/e.json" 2>"$tmp/e.err" || fail "eval: $(cat "$tmp/e.err")"
t1=$(json "$tmp/a.json" top1)
e1=$(json "$tmp/e.json" top1)
[ -n "$t1" ] && [ "$t1" = "$e1" ] || fail "eval top-1 '$e1' is not train's '$t1'"

# --init: training starts from another run's weights (a curriculum's next length starts so). With a
# vanishing learning rate the first evaluation is the checkpoint's own (eval's loss, to the bit);
# from timm's initialisation it is not
tiny=(--steps 1 --eval-every 1 --batch 16 --lr 1e-12 --min-lr 0 --warmup-lr 0 --warmup-steps 0 --weight-decay 0
      --smoothing 0 --quiet --json)
"$bin" train --model seq:mixer=ssm,dim=32 --data "$task" "${tiny[@]}" --init "$tmp/a.safetensors" \
    --out "$tmp/n.safetensors" >"$tmp/n.json" 2>"$tmp/n.err" || fail "--init: $(cat "$tmp/n.err")"
"$bin" train --model seq:mixer=ssm,dim=32 --data "$task" "${tiny[@]}" --out "$tmp/f.safetensors" >"$tmp/f.json" \
    2>"$tmp/f.err" || fail "fresh tiny run: $(cat "$tmp/f.err")"
el=$(json "$tmp/e.json" loss)
nl=$(json "$tmp/n.json" loss)
fl=$(json "$tmp/f.json" loss)
[ -n "$el" ] && [ "$nl" = "$el" ] || fail "--init: first loss '$nl' is not the checkpoint's '$el'"
[ "$fl" != "$el" ] || fail "without --init the first loss '$fl' is the checkpoint's too"
grep -q '"blas":.*threads)"' "$tmp/n.json" || fail "--json does not name the BLAS kernel: $(cat "$tmp/n.json")"

# scripts/long_range_curriculum.sh: two stages, the second from the first's weights and with its own
# learning rate (L:STEPS:M:LR), both clipped; bad stages refused
cur="$(dirname "$0")/../scripts/long_range_curriculum.sh"
bash "$cur" --bin "$bin" --stages 16:20,24:10:3:1e-3 --tokens 3 --clip-grad 1 "$tmp/cur" >"$tmp/cur.out" 2>"$tmp/cur.err" ||
    fail "curriculum: $(cat "$tmp/cur.err")"
grep -q '^16 *3 *20 *2e-3 ' "$tmp/cur.out" && grep -q '^24 *3 *10 *1e-3 ' "$tmp/cur.out" && grep -q '^total training' "$tmp/cur.out" &&
    [ -s "$tmp/cur/stage_2_24_3.safetensors" ] || fail "curriculum output: $(cat "$tmp/cur.out")"
# stage 2 is train --init stage 1 with the script's recipe, to the bit (and not a fresh start)
st2=(train --model seq:head_size=16,mixer=ssm --data selective-copying:seq_len=24,tokens=3,vocab=16,test=500
     --steps 10 --eval-every 1 --batch 16 --lr 1e-3 --clip-grad 1 --weight-decay 0.1 --smoothing 0 --seed 0 --threads 2
     --quiet)
"$bin" "${st2[@]}" --init "$tmp/cur/stage_1_16_3.safetensors" --out "$tmp/st2.safetensors" 2>"$tmp/st2.err" >/dev/null ||
    fail "stage 2 by hand: $(cat "$tmp/st2.err")"
cmp -s "$tmp/st2.safetensors" "$tmp/cur/stage_2_24_3.safetensors" || fail "curriculum: stage 2 is not train --init stage 1"
"$bin" "${st2[@]}" --out "$tmp/st2f.safetensors" 2>/dev/null >/dev/null
cmp -s "$tmp/st2f.safetensors" "$tmp/cur/stage_2_24_3.safetensors" && fail "curriculum: stage 2 is a fresh start"
# --init W: a curriculum that continues from an earlier one's stage 1 gives that stage 2 again (the
# learning rate given by --lr this time, not by the stage)
bash "$cur" --bin "$bin" --init "$tmp/cur/stage_1_16_3.safetensors" --stages 24:10:3 --lr 1e-3 --clip-grad 1 "$tmp/cur2" \
    >"$tmp/cur2.out" 2>"$tmp/cur2.err" || fail "curriculum --init: $(cat "$tmp/cur2.err")"
cmp -s "$tmp/st2.safetensors" "$tmp/cur2/stage_1_24_3.safetensors" || fail "curriculum --init: not stage 2 of the first"
# --keys K: every stage's model gets K (init=torch: the hand-made run with that model, to the bit,
# and not the timm-initialised one); a bad key is the model's error
bash "$cur" --bin "$bin" --keys init=torch --stages 16:5:3 "$tmp/cur3" >"$tmp/cur3.out" 2>"$tmp/cur3.err" ||
    fail "curriculum --keys: $(cat "$tmp/cur3.err")"
st1=(train --data selective-copying:seq_len=16,tokens=3,vocab=16,test=500 --steps 5 --eval-every 1 --batch 16 --lr 2e-3
     --weight-decay 0.1 --smoothing 0 --seed 0 --threads 2 --quiet)
"$bin" "${st1[@]}" --model seq:head_size=16,mixer=ssm,init=torch --out "$tmp/k.safetensors" >/dev/null 2>&1
cmp -s "$tmp/k.safetensors" "$tmp/cur3/stage_1_16_3.safetensors" || fail "curriculum --keys init=torch: not the init=torch model"
"$bin" "${st1[@]}" --model seq:head_size=16,mixer=ssm --out "$tmp/k0.safetensors" >/dev/null 2>&1
cmp -s "$tmp/k0.safetensors" "$tmp/cur3/stage_1_16_3.safetensors" && fail "curriculum --keys init=torch: same as timm's init"
bash "$cur" --bin "$bin" --keys init=jax --stages 16:5:3 "$tmp/cur4" >/dev/null 2>"$tmp/cur4.err" &&
    fail "curriculum --keys init=jax: accepted"
grep -q "init=jax: want timm or torch" "$tmp/cur4.err" || fail "curriculum --keys init=jax: $(cat "$tmp/cur4.err")"
# scripts/seq_reinit.py (the initialisation pilots): embed,kw redraws the embedding N(0,1) and the
# fc1/fc2/head weights U(±1/sqrt(fan_in)), leaves their biases and every other tensor as they were;
# train --init reads what it writes; an unknown part is refused
reinit="$(dirname "$0")/../scripts/seq_reinit.py"
if python3 "$reinit" "$tmp/a.safetensors" "$tmp/r.safetensors" embed,kw 3 2>"$tmp/r.err"; then
    python3 - "$tmp/a.safetensors" "$tmp/r.safetensors" >"$tmp/r.out" 2>&1 <<'PY' || fail "seq_reinit.py: $(cat "$tmp/r.out")"
import array, json, math, struct, sys
def load(p):
    raw = open(p, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]; h = json.loads(raw[8:8 + n]); out = {}
    for k, v in h.items():
        if k != "__metadata__":
            a = array.array("f"); a.frombytes(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            out[k] = (v["shape"], a)
    return out
a, r = load(sys.argv[1]), load(sys.argv[2])
assert a.keys() == r.keys(), "tensor names changed"
for k, (shape, x) in r.items():
    y = a[k][1]
    if k == "embed.weight":
        sd = math.sqrt(sum(v * v for v in x) / len(x))
        assert 0.8 < sd < 1.2, "embed sd %g, want about 1" % sd
    elif k.endswith(("fc1.weight", "fc2.weight")) or k == "head.weight":
        b = 1 / math.sqrt(shape[1])
        assert max(abs(v) for v in x) <= b and max(abs(v) for v in x) > 0.9 * b, "%s not U(+-%g)" % (k, b)
    else:
        assert x == y, "%s changed" % k
PY
else
    fail "seq_reinit.py embed,kw: $(cat "$tmp/r.err")"
fi
"$bin" train --model seq:mixer=ssm,dim=32 --data "$task" "${tiny[@]}" --init "$tmp/r.safetensors" \
    --out "$tmp/rn.safetensors" >/dev/null 2>"$tmp/rn.err" || fail "train --init of seq_reinit.py's output: $(cat "$tmp/rn.err")"
python3 "$reinit" "$tmp/a.safetensors" "$tmp/r2.safetensors" embed,bias 2>"$tmp/r2.err" &&
    fail "seq_reinit.py: part 'bias' accepted"
grep -q "unknown part" "$tmp/r2.err" || fail "seq_reinit.py bad part: $(cat "$tmp/r2.err")"
for bad in 16 16:20:3:fast 16:20:3:1e-3:9; do
    bash "$cur" --bin "$bin" --stages "$bad" "$tmp/cur" >/dev/null 2>"$tmp/cur.err"
    [ $? -eq 2 ] && grep -q "want LEN:STEPS" "$tmp/cur.err" || fail "curriculum: bad --stages $bad: $(cat "$tmp/cur.err")"
done

# learning: the scan copies a short selective-copying task far above chance (1/6 for 6 data tokens),
# the 7-tap convolution cannot reach the data tokens from the markers
long=(--data selective-copying:seq_len=24,tokens=2,vocab=6,test=200 --steps 700 --eval-every 700 --batch 16 --lr 3e-3
      --smoothing 0 --warmup-steps 50 --seed 1 --quiet --json)
"$bin" train --model seq:mixer=ssm,dim=32 "${long[@]}" --out "$tmp/s.safetensors" >"$tmp/s.json" 2>"$tmp/s.err" ||
    fail "ssm run: $(cat "$tmp/s.err")"
"$bin" train --model seq:mixer=dwconv,dim=32 "${long[@]}" --out "$tmp/c.safetensors" >"$tmp/c.json" 2>"$tmp/c.err" ||
    fail "dwconv run: $(cat "$tmp/c.err")"
s1=$(json "$tmp/s.json" top1)
c1=$(json "$tmp/c.json" top1)
echo "selective copying L=24, M=2, 700 steps: ssm $s1, dwconv $c1"
awk -v s="$s1" -v c="$c1" 'BEGIN { exit !(s >= 0.9 && c <= 0.5) }' || fail "ssm $s1 (want >= 0.9), dwconv $c1 (want <= 0.5)"

# induction heads: trained at one length, evaluated at longer ones
"$bin" train --model seq:mixer=ssm,dim=16,depth=1 --data induction-heads:seq_len=16,vocab=6,test=50 --steps 20 \
    --batch 8 --quiet --json --eval-seq-len 32,64 --out "$tmp/i.safetensors" >"$tmp/i.json" 2>"$tmp/i.err" ||
    fail "induction heads with --eval-seq-len: $(cat "$tmp/i.err")"
grep -q '"seq_len":	64' "$tmp/i.json" || fail "no result at seq_len 64: $(cat "$tmp/i.json")"

# an image skeleton reads pathfinder as images (3 x 32 x 32, one label each)
"$bin" train --model mambaout_test --data pathfinder:size=32,test=16 --steps 4 --batch 4 --quiet --json \
    --out "$tmp/p.safetensors" >"$tmp/p.json" 2>"$tmp/p.err" || fail "mambaout_test on pathfinder: $(cat "$tmp/p.err")"
[ "$(json "$tmp/p.json" images)" = 16 ] || fail "pathfinder as images: not 16 test images: $(cat "$tmp/p.json")"

# the runner: level model sweeping tokens, [train] steps; params are the task-fitted model's
cat >"$tmp/mini.ini" <<'INI'
[experiment]
name = mini_seq
[grid]
model = seq:dim=16
mixer = ssm, dwconv
tokens = 32, 64
threads = 2
[measure]
metrics = params, macs, latency, memory, accuracy
warmup_s = 0.02
min_samples = 3
min_time_s = 0.05
max_time_s = 0.3
[train]
dataset = selective-copying:tokens=4,vocab=8,test=50
steps = 30
eval_every = 15
batch = 8
smoothing = 0
INI
"$bin" sweep "$tmp/mini.ini" --db "$tmp/mini.db" >/dev/null 2>"$tmp/sw.err" || fail "sweep: $(tail -3 "$tmp/sw.err")"
if command -v sqlite3 >/dev/null; then
    rows=$(sqlite3 "$tmp/mini.db" "select count(*) from results where status='ok' and accuracy_top1 is not null and tokens in (32, 64) and resolution is null")
    [ "$rows" = 4 ] || fail "sweep: $rows of 4 rows with accuracy at a token count"
    curve=$(sqlite3 "$tmp/mini.db" "select count(*) from train_log")
    [ "$curve" = 8 ] || fail "sweep: $curve learning-curve points, not 8"
    p=$(sqlite3 "$tmp/mini.db" "select params from results where model='seq:dim=16,mixer=ssm' and tokens=32")
    "$bin" info seq:dim=16,mixer=ssm,vocab=8 --seq-len 36 --json >"$tmp/info.json"
    want=$(sed -n 's/.*"params":	\([0-9]*\).*/\1/p' "$tmp/info.json" | head -1)
    [ -n "$p" ] && [ "$p" = "$want" ] || fail "sweep params '$p' are not the task-fitted model's '$want'"
fi

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
o=(--out "$tmp/x.safetensors")
expect 2 "unknown dataset 'copying'" train --model seq --data copying --steps 5 "${o[@]}"
expect 2 "tokens" train --model seq --data selective-copying:seq_len=8,tokens=9 --steps 5 "${o[@]}"
expect 2 "vocab" train --model seq --data selective-copying:vocab=2 --steps 5 "${o[@]}"
expect 2 "size" train --model seq --data pathfinder:size=48 --steps 5 "${o[@]}"
expect 2 "unknown" train --model seq --data induction-heads:colour=3 --steps 5 "${o[@]}"
expect 2 "give --steps" train --model seq --data induction-heads "${o[@]}"
expect 2 "--steps is for the generated tasks" train --model mambaout_test --data fashion-mnist --steps 5 "${o[@]}"
expect 2 "has a vocabulary of 9 tokens and selective-copying has 16" train --model seq:vocab=9 \
    --data selective-copying:seq_len=64 --steps 5 "${o[@]}"
expect 2 "reads token sequences and fashion-mnist is images" train --model seq --data fashion-mnist "${o[@]}"
expect 2 "reads images and induction-heads is a sequence task" train --model mambaout_test \
    --data induction-heads --steps 5 "${o[@]}"
expect 2 "learns positions up to max_len=20" train --model seq:pos_embed=1 \
    --data induction-heads:seq_len=20 --steps 2 --batch 2 --eval-seq-len 40 --quiet "${o[@]}"
expect 2 "--eval-seq-len" train --model seq --data induction-heads --steps 2 --eval-seq-len 0 "${o[@]}"
# a checkpoint with 20 learned positions, run at other lengths: the error says why and what to add
"$bin" train --model seq:pos_embed=1,dim=16 --data induction-heads:seq_len=20,test=8 --steps 2 --batch 2 --quiet \
    --out "$tmp/pos20.safetensors" >/dev/null 2>"$tmp/pos20.err" || fail "pos_embed run: $(cat "$tmp/pos20.err")"
pw=(--weights "$tmp/pos20.safetensors")
expect 4 "dim=16 was planned for 40 tokens: a learned position embedding stops at the length it was trained with" \
    eval --model seq:pos_embed=1,dim=16 "${pw[@]}" --data induction-heads:seq_len=40,test=8
expect 4 "add max_len=20 to the model to run this checkpoint on shorter sequences" \
    eval --model seq:pos_embed=1,dim=16 "${pw[@]}" --data induction-heads:seq_len=10,test=8
"$bin" eval --model seq:pos_embed=1,dim=16,max_len=20 "${pw[@]}" --data induction-heads:seq_len=10,test=8 \
    >/dev/null 2>"$tmp/pos10.err" || fail "max_len=20 at 10 tokens: $(cat "$tmp/pos10.err")"
expect 2 "--resume: there is no training state" "${base[@]}" --out "$tmp/none.safetensors" --resume
expect 2 "where this run has 'lr=0.002'" "${base[@]/3e-3/2e-3}" --out "$tmp/a.safetensors" --resume
expect 2 "it has no 'init' where this run has 'init=$tmp/a.safetensors'" "${base[@]}" --init "$tmp/a.safetensors" \
    --out "$tmp/a.safetensors" --resume
expect 4 "--init: '$tmp/a.safetensors': missing tensor 'blocks.0.conv.weight'" train \
    --model seq:mixer=dwconv,dim=32 --data "$task" "${tiny[@]}" --init "$tmp/a.safetensors" "${o[@]}"
expect 3 "--init: cannot open '$tmp/none.safetensors'" "${base[@]}" --init "$tmp/none.safetensors" "${o[@]}"
head -c 1000 "$tmp/a.safetensors" >"$tmp/cut.safetensors"
expect 4 "--init: '$tmp/cut.safetensors': header length" "${base[@]}" --init "$tmp/cut.safetensors" "${o[@]}"

[ "$fails" -eq 0 ] && echo "test_train_seq: all checks passed"
[ "$fails" -eq 0 ]
