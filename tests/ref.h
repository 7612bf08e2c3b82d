/* ref.h — plain double-precision reference math for the core tests, written
 * independently of core/ (no core kernels are called from here), plus
 * finite-difference gradient checking helpers.
 *
 * Dimension letters as in the core: B batch, L tokens, D model width, E inner
 * width, N state size, R dt_rank, K conv kernel, G scan directions. */
#ifndef MK_TEST_REF_H
#define MK_TEST_REF_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mamba.h"
#include "core/params.h"
#include "core/util.h"
#include "tests/test.h"

/* ------------------------------------------------------------ small things */

static inline double *ref_alloc(size_t n) { return (double *)calloc(n ? n : 1, sizeof(double)); }
static inline double *ref_dup(const float *x, size_t n) {
    double *d = ref_alloc(n);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}
static inline void ref_to_float(float *out, const double *x, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = (float)x[i];
}
/* mean + std * N(0,1), never exactly zero and never closer than 1e-3 to zero
 * when mean == 0 (keeps kinks and special values away). */
static inline void ref_fill(float *x, size_t n, float mean, float std, mk_rng *r) {
    for (size_t i = 0; i < n; i++) {
        float v;
        do v = mean + std * mk_rng_normal(r);
        while (fabsf(v) < 1e-3f * (std > 0 ? std : 1.f));
        x[i] = v;
    }
}
static inline void ref_fill_uniform(float *x, size_t n, float lo, float hi, mk_rng *r) {
    for (size_t i = 0; i < n; i++) {
        float v;
        do v = lo + (hi - lo) * mk_rng_uniform(r);
        while (v == 0.f);
        x[i] = v;
    }
}
static inline float *ref_falloc(size_t n) { return (float *)calloc(n ? n : 1, sizeof(float)); }

static inline double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static inline double ref_softplus(double x) { return (x > 0 ? x : 0.0) + log1p(exp(-fabs(x))); }
static inline double ref_silu(double x) { return x * ref_sigmoid(x); }

/* max |a-b| over n floats vs a double reference, normalised by max(|ref|, floor) */
static inline double ref_err(const float *a, const double *ref, size_t n, double floor_) {
    return test_rel_err(a, ref, n, floor_);
}

/* -------------------------------------------------------- gradient checks */

/* A scalar loss of some double parameters (the context knows which). */
typedef double (*ref_loss_fn)(void *ctx);

/* Checks analytic float gradients gs[0..ng-1] (each n, e.g. two
 * implementations) of f w.r.t. x (double, n, perturbed in place and restored)
 * against central differences: `k` random entries (all of them when n <= k)
 * plus one random direction over the whole tensor. Error = max |g - fd| /
 * max(max |fd|, floor) over the entries; the directional error (v a random
 * unit vector) is |g.v - fd_v| / max(||g||, floor), the error of the
 * projection relative to the gradient's size. Prints one line per gradient.
 * Returns 1 if all pass. */
