// scan.cu — selective scan S6 forward and backward on the GPU: fp32, and bf16 inputs with fp32 state.
// Math and layout: core/scan.h (the CPU path is the reference).
//
// Forward: the staged kernel of scan_tile.cuh (inputs copied into shared memory in tiles,
// 5x the kernel below on an H200) wherever the pointers are aligned for its copies; the
// register kernel below otherwise. The kernel lab, tests/bench/cuda/scan_lab.cu, has the history.
//
// Register kernel:
//   one thread block = (batch b, CPB channels); P = N/4 adjacent lanes share a
//   channel, each lane owns 4 of its N states in registers. y = C.h is summed
//   over the P lanes with xor shuffles (every lane gets the sum). Tokens are
//   loaded TF steps ahead; softplus(dt), silu(z) and the output store for
//   those steps are spread over the P lanes (lane p takes steps j = p mod P),
//   so the special-function unit does each once per channel, not P times.
//
// Backward: the checkpoint sweep (the forward with no output), the kernel of scan_bwd.cuh
// (chunked recomputation, deterministic partial sums), then the partials summed in order.
#include <cuda_bf16.h>

#include <type_traits>

#include "core/cuda/common.cuh"
#include "core/cuda/scan_bwd.cuh"
#include "core/cuda/scan_lane.cuh"
#include "core/cuda/scan_lane_bwd.cuh"
#include "core/cuda/scan_tile.cuh"

