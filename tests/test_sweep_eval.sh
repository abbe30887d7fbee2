#!/usr/bin/env bash
# A sweep's metrics = accuracy with [eval] over the committed image-folder
# fixture: each configuration's weights evaluated by eval_run, the stored
# accuracy_top1 / accuracy_top5 and eval_setup equal to what `mixerlab eval
# --json` prints for the same model, weights, folder and transform; per-model
# weights in order; crop_pct and interpolation; --resume; a missing weights
# file as an error row; usage errors; the v3 -> v4 migration; table --db's
# measured top-1 beside the paper's. Needs no dataset package.
# usage: test_sweep_eval.sh PATH/TO/mixerlab FIXTURE_DIR
set -u
bin=$1
fx=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
q() { sqlite3 "$1" "$2"; }
if ! command -v python3 >/dev/null || ! command -v sqlite3 >/dev/null; then
    echo "SKIP: python3 and sqlite3 are needed (scripts/setup.sh installs them)"
    exit 77
fi
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

# the fixture folder as test_eval_folder lays it out: 7 images, classes Ant (2), c9 (2), c10 (3)
while read -r cls f; do
    mkdir -p "$tmp/val/$cls" && cp "$fx/images/$f" "$tmp/val/$cls/$f"
done <"$fx/eval/layout.txt"
model="mambaout_test:num_classes=1000"
# two checkpoints of timm's fixture whose head bias picks the classes: w01 ranks Ant then c9 first
# (top-1 2/7, top-5 4/7), w21 c10 then c9 (top-1 3/7, top-5 5/7), whatever the image
python3 - "$fx/mambaout_test_weights.safetensors" "$tmp" <<'EOF' || fail "could not write the biased weights"
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
b0 = 8 + n + json.loads(raw[8:8 + n])["head.fc.bias"]["data_offsets"][0]
for name, first, second in (("w01", 0, 1), ("w21", 2, 1)):
    w = bytearray(raw)
    struct.pack_into("<f", w, b0 + 4 * first, 1000.0)
    struct.pack_into("<f", w, b0 + 4 * second, 900.0)
    open(f"{sys.argv[2]}/{name}.safetensors", "wb").write(w)
EOF
js() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
same() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; exit !(a != "" && d < 1e-9 && d > -1e-9) }'; }
pct() { awk -v x="$1" 'BEGIN { printf "%.17g", 100 * x }'; }

# two models (one architecture, two checkpoints) at two resolutions
cat >"$tmp/eval.ini" <<EOT
[experiment]
name = eval_fx
[grid]
model = $model, $model
resolution = 64, 48
[measure]
metrics = params, accuracy
[eval]
data = $tmp/val
weights = $tmp/w01.safetensors, $tmp/w21.safetensors
batch = 3
EOT
"$bin" sweep "$tmp/eval.ini" --db "$tmp/a.sqlite" >"$tmp/out" 2>"$tmp/err" || fail "eval sweep: $(tail -3 "$tmp/err")"
[ "$(q "$tmp/a.sqlite" "select count(*) from results where status = 'ok' and accuracy_top1 is not null and params > 0")" = 4 ] ||
    fail "4 rows with accuracy: $(q "$tmp/a.sqlite" "select resolution, status, message, accuracy_top1 from results")"
