#!/usr/bin/env bash
# eval and preprocess on an image folder, against timm's own evaluation of the
# same folder (tests/fixtures/eval, from scripts/make_eval_fixtures.py: timm's
# ImageDataset order, create_transform, MambaOut in float32, validate.py's
# loss and accuracy), and on bad folders and images.
# usage: test_eval_folder.sh PATH/TO/mixerlab FIXTURE_DIR
set -u
bin=$1
fx=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# the folder, as the generator laid it out
while read -r cls f; do
    mkdir -p "$tmp/val/$cls" && cp "$fx/images/$f" "$tmp/val/$cls/$f"
done <"$fx/eval/layout.txt"
want() { awk -v k="$1" '$1 == k { print $2 }' "$fx/eval/expected.txt"; }
model="mambaout_test:num_classes=1000"
w="$fx/mambaout_test_weights.safetensors"

# batch 3 over 7 images: two full batches and a short one
for b in 3 100; do
    if ! "$bin" eval --model "$model" --weights "$w" --data "$tmp/val" --res 64 --batch "$b" --json >"$tmp/e.json" 2>"$tmp/err"; then
        fail "eval --batch $b exited non-zero: $(head -3 "$tmp/err")"
        continue
    fi
    got() { sed -n "s/^[[:space:]]*\"$1\":[[:space:]]*\([^,]*\),*$/\1/p" "$tmp/e.json"; }
    [ "$(got images)" = "$(want images)" ] || fail "batch $b: $(got images) images, timm has $(want images)"
    n=$(want images)
    awk -v t="$(got top1)" -v c="$(want top1)" -v n="$n" 'BEGIN { exit !(t * n > c - 0.5 && t * n < c + 0.5) }' ||
        fail "batch $b: top1 $(got top1), timm counts $(want top1) of $n"
    awk -v t="$(got top5)" -v c="$(want top5)" -v n="$n" 'BEGIN { exit !(t * n > c - 0.5 && t * n < c + 0.5) }' ||
        fail "batch $b: top5 $(got top5), timm counts $(want top5) of $n"
    awk -v a="$(got loss)" -v b="$(want loss)" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-6 * b) }' ||
        fail "batch $b: mean loss $(got loss), timm's $(want loss)"
    echo "eval --batch $b: images $(got images), top1 $(got top1), top5 $(got top5), loss $(got loss) (timm: $(want loss))"
done

# preprocess: timm's tensors and labels (compared by the C test on the same
# folder); here the command, its output's shapes and --limit
if "$bin" preprocess --model mambaout_test --data "$tmp/val" --res 64 --output "$tmp/pp.safetensors" >"$tmp/out" 2>"$tmp/err"; then
    grep -qF "wrote input [7, 3, 64, 64] and labels [7] (3 classes)" "$tmp/out" || fail "preprocess said: $(cat "$tmp/out")"
    "$bin" forward --model mambaout_test:num_classes=1000 --weights "$w" --input "$tmp/pp.safetensors" >"$tmp/fw" 2>"$tmp/err" ||
        fail "forward --input of preprocess's output: $(head -2 "$tmp/err")"
    # each image's predicted class is timm's (the accuracy above is 0 of 7 with these random weights,
    # so the predictions themselves are what can be compared)
    sed -n 's/^image [0-9]* top-5:  \([0-9]*\) .*/\1/p' "$tmp/fw" >"$tmp/argmax"
    awk '$1 == "image" { print $4 }' "$fx/eval/expected.txt" >"$tmp/argmax_timm"
    [ -s "$tmp/argmax" ] && cmp -s "$tmp/argmax" "$tmp/argmax_timm" ||
        fail "predicted classes $(tr '\n' ' ' <"$tmp/argmax") are not timm's $(tr '\n' ' ' <"$tmp/argmax_timm")"
else
    fail "preprocess exited non-zero: $(head -3 "$tmp/err")"
fi
"$bin" preprocess --model mambaout_test --data "$tmp/val" --res 32 --limit 2 --output "$tmp/p2.safetensors" >"$tmp/out" 2>&1 &&
    grep -qF "wrote input [2, 3, 32, 32]" "$tmp/out" || fail "preprocess --limit 2: $(cat "$tmp/out")"

