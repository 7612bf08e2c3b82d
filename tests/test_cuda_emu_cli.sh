#!/usr/bin/env bash
# The training loop's use of the resident GPU step, without a GPU: the command line linked
# against a host emulation of the CUDA kernel API (build/tests/mambakit_emu; see
# tests/emu/cuda_emu.c), where a "GPU" run does the CPU's arithmetic in the same order. So a
# --device cuda run must write the CPU run's model file bit for bit: that checks that the
# weights come back before every validation and checkpoint, that a run stopped by its time
# limit resumes into the same file, and that distillation and --gpu-step backbone agree too;
# then the same for train enhance's resident step, points train's and train forecast's (S-Mamba).
MK=${MK_EMU:-build/tests/mambakit_emu}
ok() { if [ "$1" = 0 ]; then echo "PASS cuda_emu_cli.$2"; else echo "FAIL cuda_emu_cli.$2 $3"; fi; }
[ -x "$MK" ] || { echo "SKIP cuda_emu_cli: skipped: no emulated binary at $MK"; exit 0; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
vision_checks() {
tiny="--limit 256 --val 128 --batch 32 --d-model 8 --layers 2 --d-state 4 --stem 4 --patch 2 --kernel 4 --ckpt-every 5"
msg=$($MK train vision $tiny --steps 16 --device cpu --out "$tmp/cpu.mkm" 2>&1 >/dev/null); rc=$?
if [ $rc != 0 ] && grep -qi "not found\|no such" <<<"$msg"; then
  echo "SKIP cuda_emu_cli.vision: skipped: no data at ($(tail -1 <<<"$msg"))"; return
fi
$MK train vision $tiny --steps 16 --device cuda --out "$tmp/gpu.mkm" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc = 0 ] && grep -q "every op of the training step on the GPU" "$tmp/err" && cmp -s "$tmp/cpu.mkm" "$tmp/gpu.mkm" &&
  cmp -s "$tmp/cpu.mkm.ckpt" "$tmp/gpu.mkm.ckpt"
ok $? train_resident_equals_cpu "rc=$rc $(tail -c 300 "$tmp/err")"
$MK train vision $tiny --steps 16 --device cuda --gpu-step backbone --out "$tmp/bb.mkm" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc = 0 ] && grep -q "backbone on the GPU" "$tmp/err" && cmp -s "$tmp/cpu.mkm" "$tmp/bb.mkm"
ok $? train_backbone_step_equals_cpu "rc=$rc $(tail -c 300 "$tmp/err")"
# stopped by the time limit after its first step, resumed on the "GPU": the same file
$MK train vision $tiny --steps 16 --device cuda --out "$tmp/part.mkm" --time-limit 0.00001 2>"$tmp/err"
grep -q "time limit reached at step" "$tmp/err"; ok $? train_time_limit "$(tail -c 200 "$tmp/err")"
$MK train vision --resume "$tmp/part.mkm.ckpt" --out "$tmp/part.mkm" --device cuda >/dev/null 2>&1; rc=$?
[ $rc = 0 ] && cmp -s "$tmp/cpu.mkm" "$tmp/part.mkm"; ok $? train_resume_equals_cpu "rc=$rc"
# distillation: teachers' forwards and the soft loss on the "GPU"
$MK train vision $tiny --steps 8 --device cpu --teacher "$tmp/cpu.mkm" --kd-alpha 0.7 --kd-temp 3 --out "$tmp/kc.mkm" >/dev/null 2>&1
$MK train vision $tiny --steps 8 --device cuda --teacher "$tmp/cpu.mkm" --kd-alpha 0.7 --kd-temp 3 --out "$tmp/kg.mkm" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc = 0 ] && [ -s "$tmp/kc.mkm" ] && cmp -s "$tmp/kc.mkm" "$tmp/kg.mkm" && ! cmp -s "$tmp/kc.mkm" "$tmp/cpu.mkm"
ok $? train_kd_equals_cpu "rc=$rc $(tail -c 300 "$tmp/err")"
# inference on the "GPU": eval prints the CPU's figures
a=$($MK eval vision --model "$tmp/cpu.mkm" --limit 300 --device cpu 2>/dev/null | grep -v "images/s")
b=$($MK eval vision --model "$tmp/cpu.mkm" --limit 300 --device cuda 2>/dev/null | grep -v "images/s")
[ -n "$a" ] && [ "$a" = "$b" ]; ok $? eval_equals_cpu "$(head -c 200 <<<"$b")"
}
vision_checks

