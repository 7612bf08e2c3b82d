/* act.c — elementwise activations. Backward accumulates into dinp. */
#include <math.h>
#include "ops.h"
#include "simd.h"

/* SiLU runs on every token of every layer: the vectorisable sigmoid (simd.h,
 * relative error < 3e-7) instead of libm's expf, AVX-512 or AVX2 where present, in
 * chunks so OpenMP shares big arrays (the clone attribute must sit on a plain
 * function, not on the one OpenMP outlines). */
#define ACT_CHUNK 16384
/* f(o, a, b, n) over ACT_CHUNK-element pieces, shared by OpenMP above 65536 elements;
 * b may be NULL (a one-input op) */
typedef void (*act_range)(float *o, const float *a, const float *b, size_t n);
static void act_chunks(act_range f, float *o, const float *a, const float *b, size_t n) {
    const long nch = (long)((n + ACT_CHUNK - 1) / ACT_CHUNK);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (long c = 0; c < nch; c++) {
        size_t s = (size_t)c * ACT_CHUNK;
        f(o + s, a + s, b ? b + s : NULL, n - s < ACT_CHUNK ? n - s : ACT_CHUNK);
    }
}
MK_CLONES
static void silu_fwd_range(float *out, const float *inp, const float *unused, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) out[i] = inp[i] * mk_fsigmoid(inp[i]);
}
MK_CLONES
static void silu_bwd_range(float *dinp, const float *dout, const float *inp, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float s = mk_fsigmoid(inp[i]);
        dinp[i] += dout[i] * s * (1.f + inp[i] * (1.f - s));
    }
}
void silu_forward(float *out, const float *inp, size_t n) {
    act_chunks(silu_fwd_range, out, inp, NULL, n);
}
void silu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    act_chunks(silu_bwd_range, dinp, dout, inp, n);
}
/* GELU(x) = x Phi(x), Phi(x) = erfc(-x/sqrt2)/2: the erfc form keeps the relative
 * accuracy of the tail x << 0, where 1 + erf cancels. libm's erfcf is a call per
 * element the compiler cannot vectorise (8 % of a forecaster's training step), so:
 * erfc(a) = t exp(-a^2 + P(t)), t = 2/(2+a), a = |x|/sqrt2 >= 0, with P of degree
 * 9 fitted for the smallest largest error in the exponent on t in (0, 1] (9.7e-8 in
 * exact arithmetic, so the same relative error in erfc). -a^2 = -x^2/2 is split in
 * an exact head -xh^2/2 (xh: x with 12 significant bits) and a small tail, which
 * mk_fexp_hl takes apart: a rounded -x^2/2 near -50 alone would cost 2e-6.
 * tests/test_ops.c's gelu_accuracy measures the result against double erfc. */
typedef struct {
    float phi;  /* Phi(x) */
    float ehi;  /* -x^2/2 = ehi + elo, ehi exact */
    float elo;
} mk_gelu_parts;

static inline __attribute__((always_inline)) mk_gelu_parts gelu_parts(float x) {
    float ax = x < 0 ? -x : x;
    ax = ax > 20.0f ? 20.0f : ax; /* Phi(-20) = 3e-89: no float difference; keeps GELU(inf) = inf */
    mk_fi32 h;
    h.f = ax;
    h.u &= 0xFFFFF000u; /* 12 significant bits: xh*xh is exact */
    float xh = h.f, xl = ax - xh;
    float ehi = -0.5f * (xh * xh), elo = -0.5f * (xl * (ax + xh));
    float a = ax * 0.70710678118654752f;
    float t = 2.0f * mk_frcp_ge1(2.0f + a);
    float P = 1.6876109466e-01f;
    P = P * t - 8.1332585084e-01f;
    P = P * t + 1.4732556643e+00f;
    P = P * t - 1.1211000218e+00f;
    P = P * t + 2.7135160734e-01f;
    P = P * t - 1.8396617508e-01f;
    P = P * t + 9.6388132824e-02f;
    P = P * t + 3.7412503816e-01f;
    P = P * t + 1.0000226499e+00f;
    P = P * t - 1.2655122201e+00f;
    float half_erfc = 0.5f * t * mk_fexp_hl(ehi, elo + P);
    mk_gelu_parts r = {x < 0 ? half_erfc : 1.0f - half_erfc, ehi, elo};
    return r;
}
/* GELU'(x) = Phi(x) + x phi(x), phi by the same split exponent */
static inline __attribute__((always_inline)) float gelu_deriv(float x) {
    mk_gelu_parts g = gelu_parts(x);
    return g.phi + x * (0.39894228040143268f * mk_fexp_hl(g.ehi, g.elo));
}
MK_CLONES
static void gelu_fwd_range(float *out, const float *inp, const float *unused, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) out[i] = inp[i] * gelu_parts(inp[i]).phi;
}
MK_CLONES
static void gelu_bwd_range(float *dinp, const float *dout, const float *inp, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * gelu_deriv(inp[i]);
}
MK_CLONES
static void gelu_bwd_inplace_range(float *d, const float *inp, const float *unused, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) d[i] *= gelu_deriv(inp[i]);
}
void gelu_forward(float *out, const float *inp, size_t n) {
    act_chunks(gelu_fwd_range, out, inp, NULL, n);
}
void gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    act_chunks(gelu_bwd_range, dinp, dout, inp, n);
}
void gelu_backward_inplace(float *d, const float *inp, size_t n) {
    act_chunks(gelu_bwd_inplace_range, d, inp, NULL, n);
}
void relu_forward(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0 ? inp[i] : 0.f;
}
void relu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) dinp[i] += inp[i] > 0 ? dout[i] : 0.f;
}
void tanh_forward(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = tanhf(inp[i]);
}
void tanh_backward(float *dinp, const float *dout, const float *out, size_t n) {
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * (1.f - out[i] * out[i]);
}
void sigmoid_forward(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = mk_sigmoidf(inp[i]);
}
void sigmoid_backward(float *dinp, const float *dout, const float *out, size_t n) {
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * out[i] * (1.f - out[i]);
}
void softplus_forward(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = mk_softplusf(inp[i]);
}
void softplus_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * mk_sigmoidf(inp[i]);
}
