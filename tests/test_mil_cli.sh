#!/usr/bin/env bash
# mambakit mil: help, bad input (one line naming file and line, exit 1, no
# model written), train -> predict (--json fields, attention sums to 1, --plot
# PNG), CSV <-> binary conversion gives identical predictions, cross-validation,
# and learning: a model trained on synthetic bags must classify fresh bags.
MK=${MK:-build/san/mambakit}
ok() { if [ "$1" = 0 ]; then echo "PASS mil_cli.$2"; else echo "FAIL mil_cli.$2 $3"; fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
small="--d-model 16 --attn-hidden 16 --d-state 4 --quiet"

$MK mil --help >/dev/null 2>&1; ok $? help
out=$($MK mil train --help 2>&1); rc=$?
[ $rc = 0 ] && grep -q -- "--model-type" <<<"$out" && grep -q -- "--folds" <<<"$out" && grep -q "default" <<<"$out"
ok $? train_help "rc=$rc"
$MK mil predict --help >/dev/null 2>&1; ok $? predict_help
$MK mil train x.csv --bogus 1 >/dev/null 2>&1; [ $? = 2 ]; ok $? bad_option
$MK mil train x.csv --model-type lstm -o m >/dev/null 2>&1; [ $? = 2 ]; ok $? bad_model_type
$MK mil frobnicate >/dev/null 2>&1; [ $? = 2 ]; ok $? bad_command

# bad input: exit 1, exactly one line naming the file and the line, no model file
bad() { # name content want
    printf "$2" > "$tmp/$1.csv"
    msg=$($MK mil train "$tmp/$1.csv" -o "$tmp/$1.mkm" 2>&1); rc=$?
    n=$(printf '%s\n' "$msg" | wc -l)
    [ $rc = 1 ] && [ "$n" = 1 ] && grep -q "$1.csv: $3" <<<"$msg" && [ ! -e "$tmp/$1.mkm" ]
    ok $? "bad_$1" "rc=$rc lines=$n msg=$msg"
}
bad missing_label 'bag_id,label,f1,f2\na,0,1,2\nb,,1,2\n' "line 3: missing label"
bad feature_count 'a,0,1,2\na,0,1,2\nb,1,1\n' "line 3: 1 features, expected 2"
bad label_not_01 'a,0,1\nb,3,1\n' "line 2: label 3 is not 0 or 1"
bad nan_feature 'a,0,1,2\nb,1,1,NaN\n' "line 2: feature 2 is NaN"
bad no_bags 'bag_id,label,f1\n' "no bags"
$MK mil synth --bags 2 --length 3 --features 2 -o "$tmp/e.bin" 2>/dev/null
printf '\0\0\0\0\0\0\0\0' | dd of="$tmp/e.bin" bs=1 seek=32 conv=notrunc 2>/dev/null
msg=$($MK mil train "$tmp/e.bin" -o "$tmp/e.mkm" 2>&1); rc=$?
[ $rc = 1 ] && grep -q "e.bin: bag 1 ('1') is empty" <<<"$msg" && [ ! -e "$tmp/e.mkm" ]
ok $? bad_empty_bag_binary "rc=$rc msg=$msg"
msg=$($MK mil train "$tmp/nonexistent.csv" -o "$tmp/n.mkm" 2>&1); [ $? = 1 ] && grep -q "cannot open" <<<"$msg"
ok $? bad_missing_file "$msg"

# train / predict on synthetic bags: 40 bags of 30 instances, 3 key instances per positive bag
$MK mil synth --bags 40 --length 30 --features 8 --keys 3 --seed 1 -o "$tmp/tr.csv" 2>/dev/null
$MK mil synth --bags 40 --length 30 --features 8 --keys 3 --seed 2 -o "$tmp/te.csv" 2>/dev/null
$MK mil train "$tmp/tr.csv" -o "$tmp/m.mkm" $small --epochs 15 --lr 2e-3 --stride 4 2>/dev/null
ok $? train_saves
$MK mil predict "$tmp/te.csv" --model "$tmp/m.mkm" --json --plot "$tmp/att.png" > "$tmp/p.jsonl" 2>/dev/null
rc=$?
lines=$(wc -l < "$tmp/p.jsonl")
[ $rc = 0 ] && [ "$lines" = 40 ] && grep -c '"bag":"[0-9]*","probability":[0-9.e-]*,"label":[01],"true_label":[01],"instances":30,"attention":\[' "$tmp/p.jsonl" | grep -q '^40$'
ok $? predict_json_fields "rc=$rc lines=$lines: $(head -c 200 "$tmp/p.jsonl")"
# attention of every bag has 30 entries summing to 1
awk -F'"attention":\\[' '{ sub(/\]\}$/, "", $2); n = split($2, a, ","); s = 0; for (i = 1; i <= n; i++) s += a[i];
     if (n != 30 || s < 0.999 || s > 1.001) bad++ } END { exit bad > 0 }' "$tmp/p.jsonl"
