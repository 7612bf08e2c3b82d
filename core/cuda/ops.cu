// ops.cu — the core's small ops on the GPU (core/ops.h semantics), cuBLAS
// GEMMs, memory and stream helpers. Reductions over rows (weight and bias
// gradients of norms, conv, linear) are two-stage: per-chunk partial sums,
// then one thread per output summing the chunks in order (deterministic).
#include <cublas_v2.h>
#include <stdint.h>
#include <string.h>

#include "core/cuda/common.cuh"

namespace {

cudaStream_t g_stream = NULL;
cublasHandle_t g_blas = NULL;
int g_init = 0; // 0 untried, 1 ok, -1 failed
char g_err[256] = "";
void *g_scratch = NULL, *g_scratch2 = NULL;
size_t g_scratch_n = 0, g_scratch2_n = 0;
int g_tf32 = 0;

constexpr unsigned TPB = 256;
constexpr int ROWS_PER = 64; // rows per partial in column reductions

void *grow(void **buf, size_t *cap, size_t bytes) {
    if (bytes <= *cap) return *buf;
    if (*buf) cudaFree(*buf);
    *buf = NULL;
    *cap = 0;
    size_t want = bytes + bytes / 4;
    if (cudaMalloc(buf, want) != cudaSuccess) {
        *buf = NULL;
        mkc_note_error("scratch allocation", cudaErrorMemoryAllocation);
        return NULL;
    }
    *cap = want;
    return *buf;
}
float *ops_scratch(size_t floats) { return (float *)grow(&g_scratch2, &g_scratch2_n, floats * sizeof(float)); }

// out[i] += sum_{s < S} part[s * stride + i], s in order
__global__ void sum_parts_k(float *__restrict__ out, const float *__restrict__ part, int S, size_t n, size_t stride) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    float s = 0.f;
    for (int k = 0; k < S; k++) s += part[(size_t)k * stride + i];
    out[i] += s;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(MKC_FULL, v, o);
    return v;
}

// ---------------------------------------------------------------- elementwise
__global__ void silu_fwd_k(float *o, const float *x, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) o[i] = x[i] * mkc_sigmoid(x[i]);
}
__global__ void silu_bwd_k(float *dx, const float *dy, const float *x, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) {
        float s = mkc_sigmoid(x[i]);
        dx[i] += dy[i] * s * (1.f + x[i] * (1.f - s));
    }
}
__global__ void softplus_fwd_k(float *o, const float *x, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) o[i] = mkc_softplus(x[i]);
}
__global__ void softplus_bwd_k(float *dx, const float *dy, const float *x, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) dx[i] += dy[i] * mkc_sigmoid(x[i]);
}
__global__ void acc_k(float *o, const float *a, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) o[i] += a[i];
}
__global__ void scale_k(float *o, float s, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) o[i] *= s;
}
__global__ void negexp_k(float *o, const float *x, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) o[i] = -expf(x[i]);
}
__global__ void mulacc_k(float *o, const float *a, const float *b, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) o[i] += a[i] * b[i];
}
__global__ void residual_k(float *o, const float *a, const float *br, const float *mask, size_t per, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) o[i] = a[i] + mask[i / per] * br[i];
}
__global__ void rowscale_k(float *o, const float *x, const float *mask, size_t per, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) o[i] = x[i] * mask[i / per];
}

