// scan_lane.cuh — the selective-scan forward (N = 16, fp32) with one lane per channel (lab v7;
// in the library only as a trial mode, mkc_scan_set_tiled(16), until the lab has timed it).
//
// Why. The staged kernel (core/cuda/scan_tile.cuh, lab v5, the library's) splits a channel's
// 16 states over P = 8 lanes so that B·E = 12288 channels make enough warps to hide latency. The
// split costs instructions: a reduce-scatter of y over the 8 lanes every step, dt and dt·u through
// shared memory, per-lane addressing: 14.2 instructions per state-step in its SASS (2026-11-27)
// against 5 of arithmetic (dt·A, ex2, dt·u·B, the h FMA, the y FMA). At ~60 % issue efficiency
// 80 % of the DRAM floor would need about 8.3 (docs/CUDA.md). Here one lane owns a channel and
// all 16 of its states: no shuffles, one softplus and one output per lane-step, B and C rows read
// as broadcasts (every lane of the warp reads the same row): about 6.5 instructions per
// state-step. The price is parallelism: 12288 channels are 384 warps, fewer than the H100's 528
// schedulers, so each warp has to issue close to one instruction per cycle by itself. That is
// what the structure is for: a tile's TT steps are fully unrolled, the 16 states of a step are
// independent, y is summed as four partial sums (not one 16-long FMA chain), and the decays can
// be shared between the special-function unit and the FMA pipe (XF of the 16 on the FMA pipe,
// scan_tile's ex2_fma) so that neither sets the pace alone: per step 20 MUFU operations (16 decays,
// softplus's two, the gate's two) take 160 cycles of a scheduler's MUFU at 4 lanes per cycle,
// against ~90 issue slots for everything else; XF = 4 balances the two at ~130 cycles a step.
// A measurement of 2026-11-26 on an H200 had the staged kernel at S = 16 (one lane per channel,
// no unrolling, the precise softplus) 2.5x slower than at S = 4: this version is the test of
// whether that was the layout or those three.
//
// Each warp runs its own copy pipeline: cp.async of its 32 channels' u, delta, z tiles (TT rows
// of 128 bytes) and the TT rows of B and C into its own NST stages, __syncwarp only, so a block
// of W warps is W independent pipelines. Requirements (lane_usable): E a multiple of 4, u,
// delta, z, B, C 16-byte aligned, N = 16.
//
// The two phases (issue: one lane's share of a tile's copies; run_tile: one lane's steps over a
// tile that has landed) are __host__ __device__, so that the lab's --sim mode runs them on the
// host, lane by lane in the order the kernel does, against the CPU scan: the indexing, the tails
// and the arithmetic are checked without a GPU; only the copy pipeline's timing is not.
#pragma once
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/cuda/common.cuh"
#include "core/cuda/scan_tile.cuh"

