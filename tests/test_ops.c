/* test_ops.c — every op in core/ops.h against plain double-precision math
 * (tests/ref.h and below), backward passes against central finite
 * differences of the double reference, and the SIMD exp/softplus of
 * core/simd.h against libm in double over a dense range.
 *
 * Backward functions accumulate, so every gradient buffer starts filled with
 * random values g0 and the check uses (result - g0). */
#include <string.h>
#include <omp.h>

#include "core/ops.h"
#include "core/simd.h"
#include "tests/ref.h"
#include "tests/test.h"

static mk_rng rng;

/* result - g0 into a fresh float array (caller frees) */
static float *acc_delta(const float *res, const float *g0, size_t n) {
    float *d = ref_falloc(n);
    for (size_t i = 0; i < n; i++) d[i] = res[i] - g0[i];
    return d;
}
static float *rand_copy(const float *src, size_t n) {
    float *d = ref_falloc(n);
    memcpy(d, src, sizeof(float) * n);
    return d;
}

/* ------------------------------------------------------------------ linear */

typedef struct {
    double *x, *W, *b, *wout;
    int M, I, O;
} lin_ctx;
static void lin_ref(double *out, const lin_ctx *c) {
    for (int m = 0; m < c->M; m++)
        for (int o = 0; o < c->O; o++) {
            double s = c->b ? c->b[o] : 0;
            for (int i = 0; i < c->I; i++) s += c->x[(size_t)m * c->I + i] * c->W[(size_t)o * c->I + i];
            out[(size_t)m * c->O + o] = s;
        }
}
static double lin_loss(void *ctx) {
    lin_ctx *c = ctx;
    double *o = ref_alloc((size_t)c->M * c->O), s = 0;
    lin_ref(o, c);
    for (size_t i = 0; i < (size_t)c->M * c->O; i++) s += o[i] * c->wout[i];
    free(o);
    return s;
}
static void test_linear(int with_bias) {
    const int M = 7, I = 13, O = 5;
    float *x = ref_falloc(M * I), *W = ref_falloc(O * I), *b = ref_falloc(O), *out = ref_falloc(M * O),
          *dout = ref_falloc(M * O);
    ref_fill(x, M * I, 0, 1, &rng);
    ref_fill(W, O * I, 0, 0.5f, &rng);
    ref_fill(b, O, 0, 1, &rng);
    ref_fill(dout, M * O, 0, 1, &rng);
    lin_ctx c = {ref_dup(x, M * I), ref_dup(W, O * I), with_bias ? ref_dup(b, O) : NULL, ref_dup(dout, M * O), M, I, O};
    double *ro = ref_alloc(M * O);
    lin_ref(ro, &c);
    ref_fill(out, M * O, 5, 1, &rng); /* garbage the forward must overwrite */
    linear_forward(out, x, W, with_bias ? b : NULL, M, I, O);
    double e = ref_err(out, ro, M * O, 1e-6);
    char nm[64];
    snprintf(nm, sizeof nm, "linear_forward%s", with_bias ? "" : "_nobias");
    test_report(e < 1e-6, nm, "rel err %.2e vs double", e);

    float *g0x = ref_falloc(M * I), *g0W = ref_falloc(O * I), *g0b = ref_falloc(O);
    ref_fill(g0x, M * I, 0, 1, &rng);
    ref_fill(g0W, O * I, 0, 1, &rng);
    ref_fill(g0b, O, 0, 1, &rng);
    float *dx = rand_copy(g0x, M * I), *dW = rand_copy(g0W, O * I), *db = rand_copy(g0b, O);
    linear_backward(dx, dW, with_bias ? db : NULL, dout, x, W, M, I, O);
    float *ax = acc_delta(dx, g0x, M * I), *aW = acc_delta(dW, g0W, O * I), *ab = acc_delta(db, g0b, O);
    snprintf(nm, sizeof nm, "linear_backward%s.dinp", with_bias ? "" : "_nobias");
    ref_check_grad(nm, lin_loss, &c, c.x, ax, M * I, 40, 1e-5, 1e-3, &rng);
    snprintf(nm, sizeof nm, "linear_backward%s.dW", with_bias ? "" : "_nobias");
    ref_check_grad(nm, lin_loss, &c, c.W, aW, O * I, 40, 1e-5, 1e-3, &rng);
    if (with_bias) {
        ref_check_grad("linear_backward.db", lin_loss, &c, c.b, ab, O, 40, 1e-5, 1e-3, &rng);
    } else {
        int same = !memcmp(db, g0b, sizeof(float) * O);
        test_report(same, "linear_backward_nobias.db_untouched", "db NULL leaves buffers alone");
    }
    /* NULL gradients and M == 0 must be accepted */
    linear_backward(NULL, NULL, NULL, dout, x, W, M, I, O);
    linear_forward(out, x, W, b, 0, I, O);
    linear_backward(dx, dW, db, dout, x, W, 0, I, O);
    free(x), free(W), free(b), free(out), free(dout), free(c.x), free(c.W), free(c.b), free(c.wout), free(ro);
    free(g0x), free(g0W), free(g0b), free(dx), free(dW), free(db), free(ax), free(aW), free(ab);
}

/* matmul_acc: C += A @ B and C += A @ B^T against a double product, accumulating onto random
 * (non-zero) C, with shapes that are not multiples of any vector width */
static void test_matmul_acc(void) {
    const int M = 9, N = 11, K = 13;
    for (int tb = 0; tb < 2; tb++) {
        float *A = ref_falloc(M * K), *B = ref_falloc(K * N), *C = ref_falloc(M * N), *C0 = ref_falloc(M * N);
        ref_fill(A, M * K, 0, 1, &rng);
        ref_fill(B, K * N, 0, 1, &rng);
        ref_fill(C, M * N, 0, 1, &rng);
        memcpy(C0, C, sizeof(float) * M * N);
        matmul_acc(C, A, B, M, N, K, tb);
        double worst = 0;
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double r = C0[i * N + j], mag = fabs(C0[i * N + j]);
                for (int k = 0; k < K; k++) {
                    double bv = tb ? B[j * K + k] : B[k * N + j];
                    r += (double)A[i * K + k] * bv, mag += fabs((double)A[i * K + k] * bv);
                }
                worst = fmax(worst, fabs(C[i * N + j] - r) / mag);
            }
        matmul_acc(C, A, B, 0, N, K, tb); /* empty shapes do nothing */
        test_report(worst < 1e-6, tb ? "matmul_acc_transB" : "matmul_acc", "worst error %.2e of the terms' magnitude",
                    worst);
        free(A), free(B), free(C), free(C0);
    }
}

/* ------------------------------------------------------------------- norms */

