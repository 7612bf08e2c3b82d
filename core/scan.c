/* scan.c — selective scan S6 on the CPU: a plain scalar version and an
 * optimised one (see scan.h for the math and layout).
 *
 * Optimised layout choice: SIMD runs across a block of EB adjacent channels
 * rather than across the state. In the token-major layout u, delta, z and out
 * for EB channels at one time step are one contiguous vector, B[t,n] and
 * C[t,n] are broadcast scalars, and y needs no horizontal sum over N. Each
 * OpenMP work item is one (batch, channel block), forward and backward (a
 * backward item per channel block alone left threads idle: 5 blocks of the
 * vision model's 160 channels on 2 threads). Gradients summed over items (dA,
 * dD, ddelta_bias over batches; dB/dC over channels) go through per-thread
 * partial buffers summed in thread order: deterministic for a given thread
 * count. */
#include "scan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "simd.h"
#include "util.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#define EB 32 /* channels per SIMD block: four AVX2 vectors (measured faster than 16: more ILP, fewer passes over B/C) */

/* ------------------------------------------------------------------ scalar */

void ssm_scan_forward_scalar(float *out, float *h_last, const float *u, const float *delta,
                             const float *A, const float *Bm, const float *Cm, const float *D,
                             const float *z, const float *delta_bias, const float *h0,
                             ssm_scan_dims d) {
    const int B = d.B, L = d.L, E = d.E, N = d.N;
    float *h = mk_malloc(sizeof(float) * N);
    for (int b = 0; b < B; b++)
        for (int e = 0; e < E; e++) {
            for (int n = 0; n < N; n++) h[n] = h0 ? h0[((size_t)b * E + e) * N + n] : 0.f;
            for (int t = 0; t < L; t++) {
                size_t i = ((size_t)b * L + t) * E + e;
                const float *bt = Bm + ((size_t)b * L + t) * N, *ct = Cm + ((size_t)b * L + t) * N;
                float dt = delta[i] + (delta_bias ? delta_bias[e] : 0.f);
                if (d.softplus) dt = mk_softplusf(dt);
                float y = 0.f;
                for (int n = 0; n < N; n++) {
                    h[n] = expf(dt * A[(size_t)e * N + n]) * h[n] + dt * bt[n] * u[i];
                    y += ct[n] * h[n];
                }
                if (D) y += D[e] * u[i];
                if (z) y *= mk_siluf(z[i]);
                out[i] = y;
            }
            if (h_last)
                for (int n = 0; n < N; n++) h_last[((size_t)b * E + e) * N + n] = h[n];
        }
    free(h);
}

