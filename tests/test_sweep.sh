#!/usr/bin/env bash
# The sweep runner end to end: results in SQLite, --list/--dry-run/--resume,
# a real kill -9 then --resume (every config exactly once), shards merged ==
# the unsharded sweep, two sweeps writing one database at once, failing
# configs as rows, bad databases, export and plot.
# usage: test_sweep.sh PATH/TO/mixerlab SOURCE_DIR
set -u
bin=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$src" || exit 2
fails=0
passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
q() { sqlite3 "$1" "$2"; }

spec() { # spec FILE NAME MIN_TIME
    cat >"$1" <<EOT
[experiment]
name = $2
[grid]
level = mixer
mixer = dwconv, identity, ssm
tokens = 16, 64, 100
width = 8
batch = 1, 2
[measure]
warmup_s = 0
min_samples = 3
min_time_s = $3
max_time_s = 2
EOT
}
spec "$tmp/fast.ini" sweep_test 0
spec "$tmp/slow.ini" sweep_test 0.25

# a full sweep: 3 mixers x 3 token counts x 2 batches
"$bin" sweep "$tmp/fast.ini" --db "$tmp/a.sqlite" >"$tmp/out" 2>"$tmp/err" || bad "full sweep exit $?: $(cat "$tmp/err")"
[ "$(q "$tmp/a.sqlite" "select count(*) from results where status='ok'")" = 18 ] && ok || bad "18 ok results expected"
[ "$(q "$tmp/a.sqlite" "select count(*) from samples")" -ge 54 ] && ok || bad "raw samples kept"
[ "$(q "$tmp/a.sqlite" "select count(*) from runs where git_sha <> '' and finished_at is not null and cpu_model is not null")" = 1 ] && ok || bad "run provenance"
[ "$(q "$tmp/a.sqlite" "pragma user_version")" = 4 ] && ok || bad "schema version 4"
[ "$(q "$tmp/a.sqlite" "select count(*) from results where latency_ms_p10 <= latency_ms_median and latency_ms_median <= latency_ms_p90 and samples >= 3 and macs_convention = 'fvcore'")" = 18 ] && ok || bad "statistics columns"

# --list and --dry-run
"$bin" sweep "$tmp/fast.ini" --list >"$tmp/out" && [ "$(grep -cE '^ *[0-9]+ [0-9a-f]{16} ' "$tmp/out")" = 18 ] && ok || bad "--list prints 18 configs with hashes"
"$bin" sweep "$tmp/fast.ini" --db "$tmp/a.sqlite" --dry-run >"$tmp/out" && [ "$(grep -c 'resume skips' "$tmp/out")" = 18 ] && ok || bad "--dry-run marks done configs"
"$bin" sweep "$tmp/fast.ini" --db "$tmp/a.sqlite" --resume >"$tmp/out" 2>&1 && grep -q "0 configurations run (0 not ok), 18 skipped" "$tmp/out" && ok || bad "--resume skips all: $(tail -1 "$tmp/out")"

# kill -9 in the middle, then --resume: every config exactly once
"$bin" sweep "$tmp/slow.ini" --db "$tmp/k.sqlite" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    n=$(q "$tmp/k.sqlite" "select count(*) from results" 2>/dev/null || echo 0)
    [ "${n:-0}" -ge 3 ] && break
    sleep 0.1
done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
n=$(q "$tmp/k.sqlite" "select count(*) from results")
[ "$n" -ge 3 ] && [ "$n" -lt 18 ] && ok || bad "kill -9 should leave a partial sweep (have $n rows)"
"$bin" sweep "$tmp/slow.ini" --db "$tmp/k.sqlite" --resume >"$tmp/out" 2>&1 || bad "resume after kill: $(tail -2 "$tmp/out")"
[ "$(q "$tmp/k.sqlite" "select count(distinct config_hash) from results where status='ok'")" = 18 ] && ok || bad "resume completes all 18"
[ "$(q "$tmp/k.sqlite" "select count(*) from (select config_hash from results group by config_hash having count(*) <> 1)")" = 0 ] && ok || bad "every config exactly once after kill + resume"
[ "$(q "$tmp/k.sqlite" "select count(*) from results r where samples <> (select count(*) from samples s where s.result_id = r.id)")" = 0 ] && ok || bad "every result has all of its samples (none half written)"