namespace {

constexpr int TPB = scan_bwd::TPB; // threads per block
constexpr int TF = 8;     // forward: steps loaded ahead
constexpr int CK = scan_tile::CK; // backward: global checkpoint spacing
constexpr float LOG2E = scan_bwd::LOG2E;
constexpr int FWD_NST = 3; // forward: tiles in flight (scan_tile.cuh); 2 with S = 2 (below)
// forward: scan_tile options. Measured in the kernel lab (docs/CUDA.md, H100, 2026-11-26): the
// interleaved lane order with padded rows (MAP_INTERLEAVE | PAD_ROWS) 4 % faster than the
// original order, and with the softplus on the hardware units and the step loop unrolled
// (FAST_SP | UNROLL_ALL) 11 %; the output stays within 1e-6 of the CPU scan. (The backward
// recomputes dt with the exact softplus from checkpoints this kernel wrote with FAST_SP: the
// two differ by < 4e-7 in dt, far inside the gradient tests' limits.)
// FAST_SIG (the gate's sigmoid with the hardware reciprocal): 2.4 % more in the lab on 2026-11-27
// (297.6 -> 290.4 us at L = 2048, same error to the CPU scan, 9.2e-7).
constexpr int FWD_OPT = scan_tile::MAP_INTERLEAVE | scan_tile::PAD_ROWS | scan_tile::FAST_SP | scan_tile::UNROLL_ALL |
                        scan_tile::FAST_SIG;
// DT_PAIR (dt and dt u in one 8-byte shared load): 3.5 % faster in the lab on an H100 on
// 2026-11-27 (290.8 -> 280.5 us at L = 2048, same error); off until test_cuda's scan checks (odd
// shapes, the backward's checkpoint mode, bf16) have run with it: a trial build sets
// MK_SCAN_FWD_DT_PAIR=1 (make CUDA=1 NVEXTRA=-DMK_SCAN_FWD_DT_PAIR=1). Only where the stages
// keep the pairs 8-byte aligned (the kernel's static_assert).
#ifndef MK_SCAN_FWD_DT_PAIR
#define MK_SCAN_FWD_DT_PAIR 0
#endif
template <int N, int S, int TT, int NST, typename T>
constexpr int fwd_opt() {
    return FWD_OPT | (MK_SCAN_FWD_DT_PAIR && (NST * scan_tile::cfg<N, S, TPB, TT, NST, FWD_OPT, T>::STAGE * sizeof(T)) % 8 == 0
                          ? (int)scan_tile::DT_PAIR
                          : 0);
}
constexpr int FWD_S = 2;   // forward: states per lane of the staged kernel (2 or 4): 2 measured 13 % faster (docs/CUDA.md)
// 16: the one-lane-per-channel forward (scan_lane.cuh, lab v7) where it applies (fp32, N = 16,
// with an output or as the backward's checkpoint sweep, E a multiple of 4, aligned inputs), else
// the staged kernel at FWD_S; and the one-lane-per-channel backward (scan_lane_bwd.cuh, lab v8)
// where it applies (the same, dout and the accumulated gradients aligned too). Written
// without a GPU (2026-11-27 and -28): a trial mode for test_cuda and the lab until timed;
// a trial build makes it the default with MK_SCAN_FWD_LANE=1 (NVEXTRA=-DMK_SCAN_FWD_LANE=1).
#ifndef MK_SCAN_FWD_LANE
#define MK_SCAN_FWD_LANE 0
#endif
constexpr int LANE_S = 16;
int g_tile_s = MK_SCAN_FWD_LANE ? LANE_S : FWD_S; // mkc_scan_set_tiled: 2, 4, 16, or 0 = the register kernel

// 16-byte alignment: what the kernels' vector copies and loads need
bool al16(const void *ptr) { return ((uintptr_t)ptr % 16) == 0; }

// Steps j0 .. j0+P-1 of a register array: lane p gets element j0+p (compile-time indices only).
template <int P, int T>
__device__ __forceinline__ float pick(const float (&a)[T], int j0, int p) {
    float r = a[j0 < T ? j0 : T - 1];
#pragma unroll
    for (int q = 1; q < P; q++)
        if (p == q && j0 + q < T) r = a[j0 + q];
    return r;
}

// Activation loads/stores for fp32 and bf16 (scan_tile.cuh); 4 values through the read-only
// cache, and the sum over a channel's lanes (scan_bwd.cuh).
using scan_tile::ldf;
using scan_tile::stf;
using scan_bwd::ld4;
using scan_bwd::sum_lanes;

template <int P, typename T>
__global__ void __launch_bounds__(TPB) scan_fwd_k(T *__restrict__ out, float *__restrict__ h_last,
                                                  float *__restrict__ ckpt, const T *__restrict__ u,
                                                  const T *__restrict__ delta, const float *__restrict__ A,
                                                  const T *__restrict__ Bm, const T *__restrict__ Cm,
                                                  const float *__restrict__ D, const T *__restrict__ z,
                                                  const float *__restrict__ delta_bias,
                                                  const float *__restrict__ h0, int L, int E, int softplus) {
    constexpr int N = 4 * P, CPB = TPB / P;
    const int lane = threadIdx.x & 31, p = threadIdx.x % P;
    const int e = blockIdx.x * CPB + threadIdx.x / P, b = blockIdx.y;
    const bool ok = e < E;
    const int ec = ok ? e : E - 1;
    const int base = lane & ~(P - 1);
    const int nck = (L + CK - 1) / CK;
    float A2[4], h[4];
#pragma unroll
    for (int k = 0; k < 4; k++) {
        A2[k] = A[(size_t)ec * N + 4 * p + k] * LOG2E;
        h[k] = (h0 && ok) ? h0[((size_t)b * E + ec) * N + 4 * p + k] : 0.f;
    }
    const float bias = delta_bias ? delta_bias[ec] : 0.f, Dv = D ? D[ec] : 0.f;
    const size_t row0 = (size_t)b * L;
    for (int t0 = 0; t0 < L; t0 += TF) {
        if (ckpt && t0 % CK == 0 && ok)
            *reinterpret_cast<float4 *>(ckpt + (((size_t)b * nck + t0 / CK) * E + ec) * N + 4 * p) =
                make_float4(h[0], h[1], h[2], h[3]);
        float uu[TF], dd[TF], dt[TF], y[TF];
#pragma unroll
        for (int j = 0; j < TF; j++) {
            int t = t0 + j;
            size_t i = (row0 + (t < L ? t : L - 1)) * E + ec;
            uu[j] = (t < L && ok) ? ldf(u + i) : 0.f;
            dd[j] = ldf(delta + i) + bias;
        }
        // softplus once per (step, channel): lane p does steps j0+p, then broadcast
#pragma unroll
        for (int j0 = 0; j0 < TF; j0 += P) {
            float r = pick<P>(dd, j0, p);
            float s = softplus ? mkc_softplus(r) : r;
#pragma unroll
            for (int q = 0; q < P && j0 + q < TF; q++) dt[j0 + q] = __shfl_sync(MKC_FULL, s, base | q);
        }
#pragma unroll
        for (int j = 0; j < TF; j++) {
            int t = t0 + j;
            if (t >= L) dt[j] = 0.f; // padded step: h unchanged
            int tc = t < L ? t : L - 1;
            float4 Bv = ld4(Bm + (row0 + tc) * N + 4 * p);
            float dtu = dt[j] * uu[j];
            float Bk[4] = {Bv.x, Bv.y, Bv.z, Bv.w};
#pragma unroll
            for (int k = 0; k < 4; k++) h[k] = mkc_ex2(dt[j] * A2[k]) * h[k] + dtu * Bk[k];
            if (out) {
                float4 Cv = ld4(Cm + (row0 + tc) * N + 4 * p);
                float ys = Cv.x * h[0] + Cv.y * h[1] + Cv.z * h[2] + Cv.w * h[3];
                y[j] = sum_lanes<P>(ys);
            }
        }
        if (out) {
            // epilogue spread over lanes: lane p finishes steps j0+p
#pragma unroll
            for (int j0 = 0; j0 < TF; j0 += P) {
                int t = t0 + j0 + p;
                float ys = pick<P>(y, j0, p), us = pick<P>(uu, j0, p);
                if (ok && t < L && j0 + p < TF) {
                    size_t i = (row0 + t) * E + ec;
                    float o = ys + Dv * us;
                    if (z) {
                        float zv = ldf(z + i);
                        o *= zv * mkc_sigmoid(zv);
                    }
                    stf(out + i, o);
                }
            }
        }
    }
    if (h_last && ok)
        *reinterpret_cast<float4 *>(h_last + ((size_t)b * E + ec) * N + 4 * p) = make_float4(h[0], h[1], h[2], h[3]);
}

template <int P, typename T = float>
void launch_fwd(T *out, float *h_last, float *ckpt, const T *u, const T *delta, const float *A, const T *Bm,
                const T *Cm, const float *D, const T *z, const float *delta_bias, const float *h0, int B, int L, int E,
                int softplus) {
    constexpr int N = 4 * P;
    if constexpr (N == scan_lane::N && std::is_same<T, float>::value) {
        // with an output, or as the backward's checkpoint sweep (ckpt, no output: z and C unread)
        const float *zz = out ? z : nullptr, *cc = out ? Cm : nullptr;
        if (g_tile_s == LANE_S && (out || ckpt) && scan_lane::lane_usable(u, delta, zz, Bm, cc, E, N)) {
            static_assert(scan_lane::CK == CK, "one checkpoint spacing");
            const scan_lane::args a = {out, h_last, ckpt, u, delta, A, Bm, cc, D, zz, delta_bias, h0, B, L, E, softplus};
            scan_lane::launch<32, 3, 2, 1>(a, mkc_s()); // TT 32, 3 tiles in flight, 2 decays of 16 on the FMA pipe
            MKC_CHECK_LAUNCH("scan_fwd_lane");
            return;
        }
    }
    const int ts = g_tile_s == LANE_S ? FWD_S : g_tile_s; // the staged kernel where the lane kernel does not apply
    if (ts && scan_tile::usable<N>(u, delta, out ? z : (const T *)NULL, Bm, out ? Cm : (const T *)NULL, E)) {
        // the staged kernel (scan_tile.cuh): S states per lane (2 or 4; 4 from N = 64 on, where 2
        // would leave too few channels per block for whole 16-byte copies), 128 threads, FWD_NST
        // tiles in flight, TT steps per tile (short for the wide blocks of small N)
        auto go = [&](auto S_) {
            // S = 2: twice the blocks, so 2 tiles in flight, for a smaller block that still fits
            // all of them on the SMs at once
            constexpr int S = decltype(S_)::value, PL = N / S, TT = PL <= 1 ? 8 : PL <= 2 ? 16 : 32;
            constexpr int NST = S == 2 ? 2 : FWD_NST;
            scan_tile::launch<N, S, TPB, TT, NST, fwd_opt<N, S, TT, NST, T>(), T>(out, h_last, ckpt, u, delta, A, Bm, Cm, D, z,
                                                                 delta_bias, h0, B, L, E, softplus, mkc_s());
        };
        if constexpr (N <= 32) {
            if (ts == 2) go(std::integral_constant<int, 2>{});
            else go(std::integral_constant<int, 4>{});
        } else {
            go(std::integral_constant<int, 4>{});
        }
        MKC_CHECK_LAUNCH("scan_fwd_tile");
        return;
    }
    dim3 grid(mkc_blocks(E, TPB / P), B);
    scan_fwd_k<P, T><<<grid, TPB, 0, mkc_s()>>>(out, h_last, ckpt, u, delta, A, Bm, Cm, D, z, delta_bias, h0, L, E,
                                                softplus);
    MKC_CHECK_LAUNCH("scan_fwd");
}

template <int P, typename T = float>
void launch_bwd(float *du, float *ddelta, float *dA, float *dBm, float *dCm, float *dD, float *dz,
                float *ddelta_bias, float *dh0, const T *dout, const float *dh_last, const T *u, const T *delta,
                const float *A, const T *Bm, const T *Cm, const float *D, const T *z, const float *delta_bias,
                const float *h0, int B, int L, int E, int softplus) {
    constexpr int N = 4 * P;
    const int nck = (L + CK - 1) / CK, neb = (int)mkc_blocks(E, TPB / P);
    const size_t n_ck = (size_t)B * nck * E * N, n_dA = (size_t)B * E * N, n_e = (size_t)B * E,
                 n_bc = (size_t)neb * B * L * N;
    float *ws = (float *)mkc_scratch(sizeof(float) * (n_ck + n_dA + 2 * n_e + 2 * n_bc));
    if (!ws) return;
    float *ckpt = ws, *dApart = ckpt + n_ck, *dDpart = dApart + n_dA, *dbpart = dDpart + n_e, *dBpart = dbpart + n_e,
          *dCpart = dBpart + n_bc;
    launch_fwd<P, T>(NULL, NULL, ckpt, u, delta, A, Bm, Cm, D, z, delta_bias, h0, B, L, E, softplus);
    dim3 grid(neb, B);
    bool lane = false;
    if constexpr (N == scan_lane_bwd::N && std::is_same<T, float>::value) {
        // trial mode 16 (mkc_scan_set_tiled): the one-lane-per-channel backward (scan_lane_bwd.cuh,
        // lab v8, written 2026-11-28 without a GPU), where it applies; its partials are these
        // (one per 32 channels: neb at N = 16)
        static_assert(TPB / P == 32, "v8's dB/dC partials are per 32 channels");
        if (g_tile_s == LANE_S &&
            scan_lane_bwd::lane_bwd_usable(u, delta, z, dout, du, ddelta, dz, Bm, Cm, ckpt, E, N)) {
            const scan_lane_bwd::args a = {du,  ddelta, dz, dh0, dApart, dDpart, dbpart,     dBpart, dCpart,
                                           dout, dh_last, u, delta, A, Bm, Cm, D, z, delta_bias, ckpt, B, L, E,
                                           softplus};
            scan_lane_bwd::launch<4, 3, 0, 1>(a, mkc_s()); // TS 4, 3 tiles in flight, decays on the MUFU
            lane = true;
        }
    }
    if (!lane) {
        // STAGE_IN (each checkpoint chunk's inputs copied into shared memory once): the whole
        // backward 1.40x faster on an H100 (bench cuda, L = 2048: 2345 -> 1674 us; docs/CUDA.md,
        // 2026-11-27). It needs N >= 16 and 16-byte copies: u, delta, z, dout, B, C aligned and
        // E * sizeof(T) a multiple of 16.
        if (P >= 4 && (E * sizeof(T)) % 16 == 0 && al16(u) && al16(delta) && (!z || al16(z)) && al16(dout) && al16(Bm) &&
            al16(Cm)) {
            constexpr int SO = P >= 4 ? scan_bwd::STAGE_IN : 0; // (P < 4 never gets here)
            auto k = scan_bwd::kernel<P, T, SO>;
            const size_t dyn = scan_bwd::dyn_smem<P, T, SO>();
            cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)dyn);
            k<<<grid, TPB, dyn, mkc_s()>>>(du, ddelta, dz, dh0, dApart, dDpart, dbpart, dBpart, dCpart, dout, dh_last, u,
                                           delta, A, Bm, Cm, D, z, delta_bias, ckpt, L, E, softplus);
        } else {
            scan_bwd::kernel<P, T><<<grid, TPB, 0, mkc_s()>>>(du, ddelta, dz, dh0, dApart, dDpart, dbpart, dBpart, dCpart,
                                                              dout, dh_last, u, delta, A, Bm, Cm, D, z, delta_bias, ckpt,
                                                              L, E, softplus);
        }
    }
    MKC_CHECK_LAUNCH("scan_bwd");
    const unsigned TR = 256;
    if (dA) scan_bwd::sum_parts_k<<<mkc_blocks((size_t)E * N, TR), TR, 0, mkc_s()>>>(dA, dApart, B, (size_t)E * N);
    if (dD && D) scan_bwd::sum_parts_k<<<mkc_blocks(E, TR), TR, 0, mkc_s()>>>(dD, dDpart, B, E); // no D: no dD (as on the CPU)
    if (ddelta_bias) scan_bwd::sum_parts_k<<<mkc_blocks(E, TR), TR, 0, mkc_s()>>>(ddelta_bias, dbpart, B, E);
    if (dBm) scan_bwd::sum_parts_k<<<mkc_blocks((size_t)B * L * N, TR), TR, 0, mkc_s()>>>(dBm, dBpart, neb, (size_t)B * L * N);
    if (dCm) scan_bwd::sum_parts_k<<<mkc_blocks((size_t)B * L * N, TR), TR, 0, mkc_s()>>>(dCm, dCpart, neb, (size_t)B * L * N);
    MKC_CHECK_LAUNCH("scan_bwd_reduce");
}

