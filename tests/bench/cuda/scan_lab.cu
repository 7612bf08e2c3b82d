// scan_lab.cu — kernel lab for the selective scan (llm.c dev/cuda style).
//
// Numbered versions of the forward kernel, each validated against the CPU
// scan (core/scan.c, the reference) at several block sizes, timed with CUDA
// events after an L2 flush, and printed as time, GB/s and percent of the DRAM
// floor (floor = bytes that must move / measured device copy bandwidth).
//   v1  one thread per (batch, channel), all N states in registers, B/C read
//       through the read-only cache, no look-ahead. Block size free.
//   v2  the library kernel (core/cuda/scan.cu): N/4 lanes per channel (4
//       states each, y summed by shuffles), 8 steps loaded ahead, softplus /
//       silu / store spread over the lanes. 128 threads.
//   v3  v2 + B/C of each 8-step chunk staged in shared memory, the next
//       chunk's loads in flight during the current one's compute (below).
//   v4  core/cuda/scan_tile.cuh: tiles of TT steps x CPB channels of u, delta, z and the
//       rows of B, C copied into shared memory with cp.async, NST tiles in flight; dt
//       computed once per channel-step; y reduce-scattered over the lanes. Swept over
//       states per lane S, threads TPB, TT, NST and OPT (1-4: decays on the FMA pipe, of 4;
//       8: fast softplus; 16: step-group loop fully unrolled).
//       The library ran v4 4/128/32/3/0 until 2026-11-26.
//   v5  the same kernel with OPT 64 (MAP_INTERLEAVE: lane bits alternate channel, p, so lane
//       pairs share shared-memory returns of B/C rows and of dt) and 128 (PAD_ROWS: tile rows
//       padded against the pre-pass/epilogue bank conflicts); the library runs v5 2/128/32/2/216
//       (row fwd_lib_S2; fwd_lib_S4 is its 4-states-per-lane setting, 4/128/32/3/216); from
//       2026-11-27 with FAST_SIG (256) too, 2/128/32/2/472. OPT 512 DT_PAIR: dt and dt u in one
//       8-byte shared load per step (not yet run on a GPU).
//   v6  tests/bench/cuda/scan_par.cuh: parallel over time inside a channel (LPC lanes of I consecutive
//       steps each, a shuffle scan of the lanes' composites per state, states looped), B/C
//       transposed into shared memory a chunk ahead. Swept over I/LPC/WPB/OPT (OPT 1-4: decays
//       on the FMA pipe; 8 fast softplus; 256 fast sigmoid; 512 u/delta prefetch; 1024 state
//       loop unrolled by 2). Lab only: on an H100 (2026-11-27) its best configuration,
//       8/8/8/8 (then a library trial mode), took 465 us at L = 2048 where v5 took 299
//       (docs/CUDA.md has why); 8/8/8/8 is now among the rows.
//   v7  core/cuda/scan_lane.cuh: one lane per channel, all 16 states in registers, no
//       shuffles; each warp its own cp.async pipeline; a tile's steps fully unrolled, y as four
//       partial sums, XF of the 16 decays on the FMA pipe. Swept over TT/NST/XF/W (W warps per
//       block). Beside it the staged kernel at S = 16 and S = 8 with today's options (the H200's
//       16/32/32/3/0 of 2026-11-26 had none of them). Written 2026-11-27 without a GPU: its
//       phases are checked on the host (--sim), its timing not yet measured.
//   v8  core/cuda/scan_lane_bwd.cuh: the backward with one lane per channel (16 states in
//       registers; y, ddt, du lane-local; dB/dC summed over the warp's channels through a
//       shared-memory transpose per step; each warp its own cp.async pipeline over the replay
//       and walk tiles). Rows v8_TS/NST/XF/W: the whole backward (the library's checkpoint
//       sweep, the v8 kernel, the partials summed), checked against the CPU, comparable with
//       bwd_lib; v8k_: its kernel alone, comparable with bwd_k_stage. Written 2026-11-28
//       without a GPU: its phases are checked on the host (--sim), its timing not yet measured.
// Backward: the library's (checkpoint sweep + chunked recomputation + partial sums, row
// bwd_lib), then its kernel alone (bwd_kernel), the kernel as it was until 2026-11-26
// (bwd_kernel_v1, scan_bwd_v1.cuh: the same run's baseline), and the kernel with parts left
// out (scan_bwd.cuh OPT: -bc the dB/dC reduction, -out the du / ddelta / dz updates, -replay
// the chunk replay, -all3 all three), to see what each costs; then scan_bwd.cuh's STAGE_IN
// variant (the chunk's inputs staged in shared memory): its kernel timed (bwd_k_stage), and the
// whole backward with it checked against the CPU and timed (bwd_stage, comparable with bwd_lib).
//
// usage: scan_lab [--quick] [--csv FILE] [--only PREFIX[,PREFIX...]] | scan_lab --sim
//   --only: measure only the rows whose names start with one of the prefixes (e.g. fwd_lib,v6)
//   --sim: no device needed: v7's and v8's copy and step phases run on the host, in the kernels'
//          order, against the CPU scan and its backward on odd shapes (PASS/FAIL lines;
//          tests/test_scan_lab_sim.sh)
//   shapes: B=8 E=1536 N=16 at L = 512, 2048, 8192 (Mamba paper's shape at 2048).
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <vector>
#include <algorithm>

extern "C" {
#include "core/scan.h"
#include "core/util.h"
}
#include "core/cuda/kernels.h"
#include "core/cuda/scan_bwd.cuh"
#include "core/cuda/scan_tile.cuh"
#include "tests/bench/cuda/scan_bwd_v1.cuh"
#include "tests/bench/cuda/scan_par.cuh"
#include "core/cuda/scan_lane.cuh"
#include "core/cuda/scan_lane_bwd.cuh"

