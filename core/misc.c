/* misc.c — dropout, drop-path, token gather/scatter by scan order, small vector ops. */
#include <math.h>
#include <string.h>
#include "ops.h"
#include "simd.h"

void dropout_forward(float *out, float *mask, const float *inp, size_t n, float p, mk_rng *rng) {
    float keep = 1.f - p;
    for (size_t i = 0; i < n; i++) {
        mask[i] = (p <= 0.f || mk_rng_uniform(rng) < keep) ? (p > 0 ? 1.f / keep : 1.f) : 0.f;
        out[i] = inp[i] * mask[i];
    }
}
void dropout_backward(float *dinp, const float *dout, const float *mask, size_t n) {
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * mask[i];
}
void droppath_mask(float *mask, int B, float p, mk_rng *rng) {
    for (int b = 0; b < B; b++) mask[b] = (p <= 0.f || mk_rng_uniform(rng) >= p) ? 1.f / (1.f - (p > 0 ? p : 0)) : 0.f;
}
void droppath_forward(float *out, const float *inp, const float *mask, int B, size_t per) {
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < per; i++) out[b * per + i] = inp[b * per + i] * mask[b];
}
void droppath_backward(float *dinp, const float *dout, const float *mask, int B, size_t per) {
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < per; i++) dinp[b * per + i] += dout[b * per + i] * mask[b];
}

void gather_rows(float *out, const float *inp, const int *order, int B, int L, int C) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * L * C > 65536)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++) {
            int s = order ? order[t] : t;
            memcpy(out + ((size_t)b * L + t) * C, inp + ((size_t)b * L + s) * C, sizeof(float) * C);
        }
}
/* rows t0..t1 of batch b; a plain function so it can carry the clones */
MK_CLONES
static void scatter_rows(float *out, const float *inp, const int *order, int b, int t0, int t1, int L, int C, float alpha) {
    for (int t = t0; t < t1; t++) {
        int s = order ? order[t] : t;
        float *o = out + ((size_t)b * L + s) * C;
        const float *x = inp + ((size_t)b * L + t) * C;
#pragma omp simd
        for (int c = 0; c < C; c++) o[c] += alpha * x[c];
    }
}
void scatter_add_rows(float *out, const float *inp, const int *order, int B, int L, int C, float alpha) {
    /* order is a permutation, so rows never collide: safe to parallelise */
    const int nblk = (L + 63) / 64;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * L * C > 65536)
    for (int b = 0; b < B; b++)
        for (int k = 0; k < nblk; k++) scatter_rows(out, inp, order, b, k * 64, k * 64 + 64 < L ? k * 64 + 64 : L, L, C, alpha);
}

void vec_add(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
void vec_acc(float *out, const float *a, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] += a[i];
}
void vec_scale(float *out, float s, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] *= s;
}
void softmax_rows(float *out, const float *inp, int M, int C) {
    for (int m = 0; m < M; m++) {
        const float *z = inp + (size_t)m * C;
        float *o = out + (size_t)m * C;
        float mx = z[0];
        for (int c = 1; c < C; c++) mx = z[c] > mx ? z[c] : mx;
        double s = 0;
        for (int c = 0; c < C; c++) s += (o[c] = expf(z[c] - mx));
        for (int c = 0; c < C; c++) o[c] = (float)(o[c] / s);
    }
}