# shards 0/3 1/3 2/3 merged == the unsharded sweep; merging a shard twice keeps each config once
for i in 0 1 2; do "$bin" sweep "$tmp/fast.ini" --db "$tmp/s$i.sqlite" --shard "$i/3" >/dev/null 2>&1 || bad "shard $i"; done
SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=3 "$bin" sweep "$tmp/fast.ini" --list >"$tmp/out" && [ "$(grep -cE '^ *[0-9]+ [0-9a-f]{16} ' "$tmp/out")" = 6 ] && ok || bad "shard from SLURM_ARRAY_TASK_ID"
"$bin" merge "$tmp/m.sqlite" "$tmp/s0.sqlite" "$tmp/s1.sqlite" "$tmp/s2.sqlite" "$tmp/s1.sqlite" >"$tmp/out" 2>&1 || bad "merge: $(cat "$tmp/out")"
q "$tmp/a.sqlite" "select config_hash from results order by 1" >"$tmp/h_all"
q "$tmp/m.sqlite" "select config_hash from results order by 1" >"$tmp/h_merged"
cmp -s "$tmp/h_all" "$tmp/h_merged" && ok || bad "merged shards give the unsharded configs"
[ "$(q "$tmp/m.sqlite" "select count(*) from runs")" = 4 ] && ok || bad "merged runs keep their provenance (4 runs)"

# two sweeps writing one database at once
"$bin" sweep "$tmp/fast.ini" --db "$tmp/c.sqlite" >/dev/null 2>"$tmp/err1" &
p1=$!
"$bin" sweep "$tmp/fast.ini" --db "$tmp/c.sqlite" >/dev/null 2>"$tmp/err2" &
p2=$!
wait "$p1" && wait "$p2" && ok || bad "concurrent sweeps: $(cat "$tmp/err1" "$tmp/err2" | grep error)"
[ "$(q "$tmp/c.sqlite" "select count(*) from results where status='ok'")" = 36 ] && ok || bad "both concurrent sweeps wrote 18 rows"

# failing configs become rows and the sweep goes on
cat >"$tmp/fail.ini" <<EOT
[experiment]
name = failing
[grid]
level = mixer
mixer = attn, dwconv
tokens = 16
width = 8
device = cpu, cuda
[measure]
min_samples = 2
min_time_s = 0
EOT
"$bin" sweep "$tmp/fail.ini" --db "$tmp/f.sqlite" >/dev/null 2>&1 && ok || bad "a sweep with failing configs still exits 0"
[ "$(q "$tmp/f.sqlite" "select status from results order by id" | tr '\n' ' ')" = "error unsupported ok unsupported " ] && ok || bad "statuses: $(q "$tmp/f.sqlite" "select status from results order by id" | tr '\n' ' ')"
q "$tmp/f.sqlite" "select message from results where status='error'" | grep -q "head_size 32 does not divide" && ok || bad "error row keeps its message"

cat >"$tmp/oom.ini" <<EOT
[experiment]
name = oom_timeout
[grid]
model = mambaout_base
resolution = 4096
batch = 4096
EOT
cat >"$tmp/timeout.ini" <<EOT
[experiment]
name = oom_timeout
[grid]
level = mixer
mixer = attn
tokens = 8192
width = 64
[measure]
warmup_s = 0
min_time_s = 0
max_time_s = 0.001
EOT
"$bin" sweep "$tmp/oom.ini" --db "$tmp/f.sqlite" >/dev/null 2>&1 && "$bin" sweep "$tmp/timeout.ini" --db "$tmp/f.sqlite" >/dev/null 2>&1 && ok || bad "oom and timeout sweeps exit 0"
q "$tmp/f.sqlite" "select status || ': ' || message from results where experiment = 'oom_timeout' order by id" >"$tmp/out"
grep -q "^oom: mambaout_base at batch 4096, 4096x4096 .* needs" "$tmp/out" && ok || bad "oom row: $(cat "$tmp/out")"
grep -q "^timeout: one run took .* over max_time_s = 0.001" "$tmp/out" && ok || bad "timeout row: $(cat "$tmp/out")"