// The supported N, declared once: calls f(std::integral_constant<int, N / 4>) (the lanes per
// channel, the kernels' template argument) and returns true, or returns false for any other N.
template <class F>
bool with_lanes(int N, F &&f) {
    switch (N) {
    case 4: f(std::integral_constant<int, 1>{}); return true;
    case 8: f(std::integral_constant<int, 2>{}); return true;
    case 16: f(std::integral_constant<int, 4>{}); return true;
    case 32: f(std::integral_constant<int, 8>{}); return true;
    case 64: f(std::integral_constant<int, 16>{}); return true;
    default: return false;
    }
}

} // namespace

extern "C" int mkc_scan_supported(int N) { return with_lanes(N, [](auto) {}); }

// The staged forward's lane orders (scan_tile::lane_split), checked on the host: each a
// bijection lane <-> (channel of the warp, p); MAP 0 the plain lane = channel * P + p; the
// shuffle partner for bit i of p the same channel with that bit flipped; MAP_INTERLEAVE's
// lanes n and n^1 at the same p (the shared B/C returns). Returns the number of violations.
template <int MAP, int P>
static int lane_map_errors() {
    int bad = 0, seen[32] = {0};
    for (int l = 0; l < 32; l++) {
        int cl, p;
        scan_tile::lane_split<MAP, P>(l, cl, p);
        if (cl < 0 || cl >= 32 / P || p < 0 || p >= P) {
            bad++;
            continue;
        }
        bad += seen[cl * P + p]++ != 0;
        if (MAP == 0) bad += cl != l / P || p != l % P;
        for (int i = 0; (1 << i) < P; i++) {
            int c2, p2;
            scan_tile::lane_split<MAP, P>(l ^ (1 << scan_tile::lane_pbit(MAP, P, i)), c2, p2);
            bad += c2 != cl || p2 != (p ^ (1 << i));
        }
        if (MAP == 2 && P < 32) {
            int c3, p3;
            scan_tile::lane_split<MAP, P>(l ^ 1, c3, p3);
            bad += p3 != p || c3 == cl;
        }
    }
    return bad;
}
template <int MAP>
static int lane_maps_errors() {
    return lane_map_errors<MAP, 1>() + lane_map_errors<MAP, 2>() + lane_map_errors<MAP, 4>() +
           lane_map_errors<MAP, 8>() + lane_map_errors<MAP, 16>();
}
extern "C" int mkc_scan_lane_map_errors(void) { return lane_maps_errors<0>() + lane_maps_errors<1>() + lane_maps_errors<2>(); }

