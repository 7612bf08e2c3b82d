/* linear.c — fully connected layer over token rows, through OpenBLAS sgemm. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "ops.h"
#include "util.h"

/* Debian's default OpenBLAS is the pthread build: it keeps its own pool of
 * threads that yield-spin between calls, so beside our OpenMP threads each pool
 * spins while the other works (vision training on 2 cores: 104 img/s, against
 * 149 with one BLAS thread and 164 with the OpenMP build, which shares our pool;
 * the Makefile links that build when installed). */
void blas_fit_threads(void) {
    if (openblas_get_parallel() == 1 && mk_num_threads() > 1) openblas_set_num_threads(1);
}

/* OpenBLAS picks its kernels at load time from the CPU's model number, and a model newer than
 * the library gets its generic "Prescott" (SSE3) kernels: Debian 12's 0.3.21 does not know
 * Intel's Emerald Rapids (family 6, model 207), where sgemm then runs at 18 GFLOP/s on one
 * thread instead of the 134 of its AVX-512 kernels (docs/PERFORMANCE.md, 2026-11-28). The
 * choice can only be overridden before the library loads (OPENBLAS_CORETYPE), so this names the
 * core a re-run should ask for: SkylakeX where AVX-512 (F, BW, DQ, VL) works, Haswell where AVX2
 * and FMA do. NULL when OpenBLAS chose any other core, or OPENBLAS_CORETYPE is set already (by
 * the user, or by the re-run). */
const char *blas_better_core(void) {
    if (getenv("OPENBLAS_CORETYPE")) return NULL;
    const char *core = openblas_get_corename();
    if (!core || strcasecmp(core, "prescott") != 0) return NULL;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}

const char *blas_core_name(void) {
    const char *core = openblas_get_corename();
    return core ? core : "unknown";
}

/* out (M,O) = inp (M,I) @ W^T (W is (O,I), PyTorch layout) + b */
void linear_forward(float *out, const float *inp, const float *W, const float *b, int M, int IN, int OUT) {
    if (M == 0) return;
    if (b) {
        for (int m = 0; m < M; m++) memcpy(out + (size_t)m * OUT, b, sizeof(float) * OUT);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, OUT, IN, 1.0f, inp, IN, W, IN, b ? 1.0f : 0.0f,
                out, OUT);
}

void linear_backward(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                     const float *W, int M, int IN, int OUT) {
    if (M == 0) return;
    if (dinp) /* dinp (M,IN) += dout (M,OUT) @ W (OUT,IN) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, IN, OUT, 1.0f, dout, OUT, W, IN, 1.0f, dinp, IN);
    if (dW) /* dW (OUT,IN) += dout^T (OUT,M) @ inp (M,IN) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OUT, IN, M, 1.0f, dout, OUT, inp, IN, 1.0f, dW, IN);
    if (db) {
        for (int m = 0; m < M; m++) {
            const float *d = dout + (size_t)m * OUT;
            for (int o = 0; o < OUT; o++) db[o] += d[o];
        }
    }
}

void matmul_acc(float *C, const float *A, const float *B, int M, int N, int K, int transB) {
    if (M == 0 || N == 0 || K == 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A, K, B,
                transB ? K : N, 1.0f, C, N);
}