# expect CODE NEEDLE ARGS...: exit code and one error line naming the problem
expect() {
    local code=$1 needle=$2
    shift 2
    "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ "$rc" -ne "$code" ] || ! grep -qF -- "$needle" "$tmp/err"; then
        fail "mixerlab $* -> exit $rc (want $code), stderr: $(head -3 "$tmp/err") (wanted: $needle)"
    elif [ "$code" -ne 0 ] && [ "$(grep -c 'mixerlab: error:' "$tmp/err")" -ne 1 ]; then
        fail "mixerlab $* -> not exactly one error line: $(head -3 "$tmp/err")"
    fi
}
mkdir -p "$tmp/flat" && cp "$fx/images/china.jpg" "$tmp/flat/"
expect 2 "flat" eval --model mambaout_test --data "$tmp/flat"
mkdir -p "$tmp/emptycls/a" "$tmp/emptycls/b" && cp "$fx/images/china.jpg" "$tmp/emptycls/a/"
expect 2 "emptycls/b" eval --model mambaout_test --data "$tmp/emptycls"
expect 3 "nonexistent" eval --model mambaout_test --data "$tmp/nonexistent"
expect 2 "key=value" eval --model mambaout_test --data folder:
expect 2 "unknown key 'limit'" eval --model mambaout_test --data folder:limit=3
expect 2 "interpolation" eval --model mambaout_test --data "$tmp/val" --interpolation lanczos
expect 2 "--crop-pct" eval --model mambaout_test --data "$tmp/val" --crop-pct 0
expect 2 "image folder" preprocess --model mambaout_test --data fashion-mnist --output "$tmp/x.safetensors"
# bad images: one-line errors naming the file, or with --skip-bad a warning and a count
for bad in bad_truncated.jpg bad_text.jpg bad_crc.png bad_huge.png; do
    rm -rf "$tmp/b" && cp -r "$tmp/val" "$tmp/b" && cp "$fx/images/$bad" "$tmp/b/c9/$bad"
    expect 4 "$bad" eval --model "$model" --weights "$w" --data "$tmp/b" --res 64 --batch 3
    "$bin" eval --model "$model" --weights "$w" --data "$tmp/b" --res 64 --batch 3 --skip-bad --json >"$tmp/e.json" 2>"$tmp/err" ||
        fail "eval --skip-bad with $bad exited non-zero: $(head -2 "$tmp/err")"
    grep -q '"skipped":[[:space:]]*1,' "$tmp/e.json" || fail "eval --skip-bad with $bad: not one skipped: $(cat "$tmp/e.json")"
    grep -q '"images":[[:space:]]*7,' "$tmp/e.json" || fail "eval --skip-bad with $bad: not 7 images counted"
    grep -qF "$bad" "$tmp/err" || fail "eval --skip-bad with $bad: no warning naming it"
    "$bin" preprocess --model mambaout_test --data "$tmp/b" --res 32 --skip-bad --output "$tmp/s.safetensors" >"$tmp/out" 2>&1 &&
        grep -qF "wrote input [7, 3, 32, 32]" "$tmp/out" || fail "preprocess --skip-bad with $bad: $(head -2 "$tmp/out")"
done
# an unreadable image: a dangling link (unreadable even as root)
rm -rf "$tmp/u" && cp -r "$tmp/val" "$tmp/u" && ln -s "$tmp/nonexistent.jpg" "$tmp/u/c9/gone.jpg"
expect 3 "gone.jpg" eval --model "$model" --weights "$w" --data "$tmp/u" --res 64
# nothing left to evaluate once the bad images are skipped: an error, not 0 of 0
mkdir -p "$tmp/allbad/x" && cp "$fx/images/bad_text.jpg" "$tmp/allbad/x/"
expect 4 "no image" eval --model "$model" --weights "$w" --data "$tmp/allbad" --res 64 --skip-bad
expect 4 "no image" preprocess --model mambaout_test --data "$tmp/allbad" --res 32 --skip-bad --output "$tmp/x.safetensors"

# training on a folder (the same images as the training split, through the training transform):
# it runs, twice to the same bytes, and a folder without a training split is refused
for k in 1 2; do
    "$bin" train --model mambaout_test --data "folder:dir=$tmp/val,train=$tmp/val" --res 32 --batch 2 --epochs 2 \
        --quiet --out "$tmp/t$k.safetensors" >"$tmp/out" 2>"$tmp/err" || fail "train on a folder: $(head -2 "$tmp/err")"
done
cmp -s "$tmp/t1.safetensors" "$tmp/t2.safetensors" || fail "two trainings on a folder differ"
expect 2 "has no training split" train --model mambaout_test --data "$tmp/val" --res 32 --batch 2 --out "$tmp/t3.safetensors"
mkdir -p "$tmp/other/only"
cp "$fx/images/g_tiny.png" "$tmp/other/only/"
expect 2 "have different classes" train --model mambaout_test --data "folder:dir=$tmp/val,train=$tmp/other" --res 32 \
    --batch 1 --out "$tmp/t3.safetensors"

if [ "$fails" -ne 0 ]; then
    echo "$fails failure(s)"
    exit 1
fi
echo "all image-folder checks passed"
