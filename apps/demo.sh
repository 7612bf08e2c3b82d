#!/usr/bin/env bash
# make demo: run the main jobs on the shipped default models and real data.
set -euo pipefail
cd "$(dirname "$0")/.."
MK=build/mambakit
echo "== mambakit classify examples/ (default model models/vision.mkm)"
$MK classify examples/
if [ -f ../shared/data/ETT/ETTh1.csv ] || [ -n "${MAMBAKIT_DATA:-}" ]; then
  data=${MAMBAKIT_DATA:-../shared/data}
  mkdir -p out
  echo "== mambakit forecast ETTh1.csv --horizon 24 (fits on the file's own history)"
  $MK forecast "$data/ETT/ETTh1.csv" --horizon 24 --target OT -o out/ETTh1_forecast.csv --plot out/ETTh1_forecast.png && \
    { head -n 5 out/ETTh1_forecast.csv; echo "   ... written out/ETTh1_forecast.csv and out/ETTh1_forecast.png"; }
  noisy="$data/noizeus/noisy/car_5dB/sp01_car_sn5.wav"
  clean="$data/noizeus/clean/sp01.wav"
  if [ -f "$noisy" ] && [ -f models/enhance.mkm ]; then
    echo "== mambakit enhance $(basename "$noisy") -o out/enhanced.wav --reference sp01.wav (NOIZEUS, car noise at 5 dB)"
    $MK enhance "$noisy" -o out/enhanced.wav --spectrogram out/enhanced.png --reference "$clean" && \
      echo "   written out/enhanced.wav, out/enhanced.png (before/after spectrogram)"
  fi
fi