[ "$(q "$tmp/a.sqlite" "pragma user_version")" = 4 ] || fail "schema version 4"
for w in w01 w21; do
    for r in 64 48; do
        where="resolution = $r and eval_setup like '%weights=$tmp/$w.safetensors'"
        t1=$(q "$tmp/a.sqlite" "select accuracy_top1 from results where $where")
        t5=$(q "$tmp/a.sqlite" "select accuracy_top5 from results where $where")
        setup=$(q "$tmp/a.sqlite" "select eval_setup from results where $where")
        "$bin" eval --model "$model" --weights "$tmp/$w.safetensors" --data "$tmp/val" --res "$r" --batch 3 --json \
            >"$tmp/e.json" 2>"$tmp/err" || fail "eval $w at $r: $(head -2 "$tmp/err")"
        same "$t1" "$(pct "$(js "$tmp/e.json" top1)")" ||
            fail "$w at $r: stored top-1 '$t1', eval's $(js "$tmp/e.json" top1)"
        same "$t5" "$(pct "$(js "$tmp/e.json" top5)")" ||
            fail "$w at $r: stored top-5 '$t5', eval's $(js "$tmp/e.json" top5)"
        [ "$setup" = "$(js "$tmp/e.json" setup)" ] || fail "$w at $r: eval_setup '$setup', eval's '$(js "$tmp/e.json" setup)'"
        want1=$([ $w = w01 ] && echo 200/7 || echo 300/7) want5=$([ $w = w01 ] && echo 400/7 || echo 500/7)
        same "$t1" "$(awk "BEGIN { printf \"%.17g\", $want1 }")" && same "$t5" "$(awk "BEGIN { printf \"%.17g\", $want5 }")" ||
            fail "$w at $r: top-1 $t1, top-5 $t5, want $want1, $want5 (the weights of the wrong model?)"
        case "$setup" in
        "data=$tmp/val;images=7;res=$r;crop_pct=1;interpolation=bicubic;weights=$tmp/$w.safetensors") ;;
        *) fail "$w at $r: eval_setup '$setup' is not the folder, 7 images, ${r}px, MambaOut's crop 1 bicubic" ;;
        esac
    done
done
"$bin" export --db "$tmp/a.sqlite" --csv | head -1 | grep -q "eval_setup" || fail "export has no eval_setup column"
"$bin" merge "$tmp/m.sqlite" "$tmp/a.sqlite" >/dev/null 2>"$tmp/err" || fail "merge: $(cat "$tmp/err")"
[ "$(q "$tmp/m.sqlite" "select count(*) from results where eval_setup like 'data=%' and accuracy_top5 is not null")" = 4 ] ||
    fail "merge lost accuracy_top5 or eval_setup"

# --resume: nothing measured again
"$bin" sweep "$tmp/eval.ini" --db "$tmp/a.sqlite" --resume >"$tmp/out" 2>&1 && grep -q "0 configurations run (0 not ok), 4 skipped" "$tmp/out" ||
    fail "--resume: $(tail -1 "$tmp/out")"
[ "$(q "$tmp/a.sqlite" "select count(*) from results")" = 4 ] || fail "--resume added rows"

# crop_pct and interpolation: other configurations (hashes), applied as eval's flags apply them
sed -e 's/name = eval_fx/name = eval_crop/' -e 's/resolution = 64, 48/resolution = 64/' \
    -e "s|weights = .*|weights = $tmp/w01.safetensors, $tmp/w21.safetensors\ncrop_pct = 0.8\ninterpolation = bilinear|" \
    "$tmp/eval.ini" >"$tmp/crop.ini"
h0=$("$bin" sweep "$tmp/eval.ini" --list | grep -oE ' [0-9a-f]{16} ' | head -1)
h1=$("$bin" sweep "$tmp/crop.ini" --list | grep -oE ' [0-9a-f]{16} ' | head -1)
[ -n "$h0" ] && [ -n "$h1" ] && [ "$h0" != "$h1" ] || fail "crop_pct and interpolation do not change the hash ($h0, $h1)"
"$bin" sweep "$tmp/crop.ini" --db "$tmp/a.sqlite" >"$tmp/out" 2>"$tmp/err" || fail "crop sweep: $(tail -3 "$tmp/err")"
setup=$(q "$tmp/a.sqlite" "select eval_setup from results where experiment = 'eval_crop' and eval_setup like '%w21%'")
"$bin" eval --model "$model" --weights "$tmp/w21.safetensors" --data "$tmp/val" --res 64 --batch 3 --crop-pct 0.8 \
    --interpolation bilinear --json >"$tmp/e.json" 2>"$tmp/err" || fail "eval --crop-pct: $(head -2 "$tmp/err")"
