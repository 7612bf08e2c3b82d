#!/usr/bin/env bash
# Runs every test binary given on the command line. Each prints lines
#   PASS <name> ...   FAIL <name> ...   SKIP <name>: skipped: <why>
# A binary that exits non-zero without printing FAIL (a crash, a sanitizer
# report) counts as one failure. tests/test_*.sh scripts run with bash and
# get $MK (the sanitizer build of the mambakit binary) and $MK_REL (release). Ends with "N passed, N failed, N skipped".
set -u
export ASAN_OPTIONS=${ASAN_OPTIONS:-protect_shadow_gap=0:detect_leaks=1:abort_on_error=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$(cd "$(dirname "$0")" && pwd)/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# OpenBLAS's kernels: the mambakit binary re-runs itself with OPENBLAS_CORETYPE set when the
# library fell back to its generic ones on a CPU newer than it knows (core/linear.c); the test
# binaries get the core it reports, so they run the kernels a user's runs do
if [ -z "${OPENBLAS_CORETYPE:-}" ] && [ -n "${MK_REL:-}" ] && [ -x "${MK_REL:-}" ]; then
  core=$("$MK_REL" --version 2>/dev/null | sed -n 's/.*(OpenBLAS core \([A-Za-z0-9]*\)).*/\1/p')
  if [ -n "$core" ]; then export OPENBLAS_CORETYPE=$core; echo "OpenBLAS core: $core"; fi
fi
pass=0; fail=0; skip=0; failed=()
t_all=$(date +%s)
for t in "$@"; do
  name=$(basename "$t")
  t0=$(date +%s.%N)
  case "$t" in
    *.sh) out=$(bash "$t" 2>&1); rc=$? ;;
    *) out=$("$t" 2>&1); rc=$? ;;
  esac
  dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  p=$(grep -c '^PASS' <<<"$out"); f=$(grep -c '^FAIL' <<<"$out"); s=$(grep -c '^SKIP' <<<"$out")
  grep -E '^(PASS|FAIL|SKIP)' <<<"$out"
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "FAIL $name: exited with status $rc; last output:"; tail -n 25 <<<"$out" | sed 's/^/    /'
    f=1
  elif [ "$f" -gt 0 ]; then
    grep -v -E '^(PASS|SKIP)' <<<"$out" | tail -n 40 | sed 's/^/    /'
  fi
  echo "  ($name: ${dt}s)"
  pass=$((pass+p)); fail=$((fail+f)); skip=$((skip+s))
  [ "$f" -gt 0 ] && failed+=("$name")
done
echo "total time $(( $(date +%s) - t_all ))s"
[ ${#failed[@]} -gt 0 ] && echo "failed binaries: ${failed[*]}"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
