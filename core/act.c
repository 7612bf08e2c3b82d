/* act.c — elementwise activations. Backward accumulates into dinp. */
#include <math.h>
#include "ops.h"
#include "simd.h"

/* SiLU runs on every token of every layer: the vectorisable sigmoid (simd.h,
 * relative error < 3e-7) instead of libm's expf, AVX-512 or AVX2 where present, in
 * chunks so OpenMP shares big arrays (the clone attribute must sit on a plain
 * function, not on the one OpenMP outlines). */
#define ACT_CHUNK 16384
MK_CLONES
static void silu_fwd_range(float *out, const float *inp, size_t n) {
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
    const long nch = (long)((n + ACT_CHUNK - 1) / ACT_CHUNK);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (long c = 0; c < nch; c++) {
        size_t a = (size_t)c * ACT_CHUNK;
        silu_fwd_range(out + a, inp + a, n - a < ACT_CHUNK ? n - a : ACT_CHUNK);
    }
}
void silu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    const long nch = (long)((n + ACT_CHUNK - 1) / ACT_CHUNK);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (long c = 0; c < nch; c++) {
        size_t a = (size_t)c * ACT_CHUNK;
        silu_bwd_range(dinp + a, dout + a, inp + a, n - a < ACT_CHUNK ? n - a : ACT_CHUNK);
    }
}
void gelu_forward(float *out, const float *inp, size_t n) {
    /* erfc form: 1 + erf(x/sqrt2) cancels to 0 for x << 0; erfc keeps the tail */
    for (size_t i = 0; i < n; i++) out[i] = 0.5f * inp[i] * erfcf(-inp[i] * 0.70710678118f);
}
void gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float cdf = 0.5f * erfcf(-x * 0.70710678118f);
        float pdf = 0.39894228040f * expf(-0.5f * x * x);
        dinp[i] += dout[i] * (cdf + x * pdf);
    }
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
