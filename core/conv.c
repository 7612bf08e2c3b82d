/* conv.c — depthwise causal conv1d over time, channels last, with carried state. */
#include <stdlib.h>
#include <string.h>
#include "ops.h"

/* The (C) input row at time t (may be negative: then it comes from the state;
 * NULL when there is none, i.e. zeros). */
static inline const float *xrow(const float *x, const float *st, int b, int t, int L, int C, int K) {
    if (t >= 0) return x + ((size_t)b * L + t) * C;
    return st ? st + ((size_t)b * (K - 1) + (K - 1 + t)) * C : NULL;
}
static inline float xin(const float *x, const float *st, int b, int t, int L, int C, int K, int c) {
    const float *r = xrow(x, st, b, t, L, C, K);
    return r ? r[c] : 0.f;
}

void conv1d_forward(float *out, float *state_out, const float *inp, const float *state_in,
                    const float *w, const float *b, int B, int L, int C, int K) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * L * C > 65536)
    for (int bb = 0; bb < B; bb++)
        for (int t = 0; t < L; t++) {
            float *o = out + ((size_t)bb * L + t) * C;
            if (t >= K - 1) { /* fast path: all taps inside this chunk */
                for (int c = 0; c < C; c++) o[c] = b ? b[c] : 0.f;
                for (int k = 0; k < K; k++) {
                    const float *xr = inp + ((size_t)bb * L + t - (K - 1) + k) * C;
                    for (int c = 0; c < C; c++) o[c] += w[(size_t)c * K + k] * xr[c];
                }
            } else {
                for (int c = 0; c < C; c++) {
                    float s = b ? b[c] : 0.f;
                    for (int k = 0; k < K; k++) s += w[(size_t)c * K + k] * xin(inp, state_in, bb, t - (K - 1) + k, L, C, K, c);
                    o[c] = s;
                }
            }
        }
    if (state_out) {
        /* last K-1 inputs, reaching into state_in when L < K-1; computed into a
         * temporary because state_out may alias state_in */
        size_t n = (size_t)B * (K - 1) * C;
        float *tmp = mk_malloc(sizeof(float) * (n ? n : 1));
        for (int bb = 0; bb < B; bb++)
            for (int j = 0; j < K - 1; j++)
                for (int c = 0; c < C; c++)
                    tmp[((size_t)bb * (K - 1) + j) * C + c] = xin(inp, state_in, bb, L - (K - 1) + j, L, C, K, c);
        memcpy(state_out, tmp, sizeof(float) * n);
        free(tmp);
    }
}

void conv1d_backward(float *dinp, float *dstate_in, float *dw, float *db, const float *dout,
                     const float *inp, const float *state_in, const float *w, int B, int L, int C, int K) {
    if (dinp) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * L * C > 65536)
        for (int bb = 0; bb < B; bb++)
            for (int s = 0; s < L; s++) { /* input time s feeds outputs t = s + (K-1) - k */
                float *dx = dinp + ((size_t)bb * L + s) * C;
                for (int k = 0; k < K; k++) {
                    int t = s + (K - 1) - k;
                    if (t >= L) continue;
                    const float *dy = dout + ((size_t)bb * L + t) * C;
                    for (int c = 0; c < C; c++) dx[c] += w[(size_t)c * K + k] * dy[c];
                }
            }
    }
    if (dstate_in) {
        for (int bb = 0; bb < B; bb++)
            for (int j = 0; j < K - 1; j++) { /* state slot j is time j-(K-1) */
                int s = j - (K - 1);
                for (int k = 0; k < K; k++) {
                    int t = s + (K - 1) - k;
                    if (t < 0 || t >= L) continue;
                    for (int c = 0; c < C; c++)
                        dstate_in[((size_t)bb * (K - 1) + j) * C + c] += w[(size_t)c * K + k] * dout[((size_t)bb * L + t) * C + c];
                }
            }
    }
    if (dw || db) {
        /* parallel over 16-channel slices so each thread owns its part of dw/db;
         * contiguous rows into a local sum, one pass for db and one per tap for
         * dw (dw is (C, K): strided by K) */
#pragma omp parallel for schedule(static) if ((size_t)B * L * C > 65536)
        for (int c0 = 0; c0 < C; c0 += 16) {
            const int nc = c0 + 16 < C ? 16 : C - c0;
            if (db) {
                float acc[16] = {0};
                for (size_t r = 0; r < (size_t)B * L; r++)
                    for (int c = 0; c < nc; c++) acc[c] += dout[r * C + c0 + c];
                for (int c = 0; c < nc; c++) db[c0 + c] += acc[c];
            }
            for (int k = 0; dw && k < K; k++) {
                float acc[16] = {0};
                for (int bb = 0; bb < B; bb++)
                    for (int t = 0; t < L; t++) {
                        const float *dy = dout + ((size_t)bb * L + t) * C + c0;
                        const float *x = xrow(inp, state_in, bb, t - (K - 1) + k, L, C, K); /* what this tap read */
                        if (x)
                            for (int c = 0; c < nc; c++) acc[c] += dy[c] * x[c0 + c];
                    }
                for (int c = 0; c < nc; c++) dw[(size_t)(c0 + c) * K + k] += acc[c];
            }
        }
    }
}
