/* conv.c — depthwise causal conv1d over time, channels last, with carried state.
 *
 * The weights are (C, K) in the model, but every loop here runs along the
 * channels, so each call first copies them to (K, C): the taps' rows are then
 * contiguous and the row loops vectorise (AVX-512 / AVX2 clones, core/simd.h).
 * The row loops sit in plain functions because target_clones cannot go on the
 * bodies OpenMP outlines. */
#include <stdlib.h>
#include <string.h>
#include "ops.h"
#include "simd.h"

/* The (C) input row at time t (may be negative: then it comes from the state;
 * NULL when there is none, i.e. zeros). */
static inline const float *xrow(const float *x, const float *st, int b, int t, int L, int C, int K) {
    if (t >= 0) return x + ((size_t)b * L + t) * C;
    return st ? st + ((size_t)b * (K - 1) + (K - 1 + t)) * C : NULL;
}

static float *taps_by_row(const float *w, int C, int K) {
    const size_t n = (size_t)C * K;
    float *wt = mk_malloc(sizeof(float) * (n > 0 ? n : 1));
    for (int c = 0; c < C; c++)
        for (int k = 0; k < K; k++) wt[(size_t)k * C + c] = w[(size_t)c * K + k];
    return wt;
}

/* The SiLU that follows the conv in a Mamba block, applied to a row while it
 * is in L1: apart from that its output would be one more pass over memory. The
 * same operations as silu_forward, so the same bits. */
static inline void silu_row(float *a, const float *o, int C) {
#pragma omp simd
    for (int c = 0; c < C; c++) a[c] = o[c] * mk_fsigmoid(o[c]);
}

/* n output rows whose K taps all lie in this chunk: x points at the input row
 * under the first row's first tap; rows are C apart. */
MK_CLONES
static void fwd_rows(float *o, float *act, const float *x, const float *wt, const float *b, int n, int C, int K) {
    for (int i = 0; i < n; i++, o += C, x += C) {
#pragma omp simd
        for (int c = 0; c < C; c++) o[c] = b ? b[c] : 0.f;
        for (int k = 0; k < K; k++) {
            const float *xr = x + (size_t)k * C, *wk = wt + (size_t)k * C;
#pragma omp simd
            for (int c = 0; c < C; c++) o[c] += wk[c] * xr[c];
        }
        if (act) silu_row(act + (size_t)i * C, o, C);
    }
}

/* Output rows t0..t0+n of batch bb whose taps may reach into the state. */
MK_CLONES
static void fwd_edge_rows(float *out, float *act, const float *inp, const float *st, const float *wt, const float *b, int bb,
                          int t0, int n, int L, int C, int K) {
    for (int t = t0; t < t0 + n; t++) {
        float *o = out + ((size_t)bb * L + t) * C;
        for (int c = 0; c < C; c++) o[c] = b ? b[c] : 0.f;
        for (int k = 0; k < K; k++) {
            const float *xr = xrow(inp, st, bb, t - (K - 1) + k, L, C, K), *wk = wt + (size_t)k * C;
            if (!xr) continue;
#pragma omp simd
            for (int c = 0; c < C; c++) o[c] += wk[c] * xr[c];
        }
        if (act) silu_row(act + ((size_t)bb * L + t) * C, o, C);
    }
}

#define CONV_ROWS 64 /* output rows per OpenMP item */

static void conv_fwd(float *out, float *act, const float *inp, const float *state_in, const float *w, const float *b, int B,
                     int L, int C, int K) {
    float *wt = taps_by_row(w, C, K);
    const int nblk = (L + CONV_ROWS - 1) / CONV_ROWS;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * L * C > 65536)
    for (int bb = 0; bb < B; bb++)
        for (int blk = 0; blk < nblk; blk++) {
            int t0 = blk * CONV_ROWS, t1 = t0 + CONV_ROWS < L ? t0 + CONV_ROWS : L;
            int te = t1 < K - 1 ? t1 : (t0 > K - 1 ? t0 : K - 1); /* rows below K-1 read the state */
            if (te > t0) fwd_edge_rows(out, act, inp, state_in, wt, b, bb, t0, te - t0, L, C, K);
            if (t1 > te) {
                size_t r = (size_t)bb * L + te;
                fwd_rows(out + r * C, act ? act + r * C : NULL, inp + (r - (K - 1)) * C, wt, b, t1 - te, C, K);
            }
        }
    free(wt);
}

void conv1d_silu_forward(float *out, float *act, const float *inp, const float *w, const float *b, int B, int L, int C, int K) {
    conv_fwd(out, act, inp, NULL, w, b, B, L, C, K);
}

