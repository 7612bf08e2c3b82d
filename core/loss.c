/* loss.c — softmax cross-entropy, MSE, L1. Gradients are SET, scaled by `scale`. */
#include <math.h>
#include <string.h>
#include "ops.h"
#include "simd.h"

float crossentropy_forward_backward(float *dlogits, float *probs, int *correct, const float *logits,
                                    const int *targets, int M, int C, float scale) {
    double loss = 0;
    int n = 0, hits = 0;
    for (int m = 0; m < M; m++) {
        MK_ASSERT(targets[m] < C); /* labels are validated where they are read */
        n += targets[m] >= 0;
    }
    for (int m = 0; m < M; m++) {
        const float *z = logits + (size_t)m * C;
        float mx = z[0];
        int arg = 0;
        for (int c = 1; c < C; c++)
            if (z[c] > mx) mx = z[c], arg = c;
        double s = 0;
        for (int c = 0; c < C; c++) s += exp((double)z[c] - mx);
        double lse = mx + log(s);
        int y = targets[m];
        if (y >= 0) {
            loss += lse - z[y];
            hits += arg == y;
        }
        for (int c = 0; c < C; c++) {
            float p = (float)exp((double)z[c] - lse);
            if (probs) probs[(size_t)m * C + c] = p;
            if (dlogits) dlogits[(size_t)m * C + c] = y >= 0 ? scale * (p - (c == y)) / (n ? n : 1) : 0.f;
        }
    }
    if (correct) *correct = hits;
    return n ? (float)(loss / n) : 0.f;
}

/* Vectorised: the gradient's per-element expression is unchanged (still a
 * divide, so the same bits); only the order of the loss's double sum moved.
 * As a serial loop of double divides it was a tenth of a DLinear fit. */
MK_CLONES
float mse_forward_backward(float *dpred, const float *pred, const float *target, size_t n, float scale) {
    double s = 0;
    if (dpred) {
#pragma omp simd reduction(+ : s)
        for (size_t i = 0; i < n; i++) {
            double d = (double)pred[i] - target[i];
            s += d * d;
            dpred[i] = (float)(scale * 2.0 * d / n);
        }
    } else {
#pragma omp simd reduction(+ : s)
        for (size_t i = 0; i < n; i++) {
            double d = (double)pred[i] - target[i];
            s += d * d;
        }
    }
    return n ? (float)(s / n) : 0.f;
}

float l1_forward_backward(float *dpred, const float *pred, const float *target, size_t n, float scale) {
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)pred[i] - target[i];
        s += fabs(d);
        if (dpred) dpred[i] = (float)(scale * (d > 0 ? 1.0 : d < 0 ? -1.0 : 0.0) / n);
    }
    return n ? (float)(s / n) : 0.f;
}