void ssm_scan_backward_scalar(float *du, float *ddelta, float *dA, float *dBm, float *dCm,
                              float *dD, float *dz, float *ddelta_bias, float *dh0,
                              const float *dout, const float *dh_last, const float *u,
                              const float *delta, const float *A, const float *Bm,
                              const float *Cm, const float *D, const float *z,
                              const float *delta_bias, const float *h0, ssm_scan_dims d) {
    const int B = d.B, L = d.L, E = d.E, N = d.N;
    /* states h[t] for t = -1..L-1 of one channel: (L+1, N) */
    float *hs = mk_malloc(sizeof(float) * (size_t)(L + 1) * N);
    float *dh = mk_malloc(sizeof(float) * N);
    for (int b = 0; b < B; b++)
        for (int e = 0; e < E; e++) {
            for (int n = 0; n < N; n++) hs[n] = h0 ? h0[((size_t)b * E + e) * N + n] : 0.f;
            for (int t = 0; t < L; t++) {
                size_t i = ((size_t)b * L + t) * E + e;
                const float *bt = Bm + ((size_t)b * L + t) * N;
                float dt = delta[i] + (delta_bias ? delta_bias[e] : 0.f);
                if (d.softplus) dt = mk_softplusf(dt);
                for (int n = 0; n < N; n++)
                    hs[(size_t)(t + 1) * N + n] = expf(dt * A[(size_t)e * N + n]) * hs[(size_t)t * N + n] + dt * bt[n] * u[i];
            }
            for (int n = 0; n < N; n++) dh[n] = dh_last ? dh_last[((size_t)b * E + e) * N + n] : 0.f;
            for (int t = L - 1; t >= 0; t--) {
                size_t i = ((size_t)b * L + t) * E + e;
                const float *bt = Bm + ((size_t)b * L + t) * N, *ct = Cm + ((size_t)b * L + t) * N;
                const float *hp = hs + (size_t)t * N, *hc = hs + (size_t)(t + 1) * N;
                float raw = delta[i] + (delta_bias ? delta_bias[e] : 0.f);
                float dt = d.softplus ? mk_softplusf(raw) : raw;
                float y = 0.f;
                for (int n = 0; n < N; n++) y += ct[n] * hc[n];
                if (D) y += D[e] * u[i];
                float dy = dout[i];
                if (z) {
                    float s = mk_sigmoidf(z[i]);
                    if (dz) dz[i] += dout[i] * y * s * (1.f + z[i] * (1.f - s));
                    dy = dout[i] * z[i] * s;
                }
                if (D) {
                    if (dD) dD[e] += dy * u[i];
                    if (du) du[i] += D[e] * dy;
                }
                float ddt = 0.f;
                for (int n = 0; n < N; n++) {
                    float a = A[(size_t)e * N + n];
                    float ea = expf(dt * a);
                    if (dCm) dCm[((size_t)b * L + t) * N + n] += dy * hc[n];
                    dh[n] += dy * ct[n];
                    ddt += dh[n] * (a * ea * hp[n] + bt[n] * u[i]);
                    if (dA) dA[(size_t)e * N + n] += dh[n] * dt * ea * hp[n];
                    if (dBm) dBm[((size_t)b * L + t) * N + n] += dh[n] * dt * u[i];
                    if (du) du[i] += dh[n] * dt * bt[n];
                    dh[n] *= ea;
                }
                if (d.softplus) ddt *= mk_sigmoidf(raw);
                if (ddelta) ddelta[i] += ddt;
                if (ddelta_bias) ddelta_bias[e] += ddt;
            }
            if (dh0)
                for (int n = 0; n < N; n++) dh0[((size_t)b * E + e) * N + n] += dh[n];
        }
    free(hs);
    free(dh);
}

/* --------------------------------------------------------------- optimised */

/* Load EB lanes of a (., E) row at channel e0, zero-padding past ne. */
static inline void load_lanes(float *dst, const float *row, int ne) {
    if (ne == EB) memcpy(dst, row, sizeof(float) * EB);
    else {
        for (int j = 0; j < EB; j++) dst[j] = j < ne ? row[j] : 0.f;
    }
}

/* dst[0 .. ne) += src: a fixed-length vector loop for whole blocks, since the
 * backward adds its per-step rows into du, ddelta, dz for every (step, block) */
static inline __attribute__((always_inline)) void add_lanes(float *dst, const float *src, int ne) {
    if (ne == EB) {
#pragma omp simd
        for (int j = 0; j < EB; j++) dst[j] += src[j];
    } else {
        for (int j = 0; j < ne; j++) dst[j] += src[j];
    }
}

