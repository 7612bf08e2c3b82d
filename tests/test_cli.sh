#!/usr/bin/env bash
# CLI basics: help, unknown commands, info on bad model files, averaging, model files whose
# config asks for more than they hold.
MK=${MK:-build/san/mambakit}
MK_REL=${MK_REL:-build/mambakit}
ok() { if [ "$1" = 0 ]; then echo "PASS cli.$2"; else echo "FAIL cli.$2 $3"; fi; }
$MK --help >/dev/null 2>&1; ok $? help
$MK nonsense >/dev/null 2>&1; [ $? = 2 ]; ok $? unknown_command
# OpenBLAS's kernels (core/linear.c): on a CPU with AVX2 and FMA, mambakit never runs the generic
# Prescott kernels of its own accord (it re-runs itself with OPENBLAS_CORETYPE when the library
# fell back to them: Debian 12's OpenBLAS on an Emerald Rapids Xeon did), and a core the user
# sets stays (no second re-run)
ver=$(env -u OPENBLAS_CORETYPE "$MK_REL" --version 2>&1)
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
    grep -q 'OpenBLAS core ' <<<"$ver" && ! grep -qi 'core prescott' <<<"$ver"; ok $? blas_core_not_generic "$ver"
else
    echo "SKIP cli.blas_core_not_generic: skipped: no AVX2 on this CPU"
fi
ver=$(OPENBLAS_CORETYPE=Prescott "$MK_REL" --version 2>&1)
grep -q 'OpenBLAS core Prescott' <<<"$ver"; ok $? blas_core_user_choice "$ver"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf 'garbage' > "$tmp/bad.mk"
msg=$($MK info "$tmp/bad.mk" 2>&1); rc=$?
[ $rc = 1 ] && grep -q "bad.mk" <<<"$msg"; ok $? info_rejects_garbage "rc=$rc msg=$msg"
$MK info "$tmp/missing.mk" >/dev/null 2>&1; [ $? = 1 ]; ok $? info_missing_file

# average: the uniform mean of two models' weights, checked value by value against awk's
# mean of the two files' float data; refusals for another architecture, another non-training
# config value, an output that is an input, too few inputs
tiny="--steps 2 --selective-only --d-model 8 --layers 1"
$MK train copy $tiny --seed 1 -o "$tmp/a.mkm" >/dev/null 2>&1
$MK train copy $tiny --seed 2 -o "$tmp/b.mkm" >/dev/null 2>&1
msg=$($MK average "$tmp/a.mkm" "$tmp/b.mkm" -o "$tmp/avg.mkm" 2>&1); rc=$?
[ $rc = 0 ] && grep -q "average of 2 selcopy models" <<<"$msg" && grep -q "dropped.*accuracy" <<<"$msg"
ok $? average_runs "rc=$rc msg=$msg"
# a model file without optimiser state ends with its float data, after 64 + 128 x config
# entries + 100 x tensors bytes of header (core/ckpt.h)
nf=$(( $(od -An -v -tu4 -j 52 -N 4 "$tmp/a.mkm") ))   # tensor count
tab=$(( 64 + 128 * $(od -An -v -tu4 -j 48 -N 4 "$tmp/a.mkm") + 100 * nf ))
ra=$(( $(stat -c %s "$tmp/a.mkm") - tab )); rv=$(( $(stat -c %s "$tmp/avg.mkm") - 64 - 128 * $(od -An -v -tu4 -j 48 -N 4 "$tmp/avg.mkm") - 100 * nf ))
[ $ra = $rv ] && [ $ra -gt 1000 ]; ok $? average_same_size "data bytes $ra vs $rv"
flt() { tail -c "$ra" "$1" | od -An -v -tf4 -w4; }
paste <(flt "$tmp/a.mkm") <(flt "$tmp/b.mkm") <(flt "$tmp/avg.mkm") | awk '
  { m = ($1 + $2) / 2; d = $3 - m; if (d < 0) d = -d; s = ($1 < 0 ? -$1 : $1) + ($2 < 0 ? -$2 : $2);
    if (d > 1e-6 * s + 1e-9) bad++;  # od prints 8 digits: the error scales with the inputs
    if ($1 != $2) diff++; n++ }
  END { printf "%d values, %d differ between a and b, %d wrong\n", n, diff, bad; exit !(n > 250 && diff > n / 2 && bad == 0) }' >"$tmp/avg.txt"