extern "C" int mkc_scan_set_tiled(int s) {
    int was = g_tile_s;
    g_tile_s = (s == 0 || s == 2 || s == 4 || s == LANE_S) ? s : FWD_S;
    return was;
}

// The kernels read B and C rows and write h_last 8 or 16 bytes at a time, which needs those
// pointers 16-byte aligned. A caller's sub-buffer can sit at any float offset, so misaligned
// ones go through aligned copies here (B, C: B*L*N each, small beside the B*L*E activations).
struct stage_bc {
    void *buf = nullptr;
    size_t n = 0;
};
static stage_bc g_stage;
// On return Bm, Cm (and h_last, whose caller's pointer goes to *h_dst for the copy back with
// finish_h) are aligned; false (error noted) when the copies cannot be allocated.
template <typename T>
static bool align_inputs(const T *&Bm, const T *&Cm, float *&h_last, float **h_dst, size_t nbc, size_t nh) {
    *h_dst = nullptr;
    const bool mb = !al16(Bm), mc = Cm && !al16(Cm), mh = h_last && !al16(h_last);
    if (!mb && !mc && !mh) return true;
    const size_t bcb = (nbc * sizeof(T) + 15) & ~(size_t)15, need = 2 * bcb + nh * sizeof(float);
    if (need > g_stage.n) {
        mkc_free(g_stage.buf); // waits for the kernels that used it (cudaFree synchronises)
        g_stage.buf = mkc_malloc(need);
        g_stage.n = g_stage.buf ? need : 0;
        if (!g_stage.buf) {
            mkc_note_error("scan: aligned copies of B/C", cudaErrorMemoryAllocation);
            return false;
        }
    }
    char *p = (char *)g_stage.buf;
    if (mb) mkc_copy(p, Bm, nbc * sizeof(T)), Bm = (const T *)p;
    if (mc) mkc_copy(p + bcb, Cm, nbc * sizeof(T)), Cm = (const T *)(p + bcb);
    if (mh) *h_dst = h_last, h_last = (float *)(p + 2 * bcb);
    return true;
}
static void finish_h(float *h_dst, const float *h_tmp, size_t nh) {
    if (h_dst) mkc_copy(h_dst, h_tmp, nh * sizeof(float));
}

