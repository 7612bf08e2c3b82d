/* scan_ab.c — the CPU scan of two versions of core/scan.c in one process.
 *
 * On a shared machine the speed of the same binary drifts by 10-40 % within minutes, so
 * two binaries timed one after the other cannot resolve a 10 % change. Here version A
 * and version B (objects whose entry points tests/bench/cpu/scan_ab.sh renamed to
 * a_fwd/a_bwd and b_fwd/b_bwd) run alternately, round by round, on the same inputs;
 * the figure is the median over rounds of the per-round ratio time(A)/time(B), so a
 * drift slower than a round cancels. Both versions' outputs are compared too: a
 * change that speeds the scan up by computing something else shows as a difference. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/scan.h"

#define FWD_ARGS                                                                                           \
    float *out, float *h_last, float *ck, const float *u, const float *delta, const float *A, const float *Bm, \
        const float *Cm, const float *D, const float *z, const float *delta_bias, const float *h0, ssm_scan_dims d
#define BWD_ARGS                                                                                               \
    float *du, float *ddelta, float *dA, float *dBm, float *dCm, float *dD, float *dz, float *ddelta_bias,      \
        float *dh0, const float *dout, const float *dh_last, const float *ck, const float *u, const float *delta, \
        const float *A, const float *Bm, const float *Cm, const float *D, const float *z, const float *delta_bias, \
        const float *h0, ssm_scan_dims d
void a_fwd(FWD_ARGS);
void b_fwd(FWD_ARGS);
void a_bwd(BWD_ARGS);
void b_bwd(BWD_ARGS);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}
static float rnd(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return ((*s >> 8) / 16777216.f) * 2 - 1;
}
static float *fill(size_t n, unsigned *s, float scale) {
    float *p = malloc(sizeof(float) * n);
    if (!p) exit(1);
    for (size_t i = 0; i < n; i++) p[i] = scale * rnd(s);
    return p;
}
static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
/* largest |a-b| over max|a| */
static double rel_diff(const float *a, const float *b, size_t n) {
    double m = 0, e = 0;
    for (size_t i = 0; i < n; i++) {
        m = fmax(m, fabs(a[i]));
        e = fmax(e, fabs((double)a[i] - b[i]));
    }
    return m > 0 ? e / m : e;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: scan_ab B E L N [rounds] [reps]\n");
        return 2;
    }
    const int B = atoi(argv[1]), E = atoi(argv[2]), L = atoi(argv[3]), N = atoi(argv[4]);
    const int rounds = argc > 5 ? atoi(argv[5]) : 15, reps = argc > 6 ? atoi(argv[6]) : 3;
    if (B < 1 || E < 1 || L < 1 || N < 1 || N > MK_SCAN_MAXN || rounds < 1 || rounds > 1000 || reps < 1) {
        fprintf(stderr, "scan_ab: bad shape or counts\n");
        return 2;
    }
    const size_t ble = (size_t)B * L * E, bln = (size_t)B * L * N;
    unsigned s = 1;
    float *u = fill(ble, &s, 1), *dl = fill(ble, &s, 1), *z = fill(ble, &s, 1), *go = fill(ble, &s, 1);
    float *Bm = fill(bln, &s, 1), *Cm = fill(bln, &s, 1), *D = fill(E, &s, 1), *bias = fill(E, &s, 0.5f);
    float *A = fill((size_t)E * N, &s, 1);
    for (size_t i = 0; i < (size_t)E * N; i++) A[i] = -(1.f + (float)(i % N)) * (1.f + 0.25f * A[i]);
    ssm_scan_dims d = {B, L, E, N, 1};
    const size_t nck = ssm_scan_ck_floats(d);
    /* per version: out, ck, and the gradients du ddelta dz (ble), dB dC (bln), dA (EN), dD dbias (E) */
    float *o[2], *ck[2], *g[2][8];
    size_t gn[8] = {ble, ble, ble, bln, bln, (size_t)E * N, (size_t)E, (size_t)E};
    for (int v = 0; v < 2; v++) {
        o[v] = calloc(ble, sizeof(float));
        ck[v] = calloc(nck, sizeof(float));
        for (int k = 0; k < 8; k++) g[v][k] = calloc(gn[k], sizeof(float));
    }
    double tf[2][1000], tb[2][1000];
    for (int r = 0; r < rounds; r++)
        for (int v = 0; v < 2; v++) {
            double bf = 1e30, bb = 1e30;
            for (int k = 0; k < reps; k++) {
                for (int q = 0; q < 8; q++) memset(g[v][q], 0, sizeof(float) * gn[q]);
                double t0 = now();
                (v ? b_fwd : a_fwd)(o[v], NULL, ck[v], u, dl, A, Bm, Cm, D, z, bias, NULL, d);
                double t1 = now();
                (v ? b_bwd : a_bwd)(g[v][0], g[v][1], g[v][5], g[v][3], g[v][4], g[v][6], g[v][2], g[v][7], NULL,
                                    go, NULL, ck[v], u, dl, A, Bm, Cm, D, z, bias, NULL, d);
                double t2 = now();
                bf = fmin(bf, t1 - t0);
                bb = fmin(bb, t2 - t1);
            }
            tf[v][r] = bf;
            tb[v][r] = bb;
        }
    double rf[1000], rb[1000], mf[2] = {1e30, 1e30}, mb[2] = {1e30, 1e30};
    for (int r = 0; r < rounds; r++) {
        rf[r] = tf[0][r] / tf[1][r];
        rb[r] = tb[0][r] / tb[1][r];
        for (int v = 0; v < 2; v++) mf[v] = fmin(mf[v], tf[v][r]), mb[v] = fmin(mb[v], tb[v][r]);
    }
    qsort(rf, rounds, sizeof *rf, cmpd);
    qsort(rb, rounds, sizeof *rb, cmpd);
    double dg = rel_diff(o[0], o[1], ble);
    for (int k = 0; k < 8; k++) dg = fmax(dg, rel_diff(g[0][k], g[1][k], gn[k]));
    printf("B=%d E=%d L=%d N=%d, %d rounds x best of %d\n", B, E, L, N, rounds, reps);
    printf("  forward   A %8.3f ms  B %8.3f ms (best)  speed-up B over A, median of rounds %.3f (range %.3f-%.3f)\n",
           mf[0] * 1e3, mf[1] * 1e3, rf[rounds / 2], rf[0], rf[rounds - 1]);
    printf("  backward  A %8.3f ms  B %8.3f ms (best)  speed-up B over A, median of rounds %.3f (range %.3f-%.3f)\n",
           mb[0] * 1e3, mb[1] * 1e3, rb[rounds / 2], rb[0], rb[rounds - 1]);
    printf("  outputs and gradients: largest difference %.2e of the largest value\n", dg);
    return 0;
}