// ---------------------------------------------------------------- norms (one warp per row)
__global__ void rms_fwd_k(float *out, float *rstd, const float *x, const float *w, int M, int C, float eps) {
    int m = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (m >= M) return;
    const float *xr = x + (size_t)m * C;
    float ss = 0.f;
    for (int c = lane; c < C; c += 32) ss += xr[c] * xr[c];
    ss = warp_sum(ss);
    float r = rsqrtf(ss / C + eps);
    for (int c = lane; c < C; c += 32) out[(size_t)m * C + c] = xr[c] * r * w[c];
    if (rstd && lane == 0) rstd[m] = r;
}
__global__ void rms_bwd_k(float *dx, const float *dy, const float *x, const float *w, const float *rstd, int M,
                          int C) {
    int m = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (m >= M) return;
    const float *xr = x + (size_t)m * C, *g = dy + (size_t)m * C;
    float r = rstd[m], dot = 0.f;
    for (int c = lane; c < C; c += 32) dot += g[c] * w[c] * xr[c];
    dot = warp_sum(dot);
    float k = dot * r * r * r / C;
    for (int c = lane; c < C; c += 32) dx[(size_t)m * C + c] += r * g[c] * w[c] - xr[c] * k;
}
__global__ void ln_fwd_k(float *out, float *mean, float *rstd, const float *x, const float *w, const float *b, int M,
                         int C, float eps) {
    int m = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (m >= M) return;
    const float *xr = x + (size_t)m * C;
    float s = 0.f;
    for (int c = lane; c < C; c += 32) s += xr[c];
    float mu = warp_sum(s) / C;
    float v = 0.f;
    for (int c = lane; c < C; c += 32) v += (xr[c] - mu) * (xr[c] - mu);
    float r = rsqrtf(warp_sum(v) / C + eps);
    for (int c = lane; c < C; c += 32) out[(size_t)m * C + c] = (xr[c] - mu) * r * w[c] + (b ? b[c] : 0.f);
    if (lane == 0) {
        if (mean) mean[m] = mu;
        if (rstd) rstd[m] = r;
    }
}
__global__ void ln_bwd_k(float *dx, const float *dy, const float *x, const float *w, const float *mean,
                         const float *rstd, int M, int C) {
    int m = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (m >= M) return;
    const float *xr = x + (size_t)m * C, *g = dy + (size_t)m * C;
    float mu = mean[m], r = rstd[m], s1 = 0.f, s2 = 0.f;
    for (int c = lane; c < C; c += 32) {
        float xh = (xr[c] - mu) * r, dxh = g[c] * w[c];
        s1 += dxh;
        s2 += dxh * xh;
    }
    float m1 = warp_sum(s1) / C, m2 = warp_sum(s2) / C;
    for (int c = lane; c < C; c += 32) {
        float xh = (xr[c] - mu) * r;
        dx[(size_t)m * C + c] += r * (g[c] * w[c] - m1 - xh * m2);
    }
}

// Column partials: part[r * C + c] = sum over rows of chunk r of f(m, c).
enum { COL_SUM = 0, COL_RMS_DW = 1, COL_LN_DW = 2 };
__global__ void colpart_k(float *part, int mode, const float *dy, const float *x, const float *mean,
                          const float *rstd, int M, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x, r = blockIdx.y;
    if (c >= C) return;
    int m0 = r * ROWS_PER, m1 = min(M, m0 + ROWS_PER);
    float s = 0.f;
    for (int m = m0; m < m1; m++) {
        float g = dy[(size_t)m * C + c];
        if (mode == COL_SUM) s += g;
        else if (mode == COL_RMS_DW) s += g * x[(size_t)m * C + c] * rstd[m];
        else s += g * (x[(size_t)m * C + c] - mean[m]) * rstd[m];
    }
    part[(size_t)r * C + c] = s;
}
void colreduce(float *out, int mode, const float *dy, const float *x, const float *mean, const float *rstd, int M,
               int C) {
    int R = (M + ROWS_PER - 1) / ROWS_PER;
    float *part = ops_scratch((size_t)R * C);
    if (!part || M <= 0) return;
    dim3 g(mkc_blocks(C, 128), R);
    colpart_k<<<g, 128, 0, mkc_s()>>>(part, mode, dy, x, mean, rstd, M, C);
    sum_parts_k<<<mkc_blocks(C, TPB), TPB, 0, mkc_s()>>>(out, part, R, C, C);
    MKC_CHECK_LAUNCH("colreduce");
}

