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

# a lone mixer: bad names, settings and weights
mx="$fx/mixers"
expect 2 "unknown mixer 'mamba3' (known: dwconv, ssm" -- mixer --name mamba3 --random --channels 8 --res 4x4
expect 2 "--name is required" -- mixer --random --channels 8 --res 4x4
expect 2 "--random needs --channels E and --res HxW" -- mixer --name ssm --random
expect 2 "give --weights and --input, or --random" -- mixer --name ssm --weights "$mx/ssm_a.safetensors"
expect 2 "dwconv: kernel 4 is not allowed" -- mixer --name dwconv --random --channels 8 --res 5x5 --kernel 4
expect 2 "dwconv: kernel 0 is not allowed" -- mixer --name dwconv --random --channels 8 --res 5x5 --kernel 0
expect 2 "ssm: d_state 0 is not allowed" -- mixer --name ssm --random --channels 8 --res 5x5 --d-state 0
expect 2 "head_size 5 does not divide the mixer width E = 8" -- mixer --name attn --random --channels 8 --res 5x5 --head-size 5
expect 2 "--res: '5y5' is not an integer" -- mixer --name ssm --random --channels 8 --res 5y5
expect 4 "missing or malformed tensor 'A_log'" -- mixer --name ssm --weights "$mx/ssm_2d_a.safetensors" --input "$mx/ssm_2d_a.safetensors"
expect 4 "unexpected tensor 'conv1d_b.weight' (not a parameter of ssm)" -- mixer --name ssm --weights "$mx/ssm_bidir_a.safetensors" --input "$mx/ssm_bidir_a.safetensors"
expect 4 "the attn weights have E = 30 but the input has E = 13" -- mixer --name attn --weights "$mx/attn_a.safetensors" --input "$mx/ssm_a.safetensors" --head-size 10
expect 2 "head_size 32 does not divide" -- mixer --name attn --weights "$mx/attn_a.safetensors" --input "$mx/attn_a.safetensors"
# weights whose shapes disagree with each other: x_proj must be [R + 2N, E] = [9, 4]
j='{"conv1d.weight":{"dtype":"F32","shape":[4,1,4],"data_offsets":[0,64]},"conv1d.bias":{"dtype":"F32","shape":[4],"data_offsets":[64,80]},'
j+='"x_proj.weight":{"dtype":"F32","shape":[7,4],"data_offsets":[80,192]},"dt_proj.weight":{"dtype":"F32","shape":[4,1],"data_offsets":[192,208]},'
j+='"dt_proj.bias":{"dtype":"F32","shape":[4],"data_offsets":[208,224]},"A_log":{"dtype":"F32","shape":[4,4],"data_offsets":[224,288]},'
j+='"D":{"dtype":"F32","shape":[4],"data_offsets":[288,304]},"input":{"dtype":"F32","shape":[1,2,3,4],"data_offsets":[304,400]}}'
mkst "$tmp/ssm_bad.safetensors" "$j" 400
expect 4 "tensor 'x_proj.weight' has shape [7, 4], expected [9, 4]" -- mixer --name ssm --weights "$tmp/ssm_bad.safetensors" --input "$tmp/ssm_bad.safetensors"

expect 2 "--device cuda" -- mixer --name ssm --random --channels 8 --res 4x4 --device cuda
expect 2 "--cuda-graph and --cold need --device cuda" -- forward --model mambaout_test --res 32 --cuda-graph
expect 2 "--precision tf32 needs --device cuda" -- forward --model mambaout_test --res 32 --precision tf32
expect 2 "--precision pedantic needs --device cuda" -- forward --model mambaout_test --res 32 --precision pedantic
expect 2 "--precision 'bf16' is not fp32, tf32 or pedantic" -- forward --model mambaout_test --res 32 --precision bf16
expect 2 "--device: unknown device 'tpu'" -- forward --model mambaout_test --res 32 --device tpu

expect 5 "this mixer run (parameters, input, output and workspace) needs" -- mixer --name dwconv --random --channels 4096 --res 65536x65536
expect 5 "mambaout_base at batch 4096, 4096x4096" -- forward --model mambaout_base --res 4096 --batch 4096

