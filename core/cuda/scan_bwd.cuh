// scan_bwd.cuh — the selective scan's backward kernel, in a header so that the kernel lab
// (tests/bench/cuda/scan_lab.cu) can build copies of it with parts switched off (OPT) and
// time what each part costs; the library (scan.cu) uses OPT = 0.
//
// Recomputation instead of stored per-step states: the forward's checkpoint sweep gives h at
// every CK-th step (ckpt); per CK chunk, last to first, replay from its checkpoint keeping
// sub-checkpoints every TS steps in shared memory; per TS sub-chunk, last to first, replay
// the TS states into registers and walk them backwards. One thread block = (batch b, CPB
// channels), P = N/4 lanes per channel, 4 states per lane. No floating-point atomics:
// dBm/dCm (sums over channels) go warp shuffle -> shared memory (fixed warp order) -> one
// partial per channel block (dBpart, dCpart), summed in order by the launcher; dA, dD,
// ddelta_bias (sums over the batch) go to per-batch partials, likewise.
#pragma once
#include <cuda_bf16.h>

#include "core/cuda/common.cuh"
#include "core/cuda/scan_tile.cuh"

namespace scan_bwd {

constexpr int TPB = 128;           // threads per block
constexpr int CK = scan_tile::CK;  // global checkpoint spacing
constexpr int TS = 8;              // sub-chunk replayed in registers
constexpr float LOG2E = 1.4426950408889634f;

// OPT bits, for the lab only: each leaves a part out, so the results are wrong and only the
// time means something (the time the part costs).
enum { NO_BC = 1,     // the dB/dC reduction over channels and its partial sums
       NO_OUT = 2,    // the du, ddelta, dz updates (read-modify-write in global memory)
       NO_REPLAY = 4  // the chunk replay that makes the sub-checkpoints
};
// STAGE_IN (a variant, not an ablation: same results): each CK-step chunk's u, delta, z, dout
// tiles and B, C rows are copied into shared memory with cp.async once, and the replay, the
// sub-chunk loads and the backward walk read them there instead of from global memory one
// step at a time (the tenth session's profile: the kernel's top stall was the long
// scoreboard). The lab (rows bwd_k_stage, bwd_stage) checked it against the CPU backward on an
// H100 (2026-11-27: 1.1e-6) and timed the whole backward 1.36x faster; the library runs it
// wherever it can (scan.cu, launch_bwd), OPT = 0 elsewhere. Needs P >= 4 (a tile row of CPB <= 32 channels),
// u, delta, z, dout 16-byte aligned and E a multiple of 16 / sizeof(T).
enum { STAGE_IN = 8 };

// Dynamic shared memory the kernel needs (0 unless STAGE_IN).
template <int P, typename T, int OPT>
constexpr size_t dyn_smem() {
    return (OPT & STAGE_IN) ? ((size_t)4 * CK * (TPB / P) + (size_t)2 * CK * 4 * P) * sizeof(T) : 0;
}

using scan_tile::ldf;
// 4 values through the read-only cache
__device__ __forceinline__ float4 ld4(const float *p) { return __ldg(reinterpret_cast<const float4 *>(p)); }
__device__ __forceinline__ float4 ld4(const __nv_bfloat16 *p) {
    return scan_tile::bf16x4(__ldg(reinterpret_cast<const uint2 *>(p)));
}

__host__ __device__ constexpr int ilog2c(int x) { return x > 1 ? 1 + ilog2c(x / 2) : 0; }

// 4 values from shared memory (STAGE_IN's B and C rows)
template <typename T>
__device__ __forceinline__ float4 lds4(const T *p) {
    float v[4];
    scan_tile::lds<4>(v, p);
    return make_float4(v[0], v[1], v[2], v[3]);
}

// the sum over the P lanes of a channel (every lane gets it)
template <int P>
__device__ __forceinline__ float sum_lanes(float v) {
#pragma unroll
    for (int o = 1; o < P; o <<= 1) v += __shfl_xor_sync(MKC_FULL, v, o);
    return v;
}

template <int P, typename T, int OPT = 0>
__global__ void __launch_bounds__(TPB, 3) kernel(
    float *__restrict__ du, float *__restrict__ ddelta, float *__restrict__ dz, float *__restrict__ dh0,
    float *__restrict__ dApart, float *__restrict__ dDpart, float *__restrict__ dbpart, float *__restrict__ dBpart,
    float *__restrict__ dCpart, const T *__restrict__ dout, const float *__restrict__ dh_last,
    const T *__restrict__ u, const T *__restrict__ delta, const float *__restrict__ A,
    const T *__restrict__ Bm, const T *__restrict__ Cm, const float *__restrict__ D,
    const T *__restrict__ z, const float *__restrict__ delta_bias, const float *__restrict__ ckpt, int L,
    int E, int softplus) {
    constexpr int N = 4 * P, CPB = TPB / P, NW = TPB / 32;
    constexpr bool STG = OPT & STAGE_IN;
    static_assert(!STG || P >= 4, "STAGE_IN needs P >= 4");
    __shared__ float4 sub[CK / TS][TPB];  // sub-checkpoints of the current CK chunk
    __shared__ float red[NW][TS][2][N];   // per-warp dB/dC sums for one sub-chunk
    extern __shared__ __align__(16) unsigned char bwd_dyn[]; // STAGE_IN: the chunk's inputs
    T *const s_u = reinterpret_cast<T *>(bwd_dyn), *const s_dl = s_u + CK * CPB, *const s_z = s_dl + CK * CPB,
             *const s_g = s_z + CK * CPB, *const s_B = s_g + CK * CPB, *const s_C = s_B + CK * N;
    const int cb = threadIdx.x / P; // STAGE_IN: the lane's channel within the block (tile column)
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, p = threadIdx.x % P, base = lane & ~(P - 1);
    // Each step of a sub-chunk has one owner lane among the channel's P, p = j mod P: it
    // computes the step's softplus and sigmoids once (the others get dt by shuffle) and does
    // the step's du / ddelta / dz update, whose old values it loads with the sub-chunk's
    // inputs (a read-modify-write per step had each step wait for its load: half the time)
    constexpr int NOWN = (TS + P - 1) / P; // steps a lane owns: j = p + P q
    const int e = blockIdx.x * CPB + threadIdx.x / P, b = blockIdx.y;
    const bool ok = e < E;
    const int ec = ok ? e : E - 1;
    const int nck = (L + CK - 1) / CK;
    const int B = gridDim.y;
    float A2[4], Av[4], dh[4], dA[4];
#pragma unroll
    for (int k = 0; k < 4; k++) {
        Av[k] = A[(size_t)ec * N + 4 * p + k];
        A2[k] = Av[k] * LOG2E;
        dh[k] = (dh_last && ok) ? dh_last[((size_t)b * E + ec) * N + 4 * p + k] : 0.f;
        dA[k] = 0.f;
    }
    const float bias = delta_bias ? delta_bias[ec] : 0.f, Dv = D ? D[ec] : 0.f;
    float dDacc = 0.f, dbacc = 0.f;
    const size_t row0 = (size_t)b * L;

    for (int c = nck - 1; c >= 0; c--) {
        const int tc0 = c * CK, tc1 = min(L, tc0 + CK);
        if constexpr (STG) {
            // the chunk's tiles: rows t0 .. t0+CK-1, zero past L or past E (cp.async zero-fill)
            constexpr int EPC = 16 / (int)sizeof(T), RCH = CPB / EPC, BCE = 16 / (int)sizeof(T), BCH = N / BCE;
            static_assert(CPB % EPC == 0 && N % BCE == 0, "whole 16-byte copies");
            __syncthreads(); // the previous chunk's readers are done
            for (int idx = threadIdx.x; idx < 4 * CK * RCH; idx += TPB) {
                const int w = idx / (CK * RCH), r = idx % (CK * RCH), j = r / RCH, ch = r % RCH;
                const int t = tc0 + j, ee = blockIdx.x * CPB + ch * EPC;
                const bool v = t < L && ee < E && (w != 2 || z);
                const T *src = w == 0 ? u : w == 1 ? delta : w == 2 ? z : dout;
                const T *gsrc = v ? src + ((row0 + t) * E + ee) : u;
                scan_tile::cp_async(s_u + w * CK * CPB + j * CPB + ch * EPC, gsrc, v ? 16 : 0,
                                    std::integral_constant<int, 16>{});
            }
            for (int idx = threadIdx.x; idx < 2 * CK * BCH; idx += TPB) {
                const int w = idx / (CK * BCH), r = idx % (CK * BCH), j = r / BCH, ch = r % BCH;
                const int t = tc0 + j;
                const bool v = t < L;
                const T *gsrc = v ? (w ? Cm : Bm) + (row0 + t) * N + ch * BCE : Bm;
                scan_tile::cp_async(s_B + w * CK * N + j * N + ch * BCE, gsrc, v ? 16 : 0,
                                    std::integral_constant<int, 16>{});
            }
            scan_tile::cp_commit();
            scan_tile::cp_wait<0>();
            __syncthreads();
        }
        // replay the chunk, keeping sub-checkpoints
        float4 hv = ok ? *reinterpret_cast<const float4 *>(ckpt + (((size_t)b * nck + c) * E + ec) * N + 4 * p)
                       : make_float4(0.f, 0.f, 0.f, 0.f);
        float h[4] = {hv.x, hv.y, hv.z, hv.w};
        for (int s = 0; s < CK / TS; s++) {
            const int ts0 = tc0 + s * TS;
            sub[s][threadIdx.x] = make_float4(h[0], h[1], h[2], h[3]);
            if (OPT & NO_REPLAY) continue;
            if (ts0 >= tc1) continue; // uniform
            if (s == CK / TS - 1 || ts0 + TS >= tc1) break; // last sub-chunk's end state is not needed
            float dto[NOWN];
#pragma unroll
            for (int q = 0; q < NOWN; q++) { // every step of this sub-chunk is < tc1 (above)
                const int j = p + P * q;
                const float r = j < TS ? (STG ? ldf(s_dl + (ts0 + j - tc0) * CPB + cb) : ldf(delta + (row0 + ts0 + j) * E + ec)) + bias : 0.f;
                dto[q] = softplus ? mkc_softplus(r) : r;
            }
#pragma unroll
            for (int j = 0; j < TS; j++) {
                int t = ts0 + j;
                size_t i = (row0 + t) * E + ec;
                float dt = __shfl_sync(MKC_FULL, dto[j / P], base | (j % P));
                float dtu = ok ? dt * (STG ? ldf(s_u + (t - tc0) * CPB + cb) : ldf(u + i)) : 0.f;
                float4 Bv = STG ? lds4(s_B + (t - tc0) * N + 4 * p) : ld4(Bm + (row0 + t) * N + 4 * p);
                float Bk[4] = {Bv.x, Bv.y, Bv.z, Bv.w};
#pragma unroll
                for (int k = 0; k < 4; k++) h[k] = mkc_ex2(dt * A2[k]) * h[k] + dtu * Bk[k];
            }
        }
        for (int s = CK / TS - 1; s >= 0; s--) {
            const int ts0 = tc0 + s * TS;
            if (ts0 >= tc1) continue; // uniform over the block
            float uu[TS], dt[TS], zz[TS], gg[TS], y[TS], hs[TS][4];
            // the owned steps: dt, sigmoid(delta + bias), sigmoid(z), and the old du, ddelta, dz
            float dto[NOWN], sgr[NOWN], sgz[NOWN], odu[NOWN], odd[NOWN], odz[NOWN];
#pragma unroll
            for (int q = 0; q < NOWN; q++) {
                const int j = p + P * q, t = ts0 + j;
                const bool v = j < TS && t < tc1;
                const size_t i = (row0 + (v ? t : ts0)) * E + ec;
                const int ts = (v ? t : ts0) - tc0; // STAGE_IN: tile row
                const float r = (STG ? ldf(s_dl + ts * CPB + cb) : ldf(delta + i)) + bias;
                dto[q] = v ? (softplus ? mkc_softplus(r) : r) : 0.f;
                sgr[q] = mkc_sigmoid(r);
                sgz[q] = z ? mkc_sigmoid(STG ? ldf(s_z + ts * CPB + cb) : ldf(z + i)) : 0.f;
                const bool w = v && ok && !(OPT & NO_OUT);
                odu[q] = w && du ? du[i] : 0.f;
                odd[q] = w && ddelta ? ddelta[i] : 0.f;
                odz[q] = w && dz ? dz[i] : 0.f;
            }
#pragma unroll
            for (int j = 0; j < TS; j++) {
                int t = ts0 + j;
                bool v = t < tc1;
                size_t i = (row0 + (v ? t : tc1 - 1)) * E + ec;
                const int ts = (v ? t : tc1 - 1) - tc0; // STAGE_IN: tile row
                uu[j] = (v && ok) ? (STG ? ldf(s_u + ts * CPB + cb) : ldf(u + i)) : 0.f;
                dt[j] = __shfl_sync(MKC_FULL, dto[j / P], base | (j % P)); // 0 past tc1 (owner)
                zz[j] = z ? (STG ? ldf(s_z + ts * CPB + cb) : ldf(z + i)) : 0.f;
                gg[j] = (v && ok) ? (STG ? ldf(s_g + ts * CPB + cb) : ldf(dout + i)) : 0.f;
            }
            const float4 hsv = sub[s][threadIdx.x];
            const float hst[4] = {hsv.x, hsv.y, hsv.z, hsv.w};
            {
                float hh[4] = {hst[0], hst[1], hst[2], hst[3]};
#pragma unroll
                for (int j = 0; j < TS; j++) {
                    int tc = min(ts0 + j, tc1 - 1);
                    float4 Bv = STG ? lds4(s_B + (tc - tc0) * N + 4 * p) : ld4(Bm + (row0 + tc) * N + 4 * p);
                    float4 Cv = STG ? lds4(s_C + (tc - tc0) * N + 4 * p) : ld4(Cm + (row0 + tc) * N + 4 * p);
                    float Bk[4] = {Bv.x, Bv.y, Bv.z, Bv.w}, Ck[4] = {Cv.x, Cv.y, Cv.z, Cv.w};
                    float dtu = dt[j] * uu[j], ys = 0.f;
#pragma unroll
                    for (int k = 0; k < 4; k++) {
                        hh[k] = mkc_ex2(dt[j] * A2[k]) * hh[k] + dtu * Bk[k];
                        hs[j][k] = hh[k];
                        ys += Ck[k] * hh[k];
                    }
                    y[j] = sum_lanes<P>(ys) + Dv * uu[j];
                }
            }
#pragma unroll
            for (int j = TS - 1; j >= 0; j--) {
                const int t = ts0 + j;
                float dBv[4], dCv[4];
                if (t < tc1) { // uniform
                    const size_t i = (row0 + t) * E + ec;
                    const int q = j / P; // the owner's register of step j (j is unrolled)
                    const bool own = p == j % P;
                    float g = gg[j], dy = g, dzv = 0.f;
                    if (z) {
                        float sg = __shfl_sync(MKC_FULL, sgz[q], base | (j % P));
                        dzv = g * y[j] * sg * (1.f + zz[j] * (1.f - sg));
                        dy = g * zz[j] * sg;
                    }
                    dDacc += dy * uu[j];
                    float4 Bv = STG ? lds4(s_B + (t - tc0) * N + 4 * p) : ld4(Bm + (row0 + t) * N + 4 * p);
                    float4 Cv = STG ? lds4(s_C + (t - tc0) * N + 4 * p) : ld4(Cm + (row0 + t) * N + 4 * p);
                    float Bk[4] = {Bv.x, Bv.y, Bv.z, Bv.w}, Ck[4] = {Cv.x, Cv.y, Cv.z, Cv.w};
                    float ddt_p = 0.f, du_p = 0.f;
#pragma unroll
                    for (int k = 0; k < 4; k++) {
                        float hp = j > 0 ? hs[j > 0 ? j - 1 : 0][k] : hst[k];
                        float ea = mkc_ex2(dt[j] * A2[k]);
                        dCv[k] = dy * hs[j][k];
                        dh[k] += dy * Ck[k];
                        ddt_p += dh[k] * (Av[k] * ea * hp + Bk[k] * uu[j]);
                        dA[k] += dh[k] * dt[j] * ea * hp;
                        dBv[k] = dh[k] * dt[j] * uu[j];
                        du_p += dh[k] * dt[j] * Bk[k];
                        dh[k] *= ea;
                    }
                    ddt_p = sum_lanes<P>(ddt_p);
                    du_p = sum_lanes<P>(du_p);
                    if (own) {
                        float ddt = softplus ? ddt_p * sgr[q] : ddt_p;
                        dbacc += ddt; // summed over the lanes at the end
                        if (!(OPT & NO_OUT) && ok) {
                            if (du) du[i] = odu[q] + (Dv * dy + du_p);
                            if (ddelta) ddelta[i] = odd[q] + ddt;
                            if (dz) dz[i] = odz[q] + dzv;
                        }
                    }
                } else {
#pragma unroll
                    for (int k = 0; k < 4; k++) dBv[k] = dCv[k] = 0.f;
                }
                if constexpr (!(OPT & NO_BC)) {
                    // sum dB, dC over the channels of this warp (lanes p, p+P, p+2P, ...):
                    // a reduce-scatter of the lane's 8 values (each round sends half of what
                    // is left, 4 + 2 + 1 shuffles for P = 4, where an all-reduce of all 8 took
                    // 24), then an all-reduce over the channel bits left, if any
                    float v[8];
#pragma unroll
                    for (int k = 0; k < 4; k++) v[k] = dBv[k], v[4 + k] = dCv[k];
                    constexpr int R = ilog2c(32 / P), RS_ = R < 3 ? R : 3, CNT = 8 >> RS_;
                    int base = 0;
#pragma unroll
                    for (int r = 0; r < RS_; r++) {
                        const int o = P << r, half = 8 >> (r + 1);
                        const bool up = lane & o;
#pragma unroll
                        for (int i = 0; i < half; i++) {
                            const float send = up ? v[i] : v[i + half], keep = up ? v[i + half] : v[i];
                            v[i] = keep + __shfl_xor_sync(MKC_FULL, send, o);
                        }
                        base += up ? half : 0;
                    }
#pragma unroll
                    for (int r = RS_; r < R; r++) v[0] += __shfl_xor_sync(MKC_FULL, v[0], P << r);
                    if ((lane & ~((P << RS_) - 1)) == 0) // one lane per value: the all-reduced bits 0
#pragma unroll
                        for (int i = 0; i < CNT; i++) {
                            const int idx = base + i;
                            red[warp][j][idx >> 2][4 * p + (idx & 3)] = v[i];
                        }
                }
            }
            if constexpr (!(OPT & NO_BC)) {
                __syncthreads();
                for (int idx = threadIdx.x; idx < TS * 2 * N; idx += TPB) {
                    int j = idx / (2 * N), r = idx % (2 * N), which = r / N, n = r % N;
                    int t = ts0 + j;
                    if (t < tc1) {
                        float s = 0.f;
#pragma unroll
                        for (int w = 0; w < NW; w++) s += red[w][j][which][n];
                        float *dst = which ? dCpart : dBpart;
                        dst[(((size_t)blockIdx.x * B + b) * L + t) * N + n] = s;
                    }
                }
                __syncthreads();
            }
        }
    }
    dbacc = sum_lanes<P>(dbacc); // each lane summed the steps it owns
    if (ok) {
#pragma unroll
        for (int k = 0; k < 4; k++) {
            dApart[((size_t)b * E + e) * N + 4 * p + k] = dA[k];
            if (dh0) dh0[((size_t)b * E + e) * N + 4 * p + k] += dh[k];
        }
        if (p == 0) {
            dDpart[(size_t)b * E + e] = dDacc;
            dbpart[(size_t)b * E + e] = dbacc;
        }
    }
}

// the partial sums the kernel leaves (scan.cu's backward and the kernel lab):
// out[i] += sum_{s < S} part[s * n + i], in order s = 0, 1, ...
static __global__ void sum_parts_k(float *__restrict__ out, const float *__restrict__ part, int S, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    float s = 0.f;
    for (int k = 0; k < S; k++) s += part[(size_t)k * n + i];
    out[i] += s;
}

} // namespace scan_bwd
