// points.cu — a point-cloud classifier's own ops on the GPU (vision/points.c semantics): ReLU
// for the shared point-MLP, the max over each patch's K neighbours with its argmax (and the
// backward, which sends each token's gradient to the neighbour that won), the mean over tokens
// (and its backward), and softmax cross-entropy as core/loss.c's crossentropy_forward_backward
// computes it for one row. One thread per output element; every sum runs in a fixed order in
// one thread, so nothing needs atomics and results do not change run to run.
#include <math.h>

#include "core/cuda/common.cuh"

namespace {

constexpr unsigned TPB = 256;

// ref: core/act.c relu_forward / relu_backward
__global__ void relu_fwd_k(float *o, const float *x, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) o[i] = x[i] > 0.f ? x[i] : 0.f;
}
__global__ void relu_bwd_k(float *dx, const float *dy, const float *x, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) dx[i] += x[i] > 0.f ? dy[i] : 0.f;
}

// one thread per (m, d): out[m, d] += max_j inp[m, j, d], arg = the first j that reaches it
// (strict >, as points_forward: a NaN after the first neighbour is never picked)
__global__ void group_max_k(float *out, int *arg, const float *inp, int K, int D, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    const size_t m = i / D;
    const int d = (int)(i % D);
    const float *p = inp + m * K * D + d;
    float best = p[0];
    int bj = 0;
    for (int j = 1; j < K; j++) {
        const float v = p[(size_t)j * D];
        if (v > best) best = v, bj = j;
    }
    arg[i] = bj;
    out[i] += best;
}

// one thread per input element (m, j, d): a gather from the one output it may feed
__global__ void group_max_bwd_k(float *dinp, const float *dout, const int *arg, int K, int D, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int d = (int)(i % D);
    const size_t mj = i / D;
    const int j = (int)(mj % K);
    const size_t o = (mj / K) * D + d;
    if (arg[o] == j) dinp[i] += dout[o];
}

// one thread per column: the rows summed in order in float, then divided (points_forward's mean)
__global__ void mean_rows_k(float *out, const float *inp, int n, int M, int C) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; // (group, channel)
    if (i >= (size_t)n * C) return;
    const size_t g = i / C, c = i % C;
    const float *x = inp + g * M * C + c;
    float s = 0.f;
    for (int m = 0; m < M; m++) s += x[(size_t)m * C];
    out[i] = s / M;
}
__global__ void mean_rows_bwd_k(float *dinp, const float *dout, int M, int C, size_t total) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < total) dinp[i] += dout[i / ((size_t)M * C) * C + i % C] / M;
}

// one thread per row, in double where crossentropy_forward_backward is: lse = max + log sum
// exp, loss_row = lse - z[y], p = (float) exp(z - lse), dlogits = scale (p - onehot(y)) in
// float, hit_row = (first argmax == y)
__global__ void xent_k(float *dlogits, float *loss_row, float *hit_row, const float *logits, const int *y, int B,
                       int K, float scale) {
    int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= B) return;
    const float *z = logits + (size_t)b * K;
    float mx = z[0];
    int am = 0;
    for (int k = 1; k < K; k++)
        if (z[k] > mx) mx = z[k], am = k;
    double s = 0;
    for (int k = 0; k < K; k++) s += exp((double)z[k] - mx);
    const double lse = mx + log(s);
    const int t = y[b];
    for (int k = 0; k < K; k++) {
        const float p = (float)exp((double)z[k] - lse);
        dlogits[(size_t)b * K + k] = scale * (p - (k == t ? 1.f : 0.f));
    }
    loss_row[b] = (float)(lse - z[t]);
    hit_row[b] = am == t ? 1.f : 0.f;
}

} // namespace

#define EW(n) mkc_blocks((n), TPB), TPB, 0, mkc_s()

void mkc_relu_forward(float *out, const float *inp, size_t n) {
    if (n) relu_fwd_k<<<EW(n)>>>(out, inp, n);
    MKC_CHECK_LAUNCH("relu");
}
void mkc_relu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    if (n) relu_bwd_k<<<EW(n)>>>(dinp, dout, inp, n);
    MKC_CHECK_LAUNCH("relu_backward");
}
void mkc_group_max(float *out, int *arg, const float *inp, int M, int K, int D) {
    size_t n = (size_t)M * D;
    if (n && K > 0) group_max_k<<<EW(n)>>>(out, arg, inp, K, D, n);
    MKC_CHECK_LAUNCH("group_max");
}
void mkc_group_max_backward(float *dinp, const float *dout, const int *arg, int M, int K, int D) {
    size_t n = (size_t)M * K * D;
    if (n) group_max_bwd_k<<<EW(n)>>>(dinp, dout, arg, K, D, n);
    MKC_CHECK_LAUNCH("group_max_backward");
}
void mkc_mean_rows(float *out, const float *inp, int n, int M, int C) {
    size_t nc = (size_t)n * C;
    if (nc && M > 0) mean_rows_k<<<mkc_blocks(nc, 128), 128, 0, mkc_s()>>>(out, inp, n, M, C);
    MKC_CHECK_LAUNCH("mean_rows");
}
void mkc_mean_rows_backward(float *dinp, const float *dout, int n, int M, int C) {
    size_t total = (size_t)n * M * C;
    if (total) mean_rows_bwd_k<<<EW(total)>>>(dinp, dout, M, C, total);
    MKC_CHECK_LAUNCH("mean_rows_backward");
}
void mkc_xent(float *dlogits, float *loss_row, float *hit_row, const float *logits, const int *y, int B, int K,
              float scale) {
    if (B > 0 && K > 0) xent_k<<<mkc_blocks(B, 64), 64, 0, mkc_s()>>>(dlogits, loss_row, hit_row, logits, y, B, K, scale);
    MKC_CHECK_LAUNCH("xent");
}
