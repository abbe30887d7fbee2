#!/usr/bin/env bash
# A length curriculum on selective copying: the sequence model seq (D = 64, 2 blocks, head size 16)
# trained at increasing lengths L, each stage starting from the previous stage's weights
# (`mixerlab train --init`; AdamW and the warm-up + cosine schedule start afresh), with the
# recipe of experiments/long_range_target.ini (batch 16, lr 2e-3, weight decay 0.1, no smoothing,
# held-out set of 500 sequences, an evaluation every tenth of a stage). Mixers without position
# parameters carry over between lengths. Prints a line per stage (L, steps, training seconds,
# held-out accuracy at its L, the best evaluation) and the total training seconds; every stage's
# checkpoint, --json result and progress log stay in OUTDIR (stage_K_L_M.*, K the stage's number).
# A stage is L:STEPS, or L:STEPS:M to copy M tokens instead of --tokens (the weights do not depend
# on M either, so a curriculum can grow M too), or L:STEPS:M:LR to give that stage its own peak
# learning rate instead of --lr. --clip-grad N clips every stage's gradient norm to N. --init W
# starts the first stage from W's weights (e.g. a stage of an earlier curriculum) instead of timm's
# initialisation. --keys K appends model override keys to every stage's model (e.g. init=torch:
# PyTorch's default initialisation instead of timm's; README, "Sequence tasks").
#   usage: scripts/long_range_curriculum.sh [--bin build/mixerlab] [--mixer ssm] [--keys K] [--tokens 16]
#          [--stages 128:3000:4,128:2000:8,256:2000,512:2000,1024:3000] [--lr 2e-3] [--clip-grad N]
#          [--init W.safetensors] [--seed 0] [--threads 2] OUTDIR
set -euo pipefail
bin=build/mixerlab
mixer=ssm
tokens=16
stages=128:3000:4,128:2000:8,256:2000,512:2000,1024:3000
seed=0
threads=2
lr=2e-3
clip=()
init=()
keys=
outdir=
while [ $# -gt 0 ]; do
    case $1 in
        --bin|--mixer|--keys|--tokens|--stages|--seed|--threads|--lr|--clip-grad|--init)
            [ $# -ge 2 ] || { echo "long_range_curriculum.sh: $1 needs a value (see --help)" >&2; exit 2; }
            case $1 in
                --bin) bin=$2 ;; --mixer) mixer=$2 ;; --keys) keys=$2 ;; --tokens) tokens=$2 ;;
                --stages) stages=$2 ;; --seed) seed=$2 ;; --threads) threads=$2 ;;
                --lr) lr=$2 ;; --clip-grad) clip=(--clip-grad "$2") ;;
                --init) init=(--init "$2") ;;
            esac
            shift ;;
        -h|--help) sed -n 2,18p "$0"; exit 0 ;;
        -*) echo "long_range_curriculum.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
        *) [ -z "$outdir" ] || { echo "long_range_curriculum.sh: one OUTDIR, not '$outdir' and '$1'" >&2; exit 2; }
           outdir=$1 ;;
    esac
    shift
done
[ -n "$outdir" ] || { echo "long_range_curriculum.sh: give an OUTDIR (see --help)" >&2; exit 2; }
[ -x "$bin" ] || { echo "long_range_curriculum.sh: no executable at $bin (build first, or --bin)" >&2; exit 1; }
mkdir -p "$outdir"
num='[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?'
stage="[0-9]+:[0-9]+(:[0-9]+(:$num)?)?"
[[ $stages =~ ^$stage(,$stage)*$ ]] ||
    { echo "long_range_curriculum.sh: --stages '$stages': want LEN:STEPS, LEN:STEPS:TOKENS or LEN:STEPS:TOKENS:LR joined by ','" >&2; exit 2; }
json() { sed -n "s/.*\"$2\":	\([0-9.e+-]*\).*/\1/p" "$1" | head -1; }

total=0
k=0
printf '%-6s %-4s %-6s %-8s %-8s %-10s %-8s\n' L M steps lr train_s accuracy% best%
for st in ${stages//,/ }; do
    IFS=: read -r L steps M slr <<<"$st"
    M=${M:-$tokens}
    slr=${slr:-$lr}
    k=$((k + 1))
    base="$outdir/stage_${k}_${L}_$M"
    "$bin" train --model "seq:head_size=16,mixer=$mixer${keys:+,$keys}" \
        --data "selective-copying:seq_len=$L,tokens=$M,vocab=16,test=500" --steps "$steps" \
        --eval-every $(( steps / 10 > 0 ? steps / 10 : 1 )) --batch 16 --lr "$slr" --weight-decay 0.1 \
        --smoothing 0 --seed "$seed" --threads "$threads" "${clip[@]}" "${init[@]}" --out "$base.safetensors" --json \
        >"$base.json" 2>"$base.log" || { echo "long_range_curriculum.sh: stage $k (L=$L, M=$M) failed: $(tail -1 "$base.log")" >&2; exit 1; }
    s=$(json "$base.json" train_seconds)
    evals=$(sed -n 's/.*test accuracy \([0-9.]*\)%.*/\1/p' "$base.log") # as train rounds them
    a=$(tail -1 <<<"$evals")
    best=$(sort -g <<<"$evals" | tail -1)
    total=$(awk -v t="$total" -v s="$s" 'BEGIN { print t + s }')
    printf '%-6s %-4s %-6s %-8s %-8.1f %-10s %-8s\n' "$L" "$M" "$steps" "$slr" "$s" "${a:-?}" "${best:-?}"
    init=(--init "$base.safetensors")
done
printf 'total training: %.0f s (%s, seed %s, %s threads)\n' "$total" "$mixer" "$seed" "$threads"