#define CK(x)                                                                                   \
    do {                                                                                        \
        cudaError_t e_ = (x);                                                                   \
        if (e_ != cudaSuccess) {                                                                \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

// ---------------------------------------------------------------- v1
template <int N>
__global__ void scan_fwd_v1(float *out, const float *u, const float *delta, const float *A, const float *Bm,
                            const float *Cm, const float *D, const float *z, const float *delta_bias, int L, int E) {
    int e = blockIdx.x * blockDim.x + threadIdx.x, b = blockIdx.y;
    if (e >= E) return;
    float h[N], a[N];
    for (int n = 0; n < N; n++) {
        h[n] = 0.f;
        a[n] = A[(size_t)e * N + n] * 1.4426950408889634f;
    }
    float bias = delta_bias[e], Dv = D[e];
    for (int t = 0; t < L; t++) {
        size_t i = ((size_t)b * L + t) * E + e;
        float r = delta[i] + bias;
        float dt = r > 20.f ? r : log1pf(__expf(r));
        float uu = u[i], y = 0.f;
        const float *bt = Bm + ((size_t)b * L + t) * N, *ct = Cm + ((size_t)b * L + t) * N;
#pragma unroll
        for (int n = 0; n < N; n++) {
            h[n] = exp2f(dt * a[n]) * h[n] + dt * uu * __ldg(bt + n);
            y += __ldg(ct + n) * h[n];
        }
        float zv = z[i];
        out[i] = (y + Dv * uu) * zv / (1.f + __expf(-zv));
    }
}

// ---------------------------------------------------------------- v3
// v2 measured latency-bound (0.8 us per step per warp on an H100, 8 % of the
// DRAM floor): B[t], C[t] were loaded inside the step loop behind a branch,
// and each 8-step chunk waited for its own u/delta/z loads. v3:
//   - B/C of a chunk staged once in shared memory (one float4 per thread),
//   - the next chunk's u, delta, z, B, C loaded into registers while the
//     current chunk computes (double buffering), no branch in the step loop.
// Same lane split and epilogue as v2. (Measured 2026-11-26 on an H200: 362 us at L = 2048,
// 26 % of the floor, 4.6x v2; v4 went further.)
template <int P>
__device__ __forceinline__ float v3_pick(const float (&a)[8], int j0, int p) {
    float r = a[j0 < 8 ? j0 : 7];
#pragma unroll
    for (int q = 1; q < P; q++)
        if (p == q && j0 + q < 8) r = a[j0 + q];
    return r;
}

template <int P>
__global__ void __launch_bounds__(128) scan_fwd_v3(float *__restrict__ out, const float *__restrict__ u,
                                                   const float *__restrict__ delta, const float *__restrict__ A,
                                                   const float *__restrict__ Bm, const float *__restrict__ Cm,
                                                   const float *__restrict__ D, const float *__restrict__ z,
                                                   const float *__restrict__ delta_bias, int L, int E) {
    constexpr int N = 4 * P, CPB = 128 / P, TF = 8, NQ = TF * 2 * P; // float4 quads of B and C per chunk
    constexpr int QPT = (NQ + 127) / 128;                          // quads per thread
    __shared__ float4 sBC[2][TF][2 * P];
    const int tid = threadIdx.x, lane = tid & 31, p = tid % P;
    const int e = blockIdx.x * CPB + tid / P, b = blockIdx.y;
    const bool ok = e < E;
    const int ec = ok ? e : E - 1, base = lane & ~(P - 1);
    const size_t row0 = (size_t)b * L;
    float A2[4], h[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int k = 0; k < 4; k++) A2[k] = A[(size_t)ec * N + 4 * p + k] * 1.4426950408889634f;
    const float bias = delta_bias[ec], Dv = D[ec];
    float nu[TF], nd[TF], nz[TF];
    float4 nq[QPT];
    auto fetch = [&](int t0) {
#pragma unroll
        for (int j = 0; j < TF; j++) {
            int t = min(t0 + j, L - 1);
            size_t i = (row0 + t) * E + ec;
            nu[j] = u[i];
            nd[j] = delta[i];
            nz[j] = z[i];
        }
#pragma unroll
        for (int k = 0; k < QPT; k++) {
            int q = tid + 128 * k;
            if (q < NQ) {
                int j = q / (2 * P), r = q % (2 * P), t = min(t0 + j, L - 1);
                const float *src = r < P ? Bm + (row0 + t) * N + 4 * r : Cm + (row0 + t) * N + 4 * (r - P);
                nq[k] = __ldg(reinterpret_cast<const float4 *>(src));
            }
        }
    };
    fetch(0);
    int buf = 0;
    for (int t0 = 0; t0 < L; t0 += TF, buf ^= 1) {
        float uu[TF], dd[TF], zz[TF], dt[TF], y[TF];
#pragma unroll
        for (int j = 0; j < TF; j++) {
            bool v = t0 + j < L && ok;
            uu[j] = v ? nu[j] : 0.f;
            dd[j] = nd[j] + bias;
            zz[j] = nz[j];
        }
#pragma unroll
        for (int k = 0; k < QPT; k++) {
            int q = tid + 128 * k;
            if (q < NQ) sBC[buf][q / (2 * P)][q % (2 * P)] = nq[k];
        }
        __syncthreads();
        if (t0 + TF < L) fetch(t0 + TF); // in flight while this chunk computes
#pragma unroll
        for (int j0 = 0; j0 < TF; j0 += P) {
            float r = v3_pick<P>(dd, j0, p);
            float sp = r > 20.f ? r : log1pf(__expf(r));
#pragma unroll
            for (int q = 0; q < P && j0 + q < TF; q++) dt[j0 + q] = __shfl_sync(0xffffffffu, sp, base | q);
        }
#pragma unroll
        for (int j = 0; j < TF; j++) {
            float d = t0 + j < L ? dt[j] : 0.f;
            float4 Bv = sBC[buf][j][p], Cv = sBC[buf][j][P + p];
            float dtu = d * uu[j];
            float e0, e1, e2, e3;
            asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e0) : "f"(d * A2[0]));
            asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e1) : "f"(d * A2[1]));
            asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e2) : "f"(d * A2[2]));
            asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e3) : "f"(d * A2[3]));
            h[0] = e0 * h[0] + dtu * Bv.x;
            h[1] = e1 * h[1] + dtu * Bv.y;
            h[2] = e2 * h[2] + dtu * Bv.z;
            h[3] = e3 * h[3] + dtu * Bv.w;
            float ys = Cv.x * h[0] + Cv.y * h[1] + Cv.z * h[2] + Cv.w * h[3];
#pragma unroll
            for (int o = 1; o < P; o <<= 1) ys += __shfl_xor_sync(0xffffffffu, ys, o);
            y[j] = ys;
        }
#pragma unroll
        for (int j0 = 0; j0 < TF; j0 += P) {
            int t = t0 + j0 + p;
            float ys = v3_pick<P>(y, j0, p), us = v3_pick<P>(uu, j0, p), zs = v3_pick<P>(zz, j0, p);
            if (ok && t < L && j0 + p < TF) out[(row0 + t) * E + ec] = (ys + Dv * us) * zs / (1.f + __expf(-zs));
        }
    }
}

