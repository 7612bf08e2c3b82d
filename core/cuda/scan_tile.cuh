// scan_tile.cuh — the selective-scan forward with its inputs staged through shared memory.
// Included by core/cuda/scan.cu (the library picks one configuration) and by the kernel lab
// (tests/bench/cuda/scan_lab.cu, which sweeps them).
//
// Why: the register-only forward (scan_fwd_k) measured 0.8 us per time step on an H100, 8 % of
// the DRAM floor. Each warp waited on its own few 32-byte loads (u, delta, z of 8 steps, then
// B[t], C[t] inside the step loop): too few bytes in flight per SM to cover DRAM latency.
// Here a block copies tiles of TT steps x CPB channels of u, delta, z and the TT rows of B, C
// into shared memory with cp.async, NST tiles in flight, while it computes on an earlier tile.
//
// Work split per block (batch b, channels e0 .. e0+CPB-1), TPB threads:
//   P = N/S lanes per channel, each holding S of its N states in registers.
//   Pre-pass: lane p computes dt = softplus(delta + bias) for the steps j = p mod P of its
//   channel (one special-function evaluation per channel-step, not P) into shared memory.
//   Step loop: y partial sums over the lane's S states; every P steps a reduce-scatter over
//   the P lanes (P-1 shuffles, not P log2 P) leaves lane p with y of step j0+p, and lane p
//   finishes that step: out = (y + D u) silu(z).
// Requirements (the launcher checks, else the register kernel runs): u, delta, z 16-byte
// aligned and E * sizeof(T) a multiple of 16; B, C aligned to their copy width.
#pragma once
#include <cuda_bf16.h>
#include <stdint.h>
#include <string.h>

#include <type_traits>

#include "core/cuda/common.cuh"

namespace scan_tile {

constexpr int CK = 64; // checkpoint spacing for the backward (scan.cu uses the same)

__device__ __forceinline__ void cp_async(void *smem, const void *gmem, int bytes_valid,
                                         std::integral_constant<int, 16>) {
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes_valid) : "memory");
}
__device__ __forceinline__ void cp_async(void *smem, const void *gmem, int bytes_valid,
                                         std::integral_constant<int, 8>) {
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes_valid) : "memory");
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int n>
__device__ __forceinline__ void cp_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(n) : "memory");
}

