#!/usr/bin/env bash
# mambakit points: help, bad options (exit 2), bad point files (one line naming the
# file and line, exit 1, no output), classify text and binary forms of the same real
# DALES object identically (--json fields), a tiny train -> eval -> classify round trip.
MK=${MK:-build/san/mambakit}
ok() { if [ "$1" = 0 ]; then echo "PASS points_cli.$2"; else echo "FAIL points_cli.$2 $3"; fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

$MK points --help >/dev/null 2>&1; ok $? help
for c in classify train eval; do
    out=$($MK points $c --help 2>&1); rc=$?
    [ $rc = 0 ] && grep -q "usage: mambakit points $c" <<<"$out"; ok $? "${c}_help" "rc=$rc"
done
$MK points train --help | grep -q -- "--epochs N .*default"; ok $? train_help_defaults
$MK points classify x.xyz --bogus >/dev/null 2>&1; [ $? = 2 ]; ok $? bad_option
$MK points train --epochs 0 >/dev/null 2>&1; [ $? = 2 ]; ok $? bad_epochs
$MK points frobnicate >/dev/null 2>&1; [ $? = 2 ]; ok $? bad_command
$MK points classify >/dev/null 2>&1; [ $? = 2 ]; ok $? no_files

bad() { # name file-content want
    printf "$2" > "$tmp/$1"
    msg=$($MK points classify "$tmp/$1" 2>&1 >"$tmp/out"); rc=$?
    n=$(printf '%s\n' "$msg" | wc -l)
    [ $rc = 1 ] && [ "$n" = 1 ] && grep -q "$1$3" <<<"$msg" && [ ! -s "$tmp/out" ]
    ok $? "bad_$1" "rc=$rc lines=$n msg=$msg"
}
bad two_values.xyz '1 2 3\n4 5\n' ":2: expected 3 finite numbers"
bad four_values.xyz '1 2 3\n4 5 6 7\n' ":2: more than 3 values"
bad nan.xyz '1 2 3\nnan 1 2\n' ":2: expected 3 finite"
bad empty.xyz '# nothing\n\n' ": no points"
bad short.bin '\1\2\3\4\5\6\7\10\11\12\13\14\15' ": 13 bytes is not a positive multiple of 12"
msg=$($MK points classify "$tmp/missing.xyz" 2>&1); [ $? = 1 ] && grep -q "missing.xyz: cannot read" <<<"$msg"
ok $? bad_missing "$msg"

# real data: one DALES test object (108, a building) as binary and as text
idx=""
for d in "$MAMBAKIT_DATA" ../shared/data ../../shared/data /usr/share/datasets; do
    [ -n "$d" ] && [ -f "$d/dales_objects/index.csv" ] && idx="$d/dales_objects/index.csv" && break
done
if [ -z "$idx" ]; then
    echo "SKIP points_cli.real: skipped: no data at dales_objects/index.csv"; exit 0
fi
row=$(grep '^108,' "$idx"); first=$(cut -d, -f4 <<<"$row"); cnt=$(cut -d, -f5 <<<"$row")
dd if="$(dirname "$idx")/points_xyz_f32le.bin" of="$tmp/obj.bin" bs=12 skip="$first" count="$cnt" 2>/dev/null
od -An -v -f -w12 "$tmp/obj.bin" > "$tmp/obj.xyz"
sed -n 1,3p "$tmp/obj.xyz" | tr -s ' ' ',' | sed 's/^,//' > "$tmp/comma.xyz"
# tiny model so the sanitizer build stays quick
$MK points train --epochs 2 --points 64 --tokens 8 --knn 4 --d-model 16 --layers 1 --d-state 4 \
    --hidden 8 -o "$tmp/m.mkm" > "$tmp/train.out" 2>/dev/null
rc=$?; [ $rc = 0 ] && grep -q "test acc" "$tmp/train.out" && [ -s "$tmp/m.mkm" ]; ok $? train "rc=$rc $(cat "$tmp/train.out")"
# --json: the same run (same seed) gives the same model file and one JSON object whose test accuracy
# is the text line's
$MK points train --epochs 2 --points 64 --tokens 8 --knn 4 --d-model 16 --layers 1 --d-state 4 \
    --hidden 8 -o "$tmp/mj.mkm" --json > "$tmp/train.json" 2>/dev/null; rc=$?
tacc=$(grep -o "test acc [0-9.]*" "$tmp/train.out" | awk '{printf "%.4f", $3 / 100}')
[ $rc = 0 ] && grep -q "^{\"model\": \"$tmp/mj.mkm\", \"epochs\": 2, \"params\": [0-9]*, .*\"test_acc\": $tacc, \"test_objects\": 100, " "$tmp/train.json" &&
  cmp -s <(tail -c 4000 "$tmp/m.mkm") <(tail -c 4000 "$tmp/mj.mkm")
ok $? train_json "rc=$rc tacc=$tacc $(cat "$tmp/train.json")"
out=$($MK points eval --model "$tmp/m.mkm" 2>&1); rc=$?
[ $rc = 0 ] && grep -q "test accuracy .* on 100 objects" <<<"$out" && grep -q "^building" <<<"$out"; ok $? eval "rc=$rc"
$MK points eval --model "$tmp/m.mkm" --json | grep -q '"confusion": \[\['; ok $? eval_json
a=$($MK points classify --model "$tmp/m.mkm" --json "$tmp/obj.bin" | sed 's/"file": "[^"]*"//')
b=$($MK points classify --model "$tmp/m.mkm" --json "$tmp/obj.xyz" | sed 's/"file": "[^"]*"//')
[ -n "$a" ] && [ "$a" = "$b" ] && grep -q "\"points\": $cnt, \"class\": \"" <<<"$a" && grep -q '"probs": {"building": ' <<<"$a"
ok $? classify_bin_eq_text "bin=$a text=$b"
$MK points classify --model "$tmp/m.mkm" "$tmp/comma.xyz" | grep -q "(3 points)"; ok $? classify_comma_text
$MK points classify --model "$tmp/nonexistent.mkm" "$tmp/obj.bin" >/dev/null 2>&1; [ $? = 1 ]; ok $? bad_model
# the shipped model on held-out test objects (one per class; run from the repo root)
if [ -f models/points.mkm ]; then
    want=(building car fence pole tree); okall=0; got=""
    for k in 0 1 2 3 4; do
        row=$(grep "^${k}09," "$idx"); first=$(cut -d, -f4 <<<"$row"); cnt=$(cut -d, -f5 <<<"$row")
        dd if="$(dirname "$idx")/points_xyz_f32le.bin" of="$tmp/t$k.bin" bs=12 skip="$first" count="$cnt" 2>/dev/null
        c=$($MK points classify --model models/points.mkm "$tmp/t$k.bin" | cut -f2); got="$got $c"
        [ "$c" = "${want[$k]}" ] || okall=1
    done
    ok $okall shipped_model_test_objects "got:$got"
fi