# train enhance: the resident step (projections, mask, loss, the SI-SDR term, backward and AdamW
# on the "GPU") must write the CPU run's model and
# checkpoint; so must --gpu-step backbone, a streaming (causal) model, and a run cut in two
# by --resume, each half on its device
enhance_checks() {
etiny="--d-model 8 --layers 2 --batch 2 --seconds 0.5 --espeak 0 --ckpt-every 4 --cache $tmp/cache"
msg=$($MK train enhance $etiny --steps 6 --json --device cpu -o "$tmp/ec.mkm" 2>&1 >"$tmp/ec.json"); rc=$?
if [ $rc != 0 ] && grep -qi "no FSDD speech found\|no data" <<<"$msg"; then
  echo "SKIP cuda_emu_cli.enhance: skipped: no data at ($(tail -1 <<<"$msg"))"; return
fi
$MK train enhance $etiny --steps 6 --json --device cuda -o "$tmp/eg.mkm" >"$tmp/eg.json" 2>"$tmp/err"; rc=$?
[ $rc = 0 ] && grep -q "every op of the training step on the GPU" "$tmp/err" && cmp -s "$tmp/ec.mkm" "$tmp/eg.mkm" &&
  cmp -s "$tmp/ec.mkm.ckpt" "$tmp/eg.mkm.ckpt"
ok $? enhance_resident_equals_cpu "rc=$rc $(tail -c 300 "$tmp/err")"
# inference on the "GPU" (mk_cuda_enh_forward, no fallback notice): the held-out evaluation's
# figures and enhance's output file are the CPU's
strip='s/"model":"[^"]*",//; s/"seconds":[0-9.]*//'
a=$(sed "$strip" "$tmp/ec.json"); b=$(sed "$strip" "$tmp/eg.json")
[ -n "$a" ] && [ "$a" = "$b" ] && grep -q test_sisdr <<<"$a" && ! grep -q "forward on the GPU:" "$tmp/err"
ok $? enhance_eval_equals_cpu "cpu: $a cuda: $b $(grep "forward on the GPU:" "$tmp/err")"
wav=${MAMBAKIT_DATA:-../shared/data}/fsdd/recordings/0_george_0.wav
if [ -f "$wav" ]; then
  $MK enhance "$wav" --model "$tmp/ec.mkm" --device cpu -o "$tmp/oc.wav" >/dev/null 2>&1
  $MK enhance "$wav" --model "$tmp/ec.mkm" --device cuda -o "$tmp/og.wav" >/dev/null 2>"$tmp/err"; rc=$?
  [ $rc = 0 ] && [ -s "$tmp/oc.wav" ] && cmp -s "$tmp/oc.wav" "$tmp/og.wav" && ! grep -q "on the CPU\|forward on the GPU:" "$tmp/err"
  ok $? enhance_offline_equals_cpu "rc=$rc $(tail -c 300 "$tmp/err")"
else
  echo "SKIP cuda_emu_cli.enhance_offline_equals_cpu: skipped: no recording at $wav"
fi
$MK train enhance $etiny --steps 6 --device cuda --gpu-step backbone -o "$tmp/eb.mkm" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc = 0 ] && grep -q "backbone on the GPU" "$tmp/err" && cmp -s "$tmp/ec.mkm" "$tmp/eb.mkm"
ok $? enhance_backbone_step_equals_cpu "rc=$rc $(tail -c 300 "$tmp/err")"
$MK train enhance $etiny --steps 5 --stream --sisdr-weight 0.02 --device cpu -o "$tmp/sc.mkm" >/dev/null 2>&1
$MK train enhance $etiny --steps 5 --stream --sisdr-weight 0.02 --device cuda -o "$tmp/sg.mkm" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc = 0 ] && [ -s "$tmp/sc.mkm" ] && cmp -s "$tmp/sc.mkm" "$tmp/sg.mkm"
ok $? enhance_stream_equals_cpu "rc=$rc $(tail -c 300 "$tmp/err")"
# 4 steps, then resumed to 7 (moments and step from the checkpoint); on the CPU and on the "GPU"
for d in cpu cuda; do
  $MK train enhance $etiny --steps 4 --device $d -o "$tmp/r$d.mkm" >/dev/null 2>&1 &&
    $MK train enhance --resume "$tmp/r$d.mkm.ckpt" --steps 7 --batch 2 --seconds 0.5 --espeak 0 --ckpt-every 4 \
      --cache "$tmp/cache" --device $d -o "$tmp/r$d.mkm" >/dev/null 2>"$tmp/err$d"
  echo $? > "$tmp/rc$d"