ok $? average_values "$(cat "$tmp/avg.txt")"
$MK info "$tmp/avg.mkm" | grep -q "averaged_models *2" && ! $MK info "$tmp/avg.mkm" | grep -q "accuracy"
ok $? average_config "$($MK info "$tmp/avg.mkm" | tr '\n' ' ')"
# info: the file's size, its float count (the data bytes above / 4) and tensor count (from the
# header), in text and in --json; --tensors lists every tensor once
js=$($MK info --json --tensors "$tmp/a.mkm" 2>&1); rc=$?
[ $rc = 0 ] && grep -q "\"bytes\": $(stat -c %s "$tmp/a.mkm")," <<<"$js" && grep -q "\"parameters\": $((ra / 4))," <<<"$js" &&
  grep -q "\"tensors\": $nf," <<<"$js" && [ "$(grep -o '{"name": ' <<<"$js" | wc -l)" = "$nf" ] &&
  grep -q '"config": {"' <<<"$js"
ok $? info_json "rc=$rc nf=$nf ra=$ra $js"
$MK info "$tmp/a.mkm" | head -1 | grep -q "task selcopy, $(stat -c %s "$tmp/a.mkm") bytes, $((ra / 4)) parameters in $nf tensors$"
ok $? info_text_counts "$($MK info "$tmp/a.mkm" | head -1)"
$MK info --bogus "$tmp/a.mkm" >/dev/null 2>&1; [ $? = 2 ]; ok $? info_bad_option
# JSON strings (cli_json_str, shared by every --json): a quote, a backslash and a tab in a file name
odd="$tmp/q\"b\\t$(printf '\t').mkm"
cp "$tmp/a.mkm" "$odd"
$MK info --json "$odd" 2>&1 | grep -qF '"file": "'"$tmp"'/q\"b\\t\u0009.mkm"'; ok $? info_json_escapes "$($MK info --json "$odd" 2>&1 | head -c 200)"
$MK train copy $tiny --d-model 12 -o "$tmp/w.mkm" >/dev/null 2>&1
msg=$($MK average "$tmp/a.mkm" "$tmp/w.mkm" -o "$tmp/x.mkm" 2>&1); rc=$?
[ $rc = 1 ] && grep -q "w.mkm.*not the same architecture" <<<"$msg" && [ ! -e "$tmp/x.mkm" ]
ok $? average_other_arch "rc=$rc msg=$msg"
$MK train copy $tiny --body 40 -o "$tmp/l.mkm" >/dev/null 2>&1
msg=$($MK average "$tmp/a.mkm" "$tmp/l.mkm" -o "$tmp/x.mkm" 2>&1); rc=$?
[ $rc = 1 ] && grep -q "l.mkm: config 'body_len'.*not the same model" <<<"$msg" && [ ! -e "$tmp/x.mkm" ]
ok $? average_other_config "rc=$rc msg=$msg"
cp "$tmp/b.mkm" "$tmp/b2.mkm"
msg=$($MK average "$tmp/a.mkm" "$tmp/b2.mkm" -o "$tmp/b2.mkm" 2>&1); rc=$?
[ $rc = 1 ] && grep -q "may not be one of the inputs" <<<"$msg" && cmp -s "$tmp/b.mkm" "$tmp/b2.mkm"
ok $? average_output_is_input "rc=$rc msg=$msg"
$MK average "$tmp/a.mkm" -o "$tmp/x.mkm" >/dev/null 2>&1; [ $? = 2 ]; ok $? average_one_input
msg=$($MK average "$tmp/a.mkm" "$tmp/bad.mk" -o "$tmp/x.mkm" 2>&1); rc=$?
[ $rc = 1 ] && grep -q "bad.mk" <<<"$msg" && [ ! -e "$tmp/x.mkm" ]; ok $? average_bad_file "rc=$rc msg=$msg"
$MK average --help >/dev/null 2>&1; ok $? average_help
# --weights: an affine combination, here an extrapolation 1.5 a - 0.5 b, checked value by
# value against awk's; then a soup combined with one of its own inputs, which its averaged_models
# record used to refuse (2 avg(a,b) - a gives b back); refusals: weights that do not sum to 1, a count
# other than the models', a list that is not numbers
msg=$($MK average "$tmp/a.mkm" "$tmp/b.mkm" --weights 1.5,-0.5 -o "$tmp/ex.mkm" 2>&1); rc=$?
[ $rc = 0 ] && grep -q "weighted average of 2 selcopy models" <<<"$msg"; ok $? average_weights_runs "rc=$rc msg=$msg"
paste <(flt "$tmp/a.mkm") <(flt "$tmp/b.mkm") <(flt "$tmp/ex.mkm") | awk '
  { m = 1.5 * $1 - 0.5 * $2; d = $3 - m; if (d < 0) d = -d; s = ($1 < 0 ? -$1 : $1) + ($2 < 0 ? -$2 : $2);
    if (d > 2e-6 * s + 1e-9) bad++; if ($1 != $2) diff++; n++ }
  END { printf "%d values, %d differ between a and b, %d wrong\n", n, diff, bad; exit !(n > 250 && diff > n / 2 && bad == 0) }' >"$tmp/ex.txt"