// ---------------------------------------------------------------- conv1d (depthwise causal, channels last)
__global__ void conv_fwd_k(float *out, const float *x, const float *w, const float *bias, int L, int C, int K,
                           size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    int c = (int)(i % C);
    size_t bt = i / C;
    int t = (int)(bt % L);
    float s = bias ? bias[c] : 0.f;
    for (int k = 0; k < K; k++) {
        int ts = t - (K - 1) + k;
        if (ts >= 0) s += w[(size_t)c * K + k] * x[(bt - (t - ts)) * C + c];
    }
    out[i] = s;
}
__global__ void conv_bwd_dx_k(float *dx, const float *dy, const float *w, int L, int C, int K, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    int c = (int)(i % C);
    size_t bs = i / C;
    int s = (int)(bs % L);
    float acc = 0.f;
    for (int k = 0; k < K; k++) {
        int t = s + (K - 1) - k;
        if (t < L) acc += w[(size_t)c * K + k] * dy[(bs + (t - s)) * C + c];
    }
    dx[i] += acc;
}
// part[r][c*K + k] (dw) and part[r][C*K + c] (db) over rows (b, t) of chunk r
__global__ void conv_wpart_k(float *part, const float *dy, const float *x, int M, int L, int C, int K) {
    int c = blockIdx.x * blockDim.x + threadIdx.x, r = blockIdx.y;
    if (c >= C) return;
    float acc[9] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    int m0 = r * ROWS_PER, m1 = min(M, m0 + ROWS_PER);
    for (int m = m0; m < m1; m++) {
        int t = m % L;
        float g = dy[(size_t)m * C + c];
        acc[8] += g;
#pragma unroll
        for (int k = 0; k < 8; k++) {
            int ts = t - (K - 1) + k;
            if (k < K && ts >= 0) acc[k] += g * x[(size_t)(m - (t - ts)) * C + c];
        }
    }
    size_t W = (size_t)C * (K + 1);
    for (int k = 0; k < K; k++) part[(size_t)r * W + (size_t)c * K + k] = acc[k];
    part[(size_t)r * W + (size_t)C * K + c] = acc[8];
}

// ---------------------------------------------------------------- orders, columns
__global__ void gather_k(float *out, const float *inp, const int *order, int L, int C, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    int c = (int)(i % C);
    size_t bt = i / C;
    int t = (int)(bt % L);
    size_t b = bt / L;
    int src = order ? order[t] : t;
    out[i] = inp[(b * L + src) * C + c];
}
__global__ void scatter_add_k(float *out, const float *inp, const int *order, int L, int C, float alpha, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    int c = (int)(i % C);
    size_t bt = i / C;
    int t = (int)(bt % L);
    size_t b = bt / L;
    int dst = order ? order[t] : t;
    out[(b * L + dst) * C + c] += alpha * inp[i];
}
__global__ void split_cols_k(float *out, const float *inp, int C, int c0, int w, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    size_t m = i / w;
    out[i] = inp[m * C + c0 + i % w];
}
__global__ void merge_cols_k(float *out, const float *inp, int C, int c0, int w, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    size_t m = i / w;
    out[m * C + c0 + i % w] = inp[i];
}
__global__ void bcast_k(float *out, const float *v, int C, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) out[i] = v[i % C];
}

// ---------------------------------------------------------------- reductions, optimiser
constexpr int RED_BLOCKS = 256;
__global__ void sumsq_k(double *part, const float *x, const float *y, size_t n, int mode) {
    __shared__ double sh[TPB];
    double s = 0;
    for (size_t i = blockIdx.x * (size_t)TPB + threadIdx.x; i < n; i += (size_t)gridDim.x * TPB) {
        double d = mode ? (double)x[i] - (double)y[i] : (double)x[i];
        s += d * d;
    }
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int o = TPB / 2; o > 0; o >>= 1) {
        if ((int)threadIdx.x < o) sh[threadIdx.x] += sh[threadIdx.x + o];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}