done
[ "$(cat "$tmp/rccpu")" = 0 ] && [ "$(cat "$tmp/rccuda")" = 0 ] && cmp -s "$tmp/rcpu.mkm" "$tmp/rcuda.mkm" &&
  ! cmp -s "$tmp/rcpu.mkm" "$tmp/ec.mkm"
ok $? enhance_resume_equals_cpu "rc=$(cat "$tmp/rccpu")/$(cat "$tmp/rccuda") $(tail -c 200 "$tmp/errcuda")"
}
enhance_checks

# train forecast: S-Mamba's default shapes (d_state 2; the paper block has no norm) go to the
# "GPU" since the twentieth session, their state zero-padded to the scan kernels' 4 (backend.c
# scan_np): the model file must be the CPU run's, for both layer kinds, and no fallback notice.
# The default --gpu-step full runs every op of the step on the "GPU" (mk_cuda_ts_train_step, its
# backbones sharing one device table; the notice says so); --gpu-step backbone keeps the per-call
# backbone copies. Both must write the CPU's file (no wall-clock field in a forecast model).
# Two layers, so that the paper block's four backbones borrow backbone 0's table.
forecast_checks() {
awk 'BEGIN { print "t,a,b"; for (i = 0; i < 240; i++) print i "," sin(i / 5) "," cos(i / 7) + i / 240 }' > "$tmp/s.csv"
for blk in paper shared; do
  ft="--horizon 4 --lookback 16 --d-model 16 --layers 2 --epochs 2 --time-budget 0 --block $blk -q"
  $MK train forecast "$tmp/s.csv" $ft --device cpu -o "$tmp/fc_$blk.mkm" >/dev/null 2>&1
  $MK train forecast "$tmp/s.csv" $ft --device cuda -o "$tmp/fg_$blk.mkm" >/dev/null 2>"$tmp/err"; rc=$?
  [ $rc = 0 ] && ! grep -q "running on the CPU\|GPU forward failed" "$tmp/err" &&
    grep -q "every op of the training step on the GPU" "$tmp/err" && [ -s "$tmp/fc_$blk.mkm" ] &&
    cmp -s "$tmp/fc_$blk.mkm" "$tmp/fg_$blk.mkm"
  ok $? "forecast_${blk}_equals_cpu" "rc=$rc $(tail -c 300 "$tmp/err")"
  $MK train forecast "$tmp/s.csv" $ft --device cuda --gpu-step backbone -o "$tmp/fb_$blk.mkm" >/dev/null 2>"$tmp/err"; rc=$?
  [ $rc = 0 ] && grep -q "(--gpu-step backbone)" "$tmp/err" && cmp -s "$tmp/fc_$blk.mkm" "$tmp/fb_$blk.mkm"
  ok $? "forecast_${blk}_backbone_equals_cpu" "rc=$rc $(tail -c 300 "$tmp/err")"
done
# ensemble fits DLinear and S-Mamba (the resident step) and saves both (auto picks among the
# candidates, here not S-Mamba, so a wrong S-Mamba would not show in its file)
ft="--horizon 4 --lookback 16 --d-model 16 --layers 1 --epochs 2 --time-budget 0 --model ensemble -q"
$MK train forecast "$tmp/s.csv" $ft --device cpu -o "$tmp/fa_c.mkm" >/dev/null 2>&1
$MK train forecast "$tmp/s.csv" $ft --device cuda -o "$tmp/fa_g.mkm" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc = 0 ] && grep -q "every op of the training step on the GPU" "$tmp/err" && [ -s "$tmp/fa_c.mkm" ] &&
  cmp -s "$tmp/fa_c.mkm" "$tmp/fa_g.mkm"