ok $? average_weights_values "$(cat "$tmp/ex.txt")"
$MK info "$tmp/ex.mkm" | grep -q "average_weights *1.5,-0.5"; ok $? average_weights_config "$($MK info "$tmp/ex.mkm" | tr '\n' ' ')"
msg=$($MK average "$tmp/a.mkm" "$tmp/avg.mkm" --weights -1,2 -o "$tmp/back.mkm" 2>&1); rc=$?
[ $rc = 0 ] && $MK info "$tmp/back.mkm" | grep -q "average_weights *-1,2" && paste <(flt "$tmp/b.mkm") <(flt "$tmp/back.mkm") | awk '
  { d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5 * (($1 < 0 ? -$1 : $1) + 1e-3)) bad++; n++ } END { exit !(n > 250 && bad == 0) }'
ok $? average_weights_soup_and_parent "rc=$rc msg=$msg (2 avg(a,b) - a must give b back)"
for bad in "0.5,0.6" "1" "0.5,x" "0.5,,0.5" "nan,1"; do
  msg=$($MK average "$tmp/a.mkm" "$tmp/b.mkm" --weights "$bad" -o "$tmp/x.mkm" 2>&1); rc=$?
  [ $rc = 2 ] && grep -q "weights" <<<"$msg" && [ ! -e "$tmp/x.mkm" ]; ok $? "average_weights_bad.$bad" "rc=$rc msg=$msg"
done