ok $? attention_sums_to_1
acc=$(awk -F'"label":|,"true_label":|,"instances"' '{ if ($2 == $3) c++ } END { printf "%.3f", c / NR }' "$tmp/p.jsonl")
awk -v a="$acc" 'BEGIN { exit !(a >= 0.8) }'; ok $? learns_synthetic "held-out accuracy $acc (need >= 0.8, chance 0.5)"
[ "$(head -c 8 "$tmp/att.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]; ok $? plot_png
# the auxiliary exit: --aux-mix alone is refused before training; with --aux the model file
# keeps it, and predict gives the mixed probability (it differs from h's exit alone)
msg=$($MK mil train "$tmp/tr.csv" -o "$tmp/x.mkm" $small --epochs 1 --aux-mix 2>&1); rc=$?
[ $rc != 0 ] && [ ! -e "$tmp/x.mkm" ] && grep -q "aux_mix needs an auxiliary exit" <<<"$msg"
ok $? aux_mix_needs_aux "rc=$rc msg=$msg"
$MK mil train "$tmp/tr.csv" -o "$tmp/ax.mkm" $small --epochs 3 --lr 2e-3 --stride 4 --aux 1 --aux-mix 2>/dev/null &&
  $MK info "$tmp/ax.mkm" 2>&1 | grep -q "aux_mix.*1" &&
  $MK mil predict "$tmp/te.csv" --model "$tmp/ax.mkm" --json 2>/dev/null | grep -c '"probability"' | grep -q '^40$'
ok $? aux_train_predict
# --attend e: the model file keeps it, predict's attention still sums to 1; a bad value is refused
$MK mil train "$tmp/tr.csv" -o "$tmp/ae.mkm" $small --epochs 3 --lr 2e-3 --stride 4 --attend e 2>/dev/null &&
  $MK info "$tmp/ae.mkm" 2>&1 | grep -qE "^ *attend +e$" &&
  $MK mil predict "$tmp/te.csv" --model "$tmp/ae.mkm" --json 2>/dev/null > "$tmp/pae.jsonl" &&
  awk -F'"attention":\\[' '{ sub(/\]\}$/, "", $2); n = split($2, a, ","); s = 0; for (i = 1; i <= n; i++) s += a[i];
     if (n != 30 || s < 0.999 || s > 1.001) bad++ } END { exit bad > 0 || NR != 40 }' "$tmp/pae.jsonl"
ok $? attend_e_train_predict
msg=$($MK mil train "$tmp/tr.csv" -o "$tmp/ax2.mkm" --attend x 2>&1); rc=$?
[ $rc = 2 ] && [ ! -e "$tmp/ax2.mkm" ] && grep -q -- "--attend: 'x'" <<<"$msg"
ok $? attend_bad_value "rc=$rc msg=$msg"
# --gate-l1: trains and predicts; a negative value is refused before training
$MK mil train "$tmp/tr.csv" -o "$tmp/gl.mkm" $small --epochs 2 --lr 2e-3 --stride 4 --gate-l1 0.5 2>/dev/null &&
  $MK mil predict "$tmp/te.csv" --model "$tmp/gl.mkm" --json 2>/dev/null | grep -c '"probability"' | grep -q '^40$'
ok $? gate_l1_train_predict
msg=$($MK mil train "$tmp/tr.csv" -o "$tmp/gl2.mkm" --gate-l1 -1 2>&1); rc=$?
[ $rc = 2 ] && [ ! -e "$tmp/gl2.mkm" ] && grep -q -- "--gate-l1" <<<"$msg"
ok $? gate_l1_bad_value "rc=$rc msg=$msg"