double sumsq2(const float *x, const float *y, size_t n, int mode) {
    double *part = (double *)ops_scratch(2 * RED_BLOCKS);
    if (!part) return NAN;
    sumsq_k<<<RED_BLOCKS, TPB, 0, mkc_s()>>>(part, x, y, n, mode);
    MKC_CHECK_LAUNCH("sumsq");
    double h[RED_BLOCKS], s = 0;
    if (mkc_download(h, part, sizeof h)) return NAN;
    for (int i = 0; i < RED_BLOCKS; i++) s += h[i];
    return s;
}
__global__ void mse_grad_k(float *d, const float *p, const float *t, size_t n, float k) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) d[i] = k * (p[i] - t[i]);
}
__global__ void adamw_k(float *w, const float *g, float *m, float *v, const float *decay, size_t n, float lr,
                        float b1, float b2, float eps, float wd, float gscale, float bc1, float bc2) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    float gi = g[i] * gscale;
    float mi = b1 * m[i] + (1 - b1) * gi, vi = b2 * v[i] + (1 - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float wdi = decay ? wd * decay[i] : wd;
    float mh = mi / bc1, vh = vi / bc2;
    w[i] -= lr * (mh / (sqrtf(vh) + eps) + wdi * w[i]);
}

} // namespace

// ==================================================================== C API
void mkc_note_error(const char *what, cudaError_t e) {
    if (!g_err[0]) snprintf(g_err, sizeof g_err, "%s: %s", what, cudaGetErrorString(e));
}

extern "C" {

int mkc_init(void) {
    if (g_init) return g_init > 0 ? 0 : -1;
    g_init = -1;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        snprintf(g_err, sizeof g_err, "no CUDA device: %s", e != cudaSuccess ? cudaGetErrorString(e) : "none visible");
        cudaGetLastError();
        return -1;
    }
    if ((e = cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking)) != cudaSuccess) {
        mkc_note_error("stream", e);
        return -1;
    }
    if (cublasCreate(&g_blas) != CUBLAS_STATUS_SUCCESS) {
        snprintf(g_err, sizeof g_err, "cublasCreate failed");
        return -1;
    }
    cublasSetStream(g_blas, g_stream);
    cublasSetMathMode(g_blas, CUBLAS_PEDANTIC_MATH); // plain fp32 unless mkc_set_tf32(1)
    g_init = 1;
    return 0;
}

const char *mkc_last_error(void) { return g_err[0] ? g_err : "no error"; }
void *mkc_stream(void) { return (void *)g_stream; }

void *mkc_malloc(size_t bytes) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 4) != cudaSuccess) {
        mkc_note_error("cudaMalloc", cudaErrorMemoryAllocation);
        cudaGetLastError();
        return NULL;
    }
    return p;
}
void mkc_free(void *p) {
    if (p) cudaFree(p);
}
int mkc_upload(void *dst, const void *host, size_t bytes) {
    cudaError_t e = cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, g_stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(g_stream);
    if (e != cudaSuccess) mkc_note_error("upload", e);
    return e == cudaSuccess ? 0 : -1;
}
int mkc_download(void *host, const void *src, size_t bytes) {
    cudaError_t e = cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToHost, g_stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(g_stream);
    if (e != cudaSuccess) mkc_note_error("download", e);
    return e == cudaSuccess ? 0 : -1;
}
int mkc_memset0(void *dst, size_t bytes) {
    cudaError_t e = cudaMemsetAsync(dst, 0, bytes, g_stream);
    if (e != cudaSuccess) mkc_note_error("memset", e);
    return e == cudaSuccess ? 0 : -1;
}
int mkc_copy(void *dst, const void *src, size_t bytes) {
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g_stream);
    if (e != cudaSuccess) mkc_note_error("copy", e);
    return e == cudaSuccess ? 0 : -1;
}
int mkc_sync(void) {
    cudaError_t e = cudaStreamSynchronize(g_stream);
    if (e != cudaSuccess) mkc_note_error("sync", e);
    return (e == cudaSuccess && !g_err[0]) ? 0 : -1;
}
void *mkc_scratch(size_t bytes) { return grow(&g_scratch, &g_scratch_n, bytes); }

void mkc_set_tf32(int on) {
    g_tf32 = on;
    if (g_blas) cublasSetMathMode(g_blas, on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_PEDANTIC_MATH);
}

