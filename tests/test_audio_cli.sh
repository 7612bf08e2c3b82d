#!/usr/bin/env bash
# mambakit enhance from the command line: formats, channels, rates, pipes, and
# every kind of bad input (one-line error, non-zero exit, no output file).
MK=${MK:-build/san/mambakit}
ok() { if [ "$1" = 0 ]; then echo "PASS audio_cli.$2 $3"; else echo "FAIL audio_cli.$2 $3"; fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

le32() { local v=$1; printf "\\x$(printf %02x $((v & 255)))\\x$(printf %02x $((v >> 8 & 255)))\\x$(printf %02x $((v >> 16 & 255)))\\x$(printf %02x $((v >> 24 & 255)))"; }
le16() { local v=$1; printf "\\x$(printf %02x $((v & 255)))\\x$(printf %02x $((v >> 8 & 255)))"; }
# wav_header CHANNELS RATE DATA_BYTES: a canonical 16-bit PCM header on stdout
wav_header() {
  printf 'RIFF'; le32 $((36 + $3)); printf 'WAVEfmt '; le32 16; le16 1; le16 "$1"; le32 "$2"
  le32 $(($2 * $1 * 2)); le16 $(($1 * 2)); le16 16; printf 'data'; le32 "$3"
}
# read header fields of a canonical WAV: channels, rate, data bytes
wav_ch() { od -An -t u2 -j 22 -N 2 "$1" | tr -d ' '; }
wav_rate() { od -An -t u4 -j 24 -N 4 "$1" | tr -d ' '; }

# a stereo 16 kHz input: quiet noise (random low bytes) with a louder tone-ish pattern
frames=16000
{ wav_header 2 16000 $((frames * 4)); head -c $((frames * 4)) /dev/urandom | tr '\200-\377' '\000-\177' | tr '\100-\177' '\000-\077'; } > "$tmp/in.wav"

$MK enhance --help > "$tmp/help" 2>&1; rc=$?
[ $rc = 0 ] && grep -q -- "--stream" "$tmp/help" && grep -q -- "--spectrogram" "$tmp/help"; ok $? help "rc=$rc"
$MK enhance "$tmp/in.wav" -o "$tmp/x.wav" --bogus >/dev/null 2>&1; [ $? = 2 ]; ok $? bad_option
$MK enhance "$tmp/in.wav" >/dev/null 2>&1; [ $? = 2 ]; ok $? missing_output

# offline: same channels, rate and length
msg=$($MK enhance "$tmp/in.wav" -o "$tmp/out.wav" 2>&1); rc=$?
[ $rc = 0 ] && [ "$(wav_ch "$tmp/out.wav")" = 2 ] && [ "$(wav_rate "$tmp/out.wav")" = 16000 ] &&
  [ "$(stat -c %s "$tmp/out.wav")" = "$(stat -c %s "$tmp/in.wav")" ]
ok $? offline_keeps_format "rc=$rc ch=$(wav_ch "$tmp/out.wav" 2>/dev/null) rate=$(wav_rate "$tmp/out.wav" 2>/dev/null) $msg"
ls "$tmp" | grep -q '\.tmp\.'; [ $? != 0 ]; ok $? no_temp_files_left

# streaming, file to file and through pipes
$MK enhance "$tmp/in.wav" -o "$tmp/s.wav" --stream >/dev/null 2>&1; rc=$?
[ $rc = 0 ] && [ "$(stat -c %s "$tmp/s.wav")" = "$(stat -c %s "$tmp/in.wav")" ]; ok $? stream_file "rc=$rc"
# a real pipe on both sides (stdout not seekable), then read back through another pipe
cat "$tmp/in.wav" | $MK enhance - -o - --stream 2>"$tmp/p.err" | cat > "$tmp/p.wav"; rc=${PIPESTATUS[1]}
cat "$tmp/p.wav" | $MK enhance - -o - --stream 2>>"$tmp/p.err" | cat > "$tmp/p2.wav"; rc2=${PIPESTATUS[1]}
bytes=$(( $(stat -c %s "$tmp/p.wav") - 44 ))
[ $rc = 0 ] && [ $rc2 = 0 ] && [ "$(head -c 4 "$tmp/p.wav")" = RIFF ] && [ "$bytes" = $((frames * 4)) ] &&
  [ "$(stat -c %s "$tmp/p2.wav")" = "$(stat -c %s "$tmp/p.wav")" ]
ok $? stream_pipe "rc=$rc,$rc2 data $bytes bytes $(head -c 200 "$tmp/p.err")"
$MK enhance - -o "$tmp/np.wav" < "$tmp/in.wav" >/dev/null 2>&1; [ $? = 2 ]; ok $? pipe_needs_stream

# refuses to overwrite its input (same name, or another name for the same file)
sum=$(md5sum < "$tmp/in.wav")
msg=$($MK enhance "$tmp/in.wav" -o "$tmp/in.wav" 2>&1); rc=$?
[ $rc = 1 ] && [ "$(md5sum < "$tmp/in.wav")" = "$sum" ] && [ "$(wc -l <<<"$msg")" = 1 ]; ok $? refuses_same_file "rc=$rc $msg"
ln "$tmp/in.wav" "$tmp/hard.wav"
$MK enhance "$tmp/in.wav" -o "$tmp/hard.wav" --stream >/dev/null 2>&1; rc=$?
[ $rc = 1 ] && [ "$(md5sum < "$tmp/in.wav")" = "$sum" ]; ok $? refuses_hard_link "rc=$rc"

# bad inputs: one line naming the file, exit 1, no output
{ wav_header 1 8000 0; } > "$tmp/zero.wav"
{ wav_header 1 8000 100000; head -c 2000 /dev/zero; } > "$tmp/trunc.wav"
{ wav_header 1000 8000 8000; head -c 8000 /dev/zero; } > "$tmp/chans.wav"
{ wav_header 1 10 2000; head -c 2000 /dev/zero; } > "$tmp/rate.wav"
head -c 3000 /dev/urandom > "$tmp/noise.wav"
for f in zero trunc chans rate noise missing; do
  for mode in "" --stream; do
    rm -f "$tmp/bad_out.wav"
    msg=$($MK enhance "$tmp/$f.wav" -o "$tmp/bad_out.wav" $mode 2>&1); rc=$?
    [ $rc = 1 ] && [ ! -e "$tmp/bad_out.wav" ] && [ "$(wc -l <<<"$msg")" = 1 ] && grep -q "$f.wav" <<<"$msg"
    ok $? "rejects_${f}${mode:+_stream}" "rc=$rc: $msg"
  done
done
ls "$tmp" | grep -q '\.tmp\.'; [ $? != 0 ]; ok $? no_temp_files_after_errors

# spectrogram and metrics against a reference
$MK enhance "$tmp/in.wav" -o "$tmp/o2.wav" --spectrogram "$tmp/spec.png" --reference "$tmp/in.wav" --json > "$tmp/j" 2>&1; rc=$?
[ $rc = 0 ] && [ "$(head -c 4 "$tmp/spec.png" | tail -c 3)" = PNG ] && grep -q '"sisdr_improvement_db"' "$tmp/j"
ok $? spectrogram_and_json "rc=$rc $(head -c 300 "$tmp/j")"

for sub in "train enhance" "eval enhance" "bench audio"; do
  $MK $sub --help > "$tmp/h" 2>&1; rc=$?
  [ $rc = 0 ] && grep -q -- "--model\|--stream" "$tmp/h"; ok $? "help_${sub// /_}" "rc=$rc"
done

# fine-tuning and deepening a model (train enhance --init, --layers above its depth): two
# steps on real speech; the architecture comes from the model, one layer is appended; the
# refusals (fewer layers, the other mode, --init with --resume) exit 2 and write nothing
here=$(cd "$(dirname "$0")/.." && pwd)
depth=$($MK info "$here/models/enhance.mkm" | awk '$1 == "n_layer" { print $2 }')
msg=$($MK train enhance --init "$here/models/enhance.mkm" --layers $((depth + 1)) --d-model 32 --steps 2 --batch 2 --espeak 0 \
      --cache "$tmp/cache" -o "$tmp/grown.mkm" 2>&1); rc=$?
if [ $rc != 0 ] && grep -qi "no FSDD speech found\|no data" <<<"$msg"; then
  echo "SKIP audio_cli.train_init_grow: skipped: no data at ($(tail -1 <<<"$msg"))"
else
  [ $rc = 0 ] && grep -q "1 new layer" <<<"$msg" && $MK info "$tmp/grown.mkm" | grep -q "n_layer *$((depth + 1))$" &&
    $MK info "$tmp/grown.mkm" | grep -q "d_model *64" && $MK info "$tmp/grown.mkm" | grep -q "train_steps *2$"
  ok $? train_init_grow "rc=$rc $(tail -c 300 <<<"$msg")"
fi
$MK train enhance --init "$here/models/enhance.mkm" --layers $((depth - 1)) --steps 2 -o "$tmp/x.mkm" 2>"$tmp/e"; rc=$?
[ $rc = 2 ] && grep -q "cannot remove layers" "$tmp/e" && [ ! -e "$tmp/x.mkm" ]; ok $? train_init_fewer_layers "rc=$rc $(cat "$tmp/e")"
$MK train enhance --init "$here/models/enhance.mkm" --stream --steps 2 -o "$tmp/x.mkm" 2>"$tmp/e"; rc=$?
[ $rc = 2 ] && grep -q "bidirectional but --stream" "$tmp/e" && [ ! -e "$tmp/x.mkm" ]; ok $? train_init_other_mode "rc=$rc $(cat "$tmp/e")"
$MK train enhance --init "$here/models/enhance.mkm" --resume "$tmp/grown.mkm" -o "$tmp/x.mkm" 2>"$tmp/e"; rc=$?
[ $rc = 2 ] && grep -q "exclude each other" "$tmp/e" && [ ! -e "$tmp/x.mkm" ]; ok $? train_init_and_resume "rc=$rc $(cat "$tmp/e")"

# eval enhance --seed: the default draws bench audio's mixtures; another seed draws other
# mixtures from the same held-out split (an independent check of a model chosen on the bench)
j1=$($MK eval enhance --n 1 --json 2>"$tmp/e"); rc=$?
if [ $rc != 0 ] && grep -qi "no FSDD speech found\|no data" "$tmp/e"; then
  echo "SKIP audio_cli.eval_seed: skipped: no data at ($(tail -1 "$tmp/e"))"
else
  j2=$($MK eval enhance --n 1 --json --seed 1 2>>"$tmp/e"); rc2=$?
  in1=$(grep -o '"sisdr_in_db":[-0-9.]*' <<<"$j1"); in2=$(grep -o '"sisdr_in_db":[-0-9.]*' <<<"$j2")
  [ $rc = 0 ] && [ $rc2 = 0 ] && [ -n "$in1" ] && [ -n "$in2" ] && [ "$in1" != "$in2" ] && grep -q '"mixtures":24' <<<"$j2"
  ok $? eval_seed "rc=$rc/$rc2 $in1 $in2 $(tail -c 200 "$tmp/e")"
fi
$MK eval enhance --seed -1 >/dev/null 2>"$tmp/e"; [ $? = 2 ] && grep -q -- "--seed" "$tmp/e"; ok $? eval_bad_seed "$(cat "$tmp/e")"

# train enhance --rate 16000: SEMamba's n_fft 400 / hop 100 at 16 kHz (a new model only); the
# model enhances the stereo 16 kHz test file at its own rate; other rates and a rate change on
# --init exit 2
msg=$($MK train enhance --rate 16000 --d-model 16 --layers 1 --steps 2 --batch 2 --espeak 0 -o "$tmp/r16.mkm" 2>&1); rc=$?
if [ $rc != 0 ] && grep -qi "no FSDD speech found\|no data" <<<"$msg"; then
  echo "SKIP audio_cli.train_rate_16k: skipped: no data at ($(tail -1 <<<"$msg"))"
else
  $MK info "$tmp/r16.mkm" > "$tmp/i16" 2>&1
  [ $rc = 0 ] && grep -q "sample_rate *16000$" "$tmp/i16" && grep -q "n_fft *400$" "$tmp/i16" && grep -q "hop *100$" "$tmp/i16" &&
    $MK enhance "$tmp/in.wav" -o "$tmp/o16.wav" --model "$tmp/r16.mkm" >/dev/null 2>&1 &&
    [ "$(wav_rate "$tmp/o16.wav")" = 16000 ] && [ "$(stat -c %s "$tmp/o16.wav")" = "$(stat -c %s "$tmp/in.wav")" ]
  ok $? train_rate_16k "rc=$rc $(tail -c 200 <<<"$msg")"
  # resumed with no -o, the model goes next to its checkpoint, not to the default
  # models/enhance.mkm (run from $tmp, so a regression cannot touch the repository's model)
  mk_abs=$(realpath "$MK"); data_abs=${MAMBAKIT_DATA:-$(realpath -q ../shared/data || echo /nonexistent)}
  (cd "$tmp" && MAMBAKIT_DATA="$data_abs" "$mk_abs" train enhance --resume "$tmp/r16.mkm.ckpt" --steps 3 --batch 2 \
     --espeak 0 >/dev/null 2>"$tmp/e"); rc=$?
  [ $rc = 0 ] && grep -q "the model goes to $tmp/r16.mkm " "$tmp/e" && [ ! -e "$tmp/models" ] &&
    $MK info "$tmp/r16.mkm" | grep -q "train_steps *3$"
  ok $? train_resume_out_from_ckpt "rc=$rc $(tail -c 300 "$tmp/e") $($MK info "$tmp/r16.mkm" | grep train_steps)"
  cp "$tmp/r16.mkm.ckpt" "$tmp/r16.state"   # a checkpoint not named OUT.ckpt: the output must be named
  (cd "$tmp" && "$mk_abs" train enhance --resume "$tmp/r16.state" --steps 4 >/dev/null 2>"$tmp/e"); rc=$?
  [ $rc = 2 ] && grep -q "r16.state: name the model file with -o" "$tmp/e" && [ ! -e "$tmp/models" ]
  ok $? train_resume_unnamed_refused "rc=$rc $(cat "$tmp/e")"
  $MK train enhance --init "$tmp/r16.mkm" --rate 8000 --steps 2 -o "$tmp/x.mkm" 2>"$tmp/e"; rc=$?
  [ $rc = 2 ] && grep -q "runs at 16000 Hz" "$tmp/e" && [ ! -e "$tmp/x.mkm" ]; ok $? train_rate_init_mismatch "rc=$rc $(cat "$tmp/e")"
fi
$MK train enhance --rate 12000 --steps 2 -o "$tmp/x.mkm" 2>"$tmp/e"; rc=$?
[ $rc = 2 ] && grep -q "8000 and 16000" "$tmp/e" && [ ! -e "$tmp/x.mkm" ]; ok $? train_bad_rate "rc=$rc $(cat "$tmp/e")"