void conv1d_forward(float *out, float *state_out, const float *inp, const float *state_in,
                    const float *w, const float *b, int B, int L, int C, int K) {
    conv_fwd(out, NULL, inp, state_in, w, b, B, L, C, K);
    if (state_out) {
        /* last K-1 inputs, reaching into state_in when L < K-1; computed into a
         * temporary because state_out may alias state_in */
        size_t n = (size_t)B * (K - 1) * C;
        float *tmp = mk_malloc(sizeof(float) * (n ? n : 1));
        for (int bb = 0; bb < B; bb++)
            for (int j = 0; j < K - 1; j++) {
                const float *r = xrow(inp, state_in, bb, L - (K - 1) + j, L, C, K);
                float *d = tmp + ((size_t)bb * (K - 1) + j) * C;
                if (r) memcpy(d, r, sizeof(float) * C);
                else memset(d, 0, sizeof(float) * C);
            }
        memcpy(state_out, tmp, sizeof(float) * n);
        free(tmp);
    }
}

/* dx[s] += sum_k w[k] * dy[s + (K-1) - k] for input rows s0..s0+n of batch bb,
 * taps past the end skipped. */
MK_CLONES
static void bwd_dx_rows(float *dinp, const float *dout, const float *wt, int bb, int s0, int n, int L, int C, int K) {
    for (int s = s0; s < s0 + n; s++) {
        float *dx = dinp + ((size_t)bb * L + s) * C;
        for (int k = 0; k < K; k++) {
            int t = s + (K - 1) - k;
            if (t >= L) continue;
            const float *dy = dout + ((size_t)bb * L + t) * C, *wk = wt + (size_t)k * C;
#pragma omp simd
            for (int c = 0; c < C; c++) dx[c] += wk[c] * dy[c];
        }
    }
}

/* Rows r0..r1 of the flattened (B*L) output into this item's partial sums
 * P (K+1, C): P[k] the tap-k weight gradient, P[K] the bias gradient. */
MK_CLONES
static void bwd_dw_rows(float *P, const float *dout, const float *inp, const float *st, size_t r0, size_t r1, int L, int C,
                        int K, int want_w) {
    float *pb = P + (size_t)K * C;
    for (size_t r = r0; r < r1; r++) {
        const int bb = (int)(r / L), t = (int)(r % L);
        const float *dy = dout + r * C;
#pragma omp simd
        for (int c = 0; c < C; c++) pb[c] += dy[c];
        for (int k = 0; want_w && k < K; k++) {
            const float *x = xrow(inp, st, bb, t - (K - 1) + k, L, C, K); /* what this tap read */
            if (!x) continue;
            float *pk = P + (size_t)k * C;
#pragma omp simd
            for (int c = 0; c < C; c++) pk[c] += dy[c] * x[c];
        }
    }
}

#define CONV_DW_ROWS 256 /* rows per partial of dw/db */

void conv1d_backward(float *dinp, float *dstate_in, float *dw, float *db, const float *dout,
                     const float *inp, const float *state_in, const float *w, int B, int L, int C, int K) {
    const int par = (size_t)B * L * C > 65536;
    if (dinp) {
        float *wt = taps_by_row(w, C, K);
        const int nblk = (L + CONV_ROWS - 1) / CONV_ROWS;
#pragma omp parallel for collapse(2) schedule(static) if (par)
        for (int bb = 0; bb < B; bb++)
            for (int blk = 0; blk < nblk; blk++) {
                int s0 = blk * CONV_ROWS;
                bwd_dx_rows(dinp, dout, wt, bb, s0, s0 + CONV_ROWS < L ? CONV_ROWS : L - s0, L, C, K);
            }
        free(wt);
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
        /* One pass over the rows in fixed blocks, each into its own (K+1, C)
         * partial, summed in block order: the same result for any thread count. */
        const size_t rows = (size_t)B * L, nblk = (rows + CONV_DW_ROWS - 1) / CONV_DW_ROWS;
        const size_t psz = (size_t)(K + 1) * C;
        float *part = mk_calloc(nblk * psz > 0 ? nblk * psz : 1, sizeof(float));
#pragma omp parallel for schedule(static) if (par)
        for (size_t i = 0; i < nblk; i++) {
            size_t r0 = i * CONV_DW_ROWS, r1 = r0 + CONV_DW_ROWS < rows ? r0 + CONV_DW_ROWS : rows;
            bwd_dw_rows(part + i * psz, dout, inp, state_in, r0, r1, L, C, K, dw != NULL);
        }
        for (size_t i = 1; i < nblk; i++)
            for (size_t j = 0; j < psz; j++) part[j] += part[i * psz + j];
        for (int c = 0; dw && c < C; c++)
            for (int k = 0; k < K; k++) dw[(size_t)c * K + k] += part[(size_t)k * C + c];
        for (int c = 0; db && c < C; c++) db[c] += part[(size_t)K * C + c];
        free(part);
    }
}