typedef struct {
    double *x, *w, *b, *wout;
    int M, C, ln;
    double eps;
} norm_ctx;
static double norm_loss(void *ctx) {
    norm_ctx *c = ctx;
    size_t n = (size_t)c->M * c->C;
    double *o = ref_alloc(n), s = 0;
    ref_norm(o, c->x, c->w, c->b, c->M, c->C, c->ln, c->eps);
    for (size_t i = 0; i < n; i++) s += o[i] * c->wout[i];
    free(o);
    return s;
}
static void test_norm(int ln) {
    const int M = 6, C = 11;
    const size_t n = (size_t)M * C;
    const float eps = 1e-5f;
    float *x = ref_falloc(n), *w = ref_falloc(C), *b = ref_falloc(C), *out = ref_falloc(n), *dout = ref_falloc(n);
    float *mean = ref_falloc(M), *rstd = ref_falloc(M);
    ref_fill(x, n, 0.3f, 1.5f, &rng);
    ref_fill(w, C, 1, 0.3f, &rng);
    ref_fill(b, C, 0, 0.5f, &rng);
    ref_fill(dout, n, 0, 1, &rng);
    norm_ctx c = {ref_dup(x, n), ref_dup(w, C), ln ? ref_dup(b, C) : NULL, ref_dup(dout, n), M, C, ln, eps};
    double *ro = ref_alloc(n);
    ref_norm(ro, c.x, c.w, c.b, M, C, ln, eps);
    if (ln) layernorm_forward(out, mean, rstd, x, w, b, M, C, eps);
    else rmsnorm_forward(out, rstd, x, w, M, C, eps);
    double e = ref_err(out, ro, n, 1e-6);
    const char *nm = ln ? "layernorm" : "rmsnorm";
    char buf[80];
    snprintf(buf, sizeof buf, "%s_forward", nm);
    test_report(e < 2e-6, buf, "rel err %.2e vs double", e);

    float *g0x = ref_falloc(n), *g0w = ref_falloc(C), *g0b = ref_falloc(C);
    ref_fill(g0x, n, 0, 1, &rng);
    ref_fill(g0w, C, 0, 1, &rng);
    ref_fill(g0b, C, 0, 1, &rng);
    float *dx = rand_copy(g0x, n), *dw = rand_copy(g0w, C), *db = rand_copy(g0b, C);
    if (ln) layernorm_backward(dx, dw, db, dout, x, w, mean, rstd, M, C);
    else rmsnorm_backward(dx, dw, dout, x, w, rstd, M, C);
    float *ax = acc_delta(dx, g0x, n), *aw = acc_delta(dw, g0w, C), *ab = acc_delta(db, g0b, C);
    snprintf(buf, sizeof buf, "%s_backward.dinp", nm);
    ref_check_grad(buf, norm_loss, &c, c.x, ax, n, 100, 2e-5, 1e-3, &rng);
    snprintf(buf, sizeof buf, "%s_backward.dw", nm);
    ref_check_grad(buf, norm_loss, &c, c.w, aw, C, 100, 2e-5, 1e-3, &rng);
    if (ln) ref_check_grad("layernorm_backward.db", norm_loss, &c, c.b, ab, C, 100, 2e-5, 1e-3, &rng);
    free(x), free(w), free(b), free(out), free(dout), free(mean), free(rstd), free(c.x), free(c.w), free(c.b);
    free(c.wout), free(ro), free(g0x), free(g0w), free(g0b), free(dx), free(dw), free(db), free(ax), free(aw), free(ab);
}

/* ------------------------------------------------------------- activations */

static double d_silu(double x) { return ref_silu(x); }
static double d_gelu(double x) { return 0.5 * x * erfc(-x / sqrt(2.0)); } /* x * Phi(x), tail-accurate */
static double d_relu(double x) { return x > 0 ? x : 0; }
static double d_tanh(double x) { return tanh(x); }
static double d_sigmoid(double x) { return ref_sigmoid(x); }
static double d_softplus(double x) { return ref_softplus(x); }

typedef void (*act_fwd)(float *, const float *, size_t);
typedef void (*act_bwd)(float *, const float *, const float *, size_t);

/* uses_out: backward takes the forward output instead of the input */
/* ftol: elementwise relative tolerance of the forward. GELU's erfc tail
 * amplifies the float rounding of x/sqrt(2) by ~2u^2 (u = x/sqrt2), so its
 * tolerance is looser at x ~ -9 where the value is ~1e-19. */
static void test_act(const char *name, act_fwd fwd, act_bwd bwd, double (*ref)(double), int uses_out, float scale,
                     double ftol) {
    const size_t n = 2000;
    float *x = ref_falloc(n), *out = ref_falloc(n), *dout = ref_falloc(n), *g0 = ref_falloc(n);
    ref_fill(x, n, 0, scale, &rng);
    /* keep away from relu's kink so the central difference is well defined */
    for (size_t i = 0; i < n; i++)
        if (fabsf(x[i]) < 1e-2f) x[i] = x[i] < 0 ? -1e-2f : 1e-2f;
    ref_fill(dout, n, 0, 1, &rng);
    ref_fill(g0, n, 0, 1, &rng);
    double *ro = ref_alloc(n), *rg = ref_alloc(n);
    for (size_t i = 0; i < n; i++) {
        double xi = x[i], h = 1e-5 * (fabs(xi) > 1 ? fabs(xi) : 1);
        ro[i] = ref(xi);
        rg[i] = dout[i] * (ref(xi + h) - ref(xi - h)) / (2 * h);
    }
    fwd(out, x, n);
    /* elementwise relative error (not normalised by the max): these are pointwise functions */
    double me = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(out[i] - ro[i]) / (fabs(ro[i]) > 1e-30 ? fabs(ro[i]) : 1e-30);
        if (e > me || e != e) me = e != e ? INFINITY : e;
    }
    char buf[80];
    snprintf(buf, sizeof buf, "%s_forward", name);
    test_report(me < ftol, buf, "max elementwise rel err %.2e vs double over %zu inputs (tol %.0e)", me, n, ftol);
    float *dx = rand_copy(g0, n);
    bwd(dx, dout, uses_out ? out : x, n);
    float *ax = acc_delta(dx, g0, n);
    double ge = ref_err(ax, rg, n, 1e-3);
    snprintf(buf, sizeof buf, "%s_backward", name);
    test_report(ge < 2e-5, buf, "rel err %.2e vs finite differences of double (all %zu entries)", ge, n);
    free(x), free(out), free(dout), free(g0), free(ro), free(rg), free(dx), free(ax);
}

