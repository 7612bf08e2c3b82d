/* act.c — elementwise activations. Backward accumulates into dinp. */
#include <math.h>
#include "ops.h"

void silu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) out[i] = mk_siluf(inp[i]);
}
void silu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float s = mk_sigmoidf(inp[i]);
        dinp[i] += dout[i] * s * (1.f + inp[i] * (1.f - s));
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