# ---- issue 11 ----
# a model value that a grid mixer makes too long is refused naming it (it used to be cut: ssm numbers under ssm_bidir)
long="mambaout_test:kernel=$(printf '0%.0s' $(seq 1 127))7"
printf '[experiment]\nname = longmodel\n[grid]\nmodel = %s\nmixer = ssm, ssm_bidir, ssm_2d\nresolution = 32\n[measure]\nmetrics = params, macs\n' "$long" >"$tmp/long.ini"
"$bin" sweep "$tmp/long.ini" --db "$tmp/long.sqlite" >/dev/null 2>"$tmp/err"
[ $? = 2 ] && grep -q "with mixer ssm_bidir is .*(at most 159)" "$tmp/err" && [ ! -e "$tmp/long.sqlite" ] && ok || bad "too long a model value: $(cat "$tmp/err")"
printf '[experiment]\nname = longmodel\n[grid]\nmodel = %s\nmixer = ssm\nresolution = 32\n[measure]\nmetrics = params, macs\n' "$long" >"$tmp/long2.ini"
"$bin" sweep "$tmp/long2.ini" --db "$tmp/long.sqlite" >/dev/null 2>"$tmp/err" &&
    [ "$(q "$tmp/long.sqlite" "select model = '$long,mixer=ssm' and mixer = 'ssm' from results")" = 1 ] && ok || bad "a 159-character model is stored exactly: $(cat "$tmp/err")"

# a page-damaged database is refused (exit 4) before anything is written; an empty path and a bad schema byte fail at once
cp "$tmp/a.sqlite" "$tmp/dmg.sqlite"
python3 -c "import sys; f=open(sys.argv[1],'r+b'); f.seek(4096*3); f.write(b'\xde\xad\xbe\xef'*1024)" "$tmp/dmg.sqlite"
"$bin" sweep "$tmp/fast.ini" --db "$tmp/dmg.sqlite" >/dev/null 2>"$tmp/err"
[ $? = 4 ] && grep -q "is damaged (PRAGMA quick_check" "$tmp/err" && ok || bad "damaged database: $(cat "$tmp/err")"
t0=$(date +%s)
"$bin" sweep "$tmp/fast.ini" --db "" >/dev/null 2>"$tmp/err"
[ $? = 2 ] && grep -q "empty database path" "$tmp/err" && [ $(($(date +%s) - t0)) -lt 5 ] && ok || bad "empty --db: $(cat "$tmp/err")"
cp "$tmp/a.sqlite" "$tmp/schema.sqlite"
python3 -c "import sys; p=sys.argv[1]; d=open(p,'rb').read(); i=d.find(b'CREATE TABLE results'); open(p,'wb').write(d[:i+7]+b'\x01'+d[i+8:])" "$tmp/schema.sqlite"
t0=$(date +%s)
"$bin" sweep "$tmp/fast.ini" --db "$tmp/schema.sqlite" >/dev/null 2>"$tmp/err"
[ $? = 4 ] && grep -q "malformed database schema" "$tmp/err" && [ $(($(date +%s) - t0)) -lt 5 ] && ok || bad "bad schema byte: $(cat "$tmp/err")"

# two --resume sweeps started together on a new database split the work: every configuration exactly once
"$bin" sweep "$tmp/slow.ini" --db "$tmp/r.sqlite" --resume >"$tmp/o1" 2>/dev/null &
p1=$!
"$bin" sweep "$tmp/slow.ini" --db "$tmp/r.sqlite" --resume >"$tmp/o2" 2>/dev/null &
p2=$!
wait "$p1" && wait "$p2" && ok || bad "concurrent --resume sweeps failed"
[ "$(q "$tmp/r.sqlite" "select count(*) || ' ' || count(distinct config_hash) from results")" = "18 18" ] && ok || bad "concurrent --resume: $(q "$tmp/r.sqlite" "select count(*) || ' rows, ' || count(distinct config_hash) || ' configs' from results")"
[ "$(q "$tmp/r.sqlite" "select count(distinct run_id) from results")" = 2 ] && ok || bad "both --resume sweeps took a share: $(cat "$tmp/o1" "$tmp/o2")"