// ---------------------------------------------------------------- harness
static float *dev_rand(std::vector<float> &h, size_t n, float lo, float hi, mk_rng *r) {
    h.resize(n);
    for (size_t i = 0; i < n; i++) h[i] = lo + (hi - lo) * mk_rng_uniform(r);
    float *d;
    CK(cudaMalloc(&d, n * sizeof(float)));
    CK(cudaMemcpy(d, h.data(), n * sizeof(float), cudaMemcpyHostToDevice));
    return d;
}
static double rel_err(const float *a, const float *b, size_t n) {
    double md = 0, mr = 1e-6;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > md || d != d) md = d != d ? INFINITY : d;
        mr = fmax(mr, fabs((double)b[i]));
    }
    return md / mr;
}

static void *flush_buf = NULL;
static size_t flush_n = 0;
static void l2_flush() { CK(cudaMemsetAsync(flush_buf, 0, flush_n, (cudaStream_t)mkc_stream())); }

// median time in microseconds of fn() over reps, L2 flushed before each
template <class F>
static double time_us(F fn, int reps) {
    cudaStream_t s = (cudaStream_t)mkc_stream();
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    fn(); // warm-up
    std::vector<double> ts;
    for (int r = 0; r < reps; r++) {
        l2_flush();
        CK(cudaEventRecord(a, s));
        fn();
        CK(cudaEventRecord(b, s));
        CK(cudaEventSynchronize(b));
        float ms;
        CK(cudaEventElapsedTime(&ms, a, b));
        ts.push_back(ms * 1e3);
    }
    CK(cudaEventDestroy(a));
    CK(cudaEventDestroy(b));
    std::sort(ts.begin(), ts.end());
    return ts[ts.size() / 2];
}

// --sim: v7 (scan_lane.cuh) on the host against the CPU scan. Shapes with a part-filled last
// warp (E = 72: 32 + 32 + 8 channels), L not a multiple of the tile (tails zero-filled), h0 in
// and h_last out, with and without z, D and the dt bias; random A (not the S4D-real values).
static double sim_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) num += (double)(a[i] - b[i]) * (a[i] - b[i]), den += (double)b[i] * b[i];
    return sqrt(num / (den > 1e-30 ? den : 1e-30));
}
// n uniform draws in [lo, hi)
static std::vector<float> sim_rnd(size_t n, float lo, float hi, mk_rng *r) {
    std::vector<float> v(n);
    for (auto &x : v) x = lo + (hi - lo) * mk_rng_uniform(r);
    return v;
}
template <int TT, int NST, int XF>
static int sim_case(int B, int L, int E, int full, const char *tag, mk_rng *r) {
    const int N = 16;
    const size_t BLE = (size_t)B * L * E, BLN = (size_t)B * L * N, EN = (size_t)E * N, BEN = (size_t)B * E * N;
    std::vector<float> u = sim_rnd(BLE, -1, 1, r), dl = sim_rnd(BLE, -1, 1, r), Bm = sim_rnd(BLN, -1, 1, r),
                       Cm = sim_rnd(BLN, -1, 1, r), A = sim_rnd(EN, -3, -0.05f, r), D = sim_rnd(E, 0.5f, 1.5f, r),
                       z = sim_rnd(BLE, -2, 2, r), bias = sim_rnd(E, -4, 0, r), h0 = sim_rnd(BEN, -0.5f, 0.5f, r);
    std::vector<float> ref(BLE), got(BLE, NAN), hr(BEN), hg(BEN, NAN);
    ssm_scan_dims sd = {B, L, E, N, 1};
    ssm_scan_forward(ref.data(), hr.data(), u.data(), dl.data(), A.data(), Bm.data(), Cm.data(), full ? D.data() : NULL,
                     full ? z.data() : NULL, full ? bias.data() : NULL, h0.data(), sd);
    scan_lane::args a = {got.data(), hg.data(), NULL, u.data(), dl.data(), A.data(), Bm.data(), Cm.data(),
                         full ? D.data() : NULL, full ? z.data() : NULL, full ? bias.data() : NULL, h0.data(), B, L, E,
                         1};
    scan_lane::simulate<TT, NST, XF>(a);
    const double eo = sim_err(got.data(), ref.data(), BLE), eh = sim_err(hg.data(), hr.data(), BEN);
    const int ok = eo < 1e-5 && eh < 1e-5;
    printf("%s scan_lab_sim.v7_%d_%d_%d_%s  B %d L %d E %d: out err %.1e, h_last err %.1e (limit 1e-5)\n",
           ok ? "PASS" : "FAIL", TT, NST, XF, tag, B, L, E, eo, eh);
    return ok;
}
// the checkpoint sweep (out NULL, ckpt): the state before every 64th step against the CPU scan
// run over that prefix (its h_last), h0 in
template <int TT, int NST, int XF>
static int sim_ckpt(int B, int L, int E, mk_rng *r) {
    const int N = 16, CKS = scan_lane::CK, nck = (L + CKS - 1) / CKS;
    const size_t BLE = (size_t)B * L * E, BLN = (size_t)B * L * N, EN = (size_t)E * N, BEN = (size_t)B * E * N;
    std::vector<float> u = sim_rnd(BLE, -1, 1, r), dl = sim_rnd(BLE, -1, 1, r), Bm = sim_rnd(BLN, -1, 1, r),
                       A = sim_rnd(EN, -3, -0.05f, r), bias = sim_rnd(E, -4, 0, r), h0 = sim_rnd(BEN, -0.5f, 0.5f, r);
    std::vector<float> ck((size_t)nck * BEN, NAN), want((size_t)nck * BEN), hp(BEN), scratch(BLE);
    for (int k = 0; k < nck; k++) { /* the CPU scan over the first k CK steps of every row */
        if (k == 0) {
            hp = h0;
        } else {
            const int Lp = k * CKS;
            std::vector<float> up((size_t)B * Lp * E), dp((size_t)B * Lp * E), bp((size_t)B * Lp * N);
            for (int b = 0; b < B; b++) {
                memcpy(up.data() + (size_t)b * Lp * E, u.data() + (size_t)b * L * E, sizeof(float) * Lp * E);
                memcpy(dp.data() + (size_t)b * Lp * E, dl.data() + (size_t)b * L * E, sizeof(float) * Lp * E);
                memcpy(bp.data() + (size_t)b * Lp * N, Bm.data() + (size_t)b * L * N, sizeof(float) * Lp * N);
            }
            ssm_scan_dims sd = {B, Lp, E, N, 1};
            ssm_scan_forward(scratch.data(), hp.data(), up.data(), dp.data(), A.data(), bp.data(), bp.data(), NULL, NULL,
                             bias.data(), h0.data(), sd);
        }
        for (int b = 0; b < B; b++) /* (B, nck, E, N) */
            memcpy(want.data() + ((size_t)b * nck + k) * E * N, hp.data() + (size_t)b * E * N, sizeof(float) * E * N);
    }
    scan_lane::args a = {NULL, NULL, ck.data(), u.data(), dl.data(), A.data(), Bm.data(), NULL,
                         NULL, NULL, bias.data(), h0.data(), B, L, E, 1};
    scan_lane::simulate<TT, NST, XF>(a);
    const double e = sim_err(ck.data(), want.data(), ck.size());
    const int ok = e < 1e-5;
    printf("%s scan_lab_sim.v7_%d_%d_%d_ckpt  B %d L %d E %d: %d checkpoints, err %.1e (limit 1e-5)\n",
           ok ? "PASS" : "FAIL", TT, NST, XF, B, L, E, nck, e);
    return ok;
}