# conversion: binary and CSV give the same predictions; unlabeled bags predict
$MK mil convert "$tmp/te.csv" -o "$tmp/te.bin" 2>/dev/null && $MK mil convert "$tmp/te.bin" -o "$tmp/te2.csv" 2>/dev/null
ok $? convert
$MK mil predict "$tmp/te.bin" --model "$tmp/m.mkm" > "$tmp/p1.txt" 2>/dev/null
$MK mil predict "$tmp/te2.csv" --model "$tmp/m.mkm" > "$tmp/p2.txt" 2>/dev/null
[ -s "$tmp/p1.txt" ] && cmp -s "$tmp/p1.txt" "$tmp/p2.txt"; ok $? convert_same_predictions
sed 's/^\([^,]*\),[01],/\1,?,/' "$tmp/te2.csv" > "$tmp/unl.csv"
out=$($MK mil predict "$tmp/unl.csv" --model "$tmp/m.mkm" 2>/dev/null); rc=$?
[ $rc = 0 ] && [ "$(wc -l <<<"$out")" = 40 ] && ! grep -q true <<<"$out"; ok $? predict_unlabeled "rc=$rc"
printf 'a,0,1,2\n' > "$tmp/f2.csv"
msg=$($MK mil predict "$tmp/f2.csv" --model "$tmp/m.mkm" 2>&1); [ $? = 1 ] && grep -q "2 features per instance, but the model" <<<"$msg"
ok $? predict_feature_mismatch "$msg"

# cross-validation prints mean +- std accuracy and AUC; baselines run in the same harness
out=$($MK mil train "$tmp/tr.csv" --folds 3 --repeats 2 --model-type gated $small --epochs 3 2>&1); rc=$?
[ $rc = 0 ] && grep -q "accuracy 0\.[0-9]* ± 0\.[0-9]*   AUC" <<<"$out"; ok $? cv_output "rc=$rc $out"
for t in abmil mean max; do
    $MK mil train "$tmp/tr.csv" --folds 2 --model-type $t $small --epochs 2 --json 2>/dev/null | grep -q '"auc_mean"'
    ok $? "cv_$t"
done
$MK mil train "$tmp/tr.csv" --folds 2 $small --epochs 2 --shuffle-instances --json 2>/dev/null | grep -q '"auc_mean"'
ok $? cv_shuffle_instances
# --order score: the model reads each bag as a set, so a file with every bag's rows reversed
# gives the same probabilities (printed to 4 digits); with the natural order they move
$MK mil train x.csv --order sideways -o "$tmp/o.mkm" >/dev/null 2>&1; [ $? = 2 ]; ok $? bad_order
(head -1 "$tmp/tr.csv"; tail -n +2 "$tmp/tr.csv" | tac) > "$tmp/tr_rev.csv"
same=()
for o in score natural; do
    $MK mil train "$tmp/tr.csv" -o "$tmp/o_$o.mkm" $small --epochs 8 --lr 2e-3 --stride 4 --order $o 2>/dev/null
    $MK mil predict "$tmp/tr.csv" --model "$tmp/o_$o.mkm" 2>/dev/null | sort > "$tmp/p1"
    $MK mil predict "$tmp/tr_rev.csv" --model "$tmp/o_$o.mkm" 2>/dev/null | sort > "$tmp/p2"
    [ -s "$tmp/p1" ] && cmp -s "$tmp/p1" "$tmp/p2"; same+=($?)
done
[ "${same[0]}" = 0 ] && [ "${same[1]}" != 0 ] && $MK info "$tmp/o_score.mkm" | grep -q "order  *score"
ok $? order_score_set "score order: rows reversed give the same output (${same[0]} = 0), natural: they move (${same[1]} != 0)"
# bench mil: the first two models are compared repeat by repeat (same folds, seeds, shared init)
out=$($MK bench mil --sets musk1 --folds 2 --repeats 2 --no-long --fmnist-runs 0 --models mamba,abmil,mean \
      --d-model 16 --attn-hidden 16 --d-state 4 --epochs 2 --json 2>&1); rc=$?
if grep -q "skipping musk1: not found" <<<"$out"; then
    echo "SKIP mil_cli.bench_paired: skipped: no data at mil/musk1.csv on the data search path"
else
    [ $rc = 0 ] && [ "$(grep -c '"bench":"cv"' <<<"$out")" = 3 ] &&
        grep -q '"bench":"cv_paired","set":"musk1","model":"mamba","minus":"abmil","runs":2,' <<<"$out"
    ok $? bench_paired "rc=$rc $(head -c 400 <<<"$out")"
fi

