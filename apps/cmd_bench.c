/* cmd_bench.c — `mambakit bench scan` (the CPU selective scan against the plain
 * scalar loop, same run) and dispatch to the domain benchmarks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "apps/cli.h"
#include "core/scan.h"
#include "core/util.h"

/* FLOPs per state update, counted as the math does them:
 * forward: dA=exp(dt*A) (mul + exp ~ 1+1), h = dA*h + (dt*u)*B (3), y += C*h (2) -> ~7
 * backward (incl. the two recompute sweeps): ~2*5 + 14 -> ~24 */
#define FWD_FLOP 7.0
#define BWD_FLOP 24.0

static double time_it(void (*fn)(void *), void *arg, int reps) {
    fn(arg); /* warm-up */
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = mk_time();
        fn(arg);
        double t = mk_time() - t0;
        if (t < best) best = t;
    }
    return best;
}

typedef struct {
    ssm_scan_dims d;
    float *u, *delta, *A, *Bm, *Cm, *D, *z, *bias, *out, *dout;
    float *du, *dd, *dA, *dB, *dC, *dD, *dz, *dbias;
    float *ck; /* chunk-start states the forward keeps for the backward */
} scan_case;

static void fwd_opt(void *a) {
    scan_case *c = a;
    ssm_scan_forward_ck(c->out, NULL, c->ck, c->u, c->delta, c->A, c->Bm, c->Cm, c->D, c->z, c->bias, NULL, c->d);
}
static void fwd_scalar(void *a) {
    scan_case *c = a;
    ssm_scan_forward_scalar(c->out, NULL, c->u, c->delta, c->A, c->Bm, c->Cm, c->D, c->z, c->bias, NULL, c->d);
}
static void bwd_opt(void *a) {
    scan_case *c = a;
    ssm_scan_backward_ck(c->du, c->dd, c->dA, c->dB, c->dC, c->dD, c->dz, c->dbias, NULL, c->dout, NULL, c->ck, c->u,
                         c->delta, c->A, c->Bm, c->Cm, c->D, c->z, c->bias, NULL, c->d);
}
static void bwd_scalar(void *a) {
    scan_case *c = a;
    ssm_scan_backward_scalar(c->du, c->dd, c->dA, c->dB, c->dC, c->dD, c->dz, c->dbias, NULL, c->dout, NULL, c->u,
                             c->delta, c->A, c->Bm, c->Cm, c->D, c->z, c->bias, NULL, c->d);
}

static float *rnd(size_t n, float lo, float hi, mk_rng *r) {
    float *p = mk_malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * mk_rng_uniform(r);
    return p;
}

/* Machine figures measured in the same run, so each scan time sits beside
 * its floors: bytes that must move / copy bandwidth, FLOPs / sgemm rate. */
static double g_bw_gbs, g_gemm_gflops;

static void measure_machine(void) {
    size_t n = (size_t)64 << 20; /* 256 MB, far beyond any cache */
    float *a = mk_malloc(n * 4), *b = mk_malloc(n * 4);
    memset(a, 1, n * 4);
    memset(b, 0, n * 4);
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = mk_time();
        memcpy(b, a, n * 4);
        double t = mk_time() - t0;
        if (t < best) best = t;
    }
    g_bw_gbs = 2.0 * n * 4 / best * 1e-9; /* read + write */
    free(a), free(b);
    int M = 1024;
    float *x = mk_calloc((size_t)M * M, 4), *y = mk_calloc((size_t)M * M, 4), *z = mk_calloc((size_t)M * M, 4);
    for (size_t i = 0; i < (size_t)M * M; i++) x[i] = y[i] = 1e-3f * (float)(i % 7);
    best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = mk_time();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, M, M, 1.f, x, M, y, M, 0.f, z, M);
        double t = mk_time() - t0;
        if (t < best) best = t;
    }
    g_gemm_gflops = 2.0 * M * M * M / best * 1e-9;
    free(x), free(y), free(z);
}