MK_CLONES
static void scan_fwd_block(float *out, float *h_last, float *ck, const float *u, const float *delta,
                           const float *A, const float *Bm, const float *Cm, const float *D,
                           const float *z, const float *delta_bias, const float *h0, ssm_scan_dims d,
                           int b, int e0, int ne) {
    const int L = d.L, E = d.E, N = d.N;
    float h[MK_SCAN_MAXN][EB], At[MK_SCAN_MAXN][EB];
    float bias[EB], Dv[EB], ut[EB], dt[EB], dtu[EB], y[EB], zt[EB];
    for (int n = 0; n < N; n++)
        for (int j = 0; j < EB; j++) {
            At[n][j] = j < ne ? A[(size_t)(e0 + j) * N + n] : 0.f;
            h[n][j] = (h0 && j < ne) ? h0[((size_t)b * E + e0 + j) * N + n] : 0.f;
        }
    for (int j = 0; j < EB; j++) {
        bias[j] = (delta_bias && j < ne) ? delta_bias[e0 + j] : 0.f;
        Dv[j] = (D && j < ne) ? D[e0 + j] : 0.f;
    }
    const int nch = (L + MK_SCAN_CHUNK - 1) / MK_SCAN_CHUNK;
    for (int t = 0; t < L; t++) {
        if (ck && t % MK_SCAN_CHUNK == 0) {
            float *c = ck + ((size_t)b * nch + t / MK_SCAN_CHUNK) * N * E + e0;
            for (int n = 0; n < N; n++) memcpy(c + (size_t)n * E, h[n], sizeof(float) * ne);
        }
        size_t row = ((size_t)b * L + t) * E + e0;
        load_lanes(ut, u + row, ne);
        load_lanes(dt, delta + row, ne);
        const float *bt = Bm + ((size_t)b * L + t) * N, *ct = Cm + ((size_t)b * L + t) * N;
        if (d.softplus) {
#pragma omp simd
            for (int j = 0; j < EB; j++) dt[j] = mk_fsoftplus(dt[j] + bias[j]);
        } else {
#pragma omp simd
            for (int j = 0; j < EB; j++) dt[j] += bias[j];
        }
#pragma omp simd
        for (int j = 0; j < EB; j++) {
            dtu[j] = dt[j] * ut[j];
            y[j] = Dv[j] * ut[j];
        }
        for (int n = 0; n < N; n++) {
            const float bn = bt[n], cn = ct[n];
#pragma omp simd
            for (int j = 0; j < EB; j++) {
                h[n][j] = mk_fexp(dt[j] * At[n][j]) * h[n][j] + dtu[j] * bn;
                y[j] += cn * h[n][j];
            }
        }
        if (z) {
            load_lanes(zt, z + row, ne);
#pragma omp simd
            for (int j = 0; j < EB; j++) y[j] *= zt[j] * mk_fsigmoid(zt[j]);
        }
        if (ne == EB) memcpy(out + row, y, sizeof y);
        else
            for (int j = 0; j < ne; j++) out[row + j] = y[j];
    }
    if (h_last)
        for (int n = 0; n < N; n++)
            for (int j = 0; j < ne; j++) h_last[((size_t)b * E + e0 + j) * N + n] = h[n][j];
}

size_t ssm_scan_ck_floats(ssm_scan_dims d) {
    return (size_t)d.B * ((d.L + MK_SCAN_CHUNK - 1) / MK_SCAN_CHUNK) * d.N * d.E;
}

void ssm_scan_forward(float *out, float *h_last, const float *u, const float *delta, const float *A,
                      const float *Bm, const float *Cm, const float *D, const float *z,
                      const float *delta_bias, const float *h0, ssm_scan_dims d) {
    ssm_scan_forward_ck(out, h_last, NULL, u, delta, A, Bm, Cm, D, z, delta_bias, h0, d);
}

void ssm_scan_forward_ck(float *out, float *h_last, float *ck, const float *u, const float *delta,
                         const float *A, const float *Bm, const float *Cm, const float *D, const float *z,
                         const float *delta_bias, const float *h0, ssm_scan_dims d) {
    MK_ASSERT(d.N <= MK_SCAN_MAXN);
    const int nblk = (d.E + EB - 1) / EB;
    const long items = (long)d.B * nblk;
#pragma omp parallel for schedule(static) if (items > 1 && (long)d.L * d.E * d.B > 4096)
    for (long it = 0; it < items; it++) {
        int b = (int)(it / nblk), e0 = (int)(it % nblk) * EB;
        int ne = d.E - e0 < EB ? d.E - e0 : EB;
        scan_fwd_block(out, h_last, ck, u, delta, A, Bm, Cm, D, z, delta_bias, h0, d, b, e0, ne);
    }
}

/* The walk's per-state body has two forms. The omp simd one runs over the block's EB
 * lanes and keeps the per-step sums (ddt, gb) and the dB/dC partial sums in memory:
 * about six stores per vector and state. The register form writes the same body in GCC
 * vector types of EB lanes, so those stay in registers across the states: backward
 * 1.28-1.40x where a value is two of AVX-512's 32 registers, but 0.8x with AVX2's 16,
 * where it spills (docs/PERFORMANCE.md). So the register form runs where the CPU has
 * x86-64-v4, the level at which the loader picks the AVX-512 clone; ssm_scan_walk_form
 * lets the tests run both. The sums change order, so the gradients differ in the last bits. */
