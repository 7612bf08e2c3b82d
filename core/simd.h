/* simd.h — vectorisable float exp/log/sigmoid and the clone attribute.
 *
 * libm's expf/log1pf are calls the compiler cannot vectorise, and the scan
 * needs one exp per state update. These branch-free versions compile to SIMD
 * inside `#pragma omp simd` loops. Accuracy (tested in tests/test_ops.c):
 * mk_fexp relative error < 2.5e-7 on [-87, 88]; mk_fsoftplus < 5e-7;
 * mk_fsigmoid < 1e-6 on [-40, 40] and its reciprocal mk_frcp_ge1 < 2.4e-7.
 *
 * MK_CLONES makes gcc emit x86-64-v4 (AVX-512) and x86-64-v3 (AVX2+FMA) copies
 * of a hot function next to the baseline one and pick at load time, so one
 * binary runs on any x86-64 and uses the widest of these the CPU has. The
 * AVX-512 copy (2026-11-28): the CPU scan's forward 1.8x and its backward 1.35x
 * faster than the AVX2 one on this project's Xeon (docs/PERFORMANCE.md). The
 * sanitizer builds leave the clones out; tests/rel/test_scan and test_ops
 * (Makefile: REL_TEST_BIN) run them in make test. The release build compiles
 * with -ffp-contract=fast (Makefile: CLONE_FP), so the clones fuse a*b+c into
 * FMAs (the scan's forward about 1.3x, docs/PERFORMANCE.md); ISO C mode forbids
 * that by default, and the baseline copy has no FMA, so it keeps its bits. */
#ifndef MK_SIMD_H
#define MK_SIMD_H

#include <stdint.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define MK_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MK_CLONES
#endif

typedef union {
    float f;
    int32_t i;
    uint32_t u;
} mk_fi32;

/* exp(x), x clamped to [-87, 88] (exp(-87) ~ 1.6e-38: underflow to ~0 is what
 * the scan wants). exp(x) = 2^n e^r, n = round(x log2 e), |r| <= ln2/2.
 * Adding 1.5*2^23 + 127 rounds x log2 e to an integer held in the low bits of
 * t, so t minus that constant is n, and t's bits shifted left by 23 are 2^n's
 * bits: no floor and no float-to-int conversion. r by Cody-Waite (n*ln2_hi is
 * exact), then a degree-5 minimax polynomial for e^r (relative error 9.1e-8 in
 * exact arithmetic; tests/test_ops.c's simd_fexp measures the float version).
 * 13 vector operations where the floor, the conversion and a degree-7 Taylor
 * polynomial took 17; the scan spends one per state update. */
/* p(r) * 2^n for t = x log2 e + 1.5*2^23 + 127 (n in its low bits) and |r| <= ln2/2 */
static inline float mk_fexp_tail_(float t, float r) {
    float p = 8.2903146693e-03f;
    p = p * r + 4.1897929319e-02f;
    p = p * r + 1.6667636196e-01f;
    p = p * r + 4.9999149530e-01f;
    p = p * r + 9.9999970719e-01f;
    p = p * r + 1.0f;
    mk_fi32 s;
    s.f = t;
    s.u = s.u << 23; /* 127 + n in the low bits; the high bits shift out */
    return p * s.f;
}

static inline float mk_fexp(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float shift = 12582912.0f + 127.0f;
    float t = x * 1.44269504088896341f + shift;
    float n = t - shift;
    float r = x - n * 0.693145751953125f;
    r = r - n * 1.428606765330187e-06f;
    return mk_fexp_tail_(t, r);
}

/* exp(hi + lo) for an exact hi and |lo| small beside it, with the accuracy of
 * mk_fexp whatever the size of hi: a float argument near -50 carries an error of
 * 2e-6 (half its ulp) into the result, the split does not. hi - n ln2_hi is exact
 * (Sterbenz) and lo joins the reduced argument. For hi + lo <= 88; 0 where
 * hi + lo < -87. */
static inline float mk_fexp_hl(float hi, float lo) {
    float x = hi + lo;
    const float shift = 12582912.0f + 127.0f;
    float xc = x < -87.0f ? -87.0f : x;
    xc = xc > 88.0f ? 88.0f : xc;
    float t = xc * 1.44269504088896341f + shift;
    float n = t - shift;
    float r = hi - n * 0.693145751953125f;
    r = r - n * 1.428606765330187e-06f;
    r = r + lo;
    r = r < -0.5f ? -0.5f : r; /* only when clamped: keep the polynomial tame */
    r = r > 0.5f ? 0.5f : r;
    float e = mk_fexp_tail_(t, r);
    return x < -87.0f ? 0.0f : e;
}

/* log(w) for w in [1, 2]: 2*atanh(s), s = (w-1)/(w+1) in [0, 1/3]. */
static inline float mk_flog_1_2(float w) {
    float s = (w - 1.0f) / (w + 1.0f), s2 = s * s;
    float p = 1.0f / 13.0f;
    p = p * s2 + 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    return 2.0f * s * p;
}

/* softplus(x) = max(x,0) + log1p(exp(-|x|)); log1p(y) via Kahan's
 * log(1+y) * y / ((1+y)-1) so tiny y keeps full relative precision. */
static inline float mk_fsoftplus(float x) {
    float ax = x < 0 ? -x : x;
    float y = mk_fexp(-ax); /* (0, 1] */
    float w = 1.0f + y;
    float d = w - 1.0f;
    float l = d == 0.0f ? y : mk_flog_1_2(w) * (y / d);
    return (x > 0 ? x : 0.0f) + l;
}

/* 1/d for 1 <= d < 2^126 (the sigmoid's denominator: at most 1 + e^87) without a
 * divide. The divider takes one AVX-512 vector per 10-16 cycles, and a profile of
 * inference had a fifth of its samples on the sigmoid's divides (the SiLU after the
 * conv, the scan's output gate). A first guess from the bits (relative error
 * < 5.1 %) and three Newton steps, each squaring the error: 2.6e-3, 6.5e-6, 4e-11,
 * then rounding; tests/test_ops.c's simd_frcp checks it against double division. */
static inline float mk_frcp_ge1(float d) {
    mk_fi32 v;
    v.f = d;
    v.i = 0x7EF311C3 - v.i;
    float r = v.f;
    r = r + r * (1.0f - d * r);
    r = r + r * (1.0f - d * r);
    r = r + r * (1.0f - d * r);
    return r;
}

static inline float mk_fsigmoid(float x) { return mk_frcp_ge1(1.0f + mk_fexp(-x)); }

#endif