static void test_softplus_guard(void) {
    const float xs[] = {-1e4f, -200.f, -88.f, -30.f, -20.5f, 19.9f, 20.f, 20.1f, 30.f, 88.8f, 100.f, 1e4f, 3e38f};
    const int n = sizeof xs / sizeof xs[0];
    float out[16], g[16], one[16], sg[16];
    for (int i = 0; i < n; i++) one[i] = 1.f, g[i] = 0.f;
    softplus_forward(out, xs, n);
    softplus_backward(g, one, xs, n);
    sigmoid_forward(sg, xs, n);
    int ok = 1;
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double r = ref_softplus(xs[i]), e = fabs(out[i] - r) / (r > 1e-300 ? r : 1e-300);
        /* below float's denormal range the value may flush to 0: accept absolute 1e-38 */
        if (!(isfinite(out[i]) && (e < 1e-6 || fabs(out[i] - r) < 1e-38))) ok = 0;
        if (!(isfinite(g[i]) && fabs(g[i] - ref_sigmoid(xs[i])) < 1e-6)) ok = 0;
        if (!(isfinite(sg[i]) && fabs(sg[i] - ref_sigmoid(xs[i])) < 1e-6)) ok = 0;
        if (e < 1 && e > worst) worst = e;
    }
    test_report(ok, "softplus_overflow_guard", "|x| up to 3e38: finite, value and sigmoid grad match double (worst rel %.1e)",
                worst);
}

/* ------------------------------------------------------------------ conv1d */

typedef struct {
    double *x, *st, *w, *b, *wout;
    int B, L, C, K;
} conv_ctx;
/* out[b,t,c] = b[c] + sum_k w[c,k] * xfull[b, t + k, c], xfull = [state (K-1) ; x (L)] */
static void conv_ref(double *out, double *st_out, const conv_ctx *c) {
    const int B = c->B, L = c->L, C = c->C, K = c->K, P = K - 1;
    double *full = ref_alloc((size_t)(P + L) * C);
    for (int b = 0; b < B; b++) {
        for (int j = 0; j < P; j++)
            for (int ch = 0; ch < C; ch++) full[(size_t)j * C + ch] = c->st ? c->st[((size_t)b * P + j) * C + ch] : 0;
        for (int t = 0; t < L; t++)
            for (int ch = 0; ch < C; ch++) full[(size_t)(P + t) * C + ch] = c->x[((size_t)b * L + t) * C + ch];
        for (int t = 0; t < L; t++)
            for (int ch = 0; ch < C; ch++) {
                double s = c->b ? c->b[ch] : 0;
                for (int k = 0; k < K; k++) s += c->w[(size_t)ch * K + k] * full[(size_t)(t + k) * C + ch];
                out[((size_t)b * L + t) * C + ch] = s;
            }
        if (st_out)
            for (int j = 0; j < P; j++)
                for (int ch = 0; ch < C; ch++) st_out[((size_t)b * P + j) * C + ch] = full[(size_t)(L + j) * C + ch];
    }
    free(full);
}
static double conv_loss(void *ctx) {
    conv_ctx *c = ctx;
    size_t n = (size_t)c->B * c->L * c->C;
    double *o = ref_alloc(n), s = 0;
    conv_ref(o, NULL, c);
    for (size_t i = 0; i < n; i++) s += o[i] * c->wout[i];
    free(o);
    return s;
}
/* The conv's adjoint in double for dy (B, L, C): out[t] uses full[t + k] (full = [state ; x],
 * the state zeros when c->st is NULL) with weight w[k], so gfull (B, K-1+L, C) += w[k] dy[t],
 * gw[c, k] += full[t + k] dy[t], gb += dy[t]. gfull may be NULL. */
static void conv_adjoint(double *gfull, double *gw, double *gb, const float *dy, const conv_ctx *c) {
    const int B = c->B, L = c->L, C = c->C, K = c->K, P = K - 1;
    for (int bb = 0; bb < B; bb++)
        for (int t = 0; t < L; t++)
            for (int ch = 0; ch < C; ch++) {
                double d = dy[((size_t)bb * L + t) * C + ch];
                gb[ch] += d;
                for (int k = 0; k < K; k++) {
                    int j = t + k; /* index into full */
                    double xv = j >= P ? c->x[((size_t)bb * L + j - P) * C + ch] : c->st ? c->st[((size_t)bb * P + j) * C + ch] : 0;
                    if (gfull) gfull[((size_t)bb * (P + L) + j) * C + ch] += c->w[(size_t)ch * K + k] * d;
                    gw[(size_t)ch * K + k] += xv * d;
                }
            }
}
static void test_conv(int K, int with_state) {
    const int B = 2, L = 9, C = 6, P = K - 1;
    const size_t n = (size_t)B * L * C, ns = (size_t)B * P * C;
    float *x = ref_falloc(n), *st = ref_falloc(ns), *w = ref_falloc(C * K), *b = ref_falloc(C), *out = ref_falloc(n),
          *sto = ref_falloc(ns), *dout = ref_falloc(n);
    ref_fill(x, n, 0, 1, &rng);
    ref_fill(st, ns, 0, 1, &rng);
    ref_fill(w, C * K, 0, 0.5f, &rng);
    ref_fill(b, C, 0, 0.5f, &rng);
    ref_fill(dout, n, 0, 1, &rng);
    conv_ctx c = {ref_dup(x, n), with_state ? ref_dup(st, ns) : NULL, ref_dup(w, C * K), ref_dup(b, C), ref_dup(dout, n), B, L, C, K};
    double *ro = ref_alloc(n), *rs = ref_alloc(ns);
    conv_ref(ro, rs, &c);
    conv1d_forward(out, sto, x, with_state ? st : NULL, w, b, B, L, C, K);
    double e = ref_err(out, ro, n, 1e-6), es = ref_err(sto, rs, ns, 1e-6);
    char buf[80];
    snprintf(buf, sizeof buf, "conv1d_forward_K%d%s", K, with_state ? "_state" : "");
    test_report(e < 1e-6 && es == 0, buf, "out rel err %.2e, state_out err %.2e", e, es);

    float *g0x = ref_falloc(n), *g0s = ref_falloc(ns), *g0w = ref_falloc(C * K), *g0b = ref_falloc(C);
    ref_fill(g0x, n, 0, 1, &rng);
    ref_fill(g0s, ns, 0, 1, &rng);
    ref_fill(g0w, C * K, 0, 1, &rng);
    ref_fill(g0b, C, 0, 1, &rng);
    float *dx = rand_copy(g0x, n), *ds = rand_copy(g0s, ns), *dw = rand_copy(g0w, C * K), *db = rand_copy(g0b, C);
    conv1d_backward(dx, with_state ? ds : NULL, dw, db, dout, x, with_state ? st : NULL, w, B, L, C, K);
    float *ax = acc_delta(dx, g0x, n), *as = acc_delta(ds, g0s, ns), *aw = acc_delta(dw, g0w, C * K),
          *ab = acc_delta(db, g0b, C);
    snprintf(buf, sizeof buf, "conv1d_backward_K%d%s.dinp", K, with_state ? "_state" : "");
    ref_check_grad(buf, conv_loss, &c, c.x, ax, n, 200, 1e-5, 1e-3, &rng);
    snprintf(buf, sizeof buf, "conv1d_backward_K%d%s.dw", K, with_state ? "_state" : "");
    ref_check_grad(buf, conv_loss, &c, c.w, aw, C * K, 200, 1e-5, 1e-3, &rng);
    snprintf(buf, sizeof buf, "conv1d_backward_K%d%s.db", K, with_state ? "_state" : "");
    ref_check_grad(buf, conv_loss, &c, c.b, ab, C, 200, 1e-5, 1e-3, &rng);
    if (with_state && P > 0) {
        snprintf(buf, sizeof buf, "conv1d_backward_K%d_state.dstate_in", K);
        ref_check_grad(buf, conv_loss, &c, c.st, as, ns, 200, 1e-5, 1e-3, &rng);
    }

    /* streaming: pieces of length 1, 2 (< K-1 for K=4) and the rest, state passed
     * along in ONE buffer used as both state_in and state_out (aliasing) */
    if (with_state) {
        float *o2 = ref_falloc(n), *sbuf = ref_falloc(ns ? ns : 1);
        memcpy(sbuf, st, sizeof(float) * ns);
        const int cuts[4] = {0, 1, 3, L};
        for (int pc = 0; pc < 3; pc++) {
            int t0 = cuts[pc], len = cuts[pc + 1] - t0;
            float *xi = ref_falloc((size_t)B * len * C), *oi = ref_falloc((size_t)B * len * C);
            for (int bb = 0; bb < B; bb++)
                memcpy(xi + (size_t)bb * len * C, x + ((size_t)bb * L + t0) * C, sizeof(float) * len * C);
            conv1d_forward(oi, sbuf, xi, sbuf, w, b, B, len, C, K);
            for (int bb = 0; bb < B; bb++)
                memcpy(o2 + ((size_t)bb * L + t0) * C, oi + (size_t)bb * len * C, sizeof(float) * len * C);
            free(xi), free(oi);
        }
        double d = test_rel_err_f(o2, out, n, 1e-6), dsd = test_rel_err_f(sbuf, sto, ns, 1e-6);
        snprintf(buf, sizeof buf, "conv1d_streaming_K%d", K);
        test_report(d < 1e-6 && dsd == 0, buf, "pieces 1+2+%d with aliased state == whole: out diff %.2e, final state diff %.2e",
                    L - 3, d, dsd);
        free(o2), free(sbuf);
    }
    free(x), free(st), free(w), free(b), free(out), free(sto), free(dout), free(c.x), free(c.st), free(c.w), free(c.b);
    free(c.wout), free(ro), free(rs), free(g0x), free(g0s), free(g0w), free(g0b), free(dx), free(ds), free(dw), free(db);
    free(ax), free(as), free(aw), free(ab);
}