[ "$setup" = "$(js "$tmp/e.json" setup)" ] || fail "crop: eval_setup '$setup', eval's '$(js "$tmp/e.json" setup)'"
case "$setup" in *";crop_pct=0.8;interpolation=bilinear;"*) ;;
*) fail "crop: eval_setup '$setup' does not record crop_pct 0.8 and bilinear" ;;
esac
same "$(q "$tmp/a.sqlite" "select accuracy_top1 from results where experiment = 'eval_crop' and eval_setup like '%w21%'")" \
    "$(pct "$(js "$tmp/e.json" top1)")" || fail "crop: stored top-1 is not eval's"

# a weights file that is not there: an error row naming it, the sweep goes on; never random weights
sed -e 's/name = eval_fx/name = eval_missing/' -e "s|$tmp/w21.safetensors|$tmp/nope.safetensors|" "$tmp/eval.ini" >"$tmp/miss.ini"
"$bin" sweep "$tmp/miss.ini" --db "$tmp/a.sqlite" >"$tmp/out" 2>"$tmp/err"
[ "$(q "$tmp/a.sqlite" "select count(*) from results where experiment = 'eval_missing' and status = 'error' and accuracy_top1 is null and message like '%nope.safetensors%'")" = 2 ] ||
    fail "missing weights: $(q "$tmp/a.sqlite" "select status, message from results where experiment = 'eval_missing'")"
[ "$(q "$tmp/a.sqlite" "select count(*) from results where experiment = 'eval_missing' and status = 'ok' and accuracy_top1 is not null")" = 2 ] ||
    fail "missing weights: the other model's rows are not ok"
cp "$tmp/w21.safetensors" "$tmp/nope.safetensors"
"$bin" sweep "$tmp/miss.ini" --db "$tmp/a.sqlite" --resume >"$tmp/out" 2>&1 && grep -q "2 configurations run (0 not ok), 2 skipped" "$tmp/out" ||
    fail "--resume after the weights appeared: $(tail -1 "$tmp/out")"

# usage errors: exit 2, one line naming the problem, nothing written
bad_spec() { # needle, then the spec's lines
    local needle=$1
    shift
    printf '%s\n' "[experiment]" "name = bad" "[grid]" "model = ${models:-$model}" "resolution = 64" "$@" >"$tmp/bad.ini"
    "$bin" sweep "$tmp/bad.ini" --db "$tmp/b.sqlite" >/dev/null 2>"$tmp/err"
    local rc=$?
    [ "$rc" -eq 2 ] && grep -qF -- "$needle" "$tmp/err" && [ "$(grep -c 'mixerlab: error:' "$tmp/err")" -eq 1 ] ||
        fail "spec $* -> exit $rc, want 2 and '$needle': $(cat "$tmp/err")"
    [ ! -e "$tmp/b.sqlite" ] || fail "spec $* wrote a database"
}
w="weights = $tmp/w01.safetensors"
bad_spec "accuracy needs a [train] section, or [eval] with data and weights" "[measure]" "metrics = accuracy"
bad_spec "[eval] needs data = a folder, folder:dir=PATH or fashion-mnist" "[measure]" "metrics = accuracy" "[eval]" "$w"
bad_spec "[eval] weights lists 0 files for 1 [grid] models" "[measure]" "metrics = accuracy" "[eval]" "data = $tmp/val"
models="$model, $model" bad_spec "[eval] weights lists 1 files for 2 [grid] models" "[measure]" "metrics = accuracy" \
    "[eval]" "data = $tmp/val" "$w"
bad_spec "[eval] needs accuracy among [measure] metrics" "[eval]" "data = $tmp/val" "$w"
bad_spec "interpolation: 'lanczos' is not bicubic or bilinear" "[measure]" "metrics = accuracy" "[eval]" "data = $tmp/val" "$w" \
    "interpolation = lanczos"
bad_spec "crop_pct: '0' is not a number in 0.01..100" "[measure]" "metrics = accuracy" "[eval]" "data = $tmp/val" "$w" "crop_pct = 0"
bad_spec "key 'crop_pct' given twice in [eval]" "[measure]" "metrics = accuracy" "[eval]" "data = $tmp/val" "$w" "crop_pct = 1" \
    "crop_pct = 0.9"

