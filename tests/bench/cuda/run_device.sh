#!/usr/bin/env bash
# run_device.sh — build and run the CUDA checks and benchmarks on a GPU machine
# that lacks the domain front ends' libraries (no full `make` there).
# Builds core/*.c (gcc) + core/cuda/*.cu (nvcc) + tests/test_cuda.c + the
# kernel lab + the `bench cuda` command, then runs, writing logs to $OUT.
#   usage: bash tests/bench/cuda/run_device.sh [quick]
set -u
OUT=${OUT:-/tmp/mk_out}
mkdir -p "$OUT"
BD=${BD:-/tmp/mkbuild}
exec > >(tee -a "$OUT/run_device.log") 2>&1
# binaries built elsewhere (same x86-64, CUDA 13) can be carried in .devbuild: use them if they resolve
PRE=""
if [ -x .devbuild/test_cuda ] && [ -z "${NOPRE:-}" ]; then
  if ! ldd .devbuild/test_cuda .devbuild/scan_lab .devbuild/bench_cuda 2>&1 | grep -q "not found"; then PRE=1; BD=.devbuild; echo "using prebuilt binaries in .devbuild"; fi
fi
[ -n "$PRE" ] || { rm -rf "$BD"; mkdir -p "$BD/o"; }
echo "== $(date -u '+%F %T UTC')"
nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | tail -n +1
CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1)
[ "$CAP" = "9.0" ] || echo "WARNING: compute capability '$CAP', the build targets sm_90"
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
CUDA_HOME=$(dirname "$(dirname "$NVCC")")
$NVCC --version | tail -1
BLASINC=""
for d in /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/openblas /usr/include/x86_64-linux-gnu/openblas64-pthread /usr/include; do
  [ -f "$d/cblas.h" ] && { BLASINC=$d; break; }
done
BLASLIB=-lopenblas
ls /usr/lib/x86_64-linux-gnu/libopenblas* >/dev/null 2>&1 || { ls /usr/lib/x86_64-linux-gnu/libblas.so* >/dev/null 2>&1 && BLASLIB=-lblas; }
echo "cblas.h in '$BLASINC', link $BLASLIB"
DEFS="-DMK_HAVE_SNDFILE=0 -DMK_HAVE_PNG=0 -DMK_HAVE_ZLIB=0 -DMK_HAVE_FFTW=0 -DMK_HAVE_SAMPLERATE=0 -DMK_HAVE_STB=0 -DMK_HAVE_CUDA=1"
CFLAGS="-std=c11 -O2 -g -fno-math-errno -fno-trapping-math -D_GNU_SOURCE -fopenmp -march=x86-64-v2 -mtune=generic $DEFS -I. ${BLASINC:+-I$BLASINC}"
NVFLAGS="-O3 -std=c++17 -gencode arch=compute_90,code=sm_90 -Xcompiler -fPIC -I. $DEFS -lineinfo"
LIBS="-L$CUDA_HOME/lib64 -Wl,-rpath,$CUDA_HOME/lib64 -lcublas -lcudart -lstdc++ $BLASLIB -lm -fopenmp"
if [ -z "$PRE" ]; then
t0=$(date +%s)
pids=()
for f in core/*.c vision/model.c vision/orders.c vision/image.c apps/cli.c apps/cmd_cuda.c tests/bench/cuda/bench_main.c; do
  o="$BD/o/$(echo "$f" | tr / _).o"; gcc $CFLAGS -c "$f" -o "$o" & pids+=($!)
done
for f in core/cuda/*.cu; do
  o="$BD/o/$(echo "$f" | tr / _).o"; $NVCC $NVFLAGS -Xptxas -v -c "$f" -o "$o" 2> "$BD/ptxas_$(basename $f).txt" & pids+=($!)
done
$NVCC $NVFLAGS -c tests/bench/cuda/scan_lab.cu -o "$BD/scan_lab.o" & pids+=($!)
fail=0; for p in "${pids[@]}"; do wait "$p" || fail=1; done
grep -A2 "scan_\(fwd\|bwd\)_k" "$BD/ptxas_scan.cu.txt" | grep -E "registers|spill" | head -20 > "$OUT/ptxas_scan.txt"
[ $fail = 0 ] || { echo "BUILD FAILED"; cat "$BD"/ptxas_*.txt | grep -i error; exit 1; }
CORE="$(ls $BD/o/core_*.o) $(ls $BD/o/vision_*.o)" # the vision classifier: test_cuda's and bench cuda's resident step
gcc $CFLAGS tests/test_cuda.c $CORE -o "$BD/test_cuda" $LIBS || { echo "LINK test_cuda FAILED"; exit 1; }
g++ -fopenmp "$BD/scan_lab.o" $CORE -o "$BD/scan_lab" $LIBS || echo "LINK scan_lab FAILED"
gcc $CFLAGS $BD/o/apps_cli.c.o $BD/o/apps_cmd_cuda.c.o $BD/o/tests_bench_cuda_bench_main.c.o $CORE -o "$BD/bench_cuda" $LIBS || echo "LINK bench FAILED"
echo "== build $(( $(date +%s) - t0 )) s"
fi

echo "== test_cuda"
t0=$(date +%s); timeout 120 "$BD/test_cuda" > "$OUT/test_cuda.log" 2>&1; echo "rc=$? ($(( $(date +%s) - t0 )) s)"
grep -c '^PASS' "$OUT/test_cuda.log" | sed 's/^/passed: /'; grep -v '^PASS' "$OUT/test_cuda.log" | head -40
[ "${1:-}" = "testonly" ] && exit 0

echo "== bench cuda (ours)"
timeout 60 "$BD/bench_cuda" --scan-only --json > "$OUT/ours_scan.json" 2> "$OUT/bench_err.txt"; cat "$OUT/ours_scan.json"
timeout 90 "$BD/bench_cuda" --train-only --json --cpu-steps 1 --steps 10 > "$OUT/ours_train.json" 2>> "$OUT/bench_err.txt"; cat "$OUT/ours_train.json"; tail -3 "$OUT/bench_err.txt"

echo "== scan_lab"
timeout 90 "$BD/scan_lab" --csv "$OUT/scan_lab.csv" > "$OUT/scan_lab.log" 2>&1; echo "rc=$?"; cat "$OUT/scan_lab.log"
[ "${1:-}" = "quick" ] && exit 0

echo "== pytorch"
if python3 -c 'import torch' 2>/dev/null; then
  PYTHONUNBUFFERED=1 timeout 100 python3 tests/bench/scan_torch.py --ours "$OUT/ours_scan.json" --budget 75 > "$OUT/scan_torch.log" 2>&1; echo "rc=$?"; grep -v Warning "$OUT/scan_torch.log" | tail -15
  PYTHONUNBUFFERED=1 timeout 70 python3 tests/bench/vision_torch.py --ours "$OUT/ours_train.json" --steps 3 > "$OUT/vision_torch.log" 2>&1; echo "rc=$?"; tail -6 "$OUT/vision_torch.log"
  # the shipped vision classifier's whole step against ours ("vision" in ours_train.json)
  PYTHONUNBUFFERED=1 timeout 70 python3 tests/bench/vision_torch.py --vision --ours "$OUT/ours_train.json" --steps 5 > "$OUT/vision_torch_cls.log" 2>&1; echo "rc=$?"; tail -6 "$OUT/vision_torch_cls.log"
else
  echo "SKIP pytorch harness: torch not importable"
fi
echo "== done $(date -u '+%T')"
