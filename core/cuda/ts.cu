// ts.cu — the S-Mamba forecaster's own ops on the GPU (timeseries/smamba.c semantics): the
// elementwise product that applies a dropout mask, the paper block's merge of its two Mamba
// modules and the backward's subtraction of the residual counted twice, smamba.c's own GELU
// derivative (its erf form, applied in place), and RevIN's de-normalisation with the
// (B, C, H) -> (B, H, C) transpose and its backward. One thread per output element, no
// reductions. The products and sums use __fmul_rn / __fadd_rn so that nvcc does not contract
// them into FMAs: the CPU build (x86-64-v2, no FMA) rounds each one, and these ops should round
// as it does.
#include <math.h>

#include "core/cuda/common.cuh"

namespace {

constexpr unsigned TPB = 256;

// ref: core/misc.c dropout_forward (out = inp * mask) and smamba.c's in-place `d *= mask`
__global__ void mul_k(float *o, const float *a, const float *b, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) o[i] = __fmul_rn(a[i], b[i]);
}
// ref: ts_smamba_forward, paper block: h[i] += r[i] - in[i]
__global__ void bidir_k(float *h, const float *r, const float *in, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) h[i] = __fadd_rn(h[i], __fsub_rn(r[i], in[i]));
}
// ref: ts_smamba_backward, paper block: d2[i] -= d3[i]
__global__ void sub_k(float *o, const float *a, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) o[i] = __fsub_rn(o[i], a[i]);
}
// ref: ts_smamba_backward's GELU, core/act.c gelu_backward_inplace: dg *= cdf + x pdf with
// cdf = erfc(-x / sqrt 2) / 2 (CUDA's erfcf; the CPU's own erfc agrees to 5e-7)
__global__ void gelu_grad_k(float *dg, const float *x, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float v = x[i];
    const float cdf = __fmul_rn(0.5f, erfcf(__fmul_rn(-v, 0.70710678118f)));
    const float pdf = __fmul_rn(0.39894228040f, expf(__fmul_rn(__fmul_rn(-0.5f, v), v)));
    dg[i] = __fmul_rn(dg[i], __fadd_rn(cdf, __fmul_rn(v, pdf)));
}
// pred (B, H, C) = hout (B, C, H) * std + mean, one thread per prediction
__global__ void denorm_k(float *pred, const float *hout, const float *mean, const float *sd, int C, int H, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int c = (int)(i % C);
    const size_t bh = i / C, b = bh / H;
    const int h = (int)(bh % H);
    const size_t bc = b * C + c;
    pred[i] = __fadd_rn(__fmul_rn(hout[bc * H + h], sd[bc]), mean[bc]);
}
// dhout (B, C, H) = dpred (B, H, C) * std (written), one thread per dhout element
__global__ void denorm_bwd_k(float *dhout, const float *dpred, const float *sd, int C, int H, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int h = (int)(i % H);
    const size_t bc = i / H, b = bc / C;
    const int c = (int)(bc % C);
    dhout[i] = __fmul_rn(dpred[(b * H + h) * C + c], sd[bc]);
}

} // namespace

#define EW(n) mkc_blocks((n), TPB), TPB, 0, mkc_s()

void mkc_mul(float *out, const float *a, const float *b, size_t n) {
    if (n) mul_k<<<EW(n)>>>(out, a, b, n);
    MKC_CHECK_LAUNCH("mul");
}
void mkc_bidir_merge(float *h, const float *r, const float *in, size_t n) {
    if (n) bidir_k<<<EW(n)>>>(h, r, in, n);
    MKC_CHECK_LAUNCH("bidir_merge");
}
void mkc_vec_sub(float *out, const float *a, size_t n) {
    if (n) sub_k<<<EW(n)>>>(out, a, n);
    MKC_CHECK_LAUNCH("vec_sub");
}
void mkc_ts_gelu_grad(float *dg, const float *x, size_t n) {
    if (n) gelu_grad_k<<<EW(n)>>>(dg, x, n);
    MKC_CHECK_LAUNCH("ts_gelu_grad");
}
void mkc_ts_denorm(float *pred, const float *hout, const float *mean, const float *sd, int B, int C, int H) {
    size_t n = (size_t)B * C * H;
    if (n) denorm_k<<<EW(n)>>>(pred, hout, mean, sd, C, H, n);
    MKC_CHECK_LAUNCH("ts_denorm");
}
void mkc_ts_denorm_backward(float *dhout, const float *dpred, const float *sd, int B, int C, int H) {
    size_t n = (size_t)B * C * H;
    if (n) denorm_bwd_k<<<EW(n)>>>(dhout, dpred, sd, C, H, n);
    MKC_CHECK_LAUNCH("ts_denorm_backward");
}
