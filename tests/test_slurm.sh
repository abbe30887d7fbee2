#!/usr/bin/env bash
# A real Slurm cluster on this machine: munged, slurmctld and slurmd started
# here on loopback ports with a single-node slurm.conf written here, then
# scripts/slurm_sweep.sbatch submits its job array and the dependent merge
# job; the merged database must hold exactly the unsharded sweep's
# configurations. Every daemon is stopped by its pid at the end. Exit 77
# (skipped, with the reason) only when the daemons cannot be started.
# usage: test_slurm.sh PATH/TO/mixerlab SOURCE_DIR
set -u
bin=$1
src=$2
skip() { echo "test_slurm: skipped: $*"; exit 77; }
for d in munged slurmctld slurmd sbatch squeue; do
    command -v "$d" >/dev/null || [ -x "/usr/sbin/$d" ] || skip "$d is not installed (apt-get install munge slurmctld slurmd slurm-client)"
done
[ "$(id -u)" = 0 ] || skip "slurmd runs jobs as their user only when started as root"
PATH=$PATH:/usr/sbin
tmp=$(mktemp -d /tmp/mixerlab_slurm_XXXXXX)
chmod 755 "$tmp"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
    done
    [ -n "${MIXERLAB_KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
fails=0
passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

# munge: its own key, socket and files
mkdir -p "$tmp/munge" "$tmp/spool" "$tmp/state" "$tmp/log"
chmod 755 "$tmp/munge"
dd if=/dev/urandom of="$tmp/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$tmp/munge/munge.key"
sock="$tmp/munge/munge.socket"
munged --force --foreground --socket="$sock" --key-file="$tmp/munge/munge.key" --pid-file="$tmp/munge/munged.pid" \
    --log-file="$tmp/log/munged.log" --seed-file="$tmp/munge/seed" >"$tmp/log/munged.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || skip "munged did not start: $(tail -2 "$tmp/log/munged.log" "$tmp/log/munged.out" 2>/dev/null | tr '\n' ' ')"

# two free loopback ports
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cport=$(port)
dport=$(port)
[ "$cport" != "$dport" ] || dport=$((cport + 1))
cpus=$(nproc)
mem=$(($(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo) / 1024 / 2))
node=$(hostname -s)
cat >"$tmp/slurm.conf" <<EOT
ClusterName=mixerlab_test
SlurmctldHost=$node(127.0.0.1)
MailProg=/bin/true
SlurmctldPort=$cport
SlurmdPort=$dport
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool/slurmd_%n
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOT
export SLURM_CONF=$tmp/slurm.conf
slurmctld -D -i -f "$SLURM_CONF" >"$tmp/log/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -N "$node" -f "$SLURM_CONF" >"$tmp/log/slurmd.out" 2>&1 &
pids+=($!)
up=0
for _ in $(seq 1 150); do
    if timeout 5 sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
        up=1
        break
    fi
    sleep 0.2
done
[ "$up" = 1 ] || skip "the Slurm daemons did not come up: $(tail -3 "$tmp/log/slurmctld.log" "$tmp/log/slurmd.log" 2>/dev/null | tr '\n' ' ' | cut -c1-600)"

# a repository as the script expects it: build/mixerlab and the spec, run from its root
mkdir -p "$tmp/repo/build" "$tmp/repo/results"
ln -s "$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")" "$tmp/repo/build/mixerlab"
cat >"$tmp/repo/spec.ini" <<EOT
[experiment]
name = slurm_test
[grid]
level = mixer
mixer = dwconv, identity, ssm
tokens = 16, 64
width = 8
batch = 1, 2
[measure]
warmup_s = 0
min_samples = 3
min_time_s = 0
max_time_s = 2
EOT
"$bin" sweep "$tmp/repo/spec.ini" --db "$tmp/all.sqlite" >/dev/null 2>&1 || bad "the unsharded sweep"
(cd "$tmp/repo" && bash "$src/scripts/slurm_sweep.sbatch" spec.ini 3 -- --time=10 >"$tmp/submit.out" 2>&1) || bad "slurm_sweep.sbatch: $(cat "$tmp/submit.out")"
merge=$(sed -n 's/.* as job \([0-9]*\) (after all shards succeed)/\1/p' "$tmp/submit.out")
array=$(sed -n 's/.* as job \([0-9]*\); merge.*/\1/p' "$tmp/submit.out")
[ -n "$merge" ] && [ -n "$array" ] && ok || bad "no job ids in: $(cat "$tmp/submit.out")"
done=0
for _ in $(seq 1 600); do
    if [ -n "$merge" ] && ! timeout 5 squeue -h -j "$array,$merge" 2>/dev/null | grep -q .; then
        done=1
        break
    fi
    sleep 0.2
done
[ "$done" = 1 ] && ok || bad "the jobs did not finish in 120 s: $(timeout 5 squeue 2>&1 | tail -5)"
q() { sqlite3 "$1" "$2"; }
out="$tmp/repo/results/slurm_test.sqlite"
q "$tmp/all.sqlite" "select config_hash from results order by 1" >"$tmp/h_all"
q "$out" "select config_hash from results where status = 'ok' order by 1" >"$tmp/h_merged" 2>/dev/null
[ -s "$tmp/h_all" ] && cmp -s "$tmp/h_all" "$tmp/h_merged" && ok || bad "merged database != unsharded sweep ($(wc -l <"$tmp/h_merged" 2>/dev/null) of $(wc -l <"$tmp/h_all") configs); logs: $(cat "$tmp"/repo/results/shards/slurm_test/logs/*.out 2>/dev/null | tail -5)"
[ "$(q "$out" "select count(*) from runs" 2>/dev/null)" = 3 ] && ok || bad "the merge keeps one run per shard"
for i in 0 1 2; do
    [ "$(q "$tmp/repo/results/shards/slurm_test/shard_$i.sqlite" "select count(*) from results" 2>/dev/null)" = 4 ] && ok || bad "shard $i ran its 4 configurations: $(q "$tmp/repo/results/shards/slurm_test/shard_$i.sqlite" "select count(*) from results" 2>&1; ls "$tmp/repo/results/shards/slurm_test")"
done
echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
