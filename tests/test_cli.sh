#!/usr/bin/env bash
# The CLI on bad input: every case must exit with its documented code, print
# one 'mixerlab: error:' line naming the problem, and never crash (a signal
# would give an exit status >= 128; sanitizer reports fail the run too).
# usage: test_cli.sh PATH/TO/mixerlab FIXTURE_DIR
set -u
bin=$1
fx=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
passes=0

# expect CODE NEEDLE -- ARGS...: exit code CODE and NEEDLE in stderr
expect() {
    local code=$1 needle=$2
    shift 3
    "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ "$rc" -ne "$code" ] || { [ -n "$needle" ] && ! grep -qF -- "$needle" "$tmp/err"; }; then
        echo "FAIL: mixerlab $* -> exit $rc (want $code), stderr:"
        sed 's/^/    /' "$tmp/err" | head -5
        echo "    (wanted to see: $needle)"
        fails=$((fails + 1))
    elif [ "$code" -ne 0 ] && [ "$(grep -c 'mixerlab: error:' "$tmp/err")" -ne 1 ]; then
        echo "FAIL: mixerlab $* -> not exactly one error line:"
        sed 's/^/    /' "$tmp/err" | head -5
        fails=$((fails + 1))
    else
        passes=$((passes + 1))
    fi
}

# bad files, made here
printf 'abc' >"$tmp/short.safetensors"
printf '\xff\xff\xff\x00\x00\x00\x00\x00{}' >"$tmp/pastend.safetensors"
printf '\x08\x00\x00\x00\x00\x00\x00\x00{"x": [1' >"$tmp/garbage.safetensors"
head -c 5000 "$fx/mambaout_test_weights.safetensors" >"$tmp/truncated.safetensors"
w="$fx/mambaout_test_weights.safetensors"
x64="$fx/mambaout_test_r64.safetensors"

