#!/usr/bin/env bash
# Accuracy in the sweep runner: [train] trains each configuration (seeds as an
# axis) and stores top-1, top-5, training time and the curve (train_log); the
# stored top-1 is what `mixerlab eval` gets from the configuration's
# checkpoint; [eval] evaluates given weights; a sweep stopped by SIGTERM in the
# middle of a training resumes it from its checkpoint; a version-2 database is
# migrated with its rows; bad specs are refused.
# usage: test_sweep_accuracy.sh PATH/TO/mixerlab
set -u
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
q() { sqlite3 "$1" "$2"; }
if [ ! -s /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    echo "SKIP: Debian's dataset-fashion-mnist is not installed (scripts/setup.sh installs it)"
    exit 77
fi
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2

cat >"$tmp/train.ini" <<'EOT'
[experiment]
name = acc_test
[grid]
model = mambaout_test
mixer = dwconv, identity
resolution = 32
[measure]
metrics = params, macs, accuracy
[train]
dataset = fashion-mnist
epochs = 2
batch = 32
limit = 320
eval_limit = 100
seed = 0, 1
EOT
"$bin" sweep "$tmp/train.ini" --db "$tmp/a.sqlite" >"$tmp/out" 2>"$tmp/err" || fail "training sweep: $(tail -3 "$tmp/err")"
[ "$(q "$tmp/a.sqlite" "select count(*) from results where accuracy_top1 between 0 and 100 and accuracy_top5 >= accuracy_top1 and train_seconds > 0 and train_images_per_s > 0")" = 4 ] ||
    fail "4 rows with accuracy and training time: $(q "$tmp/a.sqlite" "select mixer, accuracy_top1, accuracy_top5, train_seconds from results")"
[ "$(q "$tmp/a.sqlite" "select count(*) from train_log")" = 8 ] || fail "train_log: 2 epochs x 4 configurations"
[ "$(q "$tmp/a.sqlite" "select count(distinct config_hash) from results")" = 4 ] || fail "the two seeds are two configurations"
[ "$(q "$tmp/a.sqlite" "pragma user_version")" = 4 ] || fail "schema version 4"
# the stored top-1 is eval's on the configuration's checkpoint
h=$(q "$tmp/a.sqlite" "select config_hash from results where mixer = 'identity' limit 1")
stored=$(q "$tmp/a.sqlite" "select accuracy_top1 from results where config_hash = '$h'")
ck="$tmp/a.sqlite.train/acc_test-$h.safetensors"
"$bin" eval --model mambaout_test:mixer=identity --weights "$ck" --data fashion-mnist --limit 100 --json >"$tmp/e.json" ||
    fail "eval of the sweep's checkpoint $ck"
got=$(sed -n 's/.*"top1":	\([0-9.e-]*\).*/\1/p' "$tmp/e.json")
awk -v a="$got" -v b="$stored" 'BEGIN { d = 100 * a - b; exit !(d < 1e-9 && d > -1e-9) }' ||
    fail "stored top-1 $stored is not eval's $got"
last=$(q "$tmp/a.sqlite" "select test_top1 from train_log l join results r on r.id = l.result_id where r.config_hash = '$h' order by epoch desc limit 1")
[ "$last" = "$stored" ] || fail "the curve's last test top-1 $last is not the row's $stored"

# [train]'s random_erase, res_start and res_ramp reach the training: the sweep's checkpoint is the bytes
# `mixerlab train` gives with the same flags
cat >"$tmp/extras.ini" <<'EOT'
[experiment]
name = acc_extras
[grid]
model = mambaout_test
resolution = 40
[measure]
metrics = accuracy
[train]
epochs = 2
batch = 32
limit = 320
eval_limit = 100
random_erase = 0.5
res_start = 32
res_ramp = 1
EOT
"$bin" sweep "$tmp/extras.ini" --db "$tmp/x.sqlite" >"$tmp/out" 2>"$tmp/err" || fail "sweep with random_erase, res_start: $(tail -3 "$tmp/err")"
hx=$(q "$tmp/x.sqlite" "select config_hash from results limit 1")
"$bin" train --model mambaout_test --data fashion-mnist --res 40 --res-start 32 --res-ramp 1 --random-erase 0.5 \
    --epochs 2 --batch 32 --limit 320 --eval-limit 100 --quiet --out "$tmp/x.safetensors" >/dev/null 2>"$tmp/err" ||
    fail "train with the same flags: $(cat "$tmp/err")"
cmp -s "$tmp/x.safetensors" "$tmp/x.sqlite.train/acc_extras-$hx.safetensors" ||
    fail "the sweep's [train] random_erase / res_start / res_ramp did not train what mixerlab train does"
# and data_parallel (2 threads): the bytes of mixerlab train --data-parallel
sed -e 's/^name = acc_extras/name = acc_dp/' -e '/^res_start/d' -e '/^res_ramp/d' -e 's/^resolution = 40/resolution = 32\nthreads = 2/' \
    "$tmp/extras.ini" >"$tmp/dp.ini"
echo "data_parallel = 1" >>"$tmp/dp.ini"
"$bin" sweep "$tmp/dp.ini" --db "$tmp/dp.sqlite" >"$tmp/out" 2>"$tmp/err" || fail "sweep with data_parallel: $(tail -3 "$tmp/err")"
hd=$(q "$tmp/dp.sqlite" "select config_hash from results limit 1")
"$bin" train --model mambaout_test --data fashion-mnist --res 32 --random-erase 0.5 --threads 2 --data-parallel \
    --epochs 2 --batch 32 --limit 320 --eval-limit 100 --quiet --out "$tmp/dp.safetensors" >/dev/null 2>"$tmp/err" ||
    fail "train --data-parallel with the same flags: $(cat "$tmp/err")"
cmp -s "$tmp/dp.safetensors" "$tmp/dp.sqlite.train/acc_dp-$hd.safetensors" ||
    fail "the sweep's [train] data_parallel did not train what mixerlab train --data-parallel does"

# plot: accuracy against MACs and latency, and the learning curves (2 epochs x 4 trainings)
if command -v gnuplot >/dev/null; then
    mkdir "$tmp/plots"
    "$bin" plot acc_test --db "$tmp/a.sqlite" --out "$tmp/plots" >"$tmp/out" 2>"$tmp/err" || fail "plot: $(cat "$tmp/err")"
    grep -q "no latency measured: no accuracy_vs_latency plot" "$tmp/out" || fail "plot: latency plot not skipped"
    # gnuplot skips a series it is asked for and the data does not hold (the curves were once counted twice)
    ! grep -q "Skipping data file" "$tmp/err" || fail "plot: more series than data: $(grep -m1 Skipping "$tmp/err")"
    for f in accuracy_vs_macs learning_curves; do
        [ -s "$tmp/plots/acc_test_$f.png" ] && [ -s "$tmp/plots/acc_test_$f.svg" ] || fail "plot wrote no $f"
    done
    [ "$(grep -c '^[0-9]' "$tmp/plots/acc_test_curves.dat")" = 8 ] || fail "curves data: not 8 points"
    [ "$(grep -c '^[0-9]' "$tmp/plots/acc_test_accuracy.dat")" = 4 ] || fail "accuracy data: not 4 points"
fi

# [eval]: the checkpoint's weights evaluated, the same number
cat >"$tmp/eval.ini" <<EOT
[experiment]
name = eval_test
[grid]
model = mambaout_test:mixer=identity
resolution = 32
[measure]
metrics = params, accuracy
[eval]
data = fashion-mnist
weights = $ck
limit = 100
EOT
"$bin" sweep "$tmp/eval.ini" --db "$tmp/a.sqlite" >"$tmp/out" 2>"$tmp/err" || fail "eval sweep: $(tail -3 "$tmp/err")"
[ "$(q "$tmp/a.sqlite" "select accuracy_top1 from results where experiment = 'eval_test'")" = "$stored" ] ||
    fail "[eval] top-1 $(q "$tmp/a.sqlite" "select accuracy_top1 from results where experiment = 'eval_test'") is not $stored"
[ "$(q "$tmp/a.sqlite" "select count(*) from results where eval_setup is null")" = 4 ] || fail "[train] rows have an eval_setup"
setup=$(sed -n 's/^[[:space:]]*"setup":[[:space:]]*"\(.*\)"$/\1/p' "$tmp/e.json")
case "$setup" in *";images=100;res=32;weights=$ck") ;; *) fail "eval --json's setup: '$setup'" ;; esac
[ "$(q "$tmp/a.sqlite" "select eval_setup from results where experiment = 'eval_test'")" = "$setup" ] ||
    fail "[eval] eval_setup: $(q "$tmp/a.sqlite" "select eval_setup from results where experiment = 'eval_test'"), eval's $setup"
