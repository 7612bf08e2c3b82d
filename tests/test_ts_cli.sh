#!/usr/bin/env bash
# `mambakit forecast` / `train forecast` / `bench ts` from the outside: help,
# usage errors, bad CSVs (one-line error with the line number, exit 1, no
# output file), time continuation, JSON, PNG, save/load round trip.
MK=${MK:-build/san/mambakit}
ok() { if [ "$1" = 0 ]; then echo "PASS ts_cli.$2"; else echo "FAIL ts_cli.$2 $3"; fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1

for c in "forecast" "train forecast" "bench ts"; do
  out=$($MK $c --help 2>&1); rc=$?
  [ $rc = 0 ] && grep -q -- "--seed" <<<"$out"; ok $? "help_${c// /_}" "rc=$rc"
done
$MK forecast --bogus x.csv >/dev/null 2>&1; [ $? = 2 ]; ok $? bad_option_exit2
$MK forecast "$tmp/x.csv" --horizon zero >/dev/null 2>&1; [ $? = 2 ]; ok $? bad_value_exit2

# a daily series with weekly seasonality, 200 rows (awk: deterministic)
awk 'BEGIN{print "day,sales,temp,label"; for(i=0;i<200;i++){d=i; y=2021; printf "%s,%.4f,%.3f,x%d\n", strftime("%Y-%m-%d", mktime("2021 01 01 12 00 00")+86400*i, 1), 10+3*sin(2*3.14159265*i/7)+0.01*i, 20+cos(i/9.0), i}}' > "$tmp/daily.csv"
out=$($MK forecast "$tmp/daily.csv" --horizon 5 --model snaive -o "$tmp/fc.csv" 2>"$tmp/err"); rc=$?
[ $rc = 0 ] && [ "$(wc -l < "$tmp/fc.csv")" = 6 ] && head -1 "$tmp/fc.csv" | grep -qx "day,sales,temp" &&
  sed -n 2p "$tmp/fc.csv" | grep -q "^2021-07-20," && sed -n 6p "$tmp/fc.csv" | grep -q "^2021-07-24,"
ok $? daily_continues_dates "rc=$rc $(head -3 "$tmp/fc.csv" 2>/dev/null | tr '\n' '|') $(cat "$tmp/err")"
grep -q "column 'label' is not numeric" "$tmp/err"; ok $? warns_non_numeric_column "$(cat "$tmp/err")"
# seasonal naive with period 7 repeats the value 7 rows before the end + h
want=$(awk -F, 'NR==195{print $2}' "$tmp/daily.csv"); got=$(awk -F, 'NR==2{print $2}' "$tmp/fc.csv")
awk -v a="$want" -v b="$got" 'BEGIN{exit !(a-b<1e-3 && b-a<1e-3)}'; ok $? snaive_value "want $want got $got"

# monthly, semicolon, quoted header, decimal comma, NA cells
{ echo '"Month";"Passengers, total"'; for i in $(seq 0 59); do y=$((1949 + i / 12)); m=$((i % 12 + 1)); v="$((100 + i * 2 + (i % 12) * 5)),5"; [ $i = 10 ] || [ $i = 11 ] && v=NA; printf '%d-%02d;%s\n' $y $m "$v"; done; } > "$tmp/monthly.csv"
$MK forecast "$tmp/monthly.csv" --horizon 3 --model dlinear --lookback 24 -o "$tmp/m.csv" 2>"$tmp/err"; rc=$?
[ $rc = 0 ] && sed -n 2p "$tmp/m.csv" | grep -q '^1954-01;' && sed -n 4p "$tmp/m.csv" | grep -q '^1954-03;' &&
  head -1 "$tmp/m.csv" | grep -qx 'Month;Passengers, total'
ok $? monthly_semicolon "rc=$rc $(tr '\n' '|' < "$tmp/m.csv" 2>/dev/null) $(cat "$tmp/err")"
grep -q "2 missing values filled" "$tmp/err"; ok $? na_warning_count "$(cat "$tmp/err")"

# errors: ragged row, no numeric column, too few rows; exit 1, one line, no file
printf 'a,b\n1,2\n3,4\n5\n' > "$tmp/ragged.csv"
msg=$($MK forecast "$tmp/ragged.csv" --horizon 1 -o "$tmp/none.csv" 2>&1); rc=$?
[ $rc = 1 ] && grep -q "ragged.csv: line 4" <<<"$msg" && [ "$(wc -l <<<"$msg")" = 1 ] && [ ! -e "$tmp/none.csv" ]
ok $? ragged_row_error "rc=$rc msg=$msg"
printf 'a,b\nx,y\nz,w\n' > "$tmp/text.csv"
msg=$($MK forecast "$tmp/text.csv" -q 2>&1); rc=$?
[ $rc = 1 ] && grep -q "no numeric column" <<<"$msg"; ok $? no_numeric_error "rc=$rc msg=$msg"
printf 'v\n1\n2\n3\n4\n5\n' > "$tmp/short.csv"
msg=$($MK forecast "$tmp/short.csv" --horizon 3 -o "$tmp/none.csv" 2>&1); rc=$?
[ $rc = 1 ] && grep -q "short.csv: line 6: only 5 data rows" <<<"$msg" && [ ! -e "$tmp/none.csv" ]
ok $? too_few_rows_error "rc=$rc msg=$msg"
msg=$($MK forecast "$tmp/daily.csv" --target nope -q 2>&1); rc=$?
[ $rc = 1 ] && grep -q "no numeric column named 'nope'" <<<"$msg"; ok $? unknown_target "rc=$rc msg=$msg"
# short series: lookback shortened with a warning
printf 't,v\n' > "$tmp/s40.csv"; for i in $(seq 0 39); do echo "$i,$((i % 5))" >> "$tmp/s40.csv"; done
out=$($MK forecast "$tmp/s40.csv" --horizon 4 --model naive 2>"$tmp/err"); rc=$?
[ $rc = 0 ] && grep -q "lookback shortened" "$tmp/err" && [ "$(sed -n 2p <<<"$out")" = "40,4" ]
ok $? short_series_lookback "rc=$rc out=$(tr '\n' '|' <<<"$out") $(cat "$tmp/err")"

# JSON, plot, save + reload gives the same forecast; train forecast
$MK forecast "$tmp/daily.csv" --horizon 4 --target sales --model dlinear --epochs 3 --json -q \
  --plot "$tmp/p.png" --save-model "$tmp/d.mkm" > "$tmp/a.json"; rc=$?
[ $rc = 0 ] && grep -q '"model": "dlinear"' "$tmp/a.json" && grep -q '"columns": \["sales"\]' "$tmp/a.json" &&
  grep -q '"2021-07-20"' "$tmp/a.json"
ok $? json_output "rc=$rc $(head -c 300 "$tmp/a.json")"
[ "$(head -c 8 "$tmp/p.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]; ok $? plot_png "$(ls -la "$tmp")"
$MK forecast "$tmp/daily.csv" --target sales --model "$tmp/d.mkm" --json -q > "$tmp/b.json"; rc=$?
grep -v validation "$tmp/a.json" > "$tmp/a2"; grep -v validation "$tmp/b.json" > "$tmp/b2"
[ $rc = 0 ] && cmp -s "$tmp/a2" "$tmp/b2"; ok $? saved_model_same_forecast "rc=$rc $(diff "$tmp/a2" "$tmp/b2" | head -5)"
# S-Mamba (2 columns + date covariates): the reloaded model's JSON forecast (9 significant
# digits, so every float round-trips) must be bit-identical to the fitted model's
$MK forecast "$tmp/daily.csv" --horizon 4 --target sales --target temp --model smamba --block shared --d-model 16 --layers 1 \
  --epochs 2 --time-budget 0 --json -q --save-model "$tmp/sm.mkm" > "$tmp/sa.json"; rc=$?
$MK forecast "$tmp/daily.csv" --target sales --target temp --model "$tmp/sm.mkm" --json -q > "$tmp/sb.json"; rc2=$?
grep -v validation "$tmp/sa.json" > "$tmp/sa2"; grep -v validation "$tmp/sb.json" > "$tmp/sb2"
[ $rc = 0 ] && [ $rc2 = 0 ] && grep -q '"model": "smamba"' "$tmp/sa.json" && grep -q '"forecast"' "$tmp/sa2" &&
  cmp -s "$tmp/sa2" "$tmp/sb2"
ok $? smamba_saved_model_bit_identical "rc=$rc/$rc2 $(diff "$tmp/sa2" "$tmp/sb2" | head -5 | tr '\n' '|')"
# a file written before --block existed has no "block" key: it must load as the shared block
# (rename the key in the fixed-width config record; the forecast must not change)
off=$(grep -abo 'block' "$tmp/sm.mkm" | head -1 | cut -d: -f1)
cp "$tmp/sm.mkm" "$tmp/old.mkm"; printf 'xlock' | dd of="$tmp/old.mkm" bs=1 seek="$off" conv=notrunc status=none
$MK forecast "$tmp/daily.csv" --target sales --target temp --model "$tmp/old.mkm" --json -q > "$tmp/so.json"; rc=$?
grep -v validation "$tmp/so.json" > "$tmp/so2"
[ -n "$off" ] && [ $rc = 0 ] && cmp -s "$tmp/sa2" "$tmp/so2"; ok $? old_model_file_loads_as_shared "off=$off rc=$rc"
# the paper's block (two independent Mamba modules): stored in the file, reloaded bit-identical
$MK forecast "$tmp/daily.csv" --horizon 4 --target sales --target temp --model smamba --block paper --d-model 16 \
  --layers 1 --epochs 2 --time-budget 0 --json -q --save-model "$tmp/pp.mkm" > "$tmp/pa.json"; rc=$?
$MK forecast "$tmp/daily.csv" --target sales --target temp --model "$tmp/pp.mkm" --json -q > "$tmp/pb.json"; rc2=$?
grep -v validation "$tmp/pa.json" > "$tmp/pa2"; grep -v validation "$tmp/pb.json" > "$tmp/pb2"
[ $rc = 0 ] && [ $rc2 = 0 ] && grep -aq 'paper' "$tmp/pp.mkm" && grep -aq 'mamba_r' "$tmp/pp.mkm" &&
  cmp -s "$tmp/pa2" "$tmp/pb2" && ! cmp -s "$tmp/pa2" "$tmp/sa2"
ok $? paper_block_saved_model_bit_identical "rc=$rc/$rc2 $(diff "$tmp/pa2" "$tmp/pb2" | head -5 | tr '\n' '|')"
$MK forecast "$tmp/daily.csv" --block both >/dev/null 2>&1; [ $? = 2 ]; ok $? bad_block_exit2
# the ensemble (mean of S-Mamba and DLinear): one file holds both members, reloaded bit-identical,
# and its forecast is neither member's
$MK forecast "$tmp/daily.csv" --horizon 4 --target sales --target temp --model ensemble --block paper --d-model 16 \
  --layers 1 --epochs 2 --time-budget 0 --json -q --save-model "$tmp/en.mkm" > "$tmp/ea.json"; rc=$?
$MK forecast "$tmp/daily.csv" --target sales --target temp --model "$tmp/en.mkm" --json -q > "$tmp/eb.json"; rc2=$?
$MK forecast "$tmp/daily.csv" --horizon 4 --target sales --target temp --model dlinear --epochs 2 --time-budget 0 \
  --json -q > "$tmp/ed.json"
grep -v validation "$tmp/ea.json" > "$tmp/ea2"; grep -v validation "$tmp/eb.json" > "$tmp/eb2"
grep -v validation "$tmp/ed.json" | sed 's/dlinear/ensemble/' > "$tmp/ed2"
[ $rc = 0 ] && [ $rc2 = 0 ] && grep -q '"model": "ensemble"' "$tmp/ea.json" && cmp -s "$tmp/ea2" "$tmp/eb2" &&
  ! cmp -s "$tmp/ea2" "$tmp/ed2" && ! cmp -s "$tmp/ea2" "$tmp/pa2" && grep -aq "seasonal.weight" "$tmp/en.mkm" &&
  grep -aq "mamba_f" "$tmp/en.mkm"
ok $? ensemble_saved_model_bit_identical "rc=$rc/$rc2 $(diff "$tmp/ea2" "$tmp/eb2" | head -5 | tr '\n' '|')"
$MK forecast --help | grep -A2 -- "--block" | grep -q "default paper"; ok $? forecast_default_block_paper
$MK bench ts --lr 1e-4,2e-4 >/dev/null 2>&1; [ $? = 2 ]; ok $? bench_bad_lr_list_exit2
$MK bench ts --models dlinear,ensemble >/dev/null 2>&1; [ $? = 2 ]; ok $? bench_ensemble_needs_both_exit2
# the ensemble row (mean of the S-Mamba and DLinear forecasts) on real ILI data, one short epoch:
# the MSE of a mean of two forecasts is at most the mean of their MSEs (convexity)
out=$($MK bench ts --datasets ILI --horizons 24 --models smamba,dlinear,ensemble --epochs 1 --d-model 16 \
      --layers 1 --json 2>&1); rc=$?
if grep -q "not found" <<<"$out"; then
    echo "SKIP ts_cli.bench_ensemble: skipped: no data at illness/national_illness.csv on the data search path"
else
    ms=$(grep -o '"model": "smamba".*"mse": [0-9.]*' <<<"$out" | grep -o '[0-9.]*$')
    md=$(grep -o '"model": "dlinear".*"mse": [0-9.]*' <<<"$out" | grep -o '[0-9.]*$')
    me=$(grep -o '"model": "ensemble".*"mse": [0-9.]*' <<<"$out" | grep -o '[0-9.]*$')
    [ $rc = 0 ] && [ -n "$ms" ] && [ -n "$md" ] && [ -n "$me" ] &&
        awk -v s="$ms" -v d="$md" -v e="$me" 'BEGIN{exit !(e > 0 && e <= (s + d) / 2 + 1e-6 && e != s && e != d)}'
    ok $? bench_ensemble "rc=$rc smamba $ms dlinear $md ensemble $me $(head -c 300 <<<"$out")"
fi
msg=$($MK forecast "$tmp/daily.csv" --model "$tmp/d.mkm" -q 2>&1); rc=$?
[ $rc = 1 ] && grep -q "forecasts 1 columns" <<<"$msg"; ok $? saved_model_column_mismatch "rc=$rc msg=$msg"
out=$($MK train forecast "$tmp/daily.csv" --horizon 7 --model snaive -o "$tmp/s.mkm" -q); rc=$?
[ $rc = 0 ] && [ -s "$tmp/s.mkm" ] && grep -q "saved snaive" <<<"$out"; ok $? train_forecast "rc=$rc $out"
$MK train forecast "$tmp/daily.csv" >/dev/null 2>&1; [ $? = 2 ]; ok $? train_needs_output