static inline int ref_check_grads(const char *const *names, const float *const *gs, int ng, ref_loss_fn f, void *ctx,
                                  double *x, size_t n, int k, double tol, double floor_, mk_rng *rng) {
    const double h = 1e-5;
    int m = (size_t)k >= n ? (int)n : k;
    double md[8] = {0}, gv[8] = {0}, gn[8] = {0}, mr = floor_;
    for (int j = 0; j < m; j++) {
        size_t i = (size_t)k >= n ? (size_t)j : (size_t)mk_rng_int(rng, (int)n);
        double x0 = x[i], hh = h * (fabs(x0) > 1 ? fabs(x0) : 1);
        x[i] = x0 + hh;
        double fp = f(ctx);
        x[i] = x0 - hh;
        double fm = f(ctx);
        x[i] = x0;
        double fd = (fp - fm) / (2 * hh);
        for (int q = 0; q < ng; q++) {
            double d = fabs(fd - (double)gs[q][i]);
            if (d > md[q] || d != d) md[q] = d != d ? INFINITY : d;
        }
        if (fabs(fd) > mr) mr = fabs(fd);
    }
    /* random direction */
    double *v = ref_alloc(n), *x0 = ref_alloc(n);
    double vn = 0, xs = 0;
    for (size_t i = 0; i < n; i++) {
        v[i] = mk_rng_normal(rng);
        vn += v[i] * v[i];
    }
    vn = sqrt(vn);
    for (size_t i = 0; i < n; i++) {
        v[i] /= vn;
        for (int q = 0; q < ng; q++) gv[q] += v[i] * gs[q][i], gn[q] += (double)gs[q][i] * gs[q][i];
        x0[i] = x[i];
        xs = fabs(x[i]) > xs ? fabs(x[i]) : xs;
    }
    double hd = h * (xs > 1 ? xs : 1);
    for (size_t i = 0; i < n; i++) x[i] = x0[i] + hd * v[i];
    double fp = f(ctx);
    for (size_t i = 0; i < n; i++) x[i] = x0[i] - hd * v[i];
    double fm = f(ctx);
    memcpy(x, x0, sizeof(double) * n);
    double fdv = (fp - fm) / (2 * hd);
    free(v);
    free(x0);
    int all = 1;
    for (int q = 0; q < ng; q++) {
        double err = md[q] / mr;
        double gnorm = sqrt(gn[q]);
        double derr = fabs(fdv - gv[q]) / (gnorm > floor_ ? gnorm : floor_);
        if (derr != derr) derr = INFINITY;
        int ok = err < tol && derr < tol;
        test_report(ok, names[q],
                    "grad vs finite differences: rel err %.2e over %d entries (max |g| %.2e), directional %.2e (tol %.0e)",
                    err, m, mr, derr, tol);
        all &= ok;
    }
    return all;
}
static inline int ref_check_grad(const char *name, ref_loss_fn f, void *ctx, double *x, const float *g, size_t n, int k,
                                 double tol, double floor_, mk_rng *rng) {
    return ref_check_grads(&name, &g, 1, f, ctx, x, n, k, tol, floor_, rng);
}

/* -------------------------------------------------------- selective scan */

/* ref: mamba_ssm/ops/selective_scan_interface.py selective_scan_ref, token-major:
 *   delta = delta + delta_bias; if softplus: delta = softplus(delta)
 *   deltaA = exp(delta * A); deltaB_u = delta * B * u
 *   x = deltaA * x + deltaB_u; y = <x, C>; out = y + D * u; out *= silu(z)
 * u, delta, z, out (B, L, E); Bm, Cm (B, L, N); A (E, N); D, dbias (E);
 * h0, h_last (B, E, N). Any of D, z, dbias, h0, h_last may be NULL. */
static inline void ref_scan(double *out, double *h_last, const double *u, const double *delta, const double *A,
                            const double *Bm, const double *Cm, const double *D, const double *z,
                            const double *dbias, const double *h0, int B, int L, int E, int N, int softplus) {
    double *x = ref_alloc(N);
    for (int b = 0; b < B; b++)
        for (int e = 0; e < E; e++) {
            for (int n = 0; n < N; n++) x[n] = h0 ? h0[((size_t)b * E + e) * N + n] : 0.0;
            for (int t = 0; t < L; t++) {
                size_t i = ((size_t)b * L + t) * E + e, bt = ((size_t)b * L + t) * N;
                double dl = delta[i] + (dbias ? dbias[e] : 0.0);
                if (softplus) dl = ref_softplus(dl);
                double y = 0;
                for (int n = 0; n < N; n++) {
                    x[n] = exp(dl * A[(size_t)e * N + n]) * x[n] + dl * Bm[bt + n] * u[i];
                    y += x[n] * Cm[bt + n];
                }
                if (D) y += u[i] * D[e];
                if (z) y *= ref_silu(z[i]);
                out[i] = y;
            }
            if (h_last)
                for (int n = 0; n < N; n++) h_last[((size_t)b * E + e) * N + n] = x[n];
        }
    free(x);
}

/* ------------------------------------------------------ Mamba backbone */

/* Double copy of a parameter by name: P is a double mirror of p->data. */
static inline const double *ref_par(const mk_params *p, const double *P, const char *fmt, int l, int g) {
    char nm[MK_NAME_MAX];
    if (g >= 0) snprintf(nm, sizeof nm, fmt, l, g);
    else if (l >= 0) snprintf(nm, sizeof nm, fmt, l);
    else snprintf(nm, sizeof nm, "%s", fmt);
    int i = mk_params_find(p, nm);
    if (i < 0) {
        fprintf(stderr, "ref: parameter %s missing\n", nm);
        abort();
    }
    return P + p->t[i].offset;
}