/* ---------------------------------------------------- dropout / drop-path */

static void test_dropout(void) {
    const size_t n = 20000;
    const float p = 0.3f;
    float *x = ref_falloc(n), *out = ref_falloc(n), *mask = ref_falloc(n), *dout = ref_falloc(n), *dx = ref_falloc(n);
    float *mask2 = ref_falloc(n), *out2 = ref_falloc(n);
    ref_fill(x, n, 0, 1, &rng);
    ref_fill(dout, n, 0, 1, &rng);
    ref_fill(dx, n, 0, 1, &rng);
    float *g0 = rand_copy(dx, n);
    mk_rng r1, r2;
    mk_rng_seed(&r1, 77);
    mk_rng_seed(&r2, 77);
    dropout_forward(out, mask, x, n, p, &r1);
    dropout_forward(out2, mask2, x, n, p, &r2);
    size_t dropped = 0, bad = 0;
    double keep = 1.0 / (1.0 - p);
    for (size_t i = 0; i < n; i++) {
        if (mask[i] == 0.f) dropped++;
        else if (fabs(mask[i] - keep) > 1e-6) bad++;
        if (out[i] != x[i] * mask[i]) bad++;
    }
    double frac = (double)dropped / n;
    /* binomial std of the fraction: sqrt(p(1-p)/n) ~ 0.0032; allow 5 sigma */
    test_report(bad == 0 && fabs(frac - p) < 0.016, "dropout_forward",
                "p=%.2f: dropped %.4f, kept entries scaled by 1/(1-p), %zu bad", p, frac, bad);
    test_report(!memcmp(mask, mask2, sizeof(float) * n), "dropout_deterministic", "same seed, same mask");
    dropout_backward(dx, dout, mask, n);
    bad = 0;
    for (size_t i = 0; i < n; i++)
        if (fabsf((dx[i] - g0[i]) - dout[i] * mask[i]) > 1e-6f * (1 + fabsf(g0[i]))) bad++;
    test_report(bad == 0, "dropout_backward", "dinp += dout*mask: %zu mismatches", bad);
    dropout_forward(out, mask, x, n, 0.f, &r1);
    test_report(!memcmp(out, x, sizeof(float) * n), "dropout_p0_identity", "p=0 leaves the input unchanged");

    /* drop-path: per-sample masks */
    const int B = 4000;
    const size_t per = 3;
    float *m = ref_falloc(B), *xi = ref_falloc(B * per), *xo = ref_falloc(B * per), *gi = ref_falloc(B * per),
          *go = ref_falloc(B * per);
    ref_fill(xi, B * per, 0, 1, &rng);
    ref_fill(go, B * per, 0, 1, &rng);
    droppath_mask(m, B, 0.25f, &r1);
    droppath_forward(xo, xi, m, B, per);
    droppath_backward(gi, go, m, B, per);
    int nd = 0;
    bad = 0;
    for (int b = 0; b < B; b++) {
        if (m[b] == 0.f) nd++;
        else if (fabsf(m[b] - 1.f / 0.75f) > 1e-6f) bad++;
        for (size_t i = 0; i < per; i++) {
            if (xo[b * per + i] != xi[b * per + i] * m[b]) bad++;
            if (gi[b * per + i] != go[b * per + i] * m[b]) bad++;
        }
    }
    test_report(bad == 0 && fabs((double)nd / B - 0.25) < 0.035, "droppath", "p=0.25: %d/%d samples dropped, %zu bad", nd, B,
                bad);
    droppath_mask(m, B, 0.f, &r1);
    bad = 0;
    for (int b = 0; b < B; b++) bad += m[b] != 1.f;
    test_report(bad == 0, "droppath_p0", "p=0 keeps every sample with scale 1");
    free(x), free(out), free(mask), free(dout), free(dx), free(mask2), free(out2), free(g0), free(m), free(xi), free(xo);
    free(gi), free(go);
}

/* ------------------------------------------------------------------ losses */

