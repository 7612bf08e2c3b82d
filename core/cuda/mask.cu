// mask.cu — a frame model's bounded mask and its spectral loss on the GPU (audio/model.c
// semantics: audio_mask_forward, audio_mask_loss). The mask is one thread per element; the
// loss is one warp per row (frame), each lane summing its bins in double and the warp's
// lanes added by a fixed shuffle tree, so the per-row sums are deterministic without atomics
// (the caller adds the rows in a fixed order).
#include <math.h>

#include "core/cuda/common.cuh"

namespace {

constexpr unsigned TPB = 256;

// ref: core/ops.h mk_sigmoidf (expf on the side that cannot overflow)
__device__ __forceinline__ float sigmoid_guarded(float x) {
    if (x >= 0) return 1.f / (1.f + expf(-x));
    const float e = expf(x);
    return e / (1.f + e);
}

// z += u[f] * feat (rounded as the CPU rounds: no fused multiply-add), mask = beta * sigmoid(z)
__global__ void mask_fwd_k(float *mask, float *z, const float *feat, const float *u, int F, float beta, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = z[i];
    if (u) {
        v = __fadd_rn(v, __fmul_rn(u[i % F], feat[i]));
        z[i] = v;
    }
    mask[i] = beta * sigmoid_guarded(v);
}

// e = mask c; loss = a (e - cc)^2 + (1 - a) |e e^{i phi_n} - cc e^{i phi_c}|^2, which is
// e^2 + cc^2 - 2 e cc cos(phi_c - phi_n) for the second term; dz = inv dloss/de c dmask/dz
__global__ void mask_loss_k(float *dz, float *loss_row, const float *mask, const float *c, const float *cc,
                            const float *cosd, int M, int F, float a, float inv, float beta) {
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= M) return; // the whole warp leaves together
    const size_t o = (size_t)row * F;
    double acc = 0;
    for (int f = lane; f < F; f += 32) {
        const float mv = mask[o + f], cv = c[o + f], ci = cc[o + f], cd = cosd[o + f];
        const float e = mv * cv, dm = e - ci;
        acc += (double)(a * dm * dm + (1 - a) * (e * e + ci * ci - 2 * e * ci * cd));
        const float de = inv * (2 * a * dm + 2 * (1 - a) * (e - ci * cd));
        const float s = mv / beta;
        dz[o + f] = de * cv * beta * s * (1 - s);
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(MKC_FULL, acc, off);
    if (lane == 0) loss_row[row] = (float)acc;
}

} // namespace

void mkc_mask_forward(float *mask, float *z, const float *feat, const float *u, int M, int F, float beta) {
    size_t n = (size_t)M * F;
    if (n) mask_fwd_k<<<mkc_blocks(n, TPB), TPB, 0, mkc_s()>>>(mask, z, feat, u, F, beta, n);
    MKC_CHECK_LAUNCH("mask_forward");
}
void mkc_mask_loss(float *dz, float *loss_row, const float *mask, const float *c, const float *cc, const float *cosd,
                   int M, int F, float a, float inv, float beta) {
    const unsigned rows_per_block = TPB / 32;
    if (M > 0 && F > 0)
        mask_loss_k<<<mkc_blocks((size_t)M, rows_per_block), TPB, 0, mkc_s()>>>(dz, loss_row, mask, c, cc, cosd, M, F,
                                                                                  a, inv, beta);
    MKC_CHECK_LAUNCH("mask_loss");
}