static void bench_shape(int B, int E, int L, int N, int reps, int scalar_reps, int json) {
    mk_rng r;
    mk_rng_seed(&r, 1);
    scan_case c;
    memset(&c, 0, sizeof c);
    c.d = (ssm_scan_dims){B, L, E, N, 1};
    size_t BLE = (size_t)B * L * E, BLN = (size_t)B * L * N, EN = (size_t)E * N;
    c.u = rnd(BLE, -1, 1, &r);
    c.delta = rnd(BLE, -3, 0, &r);
    c.A = rnd(EN, -4, -0.5f, &r);
    c.Bm = rnd(BLN, -1, 1, &r);
    c.Cm = rnd(BLN, -1, 1, &r);
    c.D = rnd(E, 0.5f, 1.5f, &r);
    c.z = rnd(BLE, -2, 2, &r);
    c.bias = rnd(E, -4, -2, &r);
    c.dout = rnd(BLE, -1, 1, &r);
    c.out = mk_calloc(BLE, 4);
    c.du = mk_calloc(BLE, 4);
    c.dd = mk_calloc(BLE, 4);
    c.dz = mk_calloc(BLE, 4);
    c.dA = mk_calloc(EN, 4);
    c.dB = mk_calloc(BLN, 4);
    c.dC = mk_calloc(BLN, 4);
    c.dD = mk_calloc(E, 4);
    c.dbias = mk_calloc(E, 4);
    c.ck = mk_calloc(ssm_scan_ck_floats(c.d), 4);
    double upd = (double)B * L * E * N;
    double tf = time_it(fwd_opt, &c, reps), tb = time_it(bwd_opt, &c, reps); /* bwd uses fwd's ck */
    double tfs = time_it(fwd_scalar, &c, scalar_reps), tbs = time_it(bwd_scalar, &c, scalar_reps);
    /* bytes that must move: forward reads u, delta, z, B, C and writes out;
     * backward reads those + dout and writes du, ddelta, dz, dB, dC */
    double fbytes = 4.0 * (4.0 * B * L * E + 2.0 * B * L * N);
    double bbytes = 4.0 * (7.0 * B * L * E + 4.0 * B * L * N);
    double ffloor = fbytes / (g_bw_gbs * 1e9), bfloor = bbytes / (g_bw_gbs * 1e9);
    if (json) {
        printf("{\"B\":%d,\"E\":%d,\"L\":%d,\"N\":%d,\"threads\":%d,\"fwd_s\":%.6f,\"bwd_s\":%.6f,"
               "\"fwd_scalar_s\":%.6f,\"bwd_scalar_s\":%.6f,\"fwd_gupd_s\":%.4f,\"fwd_gflops\":%.3f,"
               "\"bwd_gflops\":%.3f,\"fwd_speedup\":%.2f,\"bwd_speedup\":%.2f,\"copy_gbs\":%.2f,"
               "\"sgemm_gflops\":%.2f,\"fwd_mem_floor_s\":%.6f,\"bwd_mem_floor_s\":%.6f}\n",
               B, E, L, N, mk_num_threads(), tf, tb, tfs, tbs, upd / tf * 1e-9, upd * FWD_FLOP / tf * 1e-9,
               upd * BWD_FLOP / tb * 1e-9, tfs / tf, tbs / tb, g_bw_gbs, g_gemm_gflops, ffloor, bfloor);
    } else {
        printf("scan B=%d E=%d L=%d N=%d  (%.0fM state updates, %d threads)\n", B, E, L, N, upd * 1e-6, mk_num_threads());
        printf("  floors: memory %.1f ms fwd / %.1f ms bwd (bytes that must move at the measured %.1f GB/s copy rate);\n"
               "          compute: %.1f GFLOP/s fwd, %.1f bwd is %.0f%% / %.0f%% of this machine's sgemm rate (%.1f GFLOP/s)\n",
               ffloor * 1e3, bfloor * 1e3, g_bw_gbs, upd * FWD_FLOP / tf * 1e-9, upd * BWD_FLOP / tb * 1e-9,
               100 * upd * FWD_FLOP / tf * 1e-9 / g_gemm_gflops, 100 * upd * BWD_FLOP / tb * 1e-9 / g_gemm_gflops,
               g_gemm_gflops);
        printf("  forward   optimised %8.1f ms  %6.2f G upd/s  %6.1f GFLOP/s | scalar %8.1f ms  %6.2f G upd/s | speed-up %.1fx\n",
               tf * 1e3, upd / tf * 1e-9, upd * FWD_FLOP / tf * 1e-9, tfs * 1e3, upd / tfs * 1e-9, tfs / tf);
        printf("  backward  optimised %8.1f ms  %6.2f G upd/s  %6.1f GFLOP/s | scalar %8.1f ms  %6.2f G upd/s | speed-up %.1fx\n",
               tb * 1e3, upd / tb * 1e-9, upd * BWD_FLOP / tb * 1e-9, tbs * 1e3, upd / tbs * 1e-9, tbs / tb);
    }
    float *ps[] = {c.u, c.delta, c.A, c.Bm, c.Cm, c.D, c.z, c.bias, c.dout, c.out, c.du, c.dd, c.dz, c.dA, c.dB, c.dC, c.dD, c.dbias, c.ck};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) free(ps[i]);
}