extern "C" void mkc_scan_forward(float *out, float *h_last, const float *u, const float *delta, const float *A,
                                 const float *Bm, const float *Cm, const float *D, const float *z,
                                 const float *delta_bias, const float *h0, int B, int L, int E, int N, int softplus) {
    if (B <= 0 || L <= 0 || E <= 0) return;
    float *h_dst;
    const size_t nh = (size_t)B * E * N;
    if (!align_inputs(Bm, Cm, h_last, &h_dst, (size_t)B * L * N, nh)) return;
    if (!with_lanes(N, [&](auto P) {
            launch_fwd<decltype(P)::value>(out, h_last, NULL, u, delta, A, Bm, Cm, D, z, delta_bias, h0, B, L, E,
                                           softplus);
        }))
        mkc_note_error("scan_forward: unsupported N", cudaErrorInvalidValue);
    finish_h(h_dst, h_last, nh);
}

extern "C" void mkc_scan_backward(float *du, float *ddelta, float *dA, float *dBm, float *dCm, float *dD, float *dz,
                                  float *ddelta_bias, float *dh0, const float *dout, const float *dh_last,
                                  const float *u, const float *delta, const float *A, const float *Bm,
                                  const float *Cm, const float *D, const float *z, const float *delta_bias,
                                  const float *h0, int B, int L, int E, int N, int softplus) {
    if (B <= 0 || L <= 0 || E <= 0) return;
    float *no_h = nullptr, *h_dst;
    if (!align_inputs(Bm, Cm, no_h, &h_dst, (size_t)B * L * N, 0)) return;
    if (!with_lanes(N, [&](auto P) {
            launch_bwd<decltype(P)::value>(du, ddelta, dA, dBm, dCm, dD, dz, ddelta_bias, dh0, dout, dh_last, u, delta,
                                           A, Bm, Cm, D, z, delta_bias, h0, B, L, E, softplus);
        }))
        mkc_note_error("scan_backward: unsupported N", cudaErrorInvalidValue);
}