// Row-major (M, IN) x (OUT, IN)^T through column-major cuBLAS: out^T = W . inp^T.
void mkc_linear_forward(float *out, const float *inp, const float *W, const float *b, int M, int IN, int OUT) {
    if (M <= 0) return;
    const float one = 1.f, zero = 0.f;
    if (b) {
        bcast_k<<<mkc_blocks((size_t)M * OUT, TPB), TPB, 0, g_stream>>>(out, b, OUT, (size_t)M * OUT);
        MKC_CHECK_LAUNCH("linear bias");
    }
    cublasStatus_t s = cublasSgemm(g_blas, CUBLAS_OP_T, CUBLAS_OP_N, OUT, M, IN, &one, W, IN, inp, IN,
                                   b ? &one : &zero, out, OUT);
    if (s != CUBLAS_STATUS_SUCCESS) mkc_note_error("cublasSgemm forward", cudaErrorUnknown);
}
void mkc_linear_backward(float *dinp, float *dW, float *db, const float *dout, const float *inp, const float *W,
                         int M, int IN, int OUT) {
    if (M <= 0) return;
    const float one = 1.f;
    cublasStatus_t s = CUBLAS_STATUS_SUCCESS;
    if (dinp) // dinp^T (IN, M) += W^T (IN, OUT) . dout^T (OUT, M)
        s = cublasSgemm(g_blas, CUBLAS_OP_N, CUBLAS_OP_N, IN, M, OUT, &one, W, IN, dout, OUT, &one, dinp, IN);
    if (s == CUBLAS_STATUS_SUCCESS && dW) // dW^T (IN, OUT) += inp^T (IN, M) . dout (M, OUT)
        s = cublasSgemm(g_blas, CUBLAS_OP_N, CUBLAS_OP_T, IN, OUT, M, &one, inp, IN, dout, OUT, &one, dW, IN);
    if (s != CUBLAS_STATUS_SUCCESS) mkc_note_error("cublasSgemm backward", cudaErrorUnknown);
    if (db) colreduce(db, COL_SUM, dout, NULL, NULL, NULL, M, OUT);
}

#define EW(n) mkc_blocks((n), TPB), TPB, 0, g_stream
void mkc_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int M, int C, float eps) {
    if (M <= 0) return;
    rms_fwd_k<<<mkc_blocks(M, 8), 256, 0, g_stream>>>(out, rstd, inp, w, M, C, eps);
    MKC_CHECK_LAUNCH("rmsnorm_forward");
}
void mkc_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                          const float *rstd, int M, int C) {
    if (M <= 0) return;
    if (dinp) rms_bwd_k<<<mkc_blocks(M, 8), 256, 0, g_stream>>>(dinp, dout, inp, w, rstd, M, C);
    if (dw) colreduce(dw, COL_RMS_DW, dout, inp, NULL, rstd, M, C);
    MKC_CHECK_LAUNCH("rmsnorm_backward");
}
void mkc_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                           int M, int C, float eps) {
    if (M <= 0) return;
    ln_fwd_k<<<mkc_blocks(M, 8), 256, 0, g_stream>>>(out, mean, rstd, inp, w, b, M, C, eps);
    MKC_CHECK_LAUNCH("layernorm_forward");
}
void mkc_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                            const float *mean, const float *rstd, int M, int C) {
    if (M <= 0) return;
    if (dinp) ln_bwd_k<<<mkc_blocks(M, 8), 256, 0, g_stream>>>(dinp, dout, inp, w, mean, rstd, M, C);
    if (dw) colreduce(dw, COL_LN_DW, dout, inp, mean, rstd, M, C);
    if (db) colreduce(db, COL_SUM, dout, NULL, NULL, NULL, M, C);
    MKC_CHECK_LAUNCH("layernorm_backward");
}