typedef float vEB __attribute__((vector_size(sizeof(float) * EB)));
typedef float v16f __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));
_Static_assert(EB == 32, "hsum_eb halves 32 lanes");
static inline __attribute__((always_inline)) float hsum_eb(const vEB *v) {
    v16f a, b;
    memcpy(&a, v, sizeof a);
    memcpy(&b, (const char *)v + sizeof a, sizeof b);
    a += b;
    v8f c, d;
    memcpy(&c, &a, sizeof c);
    memcpy(&d, (char *)&a + sizeof c, sizeof d);
    c += d;
    v4f e, f;
    memcpy(&e, &c, sizeof e);
    memcpy(&f, (char *)&c + sizeof e, sizeof f);
    e += f;
    return (e[0] + e[2]) + (e[1] + e[3]);
}

static int walk_form = -1; /* -1: by the CPU, 0: omp simd, 1: registers */
void ssm_scan_walk_form(int form) { walk_form = form; }
static int walk_wide(void) {
    if (walk_form >= 0) return walk_form;
#if defined(__GNUC__) && defined(__x86_64__)
    return __builtin_cpu_supports("x86-64-v4") != 0; /* the level of MK_CLONES' AVX-512 copy */
#else
    return 0;
#endif
}

/* Backward for one (batch, channel block). States are recomputed:
 * a first sweep stores h at chunk starts, then each chunk (last to first) is
 * replayed storing its T states, and walked backwards. dBp/dCp: this thread's
 * (B, L, N) partial sums. ws: workspace of ws_floats. */
