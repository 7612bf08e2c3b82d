#!/usr/bin/env bash
# CLI basics: help, unknown commands, info on bad model files.
MK=${MK:-build/san/mambakit}
ok() { if [ "$1" = 0 ]; then echo "PASS cli.$2"; else echo "FAIL cli.$2 $3"; fi; }
$MK --help >/dev/null 2>&1; ok $? help
$MK nonsense >/dev/null 2>&1; [ $? = 2 ]; ok $? unknown_command
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