# SIGINT / SIGTERM: the current configuration abandoned, what is done committed, exit 130 / 143, how to resume
for sig in INT TERM; do
    rm -f "$tmp/sig.sqlite"*
    "$bin" sweep "$tmp/slow.ini" --db "$tmp/sig.sqlite" >/dev/null 2>"$tmp/err" &
    pid=$!
    for _ in $(seq 1 100); do
        n=$(q "$tmp/sig.sqlite" "select count(*) from results" 2>/dev/null || echo 0)
        [ "${n:-0}" -ge 2 ] && break
        sleep 0.1
    done
    kill -s "$sig" "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid"
    rc=$?
    want=$([ "$sig" = INT ] && echo 130 || echo 143)
    [ "$rc" = "$want" ] && grep -q "^mixerlab: error: sweep interrupted by SIG$sig: .*resume with: mixerlab sweep $tmp/slow.ini --db $tmp/sig.sqlite --resume" "$tmp/err" &&
        [ "$(grep -c 'mixerlab: error' "$tmp/err")" = 1 ] && ok || bad "SIG$sig: exit $rc (want $want), $(tail -1 "$tmp/err")"
    n=$(q "$tmp/sig.sqlite" "select count(*) from results")
    [ "$n" -ge 2 ] && [ "$n" -lt 18 ] && [ "$(q "$tmp/sig.sqlite" "select count(*) from runs where finished_at is not null")" = 1 ] &&
        [ "$(q "$tmp/sig.sqlite" "select count(*) from claims")" = 0 ] && ok || bad "SIG$sig: $n rows committed, the run closed, no claims left"
    "$bin" sweep "$tmp/slow.ini" --db "$tmp/sig.sqlite" --resume >/dev/null 2>&1 &&
        [ "$(q "$tmp/sig.sqlite" "select count(*) || ' ' || count(distinct config_hash) from results where status = 'ok'")" = "18 18" ] && ok || bad "SIG$sig then --resume: each configuration once"
done

# bad databases, bad arguments
printf 'this is not sqlite at all, just text that is long enough to look like a header........' >"$tmp/bad.sqlite"
"$bin" sweep "$tmp/fast.ini" --db "$tmp/bad.sqlite" 2>"$tmp/err"
[ $? = 4 ] && grep -q "is not a mixerlab database" "$tmp/err" && ok || bad "corrupt database: $(cat "$tmp/err")"
"$bin" sweep "$tmp/fast.ini" --db "$tmp/nope/x.sqlite" 2>"$tmp/err"
[ $? = 3 ] && grep -q "folder '$tmp/nope' does not exist" "$tmp/err" && ok || bad "missing folder: $(cat "$tmp/err")"
if [ -d /sys ] && ! touch /sys/mixerlab_probe 2>/dev/null; then
    "$bin" sweep "$tmp/fast.ini" --db /sys/x.sqlite 2>"$tmp/err"
    [ $? = 3 ] && grep -q "database '/sys/x.sqlite'" "$tmp/err" && ok || bad "read-only folder: $(cat "$tmp/err")"
fi
"$bin" sweep "$tmp/missing.ini" 2>"$tmp/err"
[ $? = 3 ] && grep -q "cannot open spec" "$tmp/err" && ok || bad "missing spec"
"$bin" sweep "$tmp/fast.ini" --shard 3/3 2>"$tmp/err"
[ $? = 2 ] && ok || bad "--shard 3/3 is out of range"
"$bin" export --db "$tmp/a.sqlite" 2>"$tmp/err"
[ $? = 2 ] && grep -q "give --csv or --json" "$tmp/err" && ok || bad "export needs a format"
"$bin" merge "$tmp/m2.sqlite" "$tmp/bad.sqlite" 2>"$tmp/err"
[ $? = 4 ] && [ ! -e "$tmp/m2.sqlite" ] && ok || bad "merge refuses a corrupt input before writing"