ok $? forecast_ensemble_equals_cpu "rc=$rc $(tail -c 300 "$tmp/err")"
$MK train forecast "$tmp/s.csv" --device cuda --gpu-step all -o "$tmp/x.mkm" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc = 2 ] && grep -q "is not full or backbone" "$tmp/err"
ok $? forecast_bad_gpu_step "rc=$rc $(tail -c 200 "$tmp/err")"
a=$($MK forecast "$tmp/s.csv" --model "$tmp/fc_paper.mkm" --json --device cpu 2>/dev/null)
b=$($MK forecast "$tmp/s.csv" --model "$tmp/fc_paper.mkm" --json --device cuda 2>"$tmp/err")
# (the forecast on the "GPU" is mk_cuda_ts_forward's: its fallback would say so)
[ -n "$a" ] && [ "$a" = "$b" ] && ! grep -q "running on the CPU\|GPU forward failed" "$tmp/err"
ok $? forecast_predict_equals_cpu "$(head -c 200 <<<"$b") $(tail -c 200 "$tmp/err")"
}
forecast_checks

# points train: the resident step (point-MLP, max over K, each object's backbone pass with its
# own draws, mean, head, loss, AdamW on the "GPU") must write the CPU run's model, drop-path on;
# so must --gpu-step backbone (per-object copies, gradients accumulated across the objects).
# The files differ only in the train_seconds entry of their config (a wall-clock time): the
# comparison skips that one fixed-size entry (key 32 + value 96 bytes, core/ckpt.h).
same_model() { # a b: equal except the train_seconds entry
  local off; off=$(grep -obUa train_seconds "$1" | head -1 | cut -d: -f1)
  [ -n "$off" ] && [ -s "$2" ] && cmp -s <(head -c "$off" "$1") <(head -c "$off" "$2") &&
    cmp -s <(tail -c +$((off + 129)) "$1") <(tail -c +$((off + 129)) "$2")
}
points_checks() {
ptiny="--epochs 1 --batch 8 --points 64 --tokens 8 --knn 4 --hidden 8 --d-model 8 --layers 2 --d-state 4 --drop-path 0.3"
msg=$($MK points train $ptiny --device cpu -o "$tmp/pc.mkm" 2>&1 >"$tmp/pc.out"); rc=$?
if [ $rc != 0 ] && grep -qi "dales_objects\|not found\|no such" <<<"$msg"; then
  echo "SKIP cuda_emu_cli.points: skipped: no data at ($(tail -1 <<<"$msg"))"; return
fi
$MK points train $ptiny --device cuda -o "$tmp/pg.mkm" >"$tmp/pg.out" 2>"$tmp/err"; rc=$?
[ $rc = 0 ] && grep -q "every op of the training step on the GPU" "$tmp/err" && same_model "$tmp/pc.mkm" "$tmp/pg.mkm" &&
  [ "$(sed 's/in [0-9.]* s//; s/saved .*//' "$tmp/pc.out")" = "$(sed 's/in [0-9.]* s//; s/saved .*//' "$tmp/pg.out")" ]
ok $? points_resident_equals_cpu "rc=$rc $(tail -c 300 "$tmp/err")"
$MK points train $ptiny --device cuda --gpu-step backbone -o "$tmp/pb.mkm" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc = 0 ] && grep -q "backbone on the GPU" "$tmp/err" && same_model "$tmp/pc.mkm" "$tmp/pb.mkm"
ok $? points_backbone_step_equals_cpu "rc=$rc $(tail -c 300 "$tmp/err")"
# the check itself: a different run (another seed) must not pass as the same model
$MK points train $ptiny --seed 2 --device cpu -o "$tmp/p2.mkm" >/dev/null 2>&1
! same_model "$tmp/pc.mkm" "$tmp/p2.mkm"; ok $? points_compare_discriminates
$MK points train $ptiny --device cuda --gpu-step most >/dev/null 2>&1; [ $? = 2 ]; ok $? points_bad_gpu_step
# inference on the "GPU" (mk_cuda_pts_forward, the objects in chunks): eval and classify print
# the CPU's figures byte for byte, with no fallback notice
for j in "" --json; do
  a=$($MK points eval --model "$tmp/pc.mkm" $j --device cpu 2>/dev/null)
  b=$($MK points eval --model "$tmp/pc.mkm" $j --device cuda 2>"$tmp/err")
  [ -n "$a" ] && [ "$a" = "$b" ] && ! grep -q "running on the CPU\|on the host" "$tmp/err"
  ok $? "points_eval${j:+_json}_equals_cpu" "$(head -c 200 <<<"$b") $(tail -c 200 "$tmp/err")"
