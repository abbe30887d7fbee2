#!/usr/bin/env bash
# Memory of one training step of the sequence model seq (two blocks, D = 64, head size 16) on
# selective copying (M = 16 tokens to copy, so L + 16 tokens a sequence), batch 16, against L:
#   - planned: weights + activations + workspace of the forward, plus what the step adds
#     (gradients, AdamW's two moments, what the backward keeps), from `mixerlab info --json`;
#   - measured (with --measure): the peak RSS of a real 3-step `mixerlab train` at each L up to
#     MAX_MEASURE (default 4096), read from GNU time;
#   - for comparison, what attention would hold if its backward kept the softmax matrix, as
#     PyTorch's eager attention does (attn planned + depth 2 x B x 4 heads x (L+16)^2 x 4 bytes):
#     a computed line, not a measurement. Ours keeps one log-sum-exp per query (FlashAttention-2).
# Writes OUT.tsv and OUT.png (gnuplot, log-log), and prints the table.
#   usage: scripts/train_memory_vs_tokens.sh [--measure] [--bin build/mixerlab] [--out results/long_range_train_memory]
set -euo pipefail
bin=build/mixerlab
out=results/long_range_train_memory
measure=0
max_measure=${MAX_MEASURE:-4096}
while [ $# -gt 0 ]; do
    case $1 in
        --measure) measure=1 ;;
        --bin|--out)
            [ $# -ge 2 ] || { echo "train_memory_vs_tokens.sh: $1 needs a value (see --help)" >&2; exit 2; }
            if [ "$1" = --bin ]; then bin=$2; else out=$2; fi
            shift ;;
        -h|--help) sed -n 2,12p "$0"; exit 0 ;;
        *) echo "train_memory_vs_tokens.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -x "$bin" ] || { echo "train_memory_vs_tokens.sh: no executable at $bin (build first, or --bin)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "train_memory_vs_tokens.sh: needs python3 (to read --json)" >&2; exit 1; }
if [ $measure = 1 ] && [ ! -x /usr/bin/time ]; then
    echo "train_memory_vs_tokens.sh: --measure needs GNU time (/usr/bin/time; apt-get install time)" >&2
    exit 1
fi
mixers="dwconv ssm attn identity"
dir=$(dirname "$out")
[ -d "$dir" ] || { echo "train_memory_vs_tokens.sh: no folder '$dir' for --out" >&2; exit 1; }
lens="256 1024 4096 16384"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '# mixer\tL\tplanned_MiB\tmeasured_rss_MiB\n' > "$out.tsv"
for m in $mixers; do
    for L in $lens; do
        n=$((L + 16))
        planned=$("$bin" info "seq:mixer=$m,head_size=16,vocab=16" --seq-len $n --batch 16 --json |
            python3 -c 'import json,sys; j=json.load(sys.stdin); print("%.1f" % ((j["weight_bytes"]+j["activation_bytes"]+j["training_bytes"])/1048576))')
        rss=NaN
        if [ $measure = 1 ] && [ "$L" -le "$max_measure" ]; then
            /usr/bin/time -f '%M' -o "$tmp/rss" "$bin" train --model "seq:mixer=$m,head_size=16" \
                --data "selective-copying:seq_len=$L,tokens=16,vocab=16,test=16" --steps 3 --eval-every 3 \
                --batch 16 --threads 2 --smoothing 0 --out "$tmp/ck.safetensors" > "$tmp/log" 2>&1 ||
                { echo "train_memory_vs_tokens.sh: training $m at L=$L failed:" >&2; tail -3 "$tmp/log" >&2; exit 1; }
            rss=$(awk '{printf "%.1f", $1 / 1024}' "$tmp/rss")
        fi
        printf '%s\t%s\t%s\t%s\n' "$m" "$L" "$planned" "$rss" >> "$out.tsv"
    done
    printf '\n\n' >> "$out.tsv"
done
column -t "$out.tsv" | sed '/^$/d'
if command -v gnuplot >/dev/null; then
    gnuplot <<EOF
set terminal pngcairo size 800,520
set output "$out.png"
set key font ",9"
set title "seq (2 blocks, D=64) training step, batch 16, selective copying M=16" noenhanced
set logscale xy
set xlabel "noise tokens L"
set ylabel "MiB"
set key left top noenhanced
set grid
plot for [i=0:3] "$out.tsv" index i using 2:3 with linespoints lc i+1 pt 7 title word("$mixers", i+1)." planned", \
     "$out.tsv" index 2 using 2:(\$3 + 2*16*4*(\$2+16)**2*4/1048576.0) with lines dt 2 lc 3 title "attn if it kept the L x L softmax (computed)", \
     for [i=0:3] "$out.tsv" index i using 2:4 with points lc i+1 pt 4 ps 1.5 title word("$mixers", i+1)." peak RSS"
EOF
    echo "wrote $out.tsv and $out.png"
else
    echo "wrote $out.tsv (no gnuplot: no picture)"
fi