extern "C" void mkc_scan_forward_bf16(uint16_t *out, float *h_last, const uint16_t *u, const uint16_t *delta,
                                      const float *A, const uint16_t *Bm, const uint16_t *Cm, const float *D,
                                      const uint16_t *z, const float *delta_bias, const float *h0, int B, int L, int E,
                                      int N, int softplus) {
    if (B <= 0 || L <= 0 || E <= 0) return;
    typedef __nv_bfloat16 bf;
    const bf *Bb = (const bf *)Bm, *Cb = (const bf *)Cm;
    float *h_dst;
    const size_t nh = (size_t)B * E * N;
    if (!align_inputs(Bb, Cb, h_last, &h_dst, (size_t)B * L * N, nh)) return;
    if (!with_lanes(N, [&](auto P) {
            launch_fwd<decltype(P)::value, bf>((bf *)out, h_last, NULL, (const bf *)u, (const bf *)delta, A, Bb, Cb,
                                               D, (const bf *)z, delta_bias, h0, B, L, E, softplus);
        }))
        mkc_note_error("scan_forward_bf16: unsupported N", cudaErrorInvalidValue);
    finish_h(h_dst, h_last, nh);
}

// bf16 inputs (u, delta, Bm, Cm, z and the incoming gradient dout), fp32 state, fp32 gradients
// accumulated with += as in the fp32 contract.
extern "C" void mkc_scan_backward_bf16(float *du, float *ddelta, float *dA, float *dBm, float *dCm, float *dD,
                                       float *dz, float *ddelta_bias, float *dh0, const uint16_t *dout,
                                       const float *dh_last, const uint16_t *u, const uint16_t *delta, const float *A,
                                       const uint16_t *Bm, const uint16_t *Cm, const float *D, const uint16_t *z,
                                       const float *delta_bias, const float *h0, int B, int L, int E, int N,
                                       int softplus) {
    if (B <= 0 || L <= 0 || E <= 0) return;
    typedef __nv_bfloat16 bf;
    const bf *Bb = (const bf *)Bm, *Cb = (const bf *)Cm;
    float *no_h = nullptr, *h_dst;
    if (!align_inputs(Bb, Cb, no_h, &h_dst, (size_t)B * L * N, 0)) return;
    if (!with_lanes(N, [&](auto P) {
            launch_bwd<decltype(P)::value, bf>(du, ddelta, dA, dBm, dCm, dD, dz, ddelta_bias, dh0, (const bf *)dout,
                                               dh_last, (const bf *)u, (const bf *)delta, A, Bb, Cb, D, (const bf *)z,
                                               delta_bias, h0, B, L, E, softplus);
        }))
        mkc_note_error("scan_backward_bf16: unsupported N", cudaErrorInvalidValue);
}