// Activation loads/stores for fp32 and bf16 (state, A, D, biases stay fp32); scan.cu's
// register kernels use them too.
__device__ __forceinline__ float ldf(const float *p) { return *p; }
__device__ __forceinline__ float ldf(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
__device__ __forceinline__ void stf(float *p, float v) { *p = v; }
__device__ __forceinline__ void stf(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }
// 4 bf16 in 8 bytes (element 0 in the low half) as floats: a bf16 is the top 16 bits of its fp32
__device__ __forceinline__ float4 bf16x4(uint2 r) {
    return make_float4(__uint_as_float(r.x << 16), __uint_as_float(r.x & 0xffff0000u), __uint_as_float(r.y << 16),
                       __uint_as_float(r.y & 0xffff0000u));
}

// S consecutive values from shared memory as floats (S = 2 or a multiple of 4)
template <int S>
__device__ __forceinline__ void lds(float (&v)[S], const float *p) {
    if constexpr (S == 2) {
        float2 q = *reinterpret_cast<const float2 *>(p);
        v[0] = q.x, v[1] = q.y;
    } else {
#pragma unroll
        for (int k = 0; k < S; k += 4) {
            float4 q = *reinterpret_cast<const float4 *>(p + k);
            v[k] = q.x, v[k + 1] = q.y, v[k + 2] = q.z, v[k + 3] = q.w;
        }
    }
}
template <int S>
__device__ __forceinline__ void lds(float (&v)[S], const __nv_bfloat16 *p) {
    if constexpr (S == 2) {
        unsigned r = *reinterpret_cast<const unsigned *>(p);
        v[0] = __uint_as_float(r << 16), v[1] = __uint_as_float(r & 0xffff0000u);
    } else {
#pragma unroll
        for (int k = 0; k < S; k += 4) {
            float4 q = bf16x4(*reinterpret_cast<const uint2 *>(p + k));
            v[k] = q.x, v[k + 1] = q.y, v[k + 2] = q.z, v[k + 3] = q.w;
        }
    }
}

// S states to global memory (16- or 8-byte stores)
template <int S>
__device__ __forceinline__ void sts(float *dst, const float (&h)[S]) {
    if constexpr (S == 2) {
        *reinterpret_cast<float2 *>(dst) = make_float2(h[0], h[1]);
    } else {
#pragma unroll
        for (int q = 0; q < S; q += 4)
            *reinterpret_cast<float4 *>(dst + q) = make_float4(h[q], h[q + 1], h[q + 2], h[q + 3]);
    }
}

// 2^x on the FMA pipe (to share the decays between it and the special-function unit):
// round-to-nearest split by the 1.5*2^23 trick, degree-7 Taylor of 2^f on [-1/2, 1/2]
// (relative error < 6e-9, below ex2.approx's), exponent added as an integer. Host-callable too,
// for the lab's host simulation of scan_lane.cuh (the bit casts through memcpy there).
__host__ __device__ __forceinline__ int f2i(float x) {
#ifdef __CUDA_ARCH__
    return __float_as_int(x);
#else
    int i;
    memcpy(&i, &x, 4);
    return i;
#endif
}
__host__ __device__ __forceinline__ float i2f(int i) {
#ifdef __CUDA_ARCH__
    return __int_as_float(i);
#else
    float x;
    memcpy(&x, &i, 4);
    return x;
#endif
}
__host__ __device__ __forceinline__ float ex2_fma(float x) {
    x = fminf(fmaxf(x, -127.f), 127.f);
    const float sh = 12582912.f;
    float t = x + sh, f = x - (t - sh);
    int i = f2i(t) - 0x4B400000;
    float q = 1.525273380405984e-05f;
    q = fmaf(q, f, 1.5403530393381608e-04f);
    q = fmaf(q, f, 1.3333558146428443e-03f);
    q = fmaf(q, f, 9.618129107628477e-03f);
    q = fmaf(q, f, 5.550410866482158e-02f);
    q = fmaf(q, f, 2.402265069591007e-01f);
    q = fmaf(q, f, 6.931471805599453e-01f);
    q = fmaf(q, f, 1.f);
    return q * i2f((i + 127) << 23);
}

// Shared-memory layout and launch facts of one configuration.
//   N states, S per lane, TPB threads, TT steps per tile, NST tiles in flight,
//   OPT options (bits 0-2: XF, how many of every 4 states' decays go to the FMA pipe;
//   FAST_SP: softplus as log(1 + exp) with the hardware units (__logf, __expf): absolute error
//   below 4e-7 for arguments <= 0 (__logf's bound on [1, 2]), a few ulp relative above;
//   UNROLL_ALL: the step-group loop fully unrolled), T the activation type.
//   MAP_*: which lanes of a warp hold which (channel, p) — see lane_split below; PAD_ROWS: tile
//   rows padded so the pre-pass and epilogue, which read P different steps of one channel,
//   hit P different banks.
//   FAST_SIG: the output gate's sigmoid with the hardware reciprocal (__fdividef, 2 ulp).
//   DT_PAIR: dt and dt*u of a channel-step side by side (one 8-byte shared load per step where
//   there were two 4-byte ones: the SASS of 2026-11-27 has 2 of the step's ~7 instructions per
//   state-step in loads at S = 2). Lab only until measured.
enum { FAST_SP = 8, UNROLL_ALL = 16, MAP_PMAJOR = 32, MAP_INTERLEAVE = 64, PAD_ROWS = 128, FAST_SIG = 256, DT_PAIR = 512 };

// Which lanes of a warp hold which (channel cl of the warp's CW = 32/P, lane-in-channel p).
// Shared memory returns one 32-bit register per lane per cycle, except that lanes n and n^1
// (or n and n^2) reading the same address share a return: with MAP_INTERLEAVE the lane bits
// alternate channel, p, channel, p, ... from bit 0, so lanes n and n^1 are two channels at the
// same p (B and C rows: half the cycles) and n and n^2 one channel at two p (dt, dt u: half).
// MAP 0 (the original): lane = cl * P + p; MAP_PMAJOR: lane = p * CW + cl.
// pbit(MAP, P, i) is the lane-bit position of bit i of p (the shuffle offsets of the y
// reduce-scatter); the channel bits take the other positions in order.
__host__ __device__ constexpr int ilog2(int x) { return x > 1 ? 1 + ilog2(x / 2) : 0; }
__host__ __device__ constexpr int lane_pbit(int map, int P, int i) {
    if (map == 1) return ilog2(32 / P) + i;
    if (map == 2) {
        // alternate c, p, c, p, ... while both have bits left, then the rest
        int pb = ilog2(P), cb = 5 - pb, q = 0, ci = 0, pi = 0;
        while (q < 5) {
            bool takec = ci < cb && (pi >= pb || (q % 2 == 0));
            if (takec) ci++;
            else {
                if (pi == i) return q;
                pi++;
            }
            q++;
        }
        return -1;
    }
    return i;
}
template <int MAP, int P>
__host__ __device__ __forceinline__ void lane_split(int lane, int &cl, int &p) {
    int c = 0, pp = 0, ci = 0;
#pragma unroll
    for (int q = 0; q < 5; q++) {
        bool isp = false;
#pragma unroll
        for (int i = 0; (1 << i) < P; i++) isp |= lane_pbit(MAP, P, i) == q;
        const int bit = (lane >> q) & 1;
        if (isp) {
#pragma unroll
            for (int i = 0; (1 << i) < P; i++)
                if (lane_pbit(MAP, P, i) == q) pp |= bit << i;
        } else {
            c |= bit << ci;
            ci++;
        }
    }
    cl = c, p = pp;
}

template <int N, int S, int TPB, int TT, int NST, int OPT, typename T>
struct cfg {
    static constexpr int P = N / S, CPB = TPB / P;
    static constexpr int EPC = 16 / (int)sizeof(T);                                // elements per 16-byte copy
    static constexpr int RCH = CPB / EPC;                                          // copies per tile row
    static constexpr int BCB = N * (int)sizeof(T) < 16 ? N * (int)sizeof(T) : 16; // bytes per B/C copy
    static constexpr int BCE = BCB / (int)sizeof(T), BCH = N / BCE;
    static constexpr int MAP = (OPT & MAP_INTERLEAVE) ? 2 : (OPT & MAP_PMAJOR) ? 1 : 0;
    static constexpr int CW = 32 / P;                          // channels per warp
    // padded row: CW * odd (with TPB / 32 even), whole 16-byte copies; none for P = 1
    static constexpr int PADE = (!(OPT & PAD_ROWS) || P == 1) ? 0 : CW > EPC ? CW : EPC;
    static constexpr int RS = CPB + PADE;                      // elements per tile row
    static constexpr int TILE = TT * RS;                       // elements of one u / delta / z tile
    static constexpr int STAGE = 3 * TILE + 2 * TT * N;       // elements of one stage
    static constexpr size_t SMEM = (size_t)NST * STAGE * sizeof(T) + (size_t)2 * TT * RS * sizeof(float);
    static_assert((S == 2 || S % 4 == 0) && N % S == 0 && TPB % 32 == 0 && 32 % P == 0, "lane split");
    static_assert(CPB % EPC == 0, "a tile row must be whole 16-byte copies");
    static_assert(TT % P == 0 && CK % TT == 0, "tile length");
    static constexpr int XF = OPT & 7, UNR = (OPT & UNROLL_ALL) ? TT / P : 2;
    static constexpr bool FSP = OPT & FAST_SP, FSG = OPT & FAST_SIG, DTP = OPT & DT_PAIR;
    static_assert(!DTP || (NST * STAGE * sizeof(T)) % 8 == 0, "DT_PAIR: 8-byte aligned pairs");
    static_assert(XF <= 4, "XF of 4");
};

// out == NULL: checkpoint mode for the backward (h at every CK-th step into ckpt, no output).
template <int N, int S, int TPB, int TT, int NST, int OPT, typename T, bool OUT>
__global__ void __launch_bounds__(TPB)
    fwd_k(T *__restrict__ out, float *__restrict__ h_last, float *__restrict__ ckpt, const T *__restrict__ u,
          const T *__restrict__ delta, const float *__restrict__ A, const T *__restrict__ Bm,
          const T *__restrict__ Cm, const float *__restrict__ D, const T *__restrict__ z,
          const float *__restrict__ delta_bias, const float *__restrict__ h0, int L, int E, int softplus) {
    typedef cfg<N, S, TPB, TT, NST, OPT, T> C;
    constexpr int P = C::P, CPB = C::CPB, EPC = C::EPC, RCH = C::RCH, TILE = C::TILE, RS = C::RS;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T *const sm = reinterpret_cast<T *>(smem_raw);
    float *const sdt = reinterpret_cast<float *>(sm + NST * C::STAGE); // dt per channel-step (row RS)
    float *const sdu = sdt + TT * RS;                                  // dt u
    float2 *const sdd = reinterpret_cast<float2 *>(sdt);               // DT_PAIR: (dt, dt u), same bytes

    const int tid = threadIdx.x;
    int cl, p;
    lane_split<C::MAP, P>(tid & 31, cl, p);
    const int c = (tid >> 5) * C::CW + cl;
    const int e0 = blockIdx.x * CPB, e = e0 + c, b = blockIdx.y;
    const bool ok = e < E;
    const int ec = ok ? e : E - 1;
    const size_t row0 = (size_t)b * L;
    const int ntile = (L + TT - 1) / TT, nck = (L + CK - 1) / CK;
    const bool hasz = OUT && z;

    auto issue = [&](int k) {
        T *st = sm + (k % NST) * C::STAGE;
        const int t0 = k * TT;
        constexpr int NW = OUT ? 3 : 2; // the checkpoint sweep needs no z
#pragma unroll
        for (int idx = tid; idx < NW * TT * RCH; idx += TPB) {
            const int w = idx / (TT * RCH), r = idx % (TT * RCH), j = r / RCH, ch = r % RCH;
            const int t = t0 + j, ee = e0 + ch * EPC;
            const bool v = t < L && ee < E && (w < 2 || hasz);
            const T *g = v ? (w == 0 ? u : w == 1 ? delta : z) + ((row0 + t) * E + ee) : u;
            cp_async(st + w * TILE + j * RS + ch * EPC, g, v ? 16 : 0, std::integral_constant<int, 16>{});
        }
        constexpr int NBC = OUT ? 2 : 1; // nor C
#pragma unroll
        for (int idx = tid; idx < NBC * TT * C::BCH; idx += TPB) {
            const int w = idx / (TT * C::BCH), r = idx % (TT * C::BCH), j = r / C::BCH, ch = r % C::BCH;
            const int t = t0 + j;
            const bool v = t < L;
            const T *g = v ? (w ? Cm : Bm) + (row0 + t) * N + ch * C::BCE : Bm;
            cp_async(st + 3 * TILE + w * TT * N + j * N + ch * C::BCE, g, v ? C::BCB : 0,
                     std::integral_constant<int, C::BCB>{});
        }
    };

    float A2[S], h[S];
#pragma unroll
    for (int k = 0; k < S; k++) {
        A2[k] = A[(size_t)ec * N + S * p + k] * 1.4426950408889634f;
        h[k] = (h0 && ok) ? h0[((size_t)b * E + ec) * N + S * p + k] : 0.f;
    }
    const float bias = delta_bias ? delta_bias[ec] : 0.f, Dv = D ? D[ec] : 0.f;

#pragma unroll
    for (int k = 0; k < NST - 1; k++) {
        if (k < ntile) issue(k);
        cp_commit(); // empty groups keep the count uniform
    }
    for (int k = 0; k < ntile; k++) {
        if (k + NST - 1 < ntile) issue(k + NST - 1); // into the buffer tile k-1 used (freed below)
        cp_commit();
        cp_wait<NST - 1>(); // this thread's copies of tile k have landed
        __syncthreads();    // everyone's have
        const T *st = sm + (k % NST) * C::STAGE;
        const T *su = st, *sd = st + TILE, *sz = st + 2 * TILE, *sB = st + 3 * TILE, *sC = sB + TT * N;
        const int t0 = k * TT;
        if (ckpt && t0 % CK == 0 && ok) {
            sts<S>(ckpt + (((size_t)b * nck + t0 / CK) * E + ec) * N + S * p, h);
        }
        // dt and dt u for the steps this lane finishes; read by the channel's P lanes (same warp)
#pragma unroll
        for (int g = 0; g < TT / P; g++) {
            const int j = g * P + p;
            float r = ldf(sd + j * RS + c) + bias;
            float d = !softplus ? r : C::FSP ? (r > 20.f ? r : __logf(1.f + __expf(r))) : mkc_softplus(r);
            d = t0 + j < L ? d : 0.f; // padded steps leave h unchanged
            if constexpr (C::DTP) {
                sdd[j * RS + c] = make_float2(d, d * ldf(su + j * RS + c));
            } else {
                sdt[j * RS + c] = d;
                sdu[j * RS + c] = d * ldf(su + j * RS + c);
            }
        }
        __syncwarp();
#pragma unroll(C::UNR)
        for (int j0 = 0; j0 < TT; j0 += P) {
            float ys[P];
#pragma unroll
            for (int q = 0; q < P; q++) {
                const int j = j0 + q;
                float d, dtu;
                if constexpr (C::DTP) {
                    const float2 q = sdd[j * RS + c];
                    d = q.x, dtu = q.y;
                } else {
                    d = sdt[j * RS + c], dtu = sdu[j * RS + c];
                }
                float Bk[S];
                lds<S>(Bk, sB + j * N + S * p);
#pragma unroll
                for (int k = 0; k < S; k++) {
                    const float x = d * A2[k];
                    const float a = (k % 4) < C::XF ? ex2_fma(x) : mkc_ex2(x);
                    h[k] = fmaf(a, h[k], dtu * Bk[k]);
                }
                if (OUT) {
                    float Ck[S];
                    lds<S>(Ck, sC + j * N + S * p);
                    float y = 0.f;
#pragma unroll
                    for (int k = 0; k < S; k++) y = fmaf(Ck[k], h[k], y);
                    ys[q] = y;
                }
            }
            if (OUT) {
                // reduce-scatter: after the round with offset o the lane keeps the half of the
                // steps selected by its bit o; it ends with the full sum of step j0 + p
#pragma unroll
                for (int o = P / 2; o >= 1; o >>= 1) {
                    const bool up = p & o;
#pragma unroll
                    for (int i = 0; i < o; i++) {
                        const float send = up ? ys[i] : ys[i + o], keep = up ? ys[i + o] : ys[i];
                        ys[i] = keep + __shfl_xor_sync(MKC_FULL, send, 1 << lane_pbit(C::MAP, P, ilog2(o)));
                    }
                }
                const int j = j0 + p, t = t0 + j;
                if (ok && t < L) {
                    float o = ys[0] + Dv * ldf(su + j * RS + c);
                    if (hasz) {
                        const float zv = ldf(sz + j * RS + c);
                        o *= zv * (C::FSG ? __fdividef(1.f, 1.f + __expf(-zv)) : mkc_sigmoid(zv));
                    }
                    stf(out + (row0 + t) * E + e, o);
                }
            }
        }
        __syncthreads(); // tile k's buffer and sdt are free
    }
    if (h_last && ok) sts<S>(h_last + ((size_t)b * E + ec) * N + S * p, h);
}

// Whether the tile kernel can take these pointers and E (else the caller uses another kernel).
template <int N, typename T>
inline bool usable(const T *u, const T *delta, const T *z, const T *Bm, const T *Cm, int E) {
    const size_t bcb = N * sizeof(T) < 16 ? N * sizeof(T) : 16;
    auto al = [](const void *ptr, size_t a) { return ((uintptr_t)ptr % a) == 0; };
    return (E * sizeof(T)) % 16 == 0 && al(u, 16) && al(delta, 16) && (!z || al(z, 16)) && al(Bm, bcb) &&
           (!Cm || al(Cm, bcb));
}

template <int N, int S, int TPB, int TT, int NST, int OPT, typename T>
void launch(T *out, float *h_last, float *ckpt, const T *u, const T *delta, const float *A, const T *Bm, const T *Cm,
            const float *D, const T *z, const float *delta_bias, const float *h0, int B, int L, int E, int softplus,
            cudaStream_t stream) {
    typedef cfg<N, S, TPB, TT, NST, OPT, T> C;
    dim3 grid(mkc_blocks(E, C::CPB), B);
    auto run = [&](auto k) {
        // every launch: a once-only flag would be shared by the translation units that
        // instantiate this launcher, each of which has its own copy of the kernel
        cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)C::SMEM);
        k<<<grid, TPB, C::SMEM, stream>>>(out, h_last, ckpt, u, delta, A, Bm, Cm, D, z, delta_bias, h0, L, E, softplus);
    };
    if (out) run(fwd_k<N, S, TPB, TT, NST, OPT, T, true>);
    else run(fwd_k<N, S, TPB, TT, NST, OPT, T, false>);
}

} // namespace scan_tile