# export and plot
"$bin" plot sweep_test --db "$tmp/a.sqlite" --out "$tmp/it's" 2>"$tmp/err"
[ $? = 2 ] && grep -q "may not contain a single quote" "$tmp/err" && ok || bad "plot refuses a quote in --out"
seg=$(printf 'd%.0s' $(seq 1 250))
longdir="$tmp/$seg/$seg/$seg/$seg/$seg"
mkdir -p "$longdir"
"$bin" plot sweep_test --db "$tmp/a.sqlite" --out "$longdir" >/dev/null 2>"$tmp/err"
[ $? = 2 ] && grep -q "is too long" "$tmp/err" && ok || bad "plot refuses an --out path it would cut: $(cut -c1-200 "$tmp/err")"
"$bin" export --db "$tmp/a.sqlite" --experiment sweep_test --csv >"$tmp/out" && [ "$(wc -l <"$tmp/out")" = 19 ] && ok || bad "export --csv: header + 18 rows"
"$bin" export --db "$tmp/a.sqlite" --json >"$tmp/out" && [ "$(grep -c '"config_hash"' "$tmp/out")" = 18 ] && ok || bad "export --json"
mkdir -p "$tmp/plots"
if command -v gnuplot >/dev/null; then
    "$bin" plot sweep_test --db "$tmp/a.sqlite" --out "$tmp/plots" >"$tmp/out" 2>&1 || bad "plot: $(tail -3 "$tmp/out")"
    for f in latency_vs_tokens memory_vs_tokens macs_vs_tokens throughput_vs_batch; do
        [ -s "$tmp/plots/sweep_test_$f.png" ] && [ -s "$tmp/plots/sweep_test_$f.svg" ] && ok || bad "plot $f"
    done
    grep -q "exponent" "$tmp/out" && [ "$(q "$tmp/a.sqlite" "select count(*) from scaling where experiment='sweep_test'")" -ge 3 ] && ok || bad "scaling exponents printed and stored"
    # from any folder: the gnuplot scripts are found beside the binary or in its tree, not in the cwd
    mkdir -p "$tmp/elsewhere/out"
    (cd "$tmp/elsewhere" && "$bin" plot sweep_test --db "$tmp/a.sqlite" --out out >"$tmp/out" 2>&1) &&
        [ -s "$tmp/elsewhere/out/sweep_test_latency_vs_tokens.png" ] && ok || bad "plot from another folder: $(tail -2 "$tmp/out")"
    # an installed mixerlab: binary, gnuplot scripts and schema under the prefix, plots drawn from any folder
    if cmake --install "$(dirname "$bin")" --prefix "$tmp/inst" >"$tmp/out" 2>&1; then
        [ -x "$tmp/inst/bin/mixerlab" ] && [ -s "$tmp/inst/share/mixerlab/plots/latency_vs_tokens.gp" ] &&
            [ -s "$tmp/inst/share/mixerlab/schema.sql" ] && ok || bad "cmake --install: $(ls -R "$tmp/inst" | head)"
        mkdir -p "$tmp/elsewhere/inst"
        (cd "$tmp/elsewhere" && "$tmp/inst/bin/mixerlab" plot sweep_test --db "$tmp/a.sqlite" --out inst >"$tmp/out" 2>&1) &&
            [ -s "$tmp/elsewhere/inst/sweep_test_memory_vs_tokens.svg" ] && ok || bad "installed plot: $(tail -2 "$tmp/out")"
    else
        bad "cmake --install: $(tail -3 "$tmp/out")"
    fi
fi

# the Slurm submitter, against a stand-in sbatch that runs each job here, in order
mkdir -p "$tmp/fakebin" "$tmp/repo/build" "$tmp/repo/results"
cat >"$tmp/fakebin/sbatch" <<'EOT'
#!/usr/bin/env bash
array="" wrap=""
for a in "$@"; do
    case "$a" in --array=*) array=${a#--array=} ;; --wrap=*) wrap=${a#--wrap=} ;; esac
done
n=$(( ${array#*-} + 1 ))
if [ -n "$array" ]; then
    for i in $(seq 0 $((n - 1))); do SLURM_ARRAY_TASK_ID=$i SLURM_ARRAY_TASK_COUNT=$n bash -c "$wrap" >/dev/null 2>&1 || exit 1; done
else
    bash -c "$wrap" >/dev/null 2>&1 || exit 1
fi
echo $RANDOM
EOT
chmod +x "$tmp/fakebin/sbatch"
ln -s "$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")" "$tmp/repo/build/mixerlab"
cp "$tmp/fast.ini" "$tmp/repo/spec.ini"
(cd "$tmp/repo" && PATH="$tmp/fakebin:$PATH" bash "$src/scripts/slurm_sweep.sbatch" spec.ini 3 >"$tmp/out" 2>&1) || bad "slurm_sweep: $(cat "$tmp/out")"
q "$tmp/repo/results/sweep_test.sqlite" "select config_hash from results order by 1" >"$tmp/h_slurm" 2>/dev/null
cmp -s "$tmp/h_all" "$tmp/h_slurm" && ok || bad "slurm array + merge gives the unsharded configs"
(cd "$tmp/repo" && PATH="$tmp/fakebin:$PATH" bash "$src/scripts/slurm_sweep.sbatch" spec.ini 0 >/dev/null 2>&1)
[ $? = 2 ] && ok || bad "slurm_sweep refuses N = 0"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