void mkc_silu_forward(float *out, const float *inp, size_t n) {
    if (n) silu_fwd_k<<<EW(n)>>>(out, inp, n);
    MKC_CHECK_LAUNCH("silu");
}
void mkc_silu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    if (n) silu_bwd_k<<<EW(n)>>>(dinp, dout, inp, n);
    MKC_CHECK_LAUNCH("silu_backward");
}
void mkc_softplus_forward(float *out, const float *inp, size_t n) {
    if (n) softplus_fwd_k<<<EW(n)>>>(out, inp, n);
    MKC_CHECK_LAUNCH("softplus");
}
void mkc_softplus_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    if (n) softplus_bwd_k<<<EW(n)>>>(dinp, dout, inp, n);
    MKC_CHECK_LAUNCH("softplus_backward");
}
void mkc_vec_acc(float *out, const float *a, size_t n) {
    if (n) acc_k<<<EW(n)>>>(out, a, n);
    MKC_CHECK_LAUNCH("vec_acc");
}
void mkc_vec_scale(float *out, float s, size_t n) {
    if (n) scale_k<<<EW(n)>>>(out, s, n);
    MKC_CHECK_LAUNCH("vec_scale");
}
void mkc_neg_exp(float *out, const float *inp, size_t n) {
    if (n) negexp_k<<<EW(n)>>>(out, inp, n);
    MKC_CHECK_LAUNCH("neg_exp");
}
void mkc_mul_acc(float *out, const float *a, const float *b, size_t n) {
    if (n) mulacc_k<<<EW(n)>>>(out, a, b, n);
    MKC_CHECK_LAUNCH("mul_acc");
}
void mkc_residual(float *out, const float *a, const float *br, const float *mask, int B, size_t per) {
    size_t n = (size_t)B * per;
    if (n) residual_k<<<EW(n)>>>(out, a, br, mask, per, n);
    MKC_CHECK_LAUNCH("residual");
}
void mkc_rowscale(float *out, const float *inp, const float *mask, int B, size_t per) {
    size_t n = (size_t)B * per;
    if (n) rowscale_k<<<EW(n)>>>(out, inp, mask, per, n);
    MKC_CHECK_LAUNCH("rowscale");
}

void mkc_conv1d_forward(float *out, const float *inp, const float *w, const float *b, int B, int L, int C, int K) {
    size_t n = (size_t)B * L * C;
    if (n) conv_fwd_k<<<EW(n)>>>(out, inp, w, b, L, C, K, n);
    MKC_CHECK_LAUNCH("conv1d_forward");
}
void mkc_conv1d_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                         int B, int L, int C, int K) {
    size_t n = (size_t)B * L * C;
    if (!n) return;
    if (dinp) conv_bwd_dx_k<<<EW(n)>>>(dinp, dout, w, L, C, K, n);
    if (dw || db) {
        int M = B * L, R = (M + ROWS_PER - 1) / ROWS_PER;
        size_t W = (size_t)C * (K + 1);
        float *part = ops_scratch((size_t)R * W);
        if (!part) return;
        dim3 g(mkc_blocks(C, 128), R);
        conv_wpart_k<<<g, 128, 0, g_stream>>>(part, dout, inp, M, L, C, K);
        if (dw) sum_parts_k<<<EW((size_t)C * K)>>>(dw, part, R, (size_t)C * K, W);
        if (db) sum_parts_k<<<EW((size_t)C)>>>(db, part + (size_t)C * K, R, (size_t)C, W);
    }
    MKC_CHECK_LAUNCH("conv1d_backward");
}

void mkc_gather_rows(float *out, const float *inp, const int *order, int B, int L, int C) {
    size_t n = (size_t)B * L * C;
    if (n) gather_k<<<EW(n)>>>(out, inp, order, L, C, n);
    MKC_CHECK_LAUNCH("gather_rows");
}
void mkc_scatter_add_rows(float *out, const float *inp, const int *order, int B, int L, int C, float alpha) {
    size_t n = (size_t)B * L * C;
    if (n) scatter_add_k<<<EW(n)>>>(out, inp, order, L, C, alpha, n);
    MKC_CHECK_LAUNCH("scatter_add_rows");
}
void mkc_split_cols(float *out, const float *inp, int M, int C, int c0, int w) {
    size_t n = (size_t)M * w;
    if (n) split_cols_k<<<EW(n)>>>(out, inp, C, c0, w, n);
    MKC_CHECK_LAUNCH("split_cols");
}
void mkc_merge_cols(float *out, const float *inp, int M, int C, int c0, int w) {
    size_t n = (size_t)M * w;
    if (n) merge_cols_k<<<EW(n)>>>(out, inp, C, c0, w, n);
    MKC_CHECK_LAUNCH("merge_cols");
}
void mkc_copy_cols(float *out, int ldo, const float *inp, int ldi, int M, int w) {
    if (M <= 0 || w <= 0) return;
    cudaError_t e = cudaMemcpy2DAsync(out, sizeof(float) * ldo, inp, sizeof(float) * ldi, sizeof(float) * w, M,
                                      cudaMemcpyDeviceToDevice, g_stream);
    if (e != cudaSuccess) mkc_note_error("copy_cols", e);
}
void mkc_broadcast_row(float *out, const float *v, int M, int C) {
    size_t n = (size_t)M * C;
    if (n) bcast_k<<<EW(n)>>>(out, v, C, n);
    MKC_CHECK_LAUNCH("broadcast_row");
}
void mkc_colsum(float *out, const float *inp, int M, int C) { colreduce(out, COL_SUM, inp, NULL, NULL, NULL, M, C); }

