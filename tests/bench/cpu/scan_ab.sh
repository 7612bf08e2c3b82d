#!/usr/bin/env bash
# scan_ab.sh [REV] [B E L N ...] — the CPU scan of git revision REV (default HEAD) against the
# working tree's core/scan.c, each with its own core/ headers, in one process
# (tests/bench/cpu/scan_ab.c says why), compiled with the release flags, clones included. Default shapes: the vision model's
# training scan, a long single sequence, a MambaMIL-sized one. One thread unless
# OMP_NUM_THREADS says otherwise. ISA=v3 (or v4) compiles both copies for that x86-64 level
# alone instead of MK_CLONES' run-time choice, to time the AVX2 copy on an AVX-512 machine.
# Run from the repository root after `make`.
set -euo pipefail
rev=${1:-HEAD}; shift || true
shapes=("$@"); [ ${#shapes[@]} -gt 0 ] || shapes=("128 160 50 16" "1 256 1024 16" "4 64 500 8")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cflags="-O2 -std=c11 -fno-math-errno -fno-trapping-math -D_GNU_SOURCE -fopenmp -march=x86-64-v2 -mtune=generic -ffp-contract=fast -w"
# each version with its own headers (simd.h's exp and sigmoid are inlined into the scan)
mkdir -p "$tmp/a" "$tmp/b"
git archive "$rev" core | tar -x -C "$tmp/a"
cp -r core "$tmp/b/"
if [ -n "${ISA:-}" ]; then
  sed -i "s/^MK_CLONES\$/__attribute__((target(\"arch=x86-64-$ISA\")))/" "$tmp/a/core/scan.c" "$tmp/b/core/scan.c"
  grep -q "arch=x86-64-$ISA" "$tmp/b/core/scan.c" || { echo "scan_ab.sh: no MK_CLONES line to replace" >&2; exit 1; }
fi
for v in a b; do
  cc $cflags -I"$tmp/$v" -I"$tmp/$v/core" -c "$tmp/$v/core/scan.c" -o "$tmp/$v.raw.o"
  objcopy --redefine-sym ssm_scan_forward_ck=${v}_fwd --redefine-sym ssm_scan_backward_ck=${v}_bwd "$tmp/$v.raw.o" "$tmp/$v.ren.o"
  objcopy --keep-global-symbol=${v}_fwd --keep-global-symbol=${v}_bwd "$tmp/$v.ren.o" "$tmp/$v.o"
done
# ssm_scan_ck_floats comes from the library (the same in both versions)
cc $cflags -I. tests/bench/cpu/scan_ab.c "$tmp/a.o" "$tmp/b.o" build/libmambakit.a -lm -o "$tmp/scan_ab"
echo "A = core/scan.c at $rev ($(git rev-parse --short "$rev")), B = the working tree's; ${ISA:+x86-64-$ISA only; }$OMP_NUM_THREADS thread(s); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
for s in "${shapes[@]}"; do "$tmp/scan_ab" $s ${ROUNDS:-15} ${REPS:-3}; done