/* norm over rows of width C: RMS (bias NULL semantics: rms) or LayerNorm */
static inline void ref_norm(double *out, const double *x, const double *w, const double *bias, int M, int C,
                            int ln, double eps) {
    for (int m = 0; m < M; m++) {
        const double *r = x + (size_t)m * C;
        double *o = out + (size_t)m * C;
        if (ln) {
            double mu = 0, var = 0;
            for (int c = 0; c < C; c++) mu += r[c];
            mu /= C;
            for (int c = 0; c < C; c++) var += (r[c] - mu) * (r[c] - mu);
            var /= C;
            for (int c = 0; c < C; c++) o[c] = (r[c] - mu) / sqrt(var + eps) * w[c] + (bias ? bias[c] : 0.0);
        } else {
            double ms = 0;
            for (int c = 0; c < C; c++) ms += r[c] * r[c];
            ms /= C;
            for (int c = 0; c < C; c++) o[c] = r[c] / sqrt(ms + eps) * w[c];
        }
    }
}

/* out (M, O) = in (M, I) W^T, W (O, I) as a sub-block starting at row r0 */
static inline void ref_matmul_t(double *out, const double *in, const double *W, int M, int I, int O) {
    for (int m = 0; m < M; m++)
        for (int o = 0; o < O; o++) {
            double s = 0;
            for (int i = 0; i < I; i++) s += in[(size_t)m * I + i] * W[(size_t)o * I + i];
            out[(size_t)m * O + o] = s;
        }
}

/* The whole backbone, following mamba.h's description and mamba_ssm's
 * Mamba.forward (in_proj -> x,z; causal depthwise conv; silu; x_proj ->
 * dt,B,C; dt_proj weight; selective scan with dt_proj.bias as delta_bias and
 * softplus; out_proj) wrapped in pre-norm residual blocks, over G scan orders.
 * eff: per layer, G orders of L (the effective orders the forward used);
 * dpm: per layer, B drop-path multipliers, or NULL for all ones.
 * Tensor names are those mamba.c declares with prefix "". */
