/* norm.c — RMSNorm and LayerNorm over the last dimension, forward and backward. */
#include <math.h>
#include "ops.h"

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int M, int C, float eps) {
#pragma omp parallel for schedule(static) if (M > 64)
    for (int m = 0; m < M; m++) {
        const float *x = inp + (size_t)m * C;
        float *o = out + (size_t)m * C;
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        float r = 1.0f / sqrtf((float)(ss / C) + eps);
        for (int c = 0; c < C; c++) o[c] = x[c] * r * w[c];
        if (rstd) rstd[m] = r;
    }
}

/* y = x*r*w, r = (mean(x^2)+eps)^-1/2:
 * dx = r*(dy*w) - x * r^3/C * sum(dy*w*x) */
void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                      const float *rstd, int M, int C) {
    for (int m = 0; m < M; m++) {
        const float *x = inp + (size_t)m * C, *dy = dout + (size_t)m * C;
        float r = rstd[m];
        double dot = 0;
        for (int c = 0; c < C; c++) dot += (double)dy[c] * w[c] * x[c];
        float k = (float)(dot * r * r * r / C);
        if (dinp) {
            float *dx = dinp + (size_t)m * C;
            for (int c = 0; c < C; c++) dx[c] += r * dy[c] * w[c] - x[c] * k;
        }
        if (dw)
            for (int c = 0; c < C; c++) dw[c] += dy[c] * x[c] * r;
    }
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, int M, int C, float eps) {
#pragma omp parallel for schedule(static) if (M > 64)
    for (int m = 0; m < M; m++) {
        const float *x = inp + (size_t)m * C;
        float *o = out + (size_t)m * C;
        double s = 0;
        for (int c = 0; c < C; c++) s += x[c];
        float mu = (float)(s / C);
        double v = 0;
        for (int c = 0; c < C; c++) v += (double)(x[c] - mu) * (x[c] - mu);
        float r = 1.0f / sqrtf((float)(v / C) + eps);
        for (int c = 0; c < C; c++) o[c] = (x[c] - mu) * r * w[c] + (b ? b[c] : 0.f);
        if (mean) mean[m] = mu;
        if (rstd) rstd[m] = r;
    }
}

void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int M, int C) {
    for (int m = 0; m < M; m++) {
        const float *x = inp + (size_t)m * C, *dy = dout + (size_t)m * C;
        float mu = mean[m], r = rstd[m];
        double s1 = 0, s2 = 0; /* mean(dxhat), mean(dxhat*xhat) */
        for (int c = 0; c < C; c++) {
            float xh = (x[c] - mu) * r, dxh = dy[c] * w[c];
            s1 += dxh;
            s2 += (double)dxh * xh;
        }
        float m1 = (float)(s1 / C), m2 = (float)(s2 / C);
        for (int c = 0; c < C; c++) {
            float xh = (x[c] - mu) * r;
            if (dinp) dinp[(size_t)m * C + c] += r * (dy[c] * w[c] - m1 - xh * m2);
            if (dw) dw[c] += dy[c] * xh;
            if (db) db[c] += dy[c];
        }
    }
}
