#!/usr/bin/env bash
# results/long_range.md's two summary figures, over several experiments of one database (each a
# sequence length of selective copying): the held-out accuracy against the sequence length L,
# and against the forward's median latency at batch 1, one line per mixer (and position
# embedding). `mixerlab plot` draws the same for one experiment; this joins the small ablation
# (L = 128) and the L = 1,024 target runs, which are separate experiments.
#   usage: scripts/long_range_plot.sh DB OUT_PREFIX EXPERIMENT...
# writes OUT_PREFIX_accuracy_vs_tokens.png, OUT_PREFIX_accuracy_vs_latency.png and OUT_PREFIX.dat
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: scripts/long_range_plot.sh DB OUT_PREFIX EXPERIMENT..." >&2
    exit 2
fi
db=$1 out=$2
shift 2
[ -f "$db" ] || { echo "long_range_plot.sh: no database at $db" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "long_range_plot.sh: needs gnuplot" >&2; exit 1; }
exps=""
for e in "$@"; do
    case $e in *"'"*) echo "long_range_plot.sh: experiment names may not hold a quote" >&2; exit 2 ;; esac
    exps="$exps${exps:+,}'$e'"
done
rows=$(sqlite3 -separator ' ' "$db" "
SELECT r.mixer || CASE WHEN r.model LIKE '%pos_embed=1%' THEN '+pos' ELSE '' END AS series,
       r.tokens, printf('%.2f', r.accuracy_top1), printf('%.4f', r.latency_ms_median)
FROM results r WHERE r.experiment IN ($exps) AND r.status = 'ok' AND r.accuracy_top1 IS NOT NULL
  AND r.id IN (SELECT max(id) FROM results WHERE experiment IN ($exps) GROUP BY experiment, config_hash)
ORDER BY series, r.tokens;")
[ -n "$rows" ] || { echo "long_range_plot.sh: no accuracy rows for $* in $db" >&2; exit 1; }
# one gnuplot data block per series
echo "$rows" | awk 'BEGIN { prev = "" } { if ($1 != prev) { if (prev != "") printf "\n\n"; printf "# %s\n", $1; prev = $1 } print $2, $3, $4 }' > "$out.dat"
titles=$(echo "$rows" | awk '{ print $1 }' | uniq | tr '\n' ' ')
n=$(echo "$titles" | wc -w)
for kind in tokens latency; do
    if [ $kind = tokens ]; then xcol=1 xlab="noise tokens L" xlog="set logscale x 2"; else xcol=3 xlab="forward latency at batch 1, median ms" xlog="set logscale x"; fi
    gnuplot <<EOF
set terminal pngcairo size 900,560
set output "${out}_accuracy_vs_$kind.png"
set title "selective copying: $*" noenhanced font ",10"
$xlog
set xlabel "$xlab"
set ylabel "held-out token accuracy (%)"
set yrange [0:100]
set key outside right top noenhanced
set grid
ptype(i) = 7 + 2 * (int(i / 8) % 4)
plot for [i=0:$n-1] "$out.dat" index i using $xcol:2 with linespoints pt ptype(i) ps 1.3 lc (i % 8 + 1) title word("$titles", i+1)
EOF
done
echo "wrote ${out}_accuracy_vs_tokens.png, ${out}_accuracy_vs_latency.png and $out.dat"