typedef struct {
    double *z;
    const int *y;
    int M, C;
} ce_ctx;
static double ce_loss(void *ctx) {
    ce_ctx *c = ctx;
    double s = 0;
    int n = 0;
    for (int m = 0; m < c->M; m++) {
        if (c->y[m] < 0) continue;
        double lse = 0;
        for (int k = 0; k < c->C; k++) lse += exp(c->z[(size_t)m * c->C + k]);
        s += log(lse) - c->z[(size_t)m * c->C + c->y[m]];
        n++;
    }
    return n ? s / n : 0;
}
static void test_crossentropy(void) {
    const int M = 9, C = 7;
    const float scale = 0.7f;
    float *z = ref_falloc(M * C), *dz = ref_falloc(M * C), *pr = ref_falloc(M * C);
    int y[9] = {3, -1, 0, 6, 2, -1, 5, 1, 4};
    ref_fill(z, M * C, 0, 2, &rng);
    ce_ctx c = {ref_dup(z, M * C), y, M, C};
    int correct = -1;
    float loss = crossentropy_forward_backward(dz, pr, &correct, z, y, M, C, scale);
    double rl = ce_loss(&c);
    int rc = 0, bad = 0;
    for (int m = 0; m < M; m++) {
        int arg = 0;
        double s = 0;
        for (int k = 0; k < C; k++) {
            if (z[m * C + k] > z[m * C + arg]) arg = k;
            s += exp(c.z[m * C + k]);
        }
        if (y[m] >= 0) rc += arg == y[m];
        for (int k = 0; k < C; k++)
            if (fabs(pr[m * C + k] - exp(c.z[m * C + k]) / s) > 1e-6) bad++;
        if (y[m] < 0)
            for (int k = 0; k < C; k++) bad += dz[m * C + k] != 0.f;
    }
    test_report(fabs(loss - rl) < 1e-6 * fabs(rl) + 1e-7 && correct == rc && bad == 0, "crossentropy_forward",
                "loss %.7f vs double %.7f, correct %d vs %d, probs/ignored rows: %d bad", loss, rl, correct, rc, bad);
    float *g = ref_falloc(M * C);
    for (int i = 0; i < M * C; i++) g[i] = dz[i] / scale;
    ref_check_grad("crossentropy_backward", ce_loss, &c, c.z, g, M * C, 100, 1e-5, 1e-3, &rng);
    /* evaluation path: no gradient, no probabilities */
    float l2 = crossentropy_forward_backward(NULL, NULL, NULL, z, y, M, C, 1.f);
    test_report(l2 == loss, "crossentropy_loss_only", "NULL dlogits/probs/correct: same loss %.7f", l2);
    /* all targets ignored: loss 0, zero gradient, no NaN */
    int yi[9];
    for (int m = 0; m < M; m++) yi[m] = -1;
    loss = crossentropy_forward_backward(dz, NULL, NULL, z, yi, M, C, 1.f);
    bad = 0;
    for (int i = 0; i < M * C; i++) bad += dz[i] != 0.f;
    test_report(loss == 0.f && bad == 0, "crossentropy_all_ignored", "loss %g, %d nonzero grads", loss, bad);
    /* huge logits stay finite */
    for (int i = 0; i < M * C; i++) z[i] *= 1e4f;
    loss = crossentropy_forward_backward(dz, pr, NULL, z, y, M, C, 1.f);
    bad = !isfinite(loss);
    for (int i = 0; i < M * C; i++) bad += !isfinite(dz[i]) || !isfinite(pr[i]);
    test_report(bad == 0, "crossentropy_large_logits", "logits ~1e4: loss %g finite, grads finite", loss);
    free(z), free(dz), free(pr), free(c.z), free(g);
}

typedef struct {
    double *p, *t;
    size_t n;
    int l1;
} reg_ctx;
static double reg_loss(void *ctx) {
    reg_ctx *c = ctx;
    double s = 0;
    for (size_t i = 0; i < c->n; i++) {
        double d = c->p[i] - c->t[i];
        s += c->l1 ? fabs(d) : d * d;
    }
    return s / c->n;
}
static void test_regression_loss(int l1) {
    const size_t n = 300;
    const float scale = 1.3f;
    float *p = ref_falloc(n), *t = ref_falloc(n), *g = ref_falloc(n);
    ref_fill(p, n, 0, 1, &rng);
    ref_fill(t, n, 0, 1, &rng);
    for (size_t i = 0; i < n; i++) /* away from L1's kink */
        if (fabsf(p[i] - t[i]) < 1e-2f) p[i] = t[i] + 0.05f;
    reg_ctx c = {ref_dup(p, n), ref_dup(t, n), n, l1};
    float loss = l1 ? l1_forward_backward(g, p, t, n, scale) : mse_forward_backward(g, p, t, n, scale);
    double rl = reg_loss(&c);
    const char *nm = l1 ? "l1" : "mse";
    char buf[64];
    snprintf(buf, sizeof buf, "%s_forward", nm);
    test_report(fabs(loss - rl) < 1e-6 * rl, buf, "loss %.7f vs double %.7f", loss, rl);
    float l2 = l1 ? l1_forward_backward(NULL, p, t, n, 1.f) : mse_forward_backward(NULL, p, t, n, 1.f);
    snprintf(buf, sizeof buf, "%s_loss_only", nm);
    test_report(l2 == loss, buf, "NULL gradient: same loss");
    for (size_t i = 0; i < n; i++) g[i] /= scale;
    snprintf(buf, sizeof buf, "%s_backward", nm);
    ref_check_grad(buf, reg_loss, &c, c.p, g, n, 100, 1e-5, 1e-3, &rng);
    free(p), free(t), free(g), free(c.p), free(c.t);
}

/* -------------------------------------------------------- gather / scatter */

static void test_gather_scatter(void) {
    const int B = 3, L = 11, C = 5;
    const size_t n = (size_t)B * L * C;
    int o[11];
    mk_order_identity(o, L);
    mk_rng_shuffle(&rng, o, L);
    float *x = ref_falloc(n), *g = ref_falloc(n), *y = ref_falloc(n), *s = ref_falloc(n), *s0 = ref_falloc(n);
    ref_fill(x, n, 0, 1, &rng);
    ref_fill(y, n, 0, 1, &rng);
    ref_fill(s, n, 0, 1, &rng);
    memcpy(s0, s, sizeof(float) * n);
    gather_rows(g, x, o, B, L, C);
    int bad = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++)
            for (int c = 0; c < C; c++) bad += g[((size_t)b * L + t) * C + c] != x[((size_t)b * L + o[t]) * C + c];
    test_report(bad == 0, "gather_rows", "out[b,t] = inp[b,order[t]]: %d mismatches", bad);
    const float alpha = 0.37f;
    scatter_add_rows(s, y, o, B, L, C, alpha);
    bad = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++)
            for (int c = 0; c < C; c++) {
                size_t dst = ((size_t)b * L + o[t]) * C + c;
                if (fabsf(s[dst] - (s0[dst] + alpha * y[((size_t)b * L + t) * C + c])) > 1e-6f) bad++;
            }
    test_report(bad == 0, "scatter_add_rows", "out[b,order[t]] += alpha*inp[b,t]: %d mismatches", bad);
    /* scatter is gather's adjoint: <gather(x), y> == <x, scatter(y)> */
    memset(s, 0, sizeof(float) * n);
    scatter_add_rows(s, y, o, B, L, C, 1.f);
    double a = 0, bsum = 0;
    for (size_t i = 0; i < n; i++) a += (double)g[i] * y[i], bsum += (double)x[i] * s[i];
    test_report(fabs(a - bsum) < 1e-5 * (fabs(a) + 1), "gather_scatter_adjoint", "<gather x, y> %.6f vs <x, scatter y> %.6f",
                a, bsum);
    gather_rows(g, x, NULL, B, L, C);
    test_report(!memcmp(g, x, sizeof(float) * n), "gather_rows_identity", "NULL order copies");
    free(x), free(g), free(y), free(s), free(s0);
}