float mkc_mse_forward_backward(float *dpred, const float *pred, const float *target, size_t n, float scale) {
    if (!n) return 0.f;
    float loss = (float)(sumsq2(pred, target, n, 1) / (double)n); // before dpred: it may alias target
    if (dpred) mse_grad_k<<<EW(n)>>>(dpred, pred, target, n, scale * 2.f / (float)n);
    MKC_CHECK_LAUNCH("mse");
    return loss;
}
double mkc_sumsq(const float *x, size_t n) { return n ? sumsq2(x, NULL, n, 0) : 0.0; }
void mkc_adamw(float *w, const float *g, float *m, float *v, const float *decay, size_t n, float lr, float beta1,
               float beta2, float eps, float wd, float gscale, float bc1, float bc2) {
    if (n) adamw_k<<<EW(n)>>>(w, g, m, v, decay, n, lr, beta1, beta2, eps, wd, gscale, bc1, bc2);
    MKC_CHECK_LAUNCH("adamw");
}
#undef EW

double mkc_time_us(void (*fn)(void *), void *arg, int reps, int flush) {
    static void *fb = NULL;
    static size_t fbn = 0;
    if (flush && !fb) {
        int dev = 0, l2 = 0;
        cudaGetDevice(&dev);
        cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev);
        fbn = (size_t)(l2 > 0 ? l2 : 50 << 20) * 4;
        if (cudaMalloc(&fb, fbn) != cudaSuccess) fb = NULL, fbn = 0;
    }
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    fn(arg); // warm-up
    double ts[64];
    if (reps > 64) reps = 64;
    if (reps < 1) reps = 1;
    for (int r = 0; r < reps; r++) {
        if (flush && fb) cudaMemsetAsync(fb, r & 1, fbn, g_stream);
        cudaEventRecord(a, g_stream);
        fn(arg);
        cudaEventRecord(b, g_stream);
        cudaEventSynchronize(b);
        float ms = 0.f;
        cudaEventElapsedTime(&ms, a, b);
        ts[r] = ms * 1e3;
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    for (int i = 1; i < reps; i++) // insertion sort, reps is small
        for (int j = i; j > 0 && ts[j] < ts[j - 1]; j--) {
            double t = ts[j];
            ts[j] = ts[j - 1];
            ts[j - 1] = t;
        }
    return ts[reps / 2];
}

namespace {
struct copy_arg {
    void *d, *s;
    size_t n;
};
void copy_fn(void *p) {
    copy_arg *c = (copy_arg *)p;
    cudaMemcpyAsync(c->d, c->s, c->n, cudaMemcpyDeviceToDevice, g_stream);
}
} // namespace

double mkc_copy_bandwidth(void) {
    copy_arg c = {NULL, NULL, (size_t)1 << 30};
    if (cudaMalloc(&c.d, c.n) != cudaSuccess) return 0;
    if (cudaMalloc(&c.s, c.n) != cudaSuccess) {
        cudaFree(c.d);
        return 0;
    }
    cudaMemsetAsync(c.s, 1, c.n, g_stream);
    double us = mkc_time_us(copy_fn, &c, 10, 0);
    cudaFree(c.d);
    cudaFree(c.s);
    return 2.0 * c.n / (us * 1e-6);
}

} // extern "C"
