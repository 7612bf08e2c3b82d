#!/usr/bin/env bash
# device_session.sh — the GPU work still open, in one device call, most important first.
# A lent GPU session has ~15 minutes of device time in all (start-up included), so every
# step is time-boxed and writes what it has to $OUT before the next one starts:
#   1. build the full tool with CUDA (carried .debs give it libsndfile, stb, FFTW, ...)
#   2. test_cuda: every CUDA op against the CPU path, incl. the bf16 forward scan
#   3. bench cuda --scan-only: fp32 fwd/bwd and bf16 fwd against the DRAM floor
#   4. vision: continue the shipped model on the GPU (issue 3), evaluate on the test set
#   5. make test CUDA=1 (the whole suite with sanitizers) with whatever time is left
# Usage, from the repository root on the device (carry [".debs"]; fetch them here first with
# tests/bench/cuda/fetch_debs.sh):
#   bash tests/bench/cuda/device_session.sh [VISION_MINUTES] [TOTAL_SECONDS]
# Defaults 4 minutes of vision training and 540 s in all (the run tool's 600 s limit less margin).
set -u
VMIN=${1:-4}
TOTAL=${2:-540}
OUT=${OUT:-/tmp/mk_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/session.log") 2>&1
T0=$(date +%s)
left() { echo $((TOTAL - ($(date +%s) - T0))); }
step() { echo "== $1 (t+$(($(date +%s) - T0)) s, $(left) s left)"; }

step "device"
nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader
nproc
# shellcheck source=/dev/null
source tests/bench/cuda/device_env.sh

step "build (CUDA=1)"
timeout 240 make -j"$(nproc)" CUDA=1 NODEPS=1 build/mambakit build/tests/test_cuda > "$OUT/build.log" 2>&1
rc=$?
echo "build rc=$rc"
[ $rc = 0 ] || { tail -30 "$OUT/build.log"; exit 1; }

step "test_cuda"
timeout 120 ./build/tests/test_cuda > "$OUT/test_cuda.log" 2>&1
echo "rc=$? passed $(grep -c '^PASS' "$OUT/test_cuda.log"), failed $(grep -c '^FAIL' "$OUT/test_cuda.log")"
grep -E '^(FAIL|SKIP)|bf16' "$OUT/test_cuda.log" | head -30

step "bench cuda --scan-only"
timeout 90 ./build/mambakit bench cuda --scan-only > "$OUT/bench_scan.txt" 2>&1
echo "rc=$?"
cat "$OUT/bench_scan.txt"

if [ "$(left)" -gt $((VMIN * 60 + 60)) ]; then
    step "vision: $VMIN more minutes from models/vision.mkm on the GPU"
    # Same split (seed 1), augmentation and selection rule as the CPU stages (docs/VISION.md);
    # the best validation epoch is what lands in $OUT/vision.mkm.
    OMP_NUM_THREADS=8 timeout $((VMIN * 60 + 90)) ./build/mambakit train vision --device cuda \
        --init models/vision.mkm --budget "$VMIN" --batch 128 --lr 7e-4 --warmup 0.1 --val 5000 --seed 1 \
        --out "$OUT/vision.mkm" > "$OUT/vision_train.log" 2>&1
    echo "rc=$?"
    tr '\r' '\n' < "$OUT/vision_train.log" | grep -v '^train vision .*ETA' | tail -15
    if [ -f "$OUT/vision.mkm" ]; then
        timeout 60 ./build/mambakit eval vision --model "$OUT/vision.mkm" > "$OUT/vision_eval.txt" 2>&1
        head -3 "$OUT/vision_eval.txt"
    fi
else
    echo "skipped vision: too little time left"
fi

if [ "$(left)" -gt 90 ]; then
    step "make test CUDA=1"
    timeout $(($(left) - 20)) make -j"$(nproc)" CUDA=1 NODEPS=1 test > "$OUT/make_test.log" 2>&1
    echo "rc=$?"
    tail -15 "$OUT/make_test.log"
else
    echo "skipped make test: too little time left"
fi
step "done"