# a version-3 database (before eval_setup), made with that version's SQL, is migrated with its rows
src=$(cd "$(dirname "$0")/.." && pwd)
sqlite3 "$tmp/v3.sqlite" <"$src/results/schema.sql"
q "$tmp/v3.sqlite" "CREATE TABLE claims (experiment TEXT NOT NULL, config_hash TEXT NOT NULL, run_id INTEGER NOT NULL REFERENCES runs(id), hostname TEXT NOT NULL, pid INTEGER NOT NULL, claimed_at TEXT NOT NULL, PRIMARY KEY (experiment, config_hash));
ALTER TABLE results ADD COLUMN accuracy_top1 REAL; ALTER TABLE results ADD COLUMN accuracy_top5 REAL;
ALTER TABLE results ADD COLUMN train_seconds REAL; ALTER TABLE results ADD COLUMN train_images_per_s REAL;
ALTER TABLE results ADD COLUMN train_seed INTEGER;
CREATE TABLE train_log (result_id INTEGER NOT NULL REFERENCES results(id) ON DELETE CASCADE, epoch INTEGER NOT NULL, step INTEGER NOT NULL, lr REAL, train_loss REAL, test_top1 REAL, test_top5 REAL, test_loss REAL, seconds REAL, PRIMARY KEY (result_id, epoch));
PRAGMA user_version = 3;
INSERT INTO runs (git_sha, git_dirty, started_at) VALUES ('abc', 0, '2026-01-01');
INSERT INTO results (run_id, experiment, config_hash, level, model, resolution, batch, device, precision, status, params, accuracy_top1, accuracy_top5, created_at) VALUES (1, 'old', '0123456789abcdef', 'model', 'mambaout_femto', 224, 1, 'cpu', 'fp32', 'ok', 42, 12.5, 30.25, '2026-01-01');
INSERT INTO train_log (result_id, epoch, step, test_top1) VALUES (1, 1, 10, 12.5);"
"$bin" table --db "$tmp/v3.sqlite" >"$tmp/t.txt" 2>"$tmp/err" || fail "table --db on a v3 database: $(cat "$tmp/err")"
[ "$(q "$tmp/v3.sqlite" "pragma user_version")" = 4 ] || fail "v3 not migrated to 4"
[ "$(q "$tmp/v3.sqlite" "select params || ' ' || accuracy_top1 || ' ' || accuracy_top5 from results where experiment = 'old' and eval_setup is null")" = "42 12.5 30.25" ] ||
    fail "v3 row lost: $(q "$tmp/v3.sqlite" "select * from results")"
[ "$(q "$tmp/v3.sqlite" "select count(*) from train_log")" = 1 ] || fail "v3 train_log row lost"

# table --db: the measured top-1 (the v3 row's femto) beside the paper's, for that model only
grep "MambaOut-Femto" "$tmp/t.txt" | grep -q "| 12.50 (224x224) |" || fail "table --db: no measured top-1 for femto: $(grep Femto "$tmp/t.txt")"
[ "$(grep -c "(224x224) |" "$tmp/t.txt")" = 1 ] || fail "table --db: top-1 shown for models the database does not have"
"$bin" table --db "$tmp/v3.sqlite" --json | grep -q '"top1_ours":	12.5' || fail "table --db --json: no top1_ours"
"$bin" table --db "$tmp/a.sqlite" >"$tmp/t.txt" 2>"$tmp/err" || fail "table --db: $(cat "$tmp/err")"
grep -q "(ours)" "$tmp/t.txt" && [ "$(grep -c "x[0-9]*) |" "$tmp/t.txt")" = 0 ] ||
    fail "table --db without a zoo model's accuracy: $(head -3 "$tmp/t.txt")"
"$bin" table >"$tmp/t.txt" && ! grep -q "(ours)" "$tmp/t.txt" || fail "table without --db has an (ours) column"
"$bin" table --db "$tmp/none.sqlite" >/dev/null 2>"$tmp/err"
[ $? -eq 3 ] && grep -qF "none.sqlite" "$tmp/err" && [ ! -e "$tmp/none.sqlite" ] ||
    fail "table --db on a missing file: not exit 3 naming it, or it made the file: $(cat "$tmp/err")"

[ "$fails" -eq 0 ] && echo "test_sweep_eval: all checks passed"
[ "$fails" -eq 0 ]