static void test_softmax(void) {
    const int M = 5, C = 9;
    float *x = ref_falloc(M * C), *o = ref_falloc(M * C);
    ref_fill(x, M * C, 0, 3, &rng);
    x[3] = 90.f; /* expf would overflow without the max shift */
    softmax_rows(o, x, M, C);
    double *r = ref_alloc(M * C);
    for (int m = 0; m < M; m++) {
        double mx = -1e300, s = 0;
        for (int c = 0; c < C; c++) mx = x[m * C + c] > mx ? x[m * C + c] : mx;
        for (int c = 0; c < C; c++) s += exp(x[m * C + c] - mx);
        for (int c = 0; c < C; c++) r[m * C + c] = exp(x[m * C + c] - mx) / s;
    }
    double e = ref_err(o, r, M * C, 1e-6);
    test_report(e < 1e-6, "softmax_rows", "rel err %.2e vs double (one logit 90)", e);
    free(x), free(o), free(r);
}

/* ---------------------------------------------------------------- simd.h */

static void test_simd(void) {
    /* dense sweep of [-87, 88] in steps of 1/1024 plus random points */
    double me = 0, mx = 0;
    for (double x = -87.0; x <= 88.0; x += 1.0 / 1024) {
        float xf = (float)x;
        double r = exp((double)xf), e = fabs(mk_fexp(xf) - r) / r;
        if (e > me || e != e) me = e != e ? INFINITY : e, mx = xf;
    }
    for (int i = 0; i < 200000; i++) {
        float xf = -87.f + 175.f * mk_rng_uniform(&rng);
        double r = exp((double)xf), e = fabs(mk_fexp(xf) - r) / r;
        if (e > me || e != e) me = e != e ? INFINITY : e, mx = xf;
    }
    /* the degree-5 minimax form measures 1.9e-7 without FMA, 1.6e-7 with; the degree-7
     * Taylor form it replaced, 3e-7; and e^0 is exactly 1 (a step with dt*A = 0 keeps h) */
    test_report(me < 2.5e-7 && mk_fexp(0.f) == 1.f, "simd_fexp",
                "max rel err %.2e vs libm exp (double) over [-87, 88] (worst at %.4f), exp(0) = %.9g", me, mx,
                (double)mk_fexp(0.f));
    /* clamping: exp of very negative is ~0, very positive finite */
    float lo = mk_fexp(-1000.f), hi = mk_fexp(1000.f);
    test_report(lo >= 0 && lo < 1e-37f && isfinite(hi) && hi > 1e38f, "simd_fexp_clamp", "fexp(-1000) = %g, fexp(1000) = %g",
                lo, hi);
    double ms = 0, msx = 0;
    for (double x = -80.0; x <= 80.0; x += 1.0 / 1024) {
        float xf = (float)x;
        double r = ref_softplus(xf), e = fabs(mk_fsoftplus(xf) - r) / r;
        if (e > ms || e != e) ms = e != e ? INFINITY : e, msx = xf;
    }
    for (int i = 0; i < 200000; i++) {
        float xf = 8.f * mk_rng_normal(&rng);
        double r = ref_softplus(xf), e = fabs(mk_fsoftplus(xf) - r) / r;
        if (e > ms || e != e) ms = e != e ? INFINITY : e, msx = xf;
    }
    test_report(ms < 5e-7, "simd_fsoftplus", "max rel err %.2e vs log1p(exp(x)) (double) over [-80, 80] (worst at %.4f)", ms,
                msx);
    float big = mk_fsoftplus(1e30f), neg = mk_fsoftplus(-1e30f);
    test_report(big == 1e30f && neg >= 0 && neg < 1e-37f, "simd_fsoftplus_extremes", "fsoftplus(1e30) = %g, (-1e30) = %g",
                big, neg);
    double mg = 0;
    for (double x = -40.0; x <= 40.0; x += 1.0 / 512) {
        float xf = (float)x;
        double r = ref_sigmoid(xf), e = fabs(mk_fsigmoid(xf) - r) / r;
        if (e > mg || e != e) mg = e != e ? INFINITY : e;
    }
    test_report(mg < 1e-6, "simd_fsigmoid", "max rel err %.2e vs double over [-40, 40]", mg);
    /* the sigmoid's reciprocal over its whole domain [1, 1 + e^87], every binade: two ulp */
    double mr = 0, mrd = 0;
    for (double d = 1.0; d < 8.5e37; d *= 1.00037) {
        float df = (float)d;
        double e = fabs((double)mk_frcp_ge1(df) * df - 1.0);
        if (e > mr || e != e) mr = e != e ? INFINITY : e, mrd = df;
    }
    test_report(mr < 2.4e-7, "simd_frcp", "max rel err %.2e vs double division over [1, 8.5e37] (worst at %g)", mr, mrd);
}

/* GELU by its own erfc (core/act.c) against double erfc, densely over [-13, 13]
 * (GELU(-13) ~ 8e-38, the end of float's normal range): forward relative error
 * everywhere; the derivative Phi(x) + x phi(x) relative to Phi(x) + |x| phi(x), the size
 * of its two terms (it crosses 0 near x = -0.75, where they cancel). */