static int bench_scan(int argc, char **argv) {
    int json = 0, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            printf("usage: mambakit bench scan [--json] [--quick]\n"
                   "  times the CPU selective scan (forward, backward) against the plain scalar loop in the same run,\n"
                   "  at the Mamba paper's shape B=8 E=1536 L=2048 N=16, a small one B=1 E=256 L=1024 N=16 and the\n"
                   "  shipped vision model's training shape B=128 E=160 L=50 N=16 (batch 128, one scan direction).\n"
                   "  --quick   small shape only (for tests)\n  --json    one JSON object per shape\n");
            return 0;
        } else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else {
            fprintf(stderr, "mambakit: bench scan: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    measure_machine();
    bench_shape(1, 256, 1024, 16, 5, 2, json);
    if (!quick) {
        bench_shape(128, 160, 50, 16, 5, 1, json);
        bench_shape(8, 1536, 2048, 16, 2, 1, json);
    }
    return 0;
}

int cmd_bench(int argc, char **argv) {
    if (argc < 2 || cli_is_help(argv[1])) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: mambakit bench WHAT [options]\n\n"
                   "  scan     CPU selective scan vs the scalar loop (make bench)\n"
                   "  vision   vision model speed and accuracy table (make bench-vision)\n"
                   "  audio    enhancement metrics table (make bench-audio)\n"
                   "  ts       long-horizon forecasting benchmark (make bench-ts)\n"
                   "  mil      multiple-instance learning benchmark (make bench-mil)\n"
                   "  cuda     GPU kernels vs CPU (make bench-cuda)\n");
        return argc < 2 ? 2 : 0;
    }
    const char *w = argv[1];
    if (!strcmp(w, "scan")) return bench_scan(argc - 1, argv + 1);
    if (!strcmp(w, "vision")) return cmd_bench_vision(argc - 1, argv + 1);
    if (!strcmp(w, "audio")) return cmd_bench_audio(argc - 1, argv + 1);
    if (!strcmp(w, "ts")) return cmd_bench_ts(argc - 1, argv + 1);
    if (!strcmp(w, "mil")) return cmd_bench_mil(argc - 1, argv + 1);
    if (!strcmp(w, "cuda")) return cmd_bench_cuda(argc - 1, argv + 1);
    fprintf(stderr, "mambakit: bench: unknown benchmark '%s'\n", w);
    return 2;
}