// v8 (scan_lane_bwd.cuh) on the host against the CPU backward: the checkpoints from v7's sweep
// (checked above against CPU prefix scans), then the kernel's phases lane by lane, the partials
// summed in order as the launcher does. du, ddelta, dz and dh0 start from random values on both
// sides (the contract is +=); dB/dC partials start as NaN, so a row the kernel misses shows.
template <int TS, int NST, int XF>
static int sim_bwd(int B, int L, int E, int full, const char *tag, mk_rng *r) {
    const int N = 16, nck = (L + scan_lane::CK - 1) / scan_lane::CK, G = (E + 31) / 32;
    const size_t BLE = (size_t)B * L * E, BLN = (size_t)B * L * N, EN = (size_t)E * N, BEN = (size_t)B * E * N;
    std::vector<float> u = sim_rnd(BLE, -1, 1, r), dl = sim_rnd(BLE, -1, 1, r), Bm = sim_rnd(BLN, -1, 1, r),
                       Cm = sim_rnd(BLN, -1, 1, r), A = sim_rnd(EN, -3, -0.05f, r), D = sim_rnd(E, 0.5f, 1.5f, r),
                       z = sim_rnd(BLE, -2, 2, r), bias = sim_rnd(E, -4, 0, r), h0 = sim_rnd(BEN, -0.5f, 0.5f, r),
                       g = sim_rnd(BLE, -1, 1, r), dhl = sim_rnd(BEN, -0.5f, 0.5f, r);
    const float *Dp = full ? D.data() : NULL, *zp = full ? z.data() : NULL, *bp = full ? bias.data() : NULL;
    /* the reference: old values + the CPU backward */
    std::vector<float> odu = sim_rnd(BLE, -1, 1, r), odd = sim_rnd(BLE, -1, 1, r), odz = sim_rnd(BLE, -1, 1, r),
                       odh0 = sim_rnd(BEN, -1, 1, r);
    std::vector<float> rdu = odu, rdd = odd, rdz = odz, rdh0 = odh0, rdA(EN, 0.f), rdB(BLN, 0.f), rdC(BLN, 0.f),
                       rdD(E, 0.f), rdb(E, 0.f);
    ssm_scan_dims sd = {B, L, E, N, 1};
    ssm_scan_backward(rdu.data(), rdd.data(), rdA.data(), rdB.data(), rdC.data(), rdD.data(), zp ? rdz.data() : NULL,
                      rdb.data(), rdh0.data(), g.data(), dhl.data(), u.data(), dl.data(), A.data(), Bm.data(),
                      Cm.data(), Dp, zp, bp, h0.data(), sd);
    /* the device path, simulated */
    std::vector<float> ck((size_t)nck * BEN, NAN);
    scan_lane::args fa = {NULL, NULL, ck.data(), u.data(), dl.data(), A.data(), Bm.data(), NULL,
                          NULL, NULL, bp, h0.data(), B, L, E, 1};
    scan_lane::simulate<32, 3, 0>(fa);
    std::vector<float> gdu = odu, gdd = odd, gdz = odz, gdh0 = odh0, pA(BEN, NAN), pD((size_t)B * E, NAN),
                       pb((size_t)B * E, NAN), pB((size_t)G * BLN, NAN), pC((size_t)G * BLN, NAN);
    scan_lane_bwd::args a = {gdu.data(), gdd.data(), zp ? gdz.data() : NULL, gdh0.data(), pA.data(), pD.data(),
                             pb.data(), pB.data(), pC.data(), g.data(), dhl.data(), u.data(), dl.data(), A.data(),
                             Bm.data(), Cm.data(), Dp, zp, bp, ck.data(), B, L, E, 1};
    scan_lane_bwd::simulate<TS, NST, XF>(a);
    /* the launcher's sums, in order (scan_bwd::sum_parts_k) */
    std::vector<float> gA(EN, 0.f), gD(E, 0.f), gb(E, 0.f), gB(BLN, 0.f), gC(BLN, 0.f);
    for (int b = 0; b < B; b++) {
        for (size_t i = 0; i < EN; i++) gA[i] += pA[(size_t)b * EN + i];
        for (int i = 0; i < E; i++) gD[i] += pD[(size_t)b * E + i], gb[i] += pb[(size_t)b * E + i];
    }
    for (int k = 0; k < G; k++)
        for (size_t i = 0; i < BLN; i++) gB[i] += pB[(size_t)k * BLN + i], gC[i] += pC[(size_t)k * BLN + i];
    const double er[9] = {sim_err(gdu.data(), rdu.data(), BLE),   sim_err(gdd.data(), rdd.data(), BLE),
                          zp ? sim_err(gdz.data(), rdz.data(), BLE) : 0.0, sim_err(gdh0.data(), rdh0.data(), BEN),
                          sim_err(gA.data(), rdA.data(), EN),      sim_err(gB.data(), rdB.data(), BLN),
                          sim_err(gC.data(), rdC.data(), BLN),     Dp ? sim_err(gD.data(), rdD.data(), E) : 0.0,
                          bp ? sim_err(gb.data(), rdb.data(), E) : 0.0};
    const char *nm[9] = {"du", "ddelta", "dz", "dh0", "dA", "dB", "dC", "dD", "dbias"};
    double worst = 0;
    int wi = 0;
    for (int k = 0; k < 9 && !isnan(worst); k++) /* a NaN (a partial never written) is the worst */
        if (isnan(er[k]) || er[k] > worst) worst = er[k], wi = k;
    const int ok = worst < 1e-5;
    printf("%s scan_lab_sim.v8_%d_%d_%d_%s  B %d L %d E %d: worst of 9 gradients %s err %.1e (limit 1e-5)\n",
           ok ? "PASS" : "FAIL", TS, NST, XF, tag, B, L, E, nm[wi], worst);
    return ok;
}