done
awk 'BEGIN { srand(7); for (i = 0; i < 300; i++) print rand(), 2 * rand(), 0.5 * rand() }' >"$tmp/o1.xyz"
awk 'BEGIN { srand(8); for (i = 0; i < 90; i++) print 3 * rand(), rand(), rand() }' >"$tmp/o2.xyz"
a=$($MK points classify --model "$tmp/pc.mkm" --json --device cpu "$tmp/o1.xyz" "$tmp/o2.xyz" 2>/dev/null)
b=$($MK points classify --model "$tmp/pc.mkm" --json --device cuda "$tmp/o1.xyz" "$tmp/o2.xyz" 2>"$tmp/err")
[ -n "$a" ] && [ "$a" = "$b" ] && ! grep -q "running on the CPU\|on the host" "$tmp/err"
ok $? points_classify_equals_cpu "$(head -c 200 <<<"$b") $(tail -c 200 "$tmp/err")"
}
points_checks

# mil train: the resident MambaMIL step (embedding, the score order computed and sorted on the
# "GPU", backbone, gate, attention pooling, loss, AdamW) must write the CPU run's model bit for
# bit (a MIL model file holds no wall-clock field), with dropout and --batch 3 (gradients
# accumulated on the device); so must --gpu-step backbone, the variant with the gate off, 2
# layers, natural order and gated attention, and a cross-validation (its printed figures). mil
# predict --device cuda (the resident forward) must print the CPU's JSON byte for byte.
# Musk1 (92 bags) from the data search path, tiny settings.
# mil train "$@" on the CPU into $tmp/${T}c.mkm and with --device cuda into $tmp/${T}g.mkm (T the first
# argument): true when the second ran the resident step and wrote the first's file byte for byte
mil_same() {
  local t=$1; shift
  $MK mil train "$bags" "$@" --device cpu -o "$tmp/${t}c.mkm" >/dev/null 2>&1
  $MK mil train "$bags" "$@" --device cuda -o "$tmp/${t}g.mkm" >/dev/null 2>"$tmp/err"; rc=$?
  [ $rc = 0 ] && grep -q "every op of the training step on the GPU" "$tmp/err" && [ -s "$tmp/${t}c.mkm" ] &&
    cmp -s "$tmp/${t}c.mkm" "$tmp/${t}g.mkm"
}
# mil predict of the model $tmp/$1.mkm on the CPU and with --device cuda: true when the second (the
# resident forward, no fallback notice) printed the first's JSON byte for byte
mil_predict_same() {
  $MK mil predict "$bags" --model "$tmp/$1.mkm" --json --quiet --device cpu >"$tmp/$1.pc" 2>/dev/null
  $MK mil predict "$bags" --model "$tmp/$1.mkm" --json --quiet --device cuda >"$tmp/$1.pg" 2>"$tmp/err"; rc=$?
  [ $rc = 0 ] && [ -s "$tmp/$1.pc" ] && ! grep -q "GPU forward failed" "$tmp/err" && cmp -s "$tmp/$1.pc" "$tmp/$1.pg"
}
mil_checks() {
local bags=""
for d in "$MAMBAKIT_DATA" ../shared/data ../../shared/data /usr/share/datasets; do
  [ -n "$d" ] && [ -f "$d/mil/musk1.csv" ] && { bags="$d/mil/musk1.csv"; break; }
done
if [ -z "$bags" ]; then
  echo "SKIP cuda_emu_cli.mil: skipped: no data at mil/musk1.csv on the data search path"; return
fi
mt="--epochs 2 --d-model 8 --attn-hidden 8 --d-state 4 --quiet"
a="$mt --dropout 0.2 --order score --batch 3"
mil_same m $a
ok $? mil_resident_equals_cpu "rc=$rc $(tail -c 300 "$tmp/err")"
$MK mil train "$bags" $a --device cuda --gpu-step backbone -o "$tmp/mb.mkm" >/dev/null 2>"$tmp/err"; rc=$?
[ $rc = 0 ] && grep -q "backbone on the GPU" "$tmp/err" && cmp -s "$tmp/mc.mkm" "$tmp/mb.mkm"
ok $? mil_backbone_step_equals_cpu "rc=$rc $(tail -c 300 "$tmp/err")"
b="$mt --res-gate 0 --layers 2 --order natural --gated-attention --clip 0.5"
mil_same n $b && ! cmp -s "$tmp/nc.mkm" "$tmp/mc.mkm"
ok $? mil_variant_equals_cpu "rc=$rc $(tail -c 300 "$tmp/err")"
# branch drop (its draw made on the host where mil_forward makes it; test_cuda's mil_step_branch_drop
# adds drop-path, whose draws a dropped bag must skip) and a fresh instance order per
# presentation: covered by the resident step since the twenty-second session
mil_same b $a --branch-drop 0.4 --shuffle-instances --layers 2 && ! cmp -s "$tmp/bc.mkm" "$tmp/mc.mkm"
ok $? mil_branch_drop_shuffle_equals_cpu "rc=$rc $(tail -c 300 "$tmp/err")"
# the check itself: another seed must not pass as the same model
$MK mil train "$bags" $a --seed 2 --device cpu -o "$tmp/m2.mkm" >/dev/null 2>&1
[ -s "$tmp/m2.mkm" ] && ! cmp -s "$tmp/mc.mkm" "$tmp/m2.mkm"; ok $? mil_compare_discriminates
x=$($MK mil train "$bags" $a --folds 2 --device cpu 2>/dev/null)
y=$($MK mil train "$bags" $a --folds 2 --device cuda 2>"$tmp/err")
[ -n "$x" ] && [ "$x" = "$y" ] && grep -q "every op of the training step on the GPU" "$tmp/err"
ok $? mil_cv_equals_cpu "$(tail -c 200 <<<"$y")"
# prediction on the "GPU" (mk_cuda_mil_forward: the whole forward resident): the CPU's JSON byte
# for byte, probabilities and every attention weight, for both models (score order; gated, natural)
for f in mc ng; do
  mil_predict_same $f
  ok $? "mil_predict_${f}_equals_cpu" "rc=$rc $(tail -c 200 "$tmp/err")"
done
# --attend e (the attention from the embedding): the resident step and forward since the
# twenty-second session
mil_same e $a --attend e && ! cmp -s "$tmp/ec.mkm" "$tmp/mc.mkm"
ok $? mil_attend_e_equals_cpu "rc=$rc $(tail -c 300 "$tmp/err")"
mil_predict_same ec
ok $? mil_predict_attend_e_equals_cpu "rc=$rc $(tail -c 200 "$tmp/err")"
# the auxiliary exit (--aux, predicting from the mean of the two exits with --aux-mix): the
# resident step and forward since the twenty-second session
mil_same x $a --aux 0.5 --aux-mix && ! cmp -s "$tmp/xc.mkm" "$tmp/mc.mkm"
ok $? mil_aux_equals_cpu "rc=$rc $(tail -c 300 "$tmp/err")"
mil_predict_same xc
ok $? mil_predict_aux_mix_equals_cpu "rc=$rc $(tail -c 200 "$tmp/err")"
$MK mil train "$bags" --device cuda --gpu-step most -o "$tmp/x.mkm" >/dev/null 2>&1; [ $? = 2 ]; ok $? mil_bad_gpu_step
}
mil_checks