static void test_gelu_accuracy(void) {
    const size_t n = 26 * 1024 + 1;
    float *x = ref_falloc(n), *o = ref_falloc(n), *g = ref_falloc(n), *one = ref_falloc(n);
    for (size_t i = 0; i < n; i++) x[i] = -13.f + (float)i / 1024.f, one[i] = 1.f, g[i] = 0.f;
    gelu_forward(o, x, n);
    gelu_backward(g, one, x, n);
    double fe = 0, fx = 0, be = 0, bx = 0;
    for (size_t i = 0; i < n; i++) {
        double xd = x[i], cdf = 0.5 * erfc(-xd / sqrt(2.0)), pdf = exp(-0.5 * xd * xd) / sqrt(2 * M_PI);
        double r = xd * cdf, rg = cdf + xd * pdf;
        double e = r != 0 ? fabs(o[i] - r) / fabs(r) : fabs(o[i]);
        if (e > fe || e != e) fe = e != e ? INFINITY : e, fx = xd;
        e = fabs(g[i] - rg) / (cdf + fabs(xd) * pdf);
        if (e > be || e != e) be = e != e ? INFINITY : e, bx = xd;
    }
    test_report(fe < 1e-6 && be < 1e-6, "gelu_accuracy",
                "%zu points on [-13, 13]: forward max rel err %.2e (at %.3f), derivative %.2e (at %.3f) vs double erfc", n,
                fe, fx, be, bx);
    /* the far ends: GELU(x) = x for x >> 0, 0 for x << 0, infinity kept */
    float ends[4] = {30.f, 1e30f, INFINITY, -1e30f}, eo[4];
    gelu_forward(eo, ends, 4);
    test_report(eo[0] == 30.f && eo[1] == 1e30f && isinf(eo[2]) && eo[2] > 0 && eo[3] == 0.f, "gelu_ends",
                "GELU(30) = %g, GELU(1e30) = %g, GELU(inf) = %g, GELU(-1e30) = %g", eo[0], eo[1], eo[2], eo[3]);
    /* the in-place form d *= GELU'(x) (S-Mamba's FFN) is the accumulating one from zero */
    float *d = ref_falloc(n), *d0 = ref_falloc(n), *acc = ref_falloc(n);
    ref_fill(d, n, 0, 1, &rng);
    for (size_t i = 0; i < n; i++) d0[i] = d[i], acc[i] = 0.f;
    gelu_backward(acc, d0, x, n);
    gelu_backward_inplace(d, x, n);
    size_t diff = 0;
    for (size_t i = 0; i < n; i++) diff += memcmp(&d[i], &acc[i], sizeof(float)) != 0;
    test_report(diff == 0, "gelu_backward_inplace", "%zu of %zu entries differ from gelu_backward into zeros", diff, n);
    free(x), free(o), free(g), free(one), free(d), free(d0), free(acc);
}

/* Sizes above the OpenMP thresholds of the ops (n > 65536, M > 64,
 * B*L*C > 65536), so the parallel branches are checked too. Backward of the
 * large conv against its double adjoint written out directly. */
static void test_parallel_sizes(void) {
    const size_t n = 70001;
    float *x = ref_falloc(n), *o = ref_falloc(n), *g = ref_falloc(n), *dy = ref_falloc(n);
    ref_fill(x, n, 0, 3, &rng);
    ref_fill(dy, n, 0, 1, &rng);
    double *r = ref_alloc(n), *rg = ref_alloc(n);
    for (size_t i = 0; i < n; i++) {
        double s = ref_sigmoid(x[i]);
        r[i] = x[i] * s;
        rg[i] = dy[i] * s * (1 + x[i] * (1 - s));
    }
    silu_forward(o, x, n);
    silu_backward(g, dy, x, n);
    double e1 = ref_err(o, r, n, 1e-6), e2 = ref_err(g, rg, n, 1e-6);
    test_report(e1 < 1e-6 && e2 < 1e-6, "silu_parallel", "n %zu: forward %.2e, backward %.2e vs double", n, e1, e2);
    free(x), free(o), free(g), free(dy), free(r), free(rg);

    const int M = 100, C = 16;
    float *xn = ref_falloc(M * C), *w = ref_falloc(C), *b = ref_falloc(C), *on = ref_falloc(M * C), *mu = ref_falloc(M),
          *rs = ref_falloc(M);
    ref_fill(xn, M * C, 0.5f, 2, &rng);
    ref_fill(w, C, 1, 0.3f, &rng);
    ref_fill(b, C, 0, 0.3f, &rng);
    double *X = ref_dup(xn, M * C), *Wd = ref_dup(w, C), *Bd = ref_dup(b, C), *rn = ref_alloc(M * C);
    rmsnorm_forward(on, rs, xn, w, M, C, 1e-5f);
    ref_norm(rn, X, Wd, NULL, M, C, 0, 1e-5);
    double e3 = ref_err(on, rn, M * C, 1e-6);
    layernorm_forward(on, mu, rs, xn, w, b, M, C, 1e-5f);
    ref_norm(rn, X, Wd, Bd, M, C, 1, 1e-5);
    double e4 = ref_err(on, rn, M * C, 1e-6);
    test_report(e3 < 2e-6 && e4 < 2e-6, "norm_parallel", "M %d rows: rmsnorm %.2e, layernorm %.2e vs double", M, e3, e4);
    free(xn), free(w), free(b), free(on), free(mu), free(rs), free(X), free(Wd), free(Bd), free(rn);

    const int B = 2, L = 300, Cc = 128, K = 4, P = K - 1;
    const size_t nc = (size_t)B * L * Cc, ns = (size_t)B * P * Cc;
    float *cx = ref_falloc(nc), *st = ref_falloc(ns), *cw = ref_falloc(Cc * K), *cb = ref_falloc(Cc), *co = ref_falloc(nc),
          *so = ref_falloc(ns), *cdy = ref_falloc(nc), *cdx = ref_falloc(nc), *cds = ref_falloc(ns),
          *cdw = ref_falloc(Cc * K), *cdb = ref_falloc(Cc);
    ref_fill(cx, nc, 0, 1, &rng);
    ref_fill(st, ns, 0, 1, &rng);
    ref_fill(cw, Cc * K, 0, 0.5f, &rng);
    ref_fill(cb, Cc, 0, 0.5f, &rng);
    ref_fill(cdy, nc, 0, 1, &rng);
    conv_ctx c = {ref_dup(cx, nc), ref_dup(st, ns), ref_dup(cw, Cc * K), ref_dup(cb, Cc), NULL, B, L, Cc, K};
    double *ro = ref_alloc(nc), *rso = ref_alloc(ns);
    conv_ref(ro, rso, &c);
    conv1d_forward(co, so, cx, st, cw, cb, B, L, Cc, K);
    double e5 = ref_err(co, ro, nc, 1e-6), e6 = ref_err(so, rso, ns, 1e-6);
    double *gfull = ref_alloc((size_t)B * (P + L) * Cc), *gw = ref_alloc(Cc * K), *gb = ref_alloc(Cc);
    conv_adjoint(gfull, gw, gb, cdy, &c);
    double *gx = ref_alloc(nc), *gs = ref_alloc(ns);
    for (int bb = 0; bb < B; bb++) {
        memcpy(gs + (size_t)bb * P * Cc, gfull + (size_t)bb * (P + L) * Cc, sizeof(double) * P * Cc);
        memcpy(gx + (size_t)bb * L * Cc, gfull + ((size_t)bb * (P + L) + P) * Cc, sizeof(double) * L * Cc);
    }
    conv1d_backward(cdx, cds, cdw, cdb, cdy, cx, st, cw, B, L, Cc, K);
    double e7 = ref_err(cdx, gx, nc, 1e-6), e8 = ref_err(cds, gs, ns, 1e-6), e9 = ref_err(cdw, gw, Cc * K, 1e-6),
           e10 = ref_err(cdb, gb, Cc, 1e-6);
    test_report(e5 < 1e-6 && e6 == 0 && e7 < 1e-6 && e8 < 1e-6 && e9 < 1e-5 && e10 < 1e-5, "conv1d_parallel",
                "B %d, L %d, C %d, K %d: out %.1e, state_out %.1e, dinp %.1e, dstate %.1e, dw %.1e, db %.1e", B, L, Cc, K, e5,
                e6, e7, e8, e9, e10);
    /* gather / scatter at the same size */
    int *ord = malloc(sizeof(int) * L);
    mk_order_identity(ord, L);
    mk_rng_shuffle(&rng, ord, L);
    gather_rows(co, cx, ord, B, L, Cc);
    memset(cdx, 0, sizeof(float) * nc);
    scatter_add_rows(cdx, co, ord, B, L, Cc, 1.f);
    test_report(!memcmp(cdx, cx, sizeof(float) * nc), "gather_scatter_parallel", "scatter(gather(x)) == x at B*L*C = %zu", nc);
    free(ord), free(cx), free(st), free(cw), free(cb), free(co), free(so), free(cdy), free(cdx), free(cds), free(cdw),
        free(cdb);
    free(c.x), free(c.st), free(c.w), free(c.b), free(ro), free(rso), free(gfull), free(gw), free(gb), free(gx), free(gs);
}

