/* norm.c — RMSNorm and LayerNorm over the last dimension, forward and backward. */
#include <math.h>
#include "ops.h"
#include "simd.h"

MK_CLONES
static void rms_row_fwd(float *o, float *rstd, const float *x, const float *w, int C, float eps) {
    double ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
    float r = 1.0f / sqrtf((float)(ss / C) + eps);
#pragma omp simd
    for (int c = 0; c < C; c++) o[c] = x[c] * r * w[c];
    if (rstd) *rstd = r;
}

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int M, int C, float eps) {
#pragma omp parallel for schedule(static) if (M > 64)
    for (int m = 0; m < M; m++)
        rms_row_fwd(out + (size_t)m * C, rstd ? rstd + m : NULL, inp + (size_t)m * C, w, C, eps);
}

/* y = x*r*w, r = (mean(x^2)+eps)^-1/2:
 * dx = r*(dy*w) - x * r^3/C * sum(dy*w*x) */
MK_CLONES
static void rms_row_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w, float r, int C) {
    double dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int c = 0; c < C; c++) dot += (double)dy[c] * w[c] * x[c];
    float k = (float)(dot * r * r * r / C);
    if (dx) {
#pragma omp simd
        for (int c = 0; c < C; c++) dx[c] += r * dy[c] * w[c] - x[c] * k;
    }
    if (dw) {
#pragma omp simd
        for (int c = 0; c < C; c++) dw[c] += dy[c] * x[c] * r;
    }
}

void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                      const float *rstd, int M, int C) {
    for (int m = 0; m < M; m++)
        rms_row_bwd(dinp ? dinp + (size_t)m * C : NULL, dw, dout + (size_t)m * C, inp + (size_t)m * C, w, rstd[m], C);
}

/* One row each, the clones' vector width over C. The sums stay in double (a row of
 * C floats summed in float loses digits the backward then feels), but as omp simd
 * reductions: the scalar double loops were a chain of dependent adds, 4 cycles an
 * element, and LayerNorm was 9 % of a forecaster's training step. */
MK_CLONES
static void ln_row_fwd(float *o, float *mean, float *rstd, const float *x, const float *w, const float *b, int C,
                       float eps) {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int c = 0; c < C; c++) s += x[c];
    float mu = (float)(s / C);
    double v = 0;
#pragma omp simd reduction(+ : v)
    for (int c = 0; c < C; c++) v += (double)(x[c] - mu) * (x[c] - mu);
    float r = 1.0f / sqrtf((float)(v / C) + eps);
    if (b) {
#pragma omp simd
        for (int c = 0; c < C; c++) o[c] = (x[c] - mu) * r * w[c] + b[c];
    } else {
#pragma omp simd
        for (int c = 0; c < C; c++) o[c] = (x[c] - mu) * r * w[c];
    }
    if (mean) *mean = mu;
    if (rstd) *rstd = r;
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, int M, int C, float eps) {
#pragma omp parallel for schedule(static) if (M > 64)
    for (int m = 0; m < M; m++)
        ln_row_fwd(out + (size_t)m * C, mean ? mean + m : NULL, rstd ? rstd + m : NULL, inp + (size_t)m * C, w, b, C,
                   eps);
}

MK_CLONES
static void ln_row_bwd(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, float mu,
                       float r, int C) {
    double s1 = 0, s2 = 0; /* sums of dxhat, dxhat*xhat */
#pragma omp simd reduction(+ : s1, s2)
    for (int c = 0; c < C; c++) {
        float xh = (x[c] - mu) * r, dxh = dy[c] * w[c];
        s1 += dxh;
        s2 += (double)dxh * xh;
    }
    float m1 = (float)(s1 / C), m2 = (float)(s2 / C);
    if (dx) {
#pragma omp simd
        for (int c = 0; c < C; c++) dx[c] += r * (dy[c] * w[c] - m1 - (x[c] - mu) * r * m2);
    }
    if (dw) {
#pragma omp simd
        for (int c = 0; c < C; c++) dw[c] += dy[c] * ((x[c] - mu) * r);
    }
    if (db) {
#pragma omp simd
        for (int c = 0; c < C; c++) db[c] += dy[c];
    }
}

void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int M, int C) {
    for (int m = 0; m < M; m++)
        ln_row_bwd(dinp ? dinp + (size_t)m * C : NULL, dw, db, dout + (size_t)m * C, inp + (size_t)m * C, w, mean[m],
                   rstd[m], C);
}
