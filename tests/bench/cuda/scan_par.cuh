// scan_par.cuh — the selective-scan forward parallel over time inside each channel (fp32).
// Lab only (tests/bench/cuda/scan_lab.cu sweeps it): on an H100 it lost to the staged kernel
// (scan_tile.cuh), 465 us at best against 299 us at B 8, E 1536, L 2048, N 16; docs/CUDA.md has why.
//
// The idea: the staged kernel (scan_tile.cuh) splits a channel's N states over P lanes and walks
// time one step after another. Profiled on an H100 it issues ~14.5 instructions per
// state-step (the y sum over the P lanes, the per-step loads of dt and dt*u, the per-step
// bookkeeping), and with only B*E/(32/P) warps it is latency-bound. Here a channel's time
// axis is split instead: LPC lanes each own I consecutive steps and loop over the N states,
// so y needs no cross-lane sum, dt and dt*u sit in registers, and a state costs per step one
// MUL + ex2 (decay), one MUL (dt u B), three FMAs (local composite, replay, y += C h) and a
// quarter of a 16-byte shared load for B and C. The lanes' composites (prod a, sum) are
// combined by a log2(LPC)-level shuffle scan per state; prod a over a lane's steps is
// exp2(A log2e * sum dt), one ex2, not a product of I decays.
//
// Work split per block (batch b, W = WPB * 32/LPC consecutive channels), chunks of
// TC = LPC * I steps walked in order; lane (cl, l): channel cl of its warp, steps l*I .. l*I+I-1
// of the chunk. The chunk's B and C rows are copied into shared memory with 4-byte cp.async,
// transposed to [n][step] and swizzled so that a warp's 16-byte reads of one state hit 32
// banks (lanes of different channels read the same words: broadcast), one chunk ahead.
// u and delta are read straight from global memory into registers (the block's channels share
// each sector through L1); the epilogue reads u and z again (L1/L2 hits) instead of holding them.
// The carried state h (one per channel and state) and A*log2e live in shared memory.
// Requirements (static_assert in cfg): N a multiple of 4; fp32 only.
#pragma once
#include <stdint.h>

#include "core/cuda/common.cuh"
#include "core/cuda/scan_tile.cuh"

namespace scan_par {

__device__ __forceinline__ void cp_async4(void *smem, const void *gmem, int bytes_valid) {
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes_valid) : "memory");
}

// OPT bits: 0-2 XF (decays of every 4 on the FMA pipe, scan_tile::ex2_fma), 8 FAST_SP (softplus
// with __logf/__expf), 256 FAST_SIG (the gate's sigmoid with the hardware reciprocal),
// 512 PREF (the next chunk's u, delta loaded into registers during this one), 1024 UNR2 (the
// state loop unrolled by 2, two scans in flight).
enum { FAST_SP = 8, FAST_SIG = 256, PREF = 512, UNR2 = 1024 };

template <int N, int I, int LPC, int WPB, int OPT>
struct cfg {
    static constexpr int CPW = 32 / LPC, W = WPB * CPW, TPB = WPB * 32, TC = LPC * I;
    static constexpr int RN = TC + 4;                   // floats per state row of a B/C stage
    static constexpr int STAGE = 2 * N * RN;            // B and C of one chunk
    static constexpr size_t SMEM = (size_t)(2 * STAGE + 2 * W * N) * sizeof(float);
    static constexpr int XF = OPT & 7;
    static constexpr bool FSP = OPT & FAST_SP, FSG = OPT & FAST_SIG, PF = OPT & PREF;
    static_assert(N % 4 == 0 && (I == 4 || I == 8 || I == 16) && 32 % LPC == 0 && LPC >= 2, "shape");
    static_assert(XF <= 4, "XF of 4");
};

// Position of step i of lane l in a state row: lane l's quads of 4 steps, XOR-swizzled so that
// the lanes whose I-float blocks fall on the same banks (l*I mod 32 equal) read different quads.
template <int I>
__host__ __device__ __forceinline__ int slot(int l, int i) {
    constexpr int PER = 32 / I; // lanes whose blocks tile the 32 banks once
    const int sw = (l / PER) & (I / 4 - 1);
    return l * I + 4 * ((i >> 2) ^ sw) + (i & 3);
}