/* conv1d's weight gradient sums fixed row blocks in block order, so it must
 * not depend on the thread count: compared bit for bit on 1 and 3 threads at a
 * size above the OpenMP threshold (B*L*C > 65536) whose last block is partial,
 * a channel count that is no multiple of a vector, and a state, against the
 * double-precision adjoint too. */
static void test_conv_threads(void) {
    const int B = 3, L = 701, C = 37, K = 4, P = K - 1;
    MK_ASSERT((size_t)B * L * C > 65536 && (B * L) % 256 != 0);
    const size_t n = (size_t)B * L * C, ns = (size_t)B * P * C;
    float *x = ref_falloc(n), *st = ref_falloc(ns), *w = ref_falloc(C * K), *dy = ref_falloc(n);
    ref_fill(x, n, 0, 1, &rng);
    ref_fill(st, ns, 0, 1, &rng);
    ref_fill(w, C * K, 0, 0.5f, &rng);
    ref_fill(dy, n, 0, 1, &rng);
    float *dx[2], *dw[2], *db[2], *o[2];
    const int thr[2] = {1, 3};
    const int keep = omp_get_max_threads();
    for (int r = 0; r < 2; r++) {
        dx[r] = ref_falloc(n), dw[r] = ref_falloc(C * K), db[r] = ref_falloc(C), o[r] = ref_falloc(n);
        omp_set_num_threads(thr[r]);
        conv1d_forward(o[r], NULL, x, st, w, NULL, B, L, C, K);
        conv1d_backward(dx[r], NULL, dw[r], db[r], dy, x, st, w, B, L, C, K);
    }
    omp_set_num_threads(keep);
    conv_ctx c = {ref_dup(x, n), ref_dup(st, ns), ref_dup(w, C * K), NULL, NULL, B, L, C, K};
    double *gw = ref_alloc(C * K), *gb = ref_alloc(C);
    conv_adjoint(NULL, gw, gb, dy, &c);
    int same = !memcmp(dw[0], dw[1], sizeof(float) * C * K) && !memcmp(db[0], db[1], sizeof(float) * C) &&
               !memcmp(dx[0], dx[1], sizeof(float) * n) && !memcmp(o[0], o[1], sizeof(float) * n);
    double ew = ref_err(dw[0], gw, C * K, 1e-6), eb = ref_err(db[0], gb, C, 1e-6);
    test_report(same && ew < 1e-5 && eb < 1e-5, "conv1d_threads", "B %d, L %d, C %d: 1 and 3 threads bitwise %s; dw %.1e, db %.1e vs double",
                B, L, C, same ? "equal" : "DIFFERENT", ew, eb);
    for (int r = 0; r < 2; r++) free(dx[r]), free(dw[r]), free(db[r]), free(o[r]);
    free(x), free(st), free(w), free(dy), free(gw), free(gb), free(c.x), free(c.st), free(c.w);
}

/* The fused conv + SiLU of the Mamba block must give the bits of the two
 * separate ops, serial and parallel (B*L*C above the OpenMP threshold), with
 * and without a bias. */
static void test_conv_silu(void) {
    const int shapes[2][3] = {{2, 9, 6}, {3, 301, 131}};
    int bad = 0;
    size_t tot = 0;
    for (int sh = 0; sh < 2; sh++)
        for (int withb = 0; withb < 2; withb++)
            for (int K = 1; K <= 4; K++) {
                const int B = shapes[sh][0], L = shapes[sh][1], C = shapes[sh][2];
                const size_t n = (size_t)B * L * C;
                float *x = ref_falloc(n), *w = ref_falloc(C * K), *b = ref_falloc(C), *o1 = ref_falloc(n), *a1 = ref_falloc(n),
                      *o2 = ref_falloc(n), *a2 = ref_falloc(n);
                ref_fill(x, n, 0, 2, &rng);
                ref_fill(w, C * K, 0, 0.7f, &rng);
                ref_fill(b, C, 0, 0.5f, &rng);
                conv1d_forward(o1, NULL, x, NULL, w, withb ? b : NULL, B, L, C, K);
                silu_forward(a1, o1, n);
                conv1d_silu_forward(o2, a2, x, w, withb ? b : NULL, B, L, C, K);
                bad += memcmp(o1, o2, sizeof(float) * n) != 0 || memcmp(a1, a2, sizeof(float) * n) != 0;
                tot += n;
                free(x), free(w), free(b), free(o1), free(a1), free(o2), free(a2);
            }
    test_report(!bad, "conv1d_silu_fused", "16 shapes (K 1-4, bias or none, %zu values): %d differ from conv1d_forward + silu_forward",
                tot, bad);
}

int main(void) {
    mk_rng_seed(&rng, 20231201);
    test_linear(1);
    test_linear(0);
    test_matmul_acc();
    test_norm(0);
    test_norm(1);
    test_act("silu", silu_forward, silu_backward, d_silu, 0, 3.f, 1e-6);
    test_act("gelu", gelu_forward, gelu_backward, d_gelu, 0, 3.f, 2e-5);
    test_act("relu", relu_forward, relu_backward, d_relu, 0, 3.f, 1e-6);
    test_act("tanh", tanh_forward, tanh_backward, d_tanh, 1, 2.f, 1e-6);
    test_act("sigmoid", sigmoid_forward, sigmoid_backward, d_sigmoid, 1, 4.f, 1e-6);
    test_act("softplus", softplus_forward, softplus_backward, d_softplus, 0, 8.f, 1e-6);
    test_softplus_guard();
    for (int K = 2; K <= 4; K++) {
        test_conv(K, 0);
        test_conv(K, 1);
    }
    test_conv_threads();
    test_conv_silu();
    test_dropout();
    test_crossentropy();
    test_regression_loss(0);
    test_regression_loss(1);
    test_gather_scatter();
    test_softmax();
    test_simd();
    test_gelu_accuracy();
    test_parallel_sizes();
    return test_exit();
}