namespace scan_lane {

constexpr int N = 16;
constexpr int CK = 64; // checkpoint spacing of the backward's sweep (scan_tile::CK, checked in scan.cu)

// out NULL with ckpt: the backward's checkpoint sweep (h at every CK-th step into ckpt (B, nck, E,
// N), no output; the caller passes z and Cm NULL, so their tiles are not copied)
struct args {
    float *out, *h_last, *ckpt;
    const float *u, *delta, *A, *Bm, *Cm, *D, *z, *delta_bias, *h0;
    int B, L, E;
    int softplus; // dt = softplus(delta + bias), else delta + bias
};

// floats of one stage: u, delta, z tiles (TT x 32) and the B, C rows (TT x 16)
template <int TT>
struct lay {
    static constexpr int U = 0, DL = TT * 32, Z = 2 * TT * 32, BR = 3 * TT * 32, CR = BR + TT * N;
    static constexpr int STAGE = CR + TT * N; // = 128 TT
};

// 16 bytes (bytes_valid of them; the rest zero-filled) from global to shared memory: the staged
// kernel's cp.async on the device, a copy on the host
__host__ __device__ __forceinline__ void copy16(float *dst, const float *src, int bytes_valid) {
#ifdef __CUDA_ARCH__
    scan_tile::cp_async(dst, src, bytes_valid, std::integral_constant<int, 16>{});
#else
    memset(dst, 0, 16);
    if (bytes_valid) memcpy(dst, src, (size_t)bytes_valid);
#endif
}

__host__ __device__ __forceinline__ float f_ex2(float x) {
#ifdef __CUDA_ARCH__
    return mkc_ex2(x);
#else
    return exp2f(x);
#endif
}
// softplus as log(1 + e^x) with the hardware units (scan_tile.cuh's FAST_SP: absolute error below
// 4e-7 for x <= 0, a few ulp above), and the gate's sigmoid with the hardware reciprocal (FAST_SIG)
__host__ __device__ __forceinline__ float f_softplus(float x) {
#ifdef __CUDA_ARCH__
    return x > 20.f ? x : __logf(1.f + __expf(x));
#else
    return x > 20.f ? x : logf(1.f + expf(x));
#endif
}
__host__ __device__ __forceinline__ float f_sigmoid(float x) {
#ifdef __CUDA_ARCH__
    return __fdividef(1.f, 1.f + __expf(-x));
#else
    return 1.f / (1.f + expf(-x));
#endif
}

// a 16-float row (a step's B or C row in a stage, a checkpoint) as four 16-byte loads; from
// shared memory every lane of the warp reads the same row (a broadcast)
__host__ __device__ __forceinline__ void row16(float *v, const float *p) {
    const float4 *p4 = reinterpret_cast<const float4 *>(p);
#pragma unroll
    for (int q = 0; q < N / 4; q++) {
        const float4 w = p4[q];
        v[4 * q] = w.x, v[4 * q + 1] = w.y, v[4 * q + 2] = w.z, v[4 * q + 3] = w.w;
    }
}
// exp2 of a decay exponent: the first XF of a lane's 16 on the FMA pipe, the rest on the MUFU
template <int XF>
__host__ __device__ __forceinline__ float decay(int n, float x) {
    return n < XF ? scan_tile::ex2_fma(x) : f_ex2(x);
}

// What a lane keeps in registers: its channel's decay rates (A log2 e), states, bias, D
struct lane_state {
    float A2[N], h[N], bias, Dv;
};
__host__ __device__ __forceinline__ void lane_init(const args &a, int b, int e, lane_state &s) {
    const bool ok = e < a.E;
    const int ec = ok ? e : a.E - 1;
#pragma unroll
    for (int n = 0; n < N; n++) {
        s.A2[n] = a.A[(size_t)ec * N + n] * 1.4426950408889634f;
        s.h[n] = (a.h0 && ok) ? a.h0[((size_t)b * a.E + ec) * N + n] : 0.f;
    }
    s.bias = a.delta_bias ? a.delta_bias[ec] : 0.f;
    s.Dv = a.D ? a.D[ec] : 0.f;
}
__host__ __device__ __forceinline__ void lane_finish(const args &a, int b, int e, const lane_state &s) {
    if (a.h_last && e < a.E)
#pragma unroll
        for (int n = 0; n < N; n++) a.h_last[((size_t)b * a.E + e) * N + n] = s.h[n];
}

// Lane `lane`'s share of tile k's copies into stage st (warp's channels e0 .. e0+31 of batch
// row b): 32 TT copies of 16 bytes per tile, TT per lane. The first 24 TT are the u, delta, z
// rows (8 copies of 4 channels each), the last 8 TT the B and C rows (4 copies each).
// Steps past L and channels past E are zero-filled.
template <int TT>
__host__ __device__ __forceinline__ void issue(const args &a, float *st, int b, int e0, int lane, int k) {
    typedef lay<TT> Y;
    const int t0 = k * TT;
    const size_t row0 = (size_t)b * a.L;
#pragma unroll
    for (int i = 0; i < TT; i++) {
        const int c = lane + 32 * i;
        if (c < 24 * TT) {
            const int w = c / (8 * TT), r = c % (8 * TT), j = r / 8, ch = r % 8;
            const int t = t0 + j, ee = e0 + ch * 4;
            const float *arr = w == 0 ? a.u : w == 1 ? a.delta : a.z;
            const bool v = t < a.L && ee < a.E && arr;
            copy16(st + (w == 0 ? Y::U : w == 1 ? Y::DL : Y::Z) + j * 32 + ch * 4,
                   v ? arr + (row0 + t) * a.E + ee : a.u, v ? 16 : 0);
        } else {
            const int c2 = c - 24 * TT, w = c2 / (4 * TT), r = c2 % (4 * TT), j = r / 4, ch = r % 4;
            const int t = t0 + j;
            const bool v = t < a.L && (w ? a.Cm : a.Bm);
            copy16(st + (w ? Y::CR : Y::BR) + j * N + ch * 4, v ? (w ? a.Cm : a.Bm) + (row0 + t) * N + ch * 4 : a.Bm,
                   v ? 16 : 0);
        }
    }
}

// Lane `lane`'s TT steps of tile k (landed in stage st): states advanced, outputs stored.
// XF of the 16 decays on the FMA pipe.
template <int TT, int XF>
__host__ __device__ __forceinline__ void run_tile(const args &a, const float *st, int b, int e, int lane, int k,
                                                  lane_state &s) {
    typedef lay<TT> Y;
    static_assert(CK % TT == 0, "a tile must not straddle a checkpoint");
    const int t0 = k * TT;
    const bool ok = e < a.E, hasz = a.z != nullptr;
    const size_t row0 = (size_t)b * a.L;
    if (a.ckpt && t0 % CK == 0 && ok) { // the state before step t0
        const size_t nck = (size_t)(a.L + CK - 1) / CK;
#pragma unroll
        for (int n = 0; n < N; n++) a.ckpt[(((size_t)b * nck + t0 / CK) * a.E + e) * N + n] = s.h[n];
    }
#pragma unroll
    for (int j = 0; j < TT; j++) {
        const int t = t0 + j;
        const float uu = st[Y::U + j * 32 + lane];
        const float r = st[Y::DL + j * 32 + lane] + s.bias;
        float dt = a.softplus ? f_softplus(r) : r;
        dt = t < a.L ? dt : 0.f; // zero-filled steps past L leave the state alone
        const float dtu = dt * uu;
        float Bv[N], Cv[N], y[4] = {0.f, 0.f, 0.f, 0.f};
        row16(Bv, st + Y::BR + j * N);
        row16(Cv, st + Y::CR + j * N);
#pragma unroll
        for (int n = 0; n < N; n++) {
            s.h[n] = fmaf(decay<XF>(n, dt * s.A2[n]), s.h[n], dtu * Bv[n]);
            y[n & 3] = fmaf(Cv[n], s.h[n], y[n & 3]);
        }
        if (!a.out) continue; // the checkpoint sweep: states only (y is dead code then)
        float o = ((y[0] + y[1]) + (y[2] + y[3])) + s.Dv * uu;
        if (hasz) {
            const float zv = st[Y::Z + j * 32 + lane];
            o *= zv * f_sigmoid(zv);
        }
        if (ok && t < a.L) a.out[(row0 + t) * a.E + e] = o;
    }
}

#ifdef __CUDACC__
using scan_tile::cp_commit;
using scan_tile::cp_wait;

// W warps per block, each its own 32 channels and its own NST stages
template <int TT, int NST, int XF, int W>
__global__ void __launch_bounds__(32 * W) fwd_k(args a) {
    extern __shared__ __align__(16) float smem[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int e0 = (blockIdx.x * W + warp) * 32, b = blockIdx.y, e = e0 + lane;
    if (e0 >= a.E) return; // a whole warp, and no block-wide barrier below
    float *wsm = smem + (size_t)warp * NST * lay<TT>::STAGE;
    lane_state s;
    lane_init(a, b, e, s);
    const int ntile = (a.L + TT - 1) / TT;
#pragma unroll
    for (int k = 0; k < NST - 1; k++) {
        if (k < ntile) issue<TT>(a, wsm + k * lay<TT>::STAGE, b, e0, lane, k);
        cp_commit(); // empty groups keep the count uniform
    }
    for (int k = 0; k < ntile; k++) {
        const int kn = k + NST - 1; // into the stage tile k-1 used, which every lane has left
        if (kn < ntile) issue<TT>(a, wsm + (kn % NST) * lay<TT>::STAGE, b, e0, lane, kn);
        cp_commit();
        cp_wait<NST - 1>(); // this lane's copies of tile k have landed
        __syncwarp();       // and every lane's
        run_tile<TT, XF>(a, wsm + (k % NST) * lay<TT>::STAGE, b, e, lane, k, s);
        __syncwarp(); // the stage is free for the next issue
    }
    lane_finish(a, b, e, s);
}

inline bool lane_usable(const float *u, const float *delta, const float *z, const float *Bm, const float *Cm, int E,
                        int N_) {
    auto al = [](const void *p) { return ((uintptr_t)p % 16) == 0; };
    return N_ == N && E % 4 == 0 && al(u) && al(delta) && (!z || al(z)) && al(Bm) && (!Cm || al(Cm));
}

template <int TT, int NST, int XF, int W>
void launch(const args &a, cudaStream_t stream) {
    const size_t smem = (size_t)W * NST * lay<TT>::STAGE * sizeof(float);
    dim3 grid(mkc_blocks(mkc_blocks(a.E, 32), W), a.B);
    cudaFuncSetAttribute(fwd_k<TT, NST, XF, W>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    fwd_k<TT, NST, XF, W><<<grid, 32 * W, smem, stream>>>(a);
}
#endif

// The kernel's order of work on the host, for one warp's 32 channels at a time: every lane's
// copies of a tile, then every lane's steps over it (the copies land at once here). For the lab's
// --sim mode: checks issue and run_tile without a device.
template <int TT, int NST, int XF>
inline void simulate(const args &a) {
    float *wsm = new float[(size_t)NST * lay<TT>::STAGE];
    lane_state *s = new lane_state[32];
    const int ntile = (a.L + TT - 1) / TT;
    for (int b = 0; b < a.B; b++)
        for (int e0 = 0; e0 < a.E; e0 += 32) {
            for (int l = 0; l < 32; l++) lane_init(a, b, e0 + l, s[l]);
            for (int k = 0; k < NST - 1 && k < ntile; k++)
                for (int l = 0; l < 32; l++) issue<TT>(a, wsm + k * lay<TT>::STAGE, b, e0, l, k);
            for (int k = 0; k < ntile; k++) {
                const int kn = k + NST - 1;
                if (kn < ntile)
                    for (int l = 0; l < 32; l++) issue<TT>(a, wsm + (kn % NST) * lay<TT>::STAGE, b, e0, l, kn);
                for (int l = 0; l < 32; l++)
                    run_tile<TT, XF>(a, wsm + (k % NST) * lay<TT>::STAGE, b, e0 + l, l, k, s[l]);
            }
            for (int l = 0; l < 32; l++) lane_finish(a, b, e0 + l, s[l]);
        }
    delete[] wsm;
    delete[] s;
}

} // namespace scan_lane