# ---- issue 11: hostile input around the parsers ----
# one_line: the last command's stderr is one line with no raw control byte in it
one_line() {
    if [ "$(wc -l <"$tmp/err")" -ne 1 ] || tr -d '\n' <"$tmp/err" | LC_ALL=C grep -q '[[:cntrl:]]'; then
        echo "FAIL: $1: stderr is not one clean line:"
        cat -A "$tmp/err" | head -3 | sed 's/^/    /'
        fails=$((fails + 1))
    else
        passes=$((passes + 1))
    fi
}
# sizes whose product is 2^64 are refused, never wrapped (1 byte allocated, 0 GMACs)
expect 2 "mixer run (B x H x W x E): 65536 x 65536 x 65536 x 65536 is too large" -- mixer --name identity --random --channels 65536 --res 65536x65536 --batch 65536
expect 2 "is too large" -- mixer --name dwconv --random --channels 65536 --res 65536x65536 --batch 65536
expect 2 "is too large" -- mixer --name ssm --random --channels 65536 --res 65536x65536 --batch 65536 --repeat 0
# echoed names escape non-printable bytes: one line whatever the file or argument holds
expect 2 "unknown model 'mambaout\x1b[31m\nx'" -- info "$(printf 'mambaout\033[31m\nx')"
one_line "model name with ESC and newline"
mkst "$tmp/nl.safetensors" '{"input":{"dtype":"F32","shape":[1,1,1,2],"data_offsets":[0,8]},"bad\nname\u001b[2J":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}' 12
expect 4 "unexpected tensor 'bad\nname\x1b[2J'" -- mixer --name identity --weights "$tmp/nl.safetensors" --input "$tmp/nl.safetensors"
one_line "tensor name with newline and ESC"
printf '[experiment]\nname = a\n[grid]\nlev\033]0;x\007el = model\n' >"$tmp/ctl.ini"
expect 2 "ctl.ini:4: unknown key 'lev\x1b]0;x\x07el'" -- sweep "$tmp/ctl.ini" --list
one_line "INI key with escape bytes"
# empty items in a model's overrides
expect 2 "'mambaout_tiny:,,,': empty item in the override list" -- info mambaout_tiny:,,,
expect 2 "empty item in the override list" -- info mambaout_femto:kernel=5,,act=gelu
expect 2 "empty item in the override list" -- info mambaout_femto:kernel=5,
# a safetensors header one byte short would load every tensor one byte off
j='{"input":{"dtype":"F32","shape":[1,3,32,32],"data_offsets":[0,12288]}}   '
n=$((${#j} - 1))
printf "$(printf '\\x%02x\\x00\\x00\\x00\\x00\\x00\\x00\\x00' "$n")" >"$tmp/short1.safetensors"
printf '%s' "$j" >>"$tmp/short1.safetensors"
head -c 12288 /dev/zero >>"$tmp/short1.safetensors"
expect 4 "cover 12288 of the 12289 data bytes" -- forward --model mambaout_test --input "$tmp/short1.safetensors" --repeat 0
# --output onto something that is not a regular file: written in place, never replaced
if [ "$(id -u)" = 0 ] && mknod "$tmp/full" c 1 7 2>/dev/null; then
    expect 3 "cannot write '$tmp/full': No space left on device" -- forward --model mambaout_test --res 32 --repeat 0 --output "$tmp/full"
    [ -c "$tmp/full" ] && passes=$((passes + 1)) || { echo "FAIL: --output replaced a device node"; fails=$((fails + 1)); }
else
    echo "note: cannot make a device node here (not root, or a nodev /tmp): the /dev/full case is not run"
fi
mkfifo "$tmp/fifo"
timeout 20 cat "$tmp/fifo" >"$tmp/fifo.out" &
catpid=$!
expect 0 "" -- forward --model mambaout_test --res 32 --repeat 0 --output "$tmp/fifo"
wait "$catpid"
[ -p "$tmp/fifo" ] && [ "$(wc -c <"$tmp/fifo.out")" -gt 4000 ] && passes=$((passes + 1)) || { echo "FAIL: --output onto a FIFO: not written through it"; fails=$((fails + 1)); }
echo old >"$tmp/real.safetensors"
ln -s real.safetensors "$tmp/link.safetensors"
expect 0 "" -- forward --model mambaout_test --res 32 --repeat 0 --output "$tmp/link.safetensors"
[ -L "$tmp/link.safetensors" ] && [ "$(wc -c <"$tmp/real.safetensors")" -gt 4000 ] && passes=$((passes + 1)) || { echo "FAIL: --output onto a link: the link was replaced"; fails=$((fails + 1)); }
# memory: plans refused before allocating, against what is available
avail_kb=$(sed -n 's/^MemAvailable: *\([0-9]*\) kB/\1/p' /proc/meminfo)
if [ "${avail_kb:-0}" -lt 60000000 ]; then
    expect 5 "(64.00 GiB) but" -- mixer --name attn --random --channels 65536 --res 1x1
    grep -q "are available (" "$tmp/err" && passes=$((passes + 1)) || { echo "FAIL: the memory error names what is available"; fails=$((fails + 1)); }
fi
expect 5 "(weights, activations, workspace, input and output) needs" -- forward --model mambaout_base --res 4096 --batch 4096
# under a cgroup memory limit (v2 memory.max or v1 memory.limit_in_bytes): refused naming the cgroup
cg=""
if [ "$(id -u)" = 0 ]; then
    rel=$(sed -n 's/^0:://p' /proc/self/cgroup)
    v1=$(sed -n 's/^[0-9]*:memory:\(.*\)/\1/p' /proc/self/cgroup)
    if [ -n "$v1" ] && [ -d "/sys/fs/cgroup/memory$v1" ] && mkdir "/sys/fs/cgroup/memory$v1/mixerlab_test_$$" 2>/dev/null; then
        cg="/sys/fs/cgroup/memory$v1/mixerlab_test_$$"
        echo $((64 << 20)) >"$cg/memory.limit_in_bytes" || cg=""
    elif [ -n "$rel" ] && [ -f "/sys/fs/cgroup$rel/cgroup.controllers" ] && mkdir "/sys/fs/cgroup$rel/mixerlab_test_$$" 2>/dev/null; then
        cg="/sys/fs/cgroup$rel/mixerlab_test_$$"
        { echo $((64 << 20)) >"$cg/memory.max"; } 2>/dev/null || { rmdir "$cg"; cg=""; }
    fi
fi
if [ -n "$cg" ]; then
    incg() { sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' incg "$cg" "$@"; }
    incg "$bin" mixer --name attn --random --channels 4096 --res 1x1 >"$tmp/out" 2>"$tmp/err"
    rc=$?
    [ "$rc" = 5 ] && grep -q "needs .* bytes .* are available (cgroup memory" "$tmp/err" && passes=$((passes + 1)) ||
        { echo "FAIL: mixer under a 64 MiB cgroup: exit $rc, $(cat "$tmp/err")"; fails=$((fails + 1)); }
    printf '[experiment]\nname = big\n[grid]\nlevel = mixer\nmixer = %s\ntokens = %s\nwidth = %s\nbatch = 1,2,3,4,5,6,7,8,9,10\nthreads = 1,2,3,4,5,6,7,8,9,10\n' \
        "dwconv,ssm,attn,identity,dwconv,ssm,attn,identity,dwconv,ssm" "$(seq -s, 1 20)" "$(seq -s, 1 20)" >"$tmp/big.ini"
    incg "$bin" sweep "$tmp/big.ini" --list >"$tmp/out" 2>"$tmp/err"
    rc=$?
    [ "$rc" = 5 ] && grep -q "the sweep's configuration table needs" "$tmp/err" && passes=$((passes + 1)) ||
        { echo "FAIL: a 400,000-configuration table under 64 MiB: exit $rc, $(head -c 300 "$tmp/err")"; fails=$((fails + 1)); }
    rmdir "$cg" 2>/dev/null || true
else
    echo "note: no memory cgroup could be made here: the cgroup cases are not run"
fi

# model overrides and the other commands
expect 2 "unknown override key 'depth' (allowed: mixer, kernel" -- info mambaout_femto:depth=3
expect 2 "override mixer=mamba: unknown mixer" -- info mambaout_femto:mixer=mamba
expect 2 "override d_state=abc: want an integer" -- info mambaout_femto:mixer=ssm,d_state=abc
expect 2 "override act=relu: want gelu or silu" -- info mambaout_femto:act=relu
expect 2 "override 'kernel' is not key=value" -- info mambaout_femto:kernel
expect 2 "empty override list" -- info mambaout_femto:
expect 2 "stage 0 (width 48): attn: head_size 32 does not divide the mixer width E = 48" -- info mambaout_femto:mixer=attn
expect 2 "dwconv: kernel 8 is not allowed" -- forward --model mambaout_femto:kernel=8 --res 32
expect 2 "--scan: unknown convention 'mamba'" -- info vim_tiny --scan mamba
expect 2 "table: --res and --seq-len need --ablation" -- table --res 224
expect 2 "the sequence model takes --seq-len, not --res" -- table --ablation seq --res 224
expect 2 "--seq-len is for the sequence model seq" -- table --ablation mambaout_test --seq-len 512
expect 2 "--res: empty item in '64,,128'" -- table --ablation mambaout_femto --res 64,,128
expect 2 "--models: empty item in 'mambaout_femto,'" -- bench-cpu --models mambaout_femto,
expect 2 "--mixers: empty item" -- bench-mixers --mixers ssm,,attn
expect 2 "info: unexpected argument 'extra'" -- info mambaout_femto extra
expect 2 "version: unexpected argument" -- version now
expect 2 "unknown option '--latex'" -- table --latex
expect 2 "unknown model" -- table --ablation resnet50
expect 2 "unknown option '--bogus'" -- bench-mixers --bogus 1
# no GPU here (or no CUDA backend): a usage error that says so
if ! "$bin" --version | grep -q "^device: *NVIDIA\|^device: .*sm_"; then
    expect 2 "CUDA" -- bench-cuda --iters 2
fi

# --help everywhere, exit 0
for c in info forward mixer table bench-cpu bench-mixers bench-runner bench-cuda list sweep export merge plot version; do
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

expect 0 "" -- info vim_tiny --scan localmamba --json
if ! grep -q '"params":[[:space:]]*7148008' "$tmp/out" || ! grep -q '"scan_convention":[[:space:]]*"localmamba"' "$tmp/out"; then
    echo "FAIL: info vim_tiny --scan localmamba --json"
    fails=$((fails + 1))
fi
expect 0 "" -- info vmamba_base --json
grep -q '"params_backbone":[[:space:]]*75227008' "$tmp/out" || { echo "FAIL: info --json params_backbone of vmamba_base"; fails=$((fails + 1)); }
expect 0 "" -- table --csv
if [ "$(grep -c '^mambaout_\|^vim_\|^vmamba_' "$tmp/out")" -ne 10 ]; then
    echo "FAIL: table --csv should list 10 models"
    fails=$((fails + 1))
fi
nmix=$("$bin" list | sed -n '/^mixers:/,$p' | grep -c '^  [a-z]')
expect 0 "" -- table --ablation mambaout_femto --res 64,128 --json
if [ "$nmix" -lt 7 ] || [ "$(grep -c '"mixer":' "$tmp/out")" -ne $((2 * nmix)) ]; then
    echo "FAIL: table --ablation with $nmix registered mixers at 2 resolutions should give $((2 * nmix)) rows"
    fails=$((fails + 1))
fi
expect 0 "" -- mixer --name ssm_2d --weights "$mx/ssm_2d_b.safetensors" --input "$mx/ssm_2d_b.safetensors" --output "$tmp/o.safetensors" --repeat 1
[ -s "$tmp/o.safetensors" ] || { echo "FAIL: mixer wrote no output"; fails=$((fails + 1)); }
# the backward of a lone mixer: a gradient fixture holds the weights, the input and grad_output
gx="$fx/grads/ssm_b.safetensors"
expect 2 "--grad-output needs --output" -- mixer --name ssm --weights "$gx" --input "$gx" --grad-output "$gx"
expect 3 "cannot open '$tmp/nogo.safetensors'" -- mixer --name ssm --weights "$gx" --input "$gx" --grad-output "$tmp/nogo.safetensors" --output "$tmp/g.safetensors"
expect 4 "missing tensor 'grad_output'" -- mixer --name ssm --weights "$gx" --input "$gx" --grad-output "$mx/ssm_a.safetensors" --output "$tmp/g.safetensors"
expect 0 "" -- mixer --name ssm --weights "$gx" --input "$gx" --grad-output "$gx" --output "$tmp/g.safetensors" --repeat 0
for t in output grad_input grad.A_log grad.conv1d.weight; do
    grep -qaF "\"$t\"" "$tmp/g.safetensors" || { echo "FAIL: mixer --grad-output wrote no '$t'"; fails=$((fails + 1)); }
done
# stage widths and depths as overrides: timm's MambaOut(depths=(2,2,4,2), dims=(32,64,128,192), num_classes=10) has 1,736,174
expect 0 "" -- info "mambaout_test:dims=32-64-128-192,depths=2-2-4-2,num_classes=10"
grep -q "1,736,174" "$tmp/out" || { echo "FAIL: dims/depths overrides: not timm's 1,736,174 parameters"; fails=$((fails + 1)); }
expect 2 "this skeleton has 4 stages, not 2" -- info "mambaout_test:dims=32-64"
expect 2 "want 4 integers in 1..16384 joined by '-'" -- info "mambaout_test:dims=32-64-x-1"
expect 2 "want 1 integers in 0..128" -- info "vim_test:depths=200"
# an image model's position embedding is sized by its resolution: the plain shape error, no max_len advice
expect 4 "tensor 'pos_embed' has shape [1, 17, 16], expected [1, 26, 16]" -- forward --model vim_test \
    --weights "$fx/skeletons/vim_test.safetensors" --ignore-unexpected --res 80 --batch 1
grep -q "max_len" "$tmp/err" && { echo "FAIL: vim_test at 80 px: max_len advice for an image model"; fails=$((fails + 1)); }
# the gradients of a whole model (their values: test_model_train, against timm's autograd)
gm="$fx/grads/model_mambaout_test.safetensors"
expect 2 "--weights, --input and --output are required" -- grad --model mambaout_test --input "$gm" --output "$tmp/g.safetensors"
expect 4 "missing tensor 'labels'" -- grad --model mambaout_test --weights "$fx/mambaout_test_weights.safetensors" --input "$fx/mambaout_test_r64.safetensors" --output "$tmp/g.safetensors" --ignore-unexpected
expect 4 "'labels'[0] = 943 is not a class of 0..9" -- grad --model mambaout_test:num_classes=10 --weights "$gm" --input "$fx/grads/model_mambaout_femto.safetensors" --output "$tmp/g.safetensors" --ignore-unexpected
expect 4 "tensor 'head.fc.weight' has shape [10, 192], expected [1000, 192]" -- grad --model mambaout_test --weights "$gm" --input "$gm" --output "$tmp/g.safetensors" --ignore-unexpected
expect 4 "unexpected tensor" -- grad --model mambaout_test:num_classes=10 --weights "$gm" --input "$gm" --output "$tmp/g.safetensors"
expect 0 "" -- grad --model mambaout_test:num_classes=10 --weights "$gm" --input "$gm" --output "$tmp/g.safetensors" --ignore-unexpected
grep -q "loss 2.497334" "$tmp/out" || { echo "FAIL: grad printed no loss 2.497334 (timm's 2.49733520)"; fails=$((fails + 1)); }
expect 0 "" -- forward --model vim_tiny --res 64 --repeat 0
expect 0 "" -- forward --model "vmamba_tiny:d_state=4" --res 64 --repeat 0

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