# A model file whose config asks for a far larger model than its tensors hold (a corrupted
# or hand-edited header) is refused by comparing the declared tensors with the file's table
# before anything is allocated: one line naming the file, exit 1, and little memory (run
# under a 1.5 GB address-space limit, which the old allocate-then-compare order broke).
setcfg() { # FILE KEY VALUE: rewrite one value in the fixed-width config records (core/ckpt.h)
    local n i off
    n=$(( $(od -An -v -tu4 -j 48 -N 4 "$1") ))
    for (( i = 0; i < n; i++ )); do
        off=$(( 64 + 128 * i ))
        if [ "$(dd if="$1" bs=1 skip=$off count=32 status=none | tr -d '\0')" = "$2" ]; then
            { printf '%s' "$3"; head -c $(( 96 - ${#3} )) /dev/zero; } |
                dd of="$1" bs=1 seek=$(( off + 32 )) conv=notrunc status=none
            return 0
        fi
    done
    return 1
}
awk 'BEGIN { print "t,v"; for (i = 0; i <= 100000; i++) print i "," (i * 7) % 11 }' > "$tmp/s.csv"
awk 'BEGIN { srand(5); for (b = 0; b < 3; b++) for (i = 0; i < 4; i++) { printf "b%d,%d", b, b % 2;
             for (f = 0; f < 166; f++) printf ",%.2f", rand(); print "" } }' > "$tmp/bags.csv"
# 0.1 s of 16-bit mono silence at 8 kHz: a 44-byte RIFF header and 1600 zero bytes
{ printf 'RIFF\x64\x06\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0\x40\x1f\0\0\x80\x3e\0\0\x02\0\x10\0data\x40\x06\0\0'
  head -c 1600 /dev/zero; } > "$tmp/in.wav"
awk 'BEGIN { srand(3); for (i = 0; i < 300; i++) printf "%.3f %.3f %.3f\n", rand(), rand(), rand() }' > "$tmp/obj.xyz"
$MK_REL forecast "$tmp/s.csv" --horizon 4 --lookback 8 --model dlinear --epochs 1 -q --save-model "$tmp/forecast.mkm" >/dev/null 2>&1
for m in vision enhance mil points; do cp "models/$m.mkm" "$tmp/$m.mkm"; chmod u+w "$tmp/$m.mkm"; done
huge() { # NAME "KEY VALUE ..." COMMAND...
    local name=$1 kv=($2) f="$tmp/$1.mkm" msg rc
    shift 2
    for (( i = 0; i < ${#kv[@]}; i += 2 )); do setcfg "$f" "${kv[i]}" "${kv[i+1]}" || { ok 1 "huge_config_$name" "no key ${kv[i]}"; return; }; done
    msg=$( (ulimit -v 1500000; "$MK_REL" "$@" 2>&1 >/dev/null) ); rc=$?
    [ $rc = 1 ] && [ "$(wc -l <<<"$msg")" = 1 ] && grep -q "^mambakit: $f: model has .* this configuration expects" <<<"$msg" &&
        [ ! -e "$tmp/out.wav" ]
    ok $? "huge_config_$name" "rc=$rc msg=$msg"
}
huge vision "d_model 65536 n_layer 1024 expand 64" classify examples/ankle_boot_0.png --model "$tmp/vision.mkm"
huge mil "d_model 4096 attn_hidden 4096 n_layer 32" mil predict "$tmp/bags.csv" --model "$tmp/mil.mkm"
huge enhance "d_model 1024 n_layer 32" enhance "$tmp/in.wav" -o "$tmp/out.wav" --model "$tmp/enhance.mkm"
huge points "d_model 4096 hidden 4096" points classify "$tmp/obj.xyz" --model "$tmp/points.mkm"
huge forecast "lookback 100000 horizon 100000" forecast "$tmp/s.csv" --model "$tmp/forecast.mkm"
# a config key missing from the enhancer's file (found by fuzz_models): the message names the file
cp models/enhance_stream.mkm "$tmp/nohop.mkm"; chmod u+w "$tmp/nohop.mkm"
off=$(grep -abo 'hop' "$tmp/nohop.mkm" | head -1 | cut -d: -f1)
printf 'xop' | dd of="$tmp/nohop.mkm" bs=1 seek="$off" conv=notrunc status=none
msg=$($MK enhance "$tmp/in.wav" -o "$tmp/out.wav" --stream --model "$tmp/nohop.mkm" 2>&1 >/dev/null); rc=$?
[ $rc = 1 ] && [ "$(wc -l <<<"$msg")" = 1 ] && grep -q "^mambakit: $tmp/nohop.mkm: .*'hop'" <<<"$msg" && [ ! -e "$tmp/out.wav" ]
ok $? enhance_config_key_missing "rc=$rc msg=$msg"

# --device cuda on every domain command. Without a usable GPU (CI) each falls back with a
# notice ("running on the CPU") and must then print exactly what --device cpu prints; on a
# GPU machine the model's numbers must agree with the CPU's to print precision (forecast's
# default S-Mamba, d_state 2 and the norm-free paper block, runs there too since the twentieth
# session: its state is zero-padded to the kernels' 4). A bad device name is a usage error.
nums() { grep -oE '[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?' <<<"$1"; }
same() { # NAME CPU_OUT CUDA_OUT CUDA_ERR
    local rc
    if grep -q "running on the CPU" <<<"$4"; then
        [ "$2" = "$3" ] && [ -n "$2" ]; rc=$?
    else
        paste <(nums "$2") <(nums "$3") | awk 'NF != 2 { bad++ } { d = $1 - $2; if (d < 0) d = -d; b = $1 < 0 ? -$1 : $1
            if (d > 2e-3 + 1e-3 * b) bad++; n++ } END { exit !(n > 0 && !bad) }'; rc=$?
    fi
    ok $rc "device_$1" "cpu: $(head -c 300 <<<"$2") | cuda: $(head -c 300 <<<"$3") | $4"
}
dev() { # NAME COMMAND... : run with --device cpu, then --device cuda, compare
    local name=$1 c g e; shift
    c=$("$MK" "$@" --device cpu 2>/dev/null); g=$("$MK" "$@" --device cuda 2>"$tmp/dev.err"); e=$(cat "$tmp/dev.err")
    same "$name" "$c" "$g" "$e"
}
dev vision classify examples/ankle_boot_0.png --json
dev mil mil predict "$tmp/bags.csv" --json --quiet
dev points points classify "$tmp/obj.xyz" --json
# training: the final loss of a short MambaMIL fit (forward, backward and AdamW through the backbone)
c=$("$MK" mil train "$tmp/bags.csv" -o "$tmp/m_cpu.mkm" --epochs 3 --device cpu 2>&1 | grep -o 'final train loss [0-9.]*')
g=$("$MK" mil train "$tmp/bags.csv" -o "$tmp/m_cuda.mkm" --epochs 3 --device cuda 2>"$tmp/dev.err" | grep -o 'final train loss [0-9.]*')
[ -z "$g" ] && g=$(grep -o 'final train loss [0-9.]*' "$tmp/dev.err")
same mil_train "$c" "$g" "$(grep -v 'final train loss' "$tmp/dev.err")"
awk 'BEGIN { print "t,a,b"; for (i = 0; i < 300; i++) print i "," sin(i / 5) "," cos(i / 7) + i / 300 }' > "$tmp/s2.csv"
dev forecast forecast "$tmp/s2.csv" --horizon 4 --lookback 16 --model smamba --epochs 1 --time-budget 0 -q
# the offline enhancer, on real speech: the CUDA output scored against the CPU output
fsdd=""
for d in ${MAMBAKIT_DATA:+"$MAMBAKIT_DATA"} ../shared/data ../../shared/data /usr/share/datasets; do
    [ -f "$d/fsdd/recordings/0_george_0.wav" ] && { fsdd="$d/fsdd/recordings/0_george_0.wav"; break; }
done
if [ -n "$fsdd" ]; then
    "$MK" enhance "$fsdd" -o "$tmp/e_cpu.wav" --device cpu 2>/dev/null
    msg=$("$MK" enhance "$fsdd" -o "$tmp/e_cuda.wav" --device cuda --reference "$tmp/e_cpu.wav" --json 2>"$tmp/dev.err"); rc=$?
    e=$(cat "$tmp/dev.err")
    if grep -q "running on the CPU" <<<"$e"; then cmp -s "$tmp/e_cpu.wav" "$tmp/e_cuda.wav"
    else [ $rc = 0 ] && awk -v s="$(grep -oE '"output":\{"sisdr_db":[-0-9.]+' <<<"$msg" | grep -oE '[-0-9.]+$')" 'BEGIN { exit !(s > 40) }'; fi
    ok $? device_enhance "rc=$rc $msg $e"
else
    echo "SKIP cli.device_enhance: skipped: no data at ../shared/data/fsdd/recordings/0_george_0.wav"
fi
bad=""
for c in "classify examples/ankle_boot_0.png" "mil predict $tmp/bags.csv" "points classify $tmp/obj.xyz" \
         "forecast $tmp/s2.csv" "enhance $tmp/in.wav -o $tmp/x.wav" "mil train $tmp/bags.csv -o $tmp/x.mkm"; do
    msg=$($MK $c --device tpu 2>&1 >/dev/null); rc=$?
    [ $rc = 2 ] && [ "$(wc -l <<<"$msg")" = 1 ] && grep -q "unknown device 'tpu'" <<<"$msg" && [ ! -e "$tmp/x.wav" ] ||
        bad="$bad [$c: rc=$rc msg=$msg]"
done
[ -z "$bad" ]; ok $? device_bad_name "$bad"