# usage errors: exit 2
expect 2 "no command given" --
expect 2 "unknown command 'frobnicate'" -- frobnicate
expect 2 "unknown model 'mambaout_huge'" -- info mambaout_huge
expect 2 "known: mambaout_femto" -- info nosuchmodel
expect 2 "MODEL is required" -- info
expect 2 "--res: 0 is out of range" -- info mambaout_femto --res 0
expect 2 "--res: -224 is out of range" -- info mambaout_femto --res -224
expect 2 "--res: 5000 is out of range" -- info mambaout_femto --res 5000
expect 2 "--res: 'abc' is not an integer" -- info mambaout_femto --res abc
expect 2 "--res: '224x' is not an integer" -- info mambaout_femto --res 224x
expect 2 "--batch: 0 is out of range" -- info mambaout_femto --batch 0
expect 2 "--res needs a value" -- info mambaout_femto --res
expect 2 "unknown convention 'flops'" -- info mambaout_femto --macs flops
expect 2 "unknown option '--bogus'" -- info mambaout_femto --bogus
expect 2 "--model is required" -- forward --res 64
expect 2 "unknown model" -- forward --model resnet50
expect 2 "--threads: 0 is out of range" -- forward --model mambaout_test --threads 0
expect 2 "--seed: '-1' is not a non-negative integer" -- forward --model mambaout_test --seed -1
expect 2 "--input fixes the size" -- forward --model mambaout_test --input "$x64" --res 64
expect 2 "unknown option '--frobs'" -- bench-cpu --frobs 1
expect 2 "unknown model" -- bench-cpu --models mambaout_femto,nope
# files that cannot be read: exit 3
expect 3 "cannot open '$tmp/missing.safetensors'" -- forward --model mambaout_test --weights "$tmp/missing.safetensors" --res 32
expect 3 "not a regular file" -- forward --model mambaout_test --weights "$tmp" --res 32
expect 3 "cannot open '$tmp/none.safetensors'" -- forward --model mambaout_test --input "$tmp/none.safetensors"
expect 3 "cannot write '$tmp/no/dir/y.safetensors'" -- forward --model mambaout_test --res 32 --repeat 0 --output "$tmp/no/dir/y.safetensors"
# files with bad contents: exit 4, naming the file (and the tensor)
expect 4 "short.safetensors': truncated" -- forward --model mambaout_test --weights "$tmp/short.safetensors" --res 32
expect 4 "header length 16777215 is past the end" -- forward --model mambaout_test --weights "$tmp/pastend.safetensors" --res 32
expect 4 "header is not a valid JSON object" -- forward --model mambaout_test --weights "$tmp/garbage.safetensors" --res 32
expect 4 "truncated.safetensors" -- forward --model mambaout_test --weights "$tmp/truncated.safetensors" --res 32
expect 4 "tensor 'stem.conv1.weight' has shape [8, 3, 3, 3], expected [24, 3, 3, 3]" -- forward --model mambaout_femto --weights "$w" --res 32
expect 4 "missing tensor 'stem.conv1.weight'" -- forward --model mambaout_test --weights "$fx/dtypes.safetensors" --res 32
expect 4 "missing tensor 'input'" -- forward --model mambaout_test --input "$w"
# hand-made files: an input of the wrong shape, a batch too small to be an image
mkst() { # mkst FILE JSON DATA_BYTES
    local json=$2 n=${#2}
    printf "$(printf '\\x%02x\\x%02x\\x00\\x00\\x00\\x00\\x00\\x00' $((n & 255)) $((n >> 8)))" >"$1"
    printf '%s' "$json" >>"$1"
    head -c "$3" /dev/zero >>"$1"
}
mkst "$tmp/in1000.safetensors" '{"input":{"dtype":"F32","shape":[1,1000],"data_offsets":[0,4000]}}' 4000
expect 4 "tensor 'input' has shape [1, 1000], expected [B, 3, H, W]" -- forward --model mambaout_test --input "$tmp/in1000.safetensors"
mkst "$tmp/in8.safetensors" '{"input":{"dtype":"F32","shape":[1,3,8,8],"data_offsets":[0,768]}}' 768
expect 4 "H and W must be 32..4096" -- forward --model mambaout_test --input "$tmp/in8.safetensors"
mkst "$tmp/i64.safetensors" '{"input":{"dtype":"I64","shape":[1,3,32,32],"data_offsets":[0,24576]}}' 24576
expect 4 "has dtype I64; only F32, F16 and BF16" -- forward --model mambaout_test --input "$tmp/i64.safetensors"
mkst "$tmp/off.safetensors" '{"input":{"dtype":"F32","shape":[1,3,32,32],"data_offsets":[0,12288]}}' 100
expect 4 "lie outside the 100 data bytes" -- forward --model mambaout_test --input "$tmp/off.safetensors"

# --help everywhere, exit 0
for c in info forward bench-cpu list; do
    expect 0 "" -- "$c" --help
done
expect 0 "" -- --help
expect 0 "" -- --version

# things that work
expect 0 "" -- forward --model mambaout_test --weights "$w" --input "$x64" --output "$tmp/y.safetensors" --repeat 1
if ! grep -q "image 1 top-5" "$tmp/out" || [ ! -s "$tmp/y.safetensors" ]; then
    echo "FAIL: forward with fixture weights printed no top-5 or wrote no logits"
    fails=$((fails + 1))
fi
expect 0 "" -- info mambaout_femto --json
if ! grep -q '"params":[[:space:]]*7304536' "$tmp/out" || ! grep -q '"macs":[[:space:]]*1156177152' "$tmp/out" ||
    ! grep -q '"convention":[[:space:]]*"fvcore"' "$tmp/out"; then
    echo "FAIL: info --json lacks the pinned params/macs/convention"
    fails=$((fails + 1))
fi
expect 0 "" -- info mambaout_base --macs gemm
if ! grep -q "15,794,325,760" "$tmp/out"; then
    echo "FAIL: info --macs gemm for mambaout_base"
    fails=$((fails + 1))
fi

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