static int run_sim(void) {
    mk_rng r;
    mk_rng_seed(&r, 7);
    int ok = 1;
    ok &= sim_case<32, 3, 0>(2, 77, 72, 1, "full", &r);
    ok &= sim_case<32, 3, 4>(2, 77, 72, 1, "full", &r);
    ok &= sim_case<16, 2, 16>(3, 40, 40, 1, "full", &r);
    ok &= sim_case<16, 4, 2>(1, 150, 64, 0, "plain", &r); /* no z, D or bias */
    ok &= sim_case<32, 2, 4>(2, 5, 36, 1, "short", &r);   /* L below one tile */
    ok &= sim_ckpt<32, 3, 2>(2, 200, 40, &r);             /* the backward's checkpoint sweep */
    ok &= sim_ckpt<16, 2, 0>(1, 130, 36, &r);
    ok &= sim_bwd<4, 3, 0>(2, 150, 72, 1, "full", &r);  /* 3 chunks, the last of 22 steps; a part-filled warp */
    ok &= sim_bwd<8, 2, 4>(2, 150, 72, 1, "full", &r);
    ok &= sim_bwd<4, 2, 16>(1, 67, 40, 0, "plain", &r); /* no z, D or bias; a last chunk of 3 steps */
    ok &= sim_bwd<8, 3, 2>(2, 5, 36, 1, "short", &r);   /* L below one sub-chunk: W items only */
    ok &= sim_bwd<4, 2, 0>(1, 128, 32, 1, "whole", &r); /* L a multiple of the chunk */
    /* the FMA-pipe 2^x (scan_tile::ex2_fma, host build) against exp2 over the decays' range */
    double worst = 0;
    for (int i = 0; i <= 200000; i++) {
        const float x = -60.f + 60.f * i / 200000.f, p = scan_tile::ex2_fma(x), q = exp2f(x);
        const double e = fabs((double)p - q) / q;
        if (e > worst) worst = e;
    }
    printf("%s scan_lab_sim.ex2_fma  max relative error %.1e over [-60, 0] (limit 1e-6)\n",
           worst < 1e-6 ? "PASS" : "FAIL", worst);
    ok &= worst < 1e-6;
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    int quick = 0;
    if (argc == 2 && !strcmp(argv[1], "--sim")) return run_sim();
    const char *csv = NULL, *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--csv") && i + 1 < argc) csv = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else {
            fprintf(stderr, "usage: scan_lab [--quick] [--csv FILE] [--only PREFIX[,PREFIX...]] | scan_lab --sim\n");
            return 2;
        }
    }
    if (mkc_init()) {
        printf("SKIP scan_lab: skipped: no CUDA device (%s)\n", mkc_last_error());
        return 0;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("# device %s  sm_%d%d  %d SMs  L2 %d MB\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount,
           prop.l2CacheSize >> 20);
    flush_n = (size_t)prop.l2CacheSize * 4;
    CK(cudaMalloc(&flush_buf, flush_n));

    // measured copy bandwidth: 1 GiB device to device, bytes read + written
    size_t cb = (size_t)1 << 30;
    void *c0, *c1;
    CK(cudaMalloc(&c0, cb));
    CK(cudaMalloc(&c1, cb));
    CK(cudaMemset(c0, 1, cb));
    double copy_us = time_us([&] { CK(cudaMemcpyAsync(c1, c0, cb, cudaMemcpyDeviceToDevice, (cudaStream_t)mkc_stream())); }, 10);
    double bw = 2.0 * cb / (copy_us * 1e-6); // bytes/s
    CK(cudaFree(c0));
    CK(cudaFree(c1));
    printf("# measured copy bandwidth %.0f GB/s (1 GiB D2D, read+write)\n", bw / 1e9);

    FILE *cf = csv ? fopen(csv, "w") : NULL;
    if (cf) fprintf(cf, "device,kernel,B,E,L,N,block,time_us,GBps,floor_us,pct_floor,err\n");
    printf("%-18s %5s %5s %5s %3s %5s %10s %8s %9s %7s %9s\n", "kernel", "B", "E", "L", "N", "block", "time_us",
           "GB/s", "floor_us", "%floor", "err");

    // --only: a row runs when its name starts with one of the comma-separated prefixes
    auto wanted = [&](const char *name) {
        if (!only) return true;
        for (const char *p = only; *p;) {
            const char *q = strchr(p, ',');
            size_t n = q ? (size_t)(q - p) : strlen(p);
            if (n && !strncmp(name, p, n)) return true;
            if (!q) break;
            p = q + 1;
        }
        return false;
    };
    // a block of rows runs when some prefix could select one of its rows (the prefix starts with
    // the block's stem, or the stem with the prefix)
    auto any_wanted = [&](const char *stem) {
        if (!only) return true;
        const size_t m = strlen(stem);
        for (const char *p = only; *p;) {
            const char *q = strchr(p, ',');
            size_t n = q ? (size_t)(q - p) : strlen(p);
            if (n && !strncmp(stem, p, n < m ? n : m)) return true;
            if (!q) break;
            p = q + 1;
        }
        return false;
    };
    const int B = 8, E = 1536, N = 16;
    const int Ls[3] = {512, 2048, 8192};
    mk_rng r;
    mk_rng_seed(&r, 42);
    for (int li = 0; li < 3; li++) {
        const int L = Ls[li];
        if (quick && L != 2048) continue;
        size_t BLE = (size_t)B * L * E, BLN = (size_t)B * L * N, EN = (size_t)E * N;
        std::vector<float> hu, hd, hB, hC, hA, hD, hz, hb, hg;
        float *u = dev_rand(hu, BLE, -1, 1, &r), *dl = dev_rand(hd, BLE, -1, 1, &r), *Bm = dev_rand(hB, BLN, -1, 1, &r),
              *Cm = dev_rand(hC, BLN, -1, 1, &r), *Dd = dev_rand(hD, E, 0.5f, 1.5f, &r),
              *z = dev_rand(hz, BLE, -2, 2, &r), *db = dev_rand(hb, E, -6.9f, -2.3f, &r),
              *dout = dev_rand(hg, BLE, -1, 1, &r);
        hA.resize(EN);
        for (int e = 0; e < E; e++)
            for (int n = 0; n < N; n++) hA[(size_t)e * N + n] = -(float)(n + 1); // S4D-real
        float *A;
        CK(cudaMalloc(&A, EN * 4));
        CK(cudaMemcpy(A, hA.data(), EN * 4, cudaMemcpyHostToDevice));
        float *out;
        CK(cudaMalloc(&out, BLE * 4));
        // CPU reference (optimised CPU scan, all cores)
        std::vector<float> ref(BLE), got(BLE);
        ssm_scan_dims sd = {B, L, E, N, 1};
        double tc = mk_time();
        ssm_scan_forward(ref.data(), NULL, hu.data(), hd.data(), hA.data(), hB.data(), hC.data(), hD.data(), hz.data(),
                         hb.data(), NULL, sd);
        tc = mk_time() - tc;
        printf("# L %d: CPU reference forward %.1f ms\n", L, tc * 1e3);

        const double fwd_bytes = 4.0 * (4.0 * BLE + 2.0 * BLN + 2.0 * EN + 2.0 * E); // u, delta, z, out; B, C; A; D, bias
        const double bwd_bytes = 4.0 * (7.0 * BLE + 4.0 * BLN + 2.0 * EN + 4.0 * E); // + dout, du, ddelta, dz; dB, dC
        auto row = [&](const char *k, int blk, double us, double bytes, double err) {
            double fl = bytes / bw * 1e6;
            // err < 0: not checked (the backward beyond L = 2048, and the ablations)
            char es[16] = "unchecked";
            if (err >= 0) snprintf(es, sizeof es, "%.1e", err);
            printf("%-18s %5d %5d %5d %3d %5d %10.1f %8.0f %9.1f %6.1f%% %9s\n", k, B, E, L, N, blk, us,
                   bytes / (us * 1e-6) / 1e9, fl, 100.0 * fl / us, es);
            if (cf)
                fprintf(cf, "%s,%s,%d,%d,%d,%d,%d,%.2f,%.1f,%.2f,%.2f,%.2e\n", prop.name, k, B, E, L, N, blk, us,
                        bytes / (us * 1e-6) / 1e9, fl, 100.0 * fl / us, err);
        };
        const int reps = quick ? 5 : 10;
        // run once; a configuration the device refuses to launch is reported (false)
        auto launched = [&](const char *name, auto launch) {
            launch();
            cudaError_t le = cudaStreamSynchronize((cudaStream_t)mkc_stream());
            if (le == cudaSuccess) le = cudaGetLastError();
            if (le != cudaSuccess) printf("%-18s launch failed: %s\n", name, cudaGetErrorString(le));
            return le == cudaSuccess;
        };
        // one measurement: clear, run once, check against the CPU reference, time
        auto measure = [&](const char *name, int blk, auto launch) {
            if (!wanted(name)) return;
            CK(cudaMemset(out, 0, BLE * 4));
            if (!launched(name, launch)) return;
            CK(cudaMemcpy(got.data(), out, BLE * 4, cudaMemcpyDeviceToHost));
            double err = rel_err(got.data(), ref.data(), BLE);
            double us = time_us(launch, reps);
            char nm[64];
            snprintf(nm, sizeof nm, "%s%s", name, err < 1e-4 ? "" : "!BAD");
            row(nm, blk, us, fwd_bytes, err);
        };
        // v1 at several block sizes
        const int blocks[4] = {64, 128, 256, 512};
        for (int bi = 0; bi < 4; bi++) {
            int blk = blocks[bi];
            dim3 grid((E + blk - 1) / blk, B);
            measure("fwd_v1", blk, [&] {
                scan_fwd_v1<16><<<grid, blk, 0, (cudaStream_t)mkc_stream()>>>(out, u, dl, A, Bm, Cm, Dd, z, db, L, E);
            });
        }
        // v2 = the library's register kernel (forced), then the library as it runs (staged kernel)
        static const char *const v2name[3] = {"fwd_v2", "fwd_lib_S4", "fwd_lib_S2"};
        for (int mode = 0; mode < 3; mode++) { // 0: register kernel; 1, 2: staged, 4 or 2 states per lane
            mkc_scan_set_tiled(mode == 0 ? 0 : mode == 1 ? 4 : 2);
            measure(v2name[mode], 128, [&] { mkc_scan_forward(out, NULL, u, dl, A, Bm, Cm, Dd, z, db, NULL, B, L, E, N, 1); });
        }
        mkc_scan_set_tiled(-1); // the library's default
        // v3 (lab only, N = 16: P = 4)
        {
            dim3 grid((E + 31) / 32, B);
            measure("fwd_v3", 128, [&] {
                scan_fwd_v3<4><<<grid, 128, 0, (cudaStream_t)mkc_stream()>>>(out, u, dl, A, Bm, Cm, Dd, z, db, L, E);
            });
        }
        // v4: the staged kernel, configurations side by side (the library's is v4 S4/128/32/3/0)
        {
            cudaStream_t st = (cudaStream_t)mkc_stream();
#define V4(S_, TPB_, TT_, NST_, OPT_)                                                                        \
    measure("v4_" #S_ "/" #TPB_ "/" #TT_ "/" #NST_ "/" #OPT_, 0, [&] {                                           \
        scan_tile::launch<16, S_, TPB_, TT_, NST_, OPT_, float>(out, NULL, NULL, u, dl, A, Bm, Cm, Dd, z, db, \
                                                                NULL, B, L, E, 1, st);                        \
    })
            // the staged kernel as it ran until 2026-11-26 (lane = channel * P + p, unpadded rows)
            V4(4, 128, 32, 3, 0);
            V4(2, 128, 32, 3, 0);
            V4(4, 128, 32, 3, 16);
            // v5: OPT 64 MAP_INTERLEAVE (lane bits alternate channel, p), 128 PAD_ROWS, 8 FAST_SP,
            // 16 UNROLL_ALL, 256 FAST_SIG; the library runs 4/128/32/3/216 (S = 2: 2/128/32/2/216)
            V4(4, 128, 32, 3, 192);
            V4(4, 128, 32, 3, 216);
            V4(4, 128, 32, 2, 216);
            V4(4, 128, 32, 3, 472);
            V4(4, 128, 32, 3, 88); // 216 without the padding
            V4(4, 128, 16, 3, 216);
            V4(2, 128, 32, 2, 192);
            V4(2, 128, 32, 2, 216);
            V4(2, 128, 32, 2, 472);
            V4(2, 128, 32, 3, 216);
            V4(2, 128, 16, 3, 216);
            V4(2, 128, 32, 2, 88);
            V4(2, 64, 32, 2, 216);
            V4(4, 128, 32, 3, 217); // + 1 of 4 decays on the FMA pipe
            // DT_PAIR (512): dt and dt u in one 8-byte load per step; the library's and with FAST_SIG
            V4(2, 128, 32, 2, 728);
            V4(2, 128, 32, 2, 984);
            V4(4, 128, 32, 3, 728);
            // one lane per channel (S = 16) and two (S = 8) with today's options: fast softplus and
            // sigmoid, the step loop unrolled (280); the H200's 16/32/32/3/0 had none of them
            V4(16, 32, 32, 3, 280);
            V4(16, 64, 32, 2, 280);
            V4(8, 64, 32, 2, 472);
#undef V4
        }
        // v7: one lane per channel, its own pipeline per warp (scan_lane.cuh); TT/NST/XF/W
        if (scan_lane::lane_usable(u, dl, z, Bm, Cm, E, N)) {
            cudaStream_t st = (cudaStream_t)mkc_stream();
            scan_lane::args la = {out, NULL, NULL, u, dl, A, Bm, Cm, Dd, z, db, NULL, B, L, E, 1};
#define V7(TT_, NST_, XF_, W_)                                                                   \
    measure("v7_" #TT_ "/" #NST_ "/" #XF_ "/" #W_, 32 * W_, [&] { scan_lane::launch<TT_, NST_, XF_, W_>(la, st); })
            V7(32, 3, 0, 1);
            V7(32, 3, 2, 1);
            V7(32, 3, 4, 1);
            V7(32, 3, 6, 1);
            V7(32, 2, 4, 1);
            V7(16, 4, 4, 1);
            V7(32, 3, 4, 2);
            V7(16, 3, 4, 4);
#undef V7
        }
        // v6: time-parallel (scan_par.cuh), lab only: slower than v5 (docs/CUDA.md, 2026-11-27)
        {
            cudaStream_t st = (cudaStream_t)mkc_stream();
#define V6(I_, LPC_, WPB_, OPT_)                                                                          \
    measure("v6_" #I_ "/" #LPC_ "/" #WPB_ "/" #OPT_, 0, [&] {                                                  \
        scan_par::launch<16, I_, LPC_, WPB_, OPT_>(out, NULL, u, dl, A, Bm, Cm, Dd, z, db, NULL, B, L, E, 1, st); \
    })
            V6(16, 8, 4, 0);
            V6(16, 8, 4, 264);  // + fast sigmoid
            V6(16, 8, 4, 1032); // + state loop unrolled by 2
            V6(16, 8, 4, 10);   // 2 of 4 decays on the FMA pipe
            V6(16, 8, 2, 8);
            V6(16, 8, 8, 8);
            V6(16, 4, 4, 8);
            V6(16, 4, 8, 8);
            V6(16, 16, 4, 8);
            V6(8, 8, 4, 8);
            V6(8, 8, 4, 9);
            V6(8, 16, 4, 8);
            V6(8, 16, 8, 8);
            V6(8, 8, 8, 8);
            V6(8, 4, 4, 8);
            V6(8, 4, 8, 8);
            V6(8, 8, 8, 520);
            V6(4, 8, 4, 8);
            V6(4, 16, 4, 8);
#undef V6
        }
        // backward (library); validated against the CPU backward on du at L <= 2048
        const bool want_v8 = any_wanted("v8");
        if (any_wanted("bwd") || want_v8) {
            float *g[8];
            size_t gn[8] = {BLE, BLE, EN, BLN, BLN, (size_t)E, BLE, (size_t)E};
            for (int k = 0; k < 8; k++) CK(cudaMalloc(&g[k], gn[k] * 4));
            auto run = [&] {
                mkc_scan_backward(g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], NULL, dout, NULL, u, dl, A, Bm, Cm,
                                  Dd, z, db, NULL, B, L, E, N, 1);
            };
            for (int k = 0; k < 8; k++) CK(cudaMemset(g[k], 0, gn[k] * 4));
            run();
            if (mkc_sync()) {
                printf("FAIL scan_lab bwd: %s\n", mkc_last_error());
                return 1;
            }
            double err = -1;
            std::vector<float> rdu, rdl, rdA, rdB, rdC, rdD, rdz, rdb; // the CPU backward, L <= 2048
            const std::vector<float> *rr[8] = {&rdu, &rdl, &rdA, &rdB, &rdC, &rdD, &rdz, &rdb};
            // the largest normalised error of the 8 device gradients g[] against the CPU's
            auto grad_err = [&] {
                double m = 0;
                for (int k = 0; k < 8; k++) {
                    std::vector<float> gh(gn[k]);
                    CK(cudaMemcpy(gh.data(), g[k], gn[k] * 4, cudaMemcpyDeviceToHost));
                    m = fmax(m, rel_err(gh.data(), rr[k]->data(), gn[k]));
                }
                return m;
            };
            if (L <= 2048) {
                for (int k = 0; k < 8; k++) const_cast<std::vector<float> *>(rr[k])->assign(gn[k], 0.f);
                double t0 = mk_time();
                ssm_scan_backward(rdu.data(), rdl.data(), rdA.data(), rdB.data(), rdC.data(), rdD.data(), rdz.data(),
                                  rdb.data(), NULL, hg.data(), NULL, hu.data(), hd.data(), hA.data(), hB.data(),
                                  hC.data(), hD.data(), hz.data(), hb.data(), NULL, sd);
                printf("# L %d: CPU reference backward %.1f ms\n", L, (mk_time() - t0) * 1e3);
                err = grad_err();
            }
            if (wanted("bwd_lib")) row(err < 1e-3 ? "bwd_lib" : "bwd_lib!BAD", 128, time_us(run, reps), bwd_bytes, err);
            // Where the backward's time goes: its kernel alone (no checkpoint sweep before it, no
            // sums of the partials after), then copies of it with parts left out (scan_bwd.cuh
            // OPT). Those give wrong results, so only their times are printed ("unchecked").
            {
                constexpr int P = 4, CPB = scan_bwd::TPB / P;
                const int nck = (L + scan_bwd::CK - 1) / scan_bwd::CK, neb = (E + CPB - 1) / CPB;
                float *ck, *pA, *pD, *pb, *pB, *pC;
                CK(cudaMalloc(&ck, (size_t)B * nck * E * N * 4));
                CK(cudaMalloc(&pA, EN * B * 4));
                CK(cudaMalloc(&pD, (size_t)B * E * 4));
                CK(cudaMalloc(&pb, (size_t)B * E * 4));
                CK(cudaMalloc(&pB, (size_t)neb * BLN * 4));
                CK(cudaMalloc(&pC, (size_t)neb * BLN * 4));
                cudaStream_t st = (cudaStream_t)mkc_stream();
                // the library's checkpoint sweep for N = 16: the staged forward with no output
                scan_tile::launch<16, 4, 128, 32, 3, 0, float>(NULL, NULL, ck, u, dl, A, Bm, Cm, Dd, z, db, NULL, B, L,
                                                               E, 1, st);
                // the partials' ordered sums into the gradients, as the library's launch_bwd does
                auto sums = [&] {
                    scan_bwd::sum_parts_k<<<(unsigned)((EN + 255) / 256), 256, 0, st>>>(g[2], pA, B, EN);
                    scan_bwd::sum_parts_k<<<(unsigned)((E + 255) / 256), 256, 0, st>>>(g[5], pD, B, (size_t)E);
                    scan_bwd::sum_parts_k<<<(unsigned)((E + 255) / 256), 256, 0, st>>>(g[7], pb, B, (size_t)E);
                    scan_bwd::sum_parts_k<<<(unsigned)((BLN + 255) / 256), 256, 0, st>>>(g[3], pB, neb, BLN);
                    scan_bwd::sum_parts_k<<<(unsigned)((BLN + 255) / 256), 256, 0, st>>>(g[4], pC, neb, BLN);
                };
                auto bwd = [&](const char *name, auto kern, size_t dyn = 0) {
                    if (dyn) CK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)dyn));
                    auto go = [&] {
                        kern<<<dim3(neb, B), scan_bwd::TPB, dyn, st>>>(g[0], g[1], g[6], NULL, pA, pD, pb, pB, pC, dout,
                                                                       NULL, u, dl, A, Bm, Cm, Dd, z, db, ck, L, E, 1);
                    };
                    if (wanted(name) && launched(name, go)) row(name, 128, time_us(go, reps), bwd_bytes, -1);
                };
                bwd("bwd_kernel_v1", scan_bwd_v1::kernel<P, float, 0>); // until 2026-11-26
                bwd("bwd_kernel", scan_bwd::kernel<P, float, 0>);
                bwd("bwd_k-bc", scan_bwd::kernel<P, float, scan_bwd::NO_BC>);
                bwd("bwd_k-out", scan_bwd::kernel<P, float, scan_bwd::NO_OUT>);
                bwd("bwd_k-replay", scan_bwd::kernel<P, float, scan_bwd::NO_REPLAY>);
                bwd("bwd_k-all3", scan_bwd::kernel<P, float, scan_bwd::NO_BC | scan_bwd::NO_OUT | scan_bwd::NO_REPLAY>);
                // scan_bwd.cuh's STAGE_IN (the chunk's inputs staged in shared memory): its kernel
                // timed like the rows above, then checked end to end (same sweep, its kernel, the
                // partials summed in order) against the CPU backward at L <= 2048
                {
                    constexpr int SO = scan_bwd::STAGE_IN;
                    const size_t dyn = scan_bwd::dyn_smem<P, float, SO>();
                    auto kst = scan_bwd::kernel<P, float, SO>;
                    bwd("bwd_k_stage", kst, dyn);
                    // the whole backward as bwd_lib runs it: checkpoint sweep, kernel, partial sums
                    auto run_stage = [&] {
                        scan_tile::launch<16, 4, 128, 32, 3, 0, float>(NULL, NULL, ck, u, dl, A, Bm, Cm, Dd, z, db,
                                                                       NULL, B, L, E, 1, st);
                        kst<<<dim3(neb, B), scan_bwd::TPB, dyn, st>>>(g[0], g[1], g[6], NULL, pA, pD, pb, pB, pC, dout,
                                                                      NULL, u, dl, A, Bm, Cm, Dd, z, db, ck, L, E, 1);
                        sums();
                    };
                    for (int k = 0; k < 8; k++) CK(cudaMemset(g[k], 0, gn[k] * 4));
                    if (wanted("bwd_stage") && launched("bwd_stage", run_stage)) {
                        double se = L <= 2048 ? grad_err() : -1;
                        row(se < 1e-3 ? "bwd_stage" : "bwd_stage!BAD", 128, time_us(run_stage, reps), bwd_bytes, se);
                    }
                }
                // v8 (scan_lane_bwd.cuh): one lane per channel. The whole backward as bwd_lib runs it
                // (the same checkpoint sweep, the v8 kernel, the partials summed in order; its G =
                // E / 32 partials are the library's neb at N = 16), checked against the CPU at
                // L <= 2048; TS/NST/XF/W (TS 8 spills: 255 registers at TS 4). Then the kernel alone (v8k_),
                // comparable with bwd_k_stage.
                if (want_v8 && scan_lane_bwd::lane_bwd_usable(u, dl, z, dout, g[0], g[1], g[6], Bm, Cm, ck, E, N)) {
                    scan_lane_bwd::args la = {g[0], g[1], g[6], NULL, pA, pD, pb, pB, pC, dout, NULL, u, dl, A,
                                              Bm,   Cm,   Dd,   z,    db, ck, B, L, E, 1};
#define V8(TS_, NST_, XF_, W_)                                                                                  \
    {                                                                                                           \
        const char *nm = "v8_" #TS_ "/" #NST_ "/" #XF_ "/" #W_, *nk = "v8k_" #TS_ "/" #NST_ "/" #XF_ "/" #W_;      \
        auto whole = [&] {                                                                                      \
            scan_tile::launch<16, 4, 128, 32, 3, 0, float>(NULL, NULL, ck, u, dl, A, Bm, Cm, Dd, z, db, NULL, B, L, \
                                                           E, 1, st);                                           \
            scan_lane_bwd::launch<TS_, NST_, XF_, W_>(la, st);                                                  \
            sums();                                                                                             \
        };                                                                                                      \
        for (int k = 0; k < 8; k++) CK(cudaMemset(g[k], 0, gn[k] * 4));                                         \
        if (wanted(nm) && launched(nm, whole)) {                                                                \
            const double ve = L <= 2048 ? grad_err() : -1;                                                      \
            char bad[32];                                                                                       \
            snprintf(bad, sizeof bad, "%s!BAD", nm);                                                            \
            row(ve < 1e-3 ? nm : bad, 32 * W_, time_us(whole, reps), bwd_bytes, ve);                            \
            auto kern = [&] { scan_lane_bwd::launch<TS_, NST_, XF_, W_>(la, st); };                            \
            if (wanted(nk) && launched(nk, kern)) row(nk, 32 * W_, time_us(kern, reps), bwd_bytes, -1);        \
        }                                                                                                       \
    }
                    V8(4, 3, 0, 1);
                    V8(4, 3, 4, 1);
                    V8(4, 2, 4, 1);
                    V8(4, 2, 0, 1);
                    V8(4, 3, 4, 2);
                    V8(4, 2, 8, 4);
#undef V8
                }
                for (float *q : {ck, pA, pD, pb, pB, pC}) CK(cudaFree(q));
            }
            for (int k = 0; k < 8; k++) CK(cudaFree(g[k]));
        }
        float *fr[] = {u, dl, Bm, Cm, Dd, z, db, dout, A, out};
        for (auto p : fr) CK(cudaFree(p));
    }
    if (cf) fclose(cf);
    printf("# floor = (bytes that must move: inputs read once, outputs written once, fp32) / copy bandwidth;\n"
           "# backward floor counts gradients as written once (our kernel accumulates: +3 B*L*E reads)\n");
    return 0;
}