MK_CLONES
static void scan_bwd_block(float *du, float *ddelta, float *dAp, float *dBp, float *dCp, float *dDp,
                           float *dz, float *dbiasp, float *dh0, const float *dout,
                           const float *dh_last, const float *ck_in, const float *u, const float *delta,
                           const float *A, const float *Bm, const float *Cm, const float *D, const float *z,
                           const float *delta_bias, const float *h0, ssm_scan_dims d, int b, int e0,
                           int ne, float *ws, int wide) {
    const int L = d.L, E = d.E, N = d.N, T = MK_SCAN_CHUNK;
    const int nch = (L + T - 1) / T;
    float At[MK_SCAN_MAXN][EB], h[MK_SCAN_MAXN][EB], dh[MK_SCAN_MAXN][EB], dAacc[MK_SCAN_MAXN][EB];
    float bias[EB], Dv[EB], dDacc[EB], dbias[EB];
    float ut[EB], dt[EB], raw[EB], zt[EB], go[EB], dy[EB], ddt[EB], dut[EB], y[EB];
    /* workspace: checkpoints (nch, N, EB), chunk states and exp(dt*A) (T, N, EB) each,
     * chunk y and dt (T, EB) each: the backward walk reuses them instead of recomputing */
    float *ck = ws;
    float *hs = ck + (size_t)nch * N * EB;
    float *eas = hs + (size_t)T * N * EB;
    float *ys = eas + (size_t)T * N * EB;
    float *dts = ys + (size_t)T * EB;

    for (int n = 0; n < N; n++)
        for (int j = 0; j < EB; j++) {
            At[n][j] = j < ne ? A[(size_t)(e0 + j) * N + n] : 0.f;
            dAacc[n][j] = 0.f;
        }
    for (int j = 0; j < EB; j++) {
        bias[j] = (delta_bias && j < ne) ? delta_bias[e0 + j] : 0.f;
        Dv[j] = (D && j < ne) ? D[e0 + j] : 0.f;
        dDacc[j] = 0.f;
        dbias[j] = 0.f;
    }
    if (ck_in) { /* chunk-start states from the forward */
        for (int c = 0; c < nch; c++)
            for (int n = 0; n < N; n++)
                load_lanes(ck + ((size_t)c * N + n) * EB, ck_in + (((size_t)b * nch + c) * N + n) * E + e0, ne);
    } else {
        /* sweep 1: checkpoints */
        for (int n = 0; n < N; n++)
            for (int j = 0; j < EB; j++) h[n][j] = (h0 && j < ne) ? h0[((size_t)b * E + e0 + j) * N + n] : 0.f;
        for (int t = 0; t < L; t++) {
            if (t % T == 0) memcpy(ck + (size_t)(t / T) * N * EB, h, sizeof(float) * N * EB);
            size_t row = ((size_t)b * L + t) * E + e0;
            load_lanes(ut, u + row, ne);
            load_lanes(dt, delta + row, ne);
            const float *bt = Bm + ((size_t)b * L + t) * N;
#pragma omp simd
            for (int j = 0; j < EB; j++) {
                dt[j] = d.softplus ? mk_fsoftplus(dt[j] + bias[j]) : dt[j] + bias[j];
                dut[j] = dt[j] * ut[j];
            }
            for (int n = 0; n < N; n++) {
                const float bn = bt[n];
#pragma omp simd
                for (int j = 0; j < EB; j++) h[n][j] = mk_fexp(dt[j] * At[n][j]) * h[n][j] + dut[j] * bn;
            }
        }
    }
    /* backward through chunks */
    for (int n = 0; n < N; n++)
        for (int j = 0; j < EB; j++) dh[n][j] = (dh_last && j < ne) ? dh_last[((size_t)b * E + e0 + j) * N + n] : 0.f;
    for (int c = nch - 1; c >= 0; c--) {
        int t0 = c * T, t1 = t0 + T < L ? t0 + T : L;
        /* replay: hs[tt] = state after step t0+tt */
        memcpy(h, ck + (size_t)c * N * EB, sizeof(float) * N * EB);
        for (int t = t0; t < t1; t++) {
            size_t row = ((size_t)b * L + t) * E + e0;
            load_lanes(ut, u + row, ne);
            load_lanes(dt, delta + row, ne);
            const float *bt = Bm + ((size_t)b * L + t) * N, *ct = Cm + ((size_t)b * L + t) * N;
#pragma omp simd
            for (int j = 0; j < EB; j++) {
                dt[j] = d.softplus ? mk_fsoftplus(dt[j] + bias[j]) : dt[j] + bias[j];
                dut[j] = dt[j] * ut[j];
                y[j] = Dv[j] * ut[j];
            }
            float *hst = hs + (size_t)(t - t0) * N * EB, *eat = eas + (size_t)(t - t0) * N * EB;
            for (int n = 0; n < N; n++) {
                const float bn = bt[n], cn = ct[n];
#pragma omp simd
                for (int j = 0; j < EB; j++) {
                    float ea = mk_fexp(dt[j] * At[n][j]);
                    h[n][j] = ea * h[n][j] + dut[j] * bn;
                    hst[n * EB + j] = h[n][j];
                    eat[n * EB + j] = ea;
                    y[j] += cn * h[n][j];
                }
            }
            memcpy(ys + (size_t)(t - t0) * EB, y, sizeof y);
            memcpy(dts + (size_t)(t - t0) * EB, dt, sizeof dt);
        }
        for (int t = t1 - 1; t >= t0; t--) {
            size_t row = ((size_t)b * L + t) * E + e0;
            load_lanes(ut, u + row, ne);
            load_lanes(raw, delta + row, ne);
            load_lanes(go, dout + row, ne);
            const float *bt = Bm + ((size_t)b * L + t) * N, *ct = Cm + ((size_t)b * L + t) * N;
            const float *hc = hs + (size_t)(t - t0) * N * EB;
            const float *hp = t > t0 ? hs + (size_t)(t - t0 - 1) * N * EB : ck + (size_t)c * N * EB;
            const float *yt = ys + (size_t)(t - t0) * EB, *eat = eas + (size_t)(t - t0) * N * EB;
            memcpy(dt, dts + (size_t)(t - t0) * EB, sizeof dt);
#pragma omp simd
            for (int j = 0; j < EB; j++) {
                raw[j] += bias[j];
                dy[j] = go[j];
                ddt[j] = 0.f;
            }
            if (z) {
                load_lanes(zt, z + row, ne);
                float dzt[EB];
#pragma omp simd
                for (int j = 0; j < EB; j++) {
                    float s = mk_fsigmoid(zt[j]);
                    dzt[j] = go[j] * yt[j] * s * (1.f + zt[j] * (1.f - s));
                    dy[j] = go[j] * zt[j] * s;
                }
                if (dz) add_lanes(dz + row, dzt, ne);
            }
#pragma omp simd
            for (int j = 0; j < EB; j++) {
                dDacc[j] += dy[j] * ut[j];
                dut[j] = Dv[j] * dy[j];
            }
            float *dBt = dBp + ((size_t)b * L + t) * N, *dCt = dCp + ((size_t)b * L + t) * N;
            /* g = dL/dh_t, q = g*exp(dt*A)*h_{t-1}: dA += q*dt and ddt = sum_n q*A +
             * u*sum_n g*B, du += dt*sum_n g*B. Taking sum_n g*B (gb) once per step
             * instead of multiplying it out per state: 8 vector ops per state, not 11 */
            if (wide) { /* the register form, below */
                vEB dyv, dtv, utv, ddtv, dutv, gbv = {0}, dtuv;
                memcpy(&dyv, dy, sizeof dyv);
                memcpy(&dtv, dt, sizeof dtv);
                memcpy(&utv, ut, sizeof utv);
                memcpy(&ddtv, ddt, sizeof ddtv);
                dtuv = dtv * utv;
                for (int n = 0; n < N; n++) {
                    const float bn = bt[n], cn = ct[n];
                    vEB hcv, eav, hpv, dhv, dAv, Av;
                    memcpy(&hcv, hc + n * EB, sizeof hcv);
                    memcpy(&eav, eat + n * EB, sizeof eav);
                    memcpy(&hpv, hp + n * EB, sizeof hpv);
                    memcpy(&dhv, dh[n], sizeof dhv);
                    memcpy(&dAv, dAacc[n], sizeof dAv);
                    memcpy(&Av, At[n], sizeof Av);
                    vEB g = dhv + dyv * cn;
                    vEB ge = g * eav;
                    vEB q = ge * hpv;
                    dAv += q * dtv;
                    ddtv += q * Av;
                    gbv += g * bn;
                    memcpy(dh[n], &ge, sizeof ge);
                    memcpy(dAacc[n], &dAv, sizeof dAv);
                    vEB sb = g * dtuv, sc = dyv * hcv;
                    dBt[n] += hsum_eb(&sb);
                    dCt[n] += hsum_eb(&sc);
                }
                ddtv += utv * gbv;
                memcpy(ddt, &ddtv, sizeof ddtv);
                memcpy(&dutv, dut, sizeof dutv);
                dutv += dtv * gbv;
                memcpy(dut, &dutv, sizeof dutv);
            } else {
                float gb[EB], dtu[EB];
#pragma omp simd
                for (int j = 0; j < EB; j++) {
                    gb[j] = 0.f;
                    dtu[j] = dt[j] * ut[j];
                }
                for (int n = 0; n < N; n++) {
                    const float bn = bt[n], cn = ct[n];
                    float sb = 0.f, sc = 0.f;
#pragma omp simd reduction(+ : sb, sc)
                    for (int j = 0; j < EB; j++) {
                        sc += dy[j] * hc[n * EB + j];
                        float g = dh[n][j] + dy[j] * cn;
                        float ge = g * eat[n * EB + j];
                        float q = ge * hp[n * EB + j];
                        dAacc[n][j] += q * dt[j];
                        ddt[j] += q * At[n][j];
                        gb[j] += g * bn;
                        sb += g * dtu[j];
                        dh[n][j] = ge;
                    }
                    dBt[n] += sb;
                    dCt[n] += sc;
                }
#pragma omp simd
                for (int j = 0; j < EB; j++) {
                    ddt[j] += ut[j] * gb[j];
                    dut[j] += dt[j] * gb[j];
                }
            }
            if (d.softplus) {
#pragma omp simd
                for (int j = 0; j < EB; j++) ddt[j] *= mk_fsigmoid(raw[j]);
            }
            if (du) add_lanes(du + row, dut, ne);
            if (ddelta) add_lanes(ddelta + row, ddt, ne);
#pragma omp simd
            for (int j = 0; j < EB; j++) dbias[j] += ddt[j];
        }
    }
    if (dh0)
        for (int n = 0; n < N; n++)
            for (int j = 0; j < ne; j++) dh0[((size_t)b * E + e0 + j) * N + n] += dh[n][j];
    for (int j = 0; j < ne; j++) {
        for (int n = 0; n < N; n++) dAp[(size_t)(e0 + j) * N + n] += dAacc[n][j];
        dDp[e0 + j] += dDacc[j];
        dbiasp[e0 + j] += dbias[j];
    }
}