# (table --db, [eval] on an image folder and the v3 migration: test_sweep_eval.sh)

# stopped by SIGTERM during a training, then --resume: the training goes on from its checkpoint
# (TERM once the first of four epochs is done, not after a fixed time: at 3,500 images/s
# the whole training can end before a fixed sleep does)
sed -e 's/name = acc_test/name = acc_stop/' -e 's/limit = 320/limit = 1600/' -e 's/seed = 0, 1/seed = 5/' \
    -e 's/epochs = 2/epochs = 4/' -e 's/mixer = dwconv, identity/mixer = dwconv/' "$tmp/train.ini" >"$tmp/stop.ini"
"$bin" sweep "$tmp/stop.ini" --db "$tmp/s.sqlite" >/dev/null 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 1200); do
    grep -q "epoch 1/4 done" "$tmp/err" && break
    sleep 0.05
done
kill -TERM "$pid"
wait "$pid"
rc=$?
if [ "$rc" -eq 143 ]; then
    [ "$(q "$tmp/s.sqlite" "select count(*) from results")" = 0 ] || fail "a stopped training stored a row"
    ls "$tmp"/s.sqlite.train/*.state >/dev/null 2>&1 || fail "no checkpoint after SIGTERM"
    "$bin" sweep "$tmp/stop.ini" --db "$tmp/s.sqlite" --resume >/dev/null 2>"$tmp/err" || fail "--resume: $(tail -2 "$tmp/err")"
    grep -q "resumed" "$tmp/err" || fail "--resume did not resume the training"
    "$bin" sweep "$tmp/stop.ini" --db "$tmp/u.sqlite" >/dev/null 2>&1 || fail "uninterrupted sweep"
    [ "$(q "$tmp/s.sqlite" "select accuracy_top1 from results")" = "$(q "$tmp/u.sqlite" "select accuracy_top1 from results")" ] ||
        fail "resumed top-1 $(q "$tmp/s.sqlite" "select accuracy_top1 from results") differs from uninterrupted $(q "$tmp/u.sqlite" "select accuracy_top1 from results")"
    cmp -s "$tmp"/s.sqlite.train/*.safetensors "$tmp"/u.sqlite.train/*.safetensors || fail "resumed weights differ"
else
    fail "SIGTERM during a training: exit $rc, want 143: $(tail -2 "$tmp/err")"
fi

# a version-2 database (mixerlab before accuracy) is migrated, its rows kept
src=$(cd "$(dirname "$0")/.." && pwd)
sqlite3 "$tmp/v2.sqlite" <"$src/results/schema.sql"
q "$tmp/v2.sqlite" "CREATE TABLE claims (experiment TEXT NOT NULL, config_hash TEXT NOT NULL, run_id INTEGER NOT NULL REFERENCES runs(id), hostname TEXT NOT NULL, pid INTEGER NOT NULL, claimed_at TEXT NOT NULL, PRIMARY KEY (experiment, config_hash)); PRAGMA user_version = 2;
INSERT INTO runs (git_sha, git_dirty, started_at) VALUES ('abc', 0, '2026-01-01');
INSERT INTO results (run_id, experiment, config_hash, level, batch, device, precision, status, params, created_at) VALUES (1, 'old', '0123456789abcdef', 'model', 1, 'cpu', 'fp32', 'ok', 42, '2026-01-01');"
"$bin" export --db "$tmp/v2.sqlite" --csv >"$tmp/x.csv" 2>"$tmp/err" || fail "export of a v2 database: $(cat "$tmp/err")"
[ "$(q "$tmp/v2.sqlite" "pragma user_version")" = 4 ] || fail "v2 not migrated to 4"
[ "$(q "$tmp/v2.sqlite" "select params from results where experiment = 'old' and accuracy_top1 is null")" = 42 ] || fail "v2 row lost"
head -1 "$tmp/x.csv" | grep -q "accuracy_top1" || fail "export has no accuracy_top1 column"

# bad specs
bad_spec() { # needle, then the spec's lines
    local needle=$1
    shift
    printf '%s\n' "[experiment]" "name = bad" "[grid]" "model = mambaout_test" "resolution = 32" "$@" >"$tmp/bad.ini"
    "$bin" sweep "$tmp/bad.ini" --db "$tmp/b.sqlite" >/dev/null 2>"$tmp/err"
    local rc=$?
    [ "$rc" -eq 2 ] && grep -qF -- "$needle" "$tmp/err" || fail "spec $* -> exit $rc, want 2 and '$needle': $(cat "$tmp/err")"
}
bad_spec "accuracy needs a [train] section" "[measure]" "metrics = accuracy"
bad_spec "[train] needs accuracy" "[train]" "epochs = 1"
bad_spec "weights lists 0 files for 1" "[measure]" "metrics = accuracy" "[eval]" "data = fashion-mnist"
bad_spec "exclude each other" "[measure]" "metrics = accuracy" "[train]" "epochs = 1" "[eval]" "data = fashion-mnist" "weights = x"
bad_spec "lr: '0' is not a number" "[measure]" "metrics = accuracy" "[train]" "lr = 0"
bad_spec "unknown key 'epoch' in [train]" "[measure]" "metrics = accuracy" "[train]" "epoch = 1"

[ "$fails" -eq 0 ] && echo "test_sweep_accuracy: all checks passed"
[ "$fails" -eq 0 ]