template <int N, int I, int LPC, int WPB, int OPT>
__global__ void __launch_bounds__(WPB * 32)
    par_k(float *__restrict__ out, float *__restrict__ h_last, const float *__restrict__ u,
          const float *__restrict__ delta, const float *__restrict__ A, const float *__restrict__ Bm,
          const float *__restrict__ Cm, const float *__restrict__ D, const float *__restrict__ z,
          const float *__restrict__ delta_bias, const float *__restrict__ h0, int L, int E, int softplus) {
    typedef cfg<N, I, LPC, WPB, OPT> C;
    constexpr int TPB = C::TPB, TC = C::TC, RN = C::RN, CPW = C::CPW;
    extern __shared__ __align__(16) float sm[];
    float *const sH = sm + 2 * C::STAGE; // carried state [W][N]
    float *const sA = sH + C::W * N;      // A * log2(e) [W][N]

    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const int cl = lane / LPC, l = lane % LPC, c = w * CPW + cl;
    const int e0 = blockIdx.x * C::W, e = e0 + c, b = blockIdx.y;
    const bool ok = e < E;
    const int ec = ok ? e : E - 1;
    const size_t row0 = (size_t)b * L;
    const int nch = (L + TC - 1) / TC;

    // B, C rows of chunk k into stage k % 2, transposed to [n][slot]
    auto issue = [&](int k) {
        float *st = sm + (k & 1) * C::STAGE;
        const int t0 = k * TC;
        for (int idx = tid; idx < 2 * TC * N; idx += TPB) {
            const int wsel = idx / (TC * N), r = idx - wsel * (TC * N), t = r / N, n = r - t * N;
            const bool v = t0 + t < L;
            const float *g = v ? (wsel ? Cm : Bm) + (row0 + t0 + t) * N + n : Bm;
            cp_async4(st + wsel * N * RN + n * RN + slot<I>(t / I, t % I), g, v ? 4 : 0);
        }
    };

    // this channel's A and initial state (each warp its own channels: no block barrier)
    for (int n = l; n < N; n += LPC) {
        sA[c * N + n] = A[(size_t)ec * N + n] * 1.4426950408889634f;
        sH[c * N + n] = (h0 && ok) ? h0[((size_t)b * E + ec) * N + n] : 0.f;
    }
    __syncwarp();
    const float bias = delta_bias ? delta_bias[ec] : 0.f, Dv = D ? D[ec] : 0.f;

    float uc[I], dc[I]; // this chunk's u and raw delta
    auto load_ud = [&](int k, float (&uu)[I], float (&dd)[I]) {
#pragma unroll
        for (int i = 0; i < I; i++) {
            const int t = k * TC + l * I + i;
            const size_t gi = (row0 + (t < L ? t : L - 1)) * E + ec;
            uu[i] = u[gi];
            dd[i] = delta[gi];
        }
    };
    issue(0);
    scan_tile::cp_commit();
    load_ud(0, uc, dc);

    for (int k = 0; k < nch; k++) {
        if (k + 1 < nch) issue(k + 1); // into the stage chunk k-1 used (freed at its end)
        scan_tile::cp_commit();
        float un[I], dn[I];
        if constexpr (C::PF) {
            if (k + 1 < nch) load_ud(k + 1, un, dn);
        }
        const int t0 = k * TC;
        float d[I], du[I], y[I], sd = 0.f;
#pragma unroll
        for (int i = 0; i < I; i++) {
            const float r = dc[i] + bias;
            float dt = !softplus ? r : C::FSP ? (r > 20.f ? r : __logf(1.f + __expf(r))) : mkc_softplus(r);
            dt = t0 + l * I + i < L ? dt : 0.f; // steps past L leave h unchanged
            d[i] = dt;
            du[i] = dt * uc[i];
            sd += dt;
            y[i] = 0.f;
        }
        scan_tile::cp_wait<1>(); // this thread's copies of chunk k have landed
        __syncthreads();         // everyone's have
        const float *sB = sm + (k & 1) * C::STAGE, *sC = sB + N * RN;

        // this lane's steps 4q .. 4q+3 of state n in a transposed B or C stage
        auto quad = [&](const float *s, int n, int q) {
            return *reinterpret_cast<const float4 *>(s + n * RN + slot<I>(l, 4 * q));
        };
        auto state = [&](int n) {
            const float A2 = sA[c * N + n];
            float a[I], bb[I];
#pragma unroll
            for (int q = 0; q < I / 4; q++) {
                const float4 v = quad(sB, n, q);
                const float bq[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const int i = 4 * q + j;
                    const float x = d[i] * A2;
                    a[i] = (i % 4) < C::XF ? scan_tile::ex2_fma(x) : mkc_ex2(x);
                    bb[i] = du[i] * bq[j];
                }
            }
            // the carried state, read by every lane of the channel before the shuffles below (which
            // the whole warp passes together), written by its last lane after them
            const float hc = sH[c * N + n];
            // the lane's composite: h_out = P h_in + Q
            float Q = bb[0];
#pragma unroll
            for (int i = 1; i < I; i++) Q = fmaf(a[i], Q, bb[i]);
            float P = mkc_ex2(sd * A2);
            // inclusive scan over the channel's LPC lanes (lane l: composite of lanes 0..l)
#pragma unroll
            for (int off = 1; off < LPC; off <<= 1) {
                const float Pr = __shfl_up_sync(MKC_FULL, P, off, LPC), Qr = __shfl_up_sync(MKC_FULL, Q, off, LPC);
                if (l >= off) {
                    Q = fmaf(P, Qr, Q);
                    P *= Pr;
                }
            }
            const float Px = __shfl_up_sync(MKC_FULL, P, 1, LPC), Qx = __shfl_up_sync(MKC_FULL, Q, 1, LPC);
            float h = l ? fmaf(Px, hc, Qx) : hc; // the state entering this lane's first step
#pragma unroll
            for (int q = 0; q < I / 4; q++) {
                const float4 v = quad(sC, n, q);
                const float cq[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const int i = 4 * q + j;
                    h = fmaf(a[i], h, bb[i]);
                    y[i] = fmaf(cq[j], h, y[i]);
                }
            }
            if (l == LPC - 1) sH[c * N + n] = h;
        };
        if constexpr ((OPT & UNR2) && N % 2 == 0) {
#pragma unroll 2
            for (int n = 0; n < N; n++) state(n);
        } else {
#pragma unroll 1
            for (int n = 0; n < N; n++) state(n);
        }

        // out = (y + D u) * silu(z); u and z again from L1/L2
#pragma unroll
        for (int i = 0; i < I; i++) {
            const int t = t0 + l * I + i;
            if (ok && t < L) {
                const size_t gi = (row0 + t) * E + e;
                float o = y[i] + Dv * u[gi]; // not uc[i]: I registers fewer through the state loop
                if (z) {
                    const float zv = z[gi];
                    o *= zv * (C::FSG ? __fdividef(1.f, 1.f + __expf(-zv)) : mkc_sigmoid(zv));
                }
                out[gi] = o;
            }
        }
        if constexpr (C::PF) {
#pragma unroll
            for (int i = 0; i < I; i++) uc[i] = un[i], dc[i] = dn[i];
        } else {
            if (k + 1 < nch) load_ud(k + 1, uc, dc);
        }
        __syncthreads(); // chunk k's stage is free for chunk k + 2
    }
    __syncwarp();
    if (h_last && ok)
        for (int n = l; n < N; n += LPC) h_last[((size_t)b * E + e) * N + n] = sH[c * N + n];
}

template <int N, int I, int LPC, int WPB, int OPT>
void launch(float *out, float *h_last, const float *u, const float *delta, const float *A, const float *Bm,
            const float *Cm, const float *D, const float *z, const float *delta_bias, const float *h0, int B, int L,
            int E, int softplus, cudaStream_t stream) {
    typedef cfg<N, I, LPC, WPB, OPT> C;
    dim3 grid(mkc_blocks(E, C::W), B);
    auto k = par_k<N, I, LPC, WPB, OPT>;
    cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)C::SMEM);
    k<<<grid, C::TPB, C::SMEM, stream>>>(out, h_last, u, delta, A, Bm, Cm, D, z, delta_bias, h0, L, E, softplus);
}

} // namespace scan_par