void ssm_scan_backward(float *du, float *ddelta, float *dA, float *dBm, float *dCm, float *dD,
                       float *dz, float *ddelta_bias, float *dh0, const float *dout,
                       const float *dh_last, const float *u, const float *delta, const float *A,
                       const float *Bm, const float *Cm, const float *D, const float *z,
                       const float *delta_bias, const float *h0, ssm_scan_dims d) {
    ssm_scan_backward_ck(du, ddelta, dA, dBm, dCm, dD, dz, ddelta_bias, dh0, dout, dh_last, NULL, u, delta, A, Bm,
                         Cm, D, z, delta_bias, h0, d);
}

void ssm_scan_backward_ck(float *du, float *ddelta, float *dA, float *dBm, float *dCm, float *dD,
                          float *dz, float *ddelta_bias, float *dh0, const float *dout,
                          const float *dh_last, const float *ck, const float *u, const float *delta,
                          const float *A, const float *Bm, const float *Cm, const float *D,
                          const float *z, const float *delta_bias, const float *h0, ssm_scan_dims d) {
    MK_ASSERT(d.N <= MK_SCAN_MAXN);
    const int nblk = (d.E + EB - 1) / EB;
    const int nch = (d.L + MK_SCAN_CHUNK - 1) / MK_SCAN_CHUNK;
    const long items = (long)d.B * nblk;
    const size_t bln = (size_t)d.B * d.L * d.N, en = (size_t)d.E * d.N;
    const size_t ws_floats = (size_t)nch * d.N * EB + 2 * (size_t)MK_SCAN_CHUNK * d.N * EB + 2 * (size_t)MK_SCAN_CHUNK * EB;
    int nthr = 1;
#ifdef _OPENMP
    nthr = omp_get_max_threads();
    if (nthr > items) nthr = (int)items;
#endif
    /* per-thread partials: dB, dC (B, L, N), dA (E, N), dD and ddelta_bias (E), workspace */
    const size_t per = 2 * bln + en + 2 * (size_t)d.E + ws_floats;
    float *part = mk_calloc((size_t)nthr * per, sizeof(float));
    const int wide = walk_wide();
#pragma omp parallel num_threads(nthr) if (nthr > 1)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *mine = part + (size_t)tid * per;
        float *pB = mine, *pC = pB + bln, *pA = pC + bln, *pD = pA + en, *pbias = pD + d.E, *ws = pbias + d.E;
#pragma omp for schedule(static)
        for (long it = 0; it < items; it++) {
            int b = (int)(it / nblk), e0 = (int)(it % nblk) * EB, ne = d.E - e0 < EB ? d.E - e0 : EB;
            scan_bwd_block(du, ddelta, pA, pB, pC, pD, dz, pbias, dh0, dout, dh_last, ck, u, delta, A, Bm, Cm, D, z,
                           delta_bias, h0, d, b, e0, ne, ws, wide);
        }
    }
    /* reduce in thread order */
    for (int t = 0; t < nthr; t++) {
        const float *p = part + (size_t)t * per;
        const float *pA = p + 2 * bln, *pD = pA + en, *pbias = pD + d.E;
        if (dBm)
            for (size_t i = 0; i < bln; i++) dBm[i] += p[i];
        if (dCm)
            for (size_t i = 0; i < bln; i++) dCm[i] += p[bln + i];
        if (dA)
            for (size_t i = 0; i < en; i++) dA[i] += pA[i];
        if (dD)
            for (int i = 0; i < d.E; i++) dD[i] += pD[i];
        if (ddelta_bias)
            for (int i = 0; i < d.E; i++) ddelta_bias[i] += pbias[i];
    }
    free(part);
}

void ssm_scan_step(float *out, float *h, const float *u, const float *delta, const float *A,
                   const float *Bm, const float *Cm, const float *D, const float *z,
                   const float *delta_bias, int B, int E, int N, int softplus) {
    for (int b = 0; b < B; b++) {
        const float *bt = Bm + (size_t)b * N, *ct = Cm + (size_t)b * N;
        for (int e = 0; e < E; e++) {
            size_t i = (size_t)b * E + e;
            float dt = delta[i] + (delta_bias ? delta_bias[e] : 0.f);
            if (softplus) dt = mk_fsoftplus(dt);
            float *hh = h + i * N;
            float y = D ? D[e] * u[i] : 0.f;
            for (int n = 0; n < N; n++) {
                hh[n] = mk_fexp(dt * A[(size_t)e * N + n]) * hh[n] + dt * bt[n] * u[i];
                y += ct[n] * hh[n];
            }
            if (z) y *= z[i] * mk_fsigmoid(z[i]);
            out[i] = y;
        }
    }
}
