#!/usr/bin/env bash
# The whole stack learns: a small Mamba trained with our own optimiser solves
# selective copying (Gu & Dao 2023) to >= 95 % token accuracy, and the same
# model with selection off (delta, B, C not input-dependent) does measurably
# worse. Runs the release binary ($MK_REL): ~2 x 30 s there, far longer under
# the sanitizers, which the unit tests of the same code already use.
MK_REL=${MK_REL:-build/mambakit}
out=$(OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 "$MK_REL" train copy --body 32 --tokens 6 --steps 1600 --lr 6e-3 --seed 7 --json 2>/dev/null)
rc=$?
if [ $rc -ne 0 ] || [ -z "$out" ]; then echo "FAIL learn.run exit $rc"; exit 1; fi
echo "selective copying (6 tokens among 32, vocab 8, 1600 steps x 32): $out"
sel=$(sed -E 's/.*"selective":\{"accuracy":([0-9.]+).*/\1/' <<<"$out")
lti=$(sed -E 's/.*"lti":\{"accuracy":([0-9.]+).*/\1/' <<<"$out")
awk -v s="$sel" 'BEGIN{exit !(s >= 0.95)}' && echo "PASS learn.selective_copy_95  selective accuracy $sel (need >= 0.95)" \
  || echo "FAIL learn.selective_copy_95  selective accuracy $sel (need >= 0.95)"
awk -v s="$sel" -v l="$lti" 'BEGIN{exit !(l + 0.10 < s)}' && echo "PASS learn.selection_matters  selection off $lti vs selective $sel" \
  || echo "FAIL learn.selection_matters  selection off $lti vs selective $sel (need >= 0.10 lower)"