static inline void ref_backbone(double *out, const double *x, const mk_params *p, const double *P, const mamba_cfg *c,
                                int B, int L, const int *eff, const float *dpm) {
    const int D = c->d_model, E = c->expand * D, N = c->d_state, R = c->dt_rank, K = c->d_conv, G = c->n_dir;
    const int T = B * L, ln = c->norm == MK_NORM_LN, nonorm = c->norm == MK_NORM_NONE;
    const double merge = c->merge == MK_MERGE_MEAN ? 1.0 / G : 1.0;
    double *h = ref_alloc((size_t)T * D), *r = ref_alloc((size_t)T * D), *xz = ref_alloc((size_t)T * 2 * E);
    double *xs = ref_alloc((size_t)T * E), *zs = ref_alloc((size_t)T * E), *y = ref_alloc((size_t)T * E);
    double *xg = ref_alloc((size_t)T * E), *zg = ref_alloc((size_t)T * E), *xc = ref_alloc((size_t)T * E);
    double *dbc = ref_alloc((size_t)T * (R + 2 * N)), *dtin = ref_alloc((size_t)T * R);
    double *Bm = ref_alloc((size_t)T * N), *Cm = ref_alloc((size_t)T * N), *dl = ref_alloc((size_t)T * E);
    double *A = ref_alloc((size_t)E * N), *yg = ref_alloc((size_t)T * E), *br = ref_alloc((size_t)T * D);
    memcpy(h, x, sizeof(double) * T * D);
    for (int l = 0; l < c->n_layer; l++) {
        if (nonorm) memcpy(r, h, sizeof(double) * T * D);
        else
            ref_norm(r, h, ref_par(p, P, "layers.%d.norm.weight", l, -1),
                     ln ? ref_par(p, P, "layers.%d.norm.bias", l, -1) : NULL, T, D, ln, c->eps);
        ref_matmul_t(xz, r, ref_par(p, P, "layers.%d.in_proj.weight", l, -1), T, D, 2 * E);
        for (int t = 0; t < T; t++)
            for (int e = 0; e < E; e++) {
                xs[(size_t)t * E + e] = xz[(size_t)t * 2 * E + e];
                zs[(size_t)t * E + e] = xz[(size_t)t * 2 * E + E + e];
            }
        memset(y, 0, sizeof(double) * T * E);
        for (int g = 0; g < G; g++) {
            const int *o = eff + ((size_t)l * G + g) * L;
            for (int b = 0; b < B; b++)
                for (int t = 0; t < L; t++)
                    for (int e = 0; e < E; e++) {
                        xg[((size_t)b * L + t) * E + e] = xs[((size_t)b * L + o[t]) * E + e];
                        zg[((size_t)b * L + t) * E + e] = zs[((size_t)b * L + o[t]) * E + e];
                    }
            const double *cw = ref_par(p, P, "layers.%d.dir%d.conv1d.weight", l, g);
            const double *cb = ref_par(p, P, "layers.%d.dir%d.conv1d.bias", l, g);
            for (int b = 0; b < B; b++)
                for (int t = 0; t < L; t++)
                    for (int e = 0; e < E; e++) {
                        double s = cb[e];
                        for (int k = 0; k < K; k++) {
                            int tt = t - (K - 1) + k;
                            if (tt >= 0) s += cw[(size_t)e * K + k] * xg[((size_t)b * L + tt) * E + e];
                        }
                        xc[((size_t)b * L + t) * E + e] = ref_silu(s);
                    }
            if (c->selective) {
                ref_matmul_t(dbc, xc, ref_par(p, P, "layers.%d.dir%d.x_proj.weight", l, g), T, E, R + 2 * N);
                for (int t = 0; t < T; t++) {
                    const double *q = dbc + (size_t)t * (R + 2 * N);
                    for (int i = 0; i < R; i++) dtin[(size_t)t * R + i] = q[i];
                    for (int n = 0; n < N; n++) {
                        Bm[(size_t)t * N + n] = q[R + n];
                        Cm[(size_t)t * N + n] = q[R + N + n];
                    }
                }
                ref_matmul_t(dl, dtin, ref_par(p, P, "layers.%d.dir%d.dt_proj.weight", l, g), T, R, E);
            } else {
                const double *bc = ref_par(p, P, "layers.%d.dir%d.B", l, g), *cc = ref_par(p, P, "layers.%d.dir%d.C", l, g);
                for (int t = 0; t < T; t++)
                    for (int n = 0; n < N; n++) {
                        Bm[(size_t)t * N + n] = bc[n];
                        Cm[(size_t)t * N + n] = cc[n];
                    }
                memset(dl, 0, sizeof(double) * T * E);
            }
            const double *al = ref_par(p, P, "layers.%d.dir%d.A_log", l, g);
            for (int i = 0; i < E * N; i++) A[i] = -exp(al[i]);
            ref_scan(yg, NULL, xc, dl, A, Bm, Cm, ref_par(p, P, "layers.%d.dir%d.D", l, g), zg,
                     ref_par(p, P, "layers.%d.dir%d.dt_proj.bias", l, g), NULL, B, L, E, N, 1);
            for (int b = 0; b < B; b++)
                for (int t = 0; t < L; t++)
                    for (int e = 0; e < E; e++)
                        y[((size_t)b * L + o[t]) * E + e] += merge * yg[((size_t)b * L + t) * E + e];
        }
        ref_matmul_t(br, y, ref_par(p, P, "layers.%d.out_proj.weight", l, -1), T, E, D);
        for (int b = 0; b < B; b++)
            for (size_t i = 0; i < (size_t)L * D; i++)
                h[(size_t)b * L * D + i] += (dpm ? dpm[(size_t)l * B + b] : 1.0) * br[(size_t)b * L * D + i];
    }
    if (c->final_norm && !nonorm)
        ref_norm(out, h, ref_par(p, P, "norm_f.weight", -1, -1), ln ? ref_par(p, P, "norm_f.bias", -1, -1) : NULL, T,
                 D, ln, c->eps);
    else
        memcpy(out, h, sizeof(double) * T * D);
    free(h), free(r), free(xz), free(xs), free(zs), free(y), free(xg), free(zg), free(xc), free(dbc), free(dtin);
    free(Bm), free(Cm), free(dl), free(A), free(yg), free(br);
}

#endif
