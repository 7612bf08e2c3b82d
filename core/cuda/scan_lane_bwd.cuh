// scan_lane_bwd.cuh — the selective scan's backward (N = 16, fp32) with one lane per channel
// (lab v8; in the kernel lab only until it has been timed on a GPU).
//
// Why. The library's backward (scan_bwd.cuh, STAGE_IN) takes 5.8x the forward's time (1674 us
// against 289 at L = 2048 on an H100, 14 % of its floor), and the lab's ablations put the cost in
// the walk itself: with the dB/dC reduction, the du/ddelta/dz updates and the chunk replay all
// left out, its kernel still took 1631 of 2118 us (docs/data/scan_lab_h100_2026-11-27_call2.csv).
// It splits a channel's 16 states over 4 lanes, so every step pays shuffles for y, for ddt, for
// du (two levels each) and a 7-shuffle reduce-scatter of dB/dC, plus two block barriers per
// 8-step sub-chunk. Here, as in the forward's lab v7 (scan_lane.cuh), one lane owns a channel and
// its 16 states: y, ddt and du are lane-local sums, and dB/dC (sums over channels) go through a
// shared-memory transpose per step (each lane writes its 32 values into a row per value, every
// lane then sums one row: 32 stores, 8 vector loads and 31 adds a lane-step, about 4.5
// instructions per state-step, against 4 per value pair for a shuffle butterfly).
//
// Recomputation as in the library: the forward's checkpoint sweep leaves h before every CK-th step
// (ckpt, (B, nck, E, N)); per CK chunk, last to first: (R) replay it from its checkpoint, keeping
// the state before every TS-th step in shared memory (sub-checkpoints); (W) per TS sub-chunk, last
// to first, replay its TS states into registers (and y, for dz), then walk them backwards. Each
// warp runs its own cp.async pipeline over the list of tiles these phases read (R: u, delta and
// the B rows of TS steps; W: u, delta, z, dout, the old du, ddelta, dz and the B, C rows), NST in
// flight, __syncwarp only: a block of W warps is W independent pipelines. The old du, ddelta, dz
// come with the tiles because the contract is += (a read-modify-write per step would wait on its
// load).
//
// Outputs are the library backward's partials, so the same sums finish it (scan_bwd::sum_parts_k):
// dApart (B, E, N), dDpart and dbpart (B, E), dBpart and dCpart (G, B, L, N) with G = ceil(E / 32),
// one per warp's 32 channels (= the library's channel blocks at N = 16). No floating-point
// atomics; every sum in a fixed order.
//
// The phases (issue, rep_tile, w_begin, w_step, w_reduce) are __host__ __device__, so that the
// lab's --sim mode runs them on the host, lane by lane in the kernel's order, against the CPU
// backward (core/scan.c): the indexing, tails, partial warps and the arithmetic are checked
// without a GPU; only the timing is not.
#pragma once
#include "core/cuda/scan_lane.cuh"

namespace scan_lane_bwd {

using scan_lane::CK;
using scan_lane::decay;
using scan_lane::N;
using scan_lane::row16;
constexpr float LN2 = 0.69314718055994531f;

struct args {
    float *du, *ddelta, *dz;      // (B, L, E), accumulated (+=); any may be NULL
    float *dh0;                   // (B, E, N), accumulated; may be NULL
    float *dApart;                // (B, E, N)
    float *dDpart, *dbpart;       // (B, E)
    float *dBpart, *dCpart;       // (G, B, L, N), G = ceil(E / 32)
    const float *dout, *dh_last;  // (B, L, E); (B, E, N) or NULL
    const float *u, *delta, *A, *Bm, *Cm, *D, *z, *delta_bias, *ckpt; // ckpt (B, nck, E, N)
    int B, L, E;
    int softplus;
};

// A stage holds one tile of TS steps: seven channel arrays (TS rows of the warp's 32 channels:
// u, delta, z, dout, old du, old ddelta, old dz) and the B, C rows (TS x 16).
enum { U, DL, Z, G, OU, OD, OZ, NARR };
template <int TS>
struct lay {
    static constexpr int BR = NARR * TS * 32, CR = BR + TS * N, STAGE = CR + TS * N; // = 256 TS
    static constexpr int RED = 2 * 32 * 32;   // two dB/dC transpose buffers (32 values x 32 lanes)
    static constexpr int SUB = (CK / TS) * N * 32; // sub-checkpoints, slot s = the state before sub-chunk s
    template <int NST>
    __host__ __device__ static constexpr int warp_floats() { return NST * STAGE + RED + SUB; }
};

// One item of a warp's work list: R (replay sub-chunk s of chunk c forward, leaving the state
// before sub-chunk s + 1) or W (walk sub-chunk s of chunk c backwards). Per chunk, last to first:
// R s = 0 .. ns-2, then W s = ns-1 .. 0 (ns = the chunk's sub-chunks; only the last chunk has
// fewer than CK / TS, and only its last sub-chunk runs past L).
struct item {
    int w, c, s;
};
template <int TS>
__host__ __device__ __forceinline__ int n_sub(const args &a, int c) {
    const int t1 = a.L < (c + 1) * CK ? a.L : (c + 1) * CK;
    return (t1 - c * CK + TS - 1) / TS;
}
template <int TS>
__host__ __device__ __forceinline__ item first(const args &a) {
    const int c = (a.L + CK - 1) / CK - 1, ns = n_sub<TS>(a, c);
    return ns > 1 ? item{0, c, 0} : item{1, c, 0};
}
// false (and it unchanged) after the last item
template <int TS>
__host__ __device__ __forceinline__ bool next(const args &a, item &it) {
    const int ns = n_sub<TS>(a, it.c);
    if (!it.w) {
        if (it.s + 1 < ns - 1)
            it.s++;
        else
            it.w = 1, it.s = ns - 1;
        return true;
    }
    if (it.s > 0) {
        it.s--;
        return true;
    }
    if (it.c == 0) return false;
    it.c--;
    it = n_sub<TS>(a, it.c) > 1 ? item{0, it.c, 0} : item{1, it.c, 0};
    return true;
}

// Lane `lane`'s share of item it's copies into stage st (warp's channels e0 .. e0+31, batch row
// b). W: 8 copies of 16 bytes per channel-array row, 4 per B/C row: 64 TS in all, 2 TS a lane.
// R: u and delta rows and the B rows only (20 TS). Past L, past E or a NULL array: zero-filled.
template <int TS>
__host__ __device__ __forceinline__ void issue(const args &a, const item &it, float *st, int b, int e0, int lane) {
    typedef lay<TS> Y;
    const int t0 = it.c * CK + it.s * TS;
    const size_t row0 = (size_t)b * a.L;
    const int nrow = it.w ? NARR : 2, ncopy = TS * (8 * nrow + (it.w ? 8 : 4));
    const float *arr[NARR] = {a.u, a.delta, a.z, a.dout, a.du, a.ddelta, a.dz};
#pragma unroll
    for (int i = 0; i < 2 * TS; i++) {
        const int c = lane + 32 * i;
        if (c >= ncopy) break;
        if (c < 8 * TS * nrow) {
            const int w = c / (8 * TS), r = c % (8 * TS), j = r / 8, ch = r % 8;
            const int t = t0 + j, ee = e0 + ch * 4;
            const bool v = t < a.L && ee < a.E && arr[w];
            scan_lane::copy16(st + (w * TS + j) * 32 + ch * 4, v ? arr[w] + (row0 + t) * a.E + ee : a.u, v ? 16 : 0);
        } else {
            const int c2 = c - 8 * TS * nrow, w = c2 / (4 * TS), r = c2 % (4 * TS), j = r / 4, q = r % 4;
            const int t = t0 + j;
            const float *src = w ? a.Cm : a.Bm;
            const bool v = t < a.L;
            scan_lane::copy16(st + (w ? Y::CR : Y::BR) + j * N + q * 4, v ? src + (row0 + t) * N + q * 4 : a.u,
                              v ? 16 : 0);
        }
    }
}

template <int TS>
struct lane_state {
    float A2[N], dh[N], dA[N]; // decay rates (A log2 e), dL/dh carried backwards, dA summed over time
    float h[N];                // R: the running state; W: the state before the sub-chunk
    float hs[TS][N], dt[TS], y[TS];
    float bias, Dv, dD, db;
};

template <int TS>
__host__ __device__ __forceinline__ void lane_init(const args &a, int b, int e, lane_state<TS> &s) {
    const bool ok = e < a.E;
    const int ec = ok ? e : a.E - 1;
#pragma unroll
    for (int n = 0; n < N; n++) {
        s.A2[n] = a.A[(size_t)ec * N + n] * 1.4426950408889634f;
        s.dh[n] = (a.dh_last && ok) ? a.dh_last[((size_t)b * a.E + ec) * N + n] : 0.f;
        s.dA[n] = 0.f;
    }
    s.bias = a.delta_bias ? a.delta_bias[ec] : 0.f;
    s.Dv = a.D ? a.D[ec] : 0.f;
    s.dD = s.db = 0.f;
}

template <int TS>
__host__ __device__ __forceinline__ void load_ckpt(const args &a, int b, int e, int c, float *h) {
    const int nck = (a.L + CK - 1) / CK;
    if (e < a.E)
        row16(h, a.ckpt + (((size_t)b * nck + c) * a.E + e) * N);
    else
#pragma unroll
        for (int n = 0; n < N; n++) h[n] = 0.f;
}
// slot s of the sub-checkpoints: lane's 16 floats as 4 float4 at [s][q][lane] (a quarter-warp's
// 16-byte accesses fall on consecutive addresses)
__host__ __device__ __forceinline__ size_t sub_at(int s, int q, int lane) { return ((size_t)s * 4 + q) * 32 + lane; }

// R item: TS steps forward from the sub-chunk's start (every step < L: only a chunk's last
// sub-chunk runs past L, and R never runs it); the state after goes to slot s + 1
template <int TS, int XF>
__host__ __device__ __forceinline__ void rep_tile(const args &a, const item &it, const float *st, float *sub, int b,
                                                  int e, int lane, lane_state<TS> &s) {
    typedef lay<TS> Y;
    if (it.s == 0) load_ckpt<TS>(a, b, e, it.c, s.h);
#pragma unroll
    for (int j = 0; j < TS; j++) {
        const float r = st[(DL * TS + j) * 32 + lane] + s.bias;
        const float dt = a.softplus ? scan_lane::f_softplus(r) : r;
        const float dtu = dt * st[(U * TS + j) * 32 + lane];
        float Bv[N];
        row16(Bv, st + Y::BR + j * N);
#pragma unroll
        for (int n = 0; n < N; n++) s.h[n] = fmaf(decay<XF>(n, dt * s.A2[n]), s.h[n], dtu * Bv[n]);
    }
#pragma unroll
    for (int q = 0; q < N / 4; q++)
        reinterpret_cast<float4 *>(sub)[sub_at(it.s + 1, q, lane)] = make_float4(s.h[4 * q], s.h[4 * q + 1], s.h[4 * q + 2], s.h[4 * q + 3]);
}

// W item, first part: the sub-chunk's start state (its checkpoint or sub-checkpoint), then its TS
// states into hs (and y for dz); dt = 0 past L, so those steps leave the state alone
template <int TS, int XF>
__host__ __device__ __forceinline__ void w_begin(const args &a, const item &it, const float *st, const float *sub,
                                                 int b, int e, int lane, lane_state<TS> &s) {
    typedef lay<TS> Y;
    const int t0 = it.c * CK + it.s * TS;
    if (it.s == 0)
        load_ckpt<TS>(a, b, e, it.c, s.h);
    else
#pragma unroll
        for (int q = 0; q < N / 4; q++) {
            const float4 v = reinterpret_cast<const float4 *>(sub)[sub_at(it.s, q, lane)];
            s.h[4 * q] = v.x, s.h[4 * q + 1] = v.y, s.h[4 * q + 2] = v.z, s.h[4 * q + 3] = v.w;
        }
#pragma unroll
    for (int j = 0; j < TS; j++) {
        const float uu = st[(U * TS + j) * 32 + lane];
        const float r = st[(DL * TS + j) * 32 + lane] + s.bias;
        float dt = a.softplus ? scan_lane::f_softplus(r) : r;
        dt = t0 + j < a.L ? dt : 0.f;
        s.dt[j] = dt;
        const float dtu = dt * uu;
        float Bv[N], Cv[N], y[4] = {0.f, 0.f, 0.f, 0.f};
        row16(Bv, st + Y::BR + j * N);
        row16(Cv, st + Y::CR + j * N);
#pragma unroll
        for (int n = 0; n < N; n++) {
            const float prev = j ? s.hs[j ? j - 1 : 0][n] : s.h[n];
            s.hs[j][n] = fmaf(decay<XF>(n, dt * s.A2[n]), prev, dtu * Bv[n]);
            y[n & 3] = fmaf(Cv[n], s.hs[j][n], y[n & 3]);
        }
        s.y[j] = ((y[0] + y[1]) + (y[2] + y[3])) + s.Dv * uu;
    }
}

// W item, step j (< L) backwards: dh, dA, dD, the bias's gradient and du, ddelta, dz (the old
// values from the tile plus this step's); the lane's 16 dB and 16 dC values of this step go to
// row n and 16 + n of the transpose buffer rb, column lane
template <int TS, int XF>
__host__ __device__ __forceinline__ void w_step(const args &a, const item &it, const float *st, float *rb, int b,
                                                int e, int lane, int j, lane_state<TS> &s) {
    typedef lay<TS> Y;
    const int t = it.c * CK + it.s * TS + j;
    const float uu = st[(U * TS + j) * 32 + lane], g = st[(G * TS + j) * 32 + lane];
    float dy = g, dzv = 0.f;
    if (a.z) {
        const float zv = st[(Z * TS + j) * 32 + lane], sg = scan_lane::f_sigmoid(zv);
        dy = g * zv * sg;
        dzv = g * s.y[j] * sg * (1.f + zv * (1.f - sg));
    }
    s.dD = fmaf(dy, uu, s.dD);
    const float dt = s.dt[j], dtu = dt * uu;
    float Bv[N], Cv[N], ddtA[2] = {0.f, 0.f}, dBu[2] = {0.f, 0.f};
    row16(Bv, st + Y::BR + j * N);
    row16(Cv, st + Y::CR + j * N);
#pragma unroll
    for (int n = 0; n < N; n++) {
        const float hp = j ? s.hs[j ? j - 1 : 0][n] : s.h[n];
        s.dh[n] = fmaf(dy, Cv[n], s.dh[n]);             // dL/dh_t
        rb[(N + n) * 32 + lane] = dy * s.hs[j][n];      // dC[t, n], this channel's share
        rb[n * 32 + lane] = s.dh[n] * dtu;              // dB[t, n]
        dBu[n & 1] = fmaf(s.dh[n], Bv[n], dBu[n & 1]);
        const float qh = s.dh[n] * decay<XF>(n, dt * s.A2[n]); // dL/dh_{t-1} through this step
        const float gq = qh * hp;
        s.dA[n] = fmaf(gq, dt, s.dA[n]);
        ddtA[n & 1] = fmaf(gq, s.A2[n], ddtA[n & 1]);
        s.dh[n] = qh;
    }
    const float sb = dBu[0] + dBu[1];
    const float ddt = (ddtA[0] + ddtA[1]) * LN2 + sb * uu; // A = A2 ln 2
    const float r = st[(DL * TS + j) * 32 + lane] + s.bias;
    const float dd = a.softplus ? ddt * scan_lane::f_sigmoid(r) : ddt;
    s.db += dd;
    if (e < a.E) {
        const size_t i = ((size_t)b * a.L + t) * a.E + e;
        if (a.du) a.du[i] = st[(OU * TS + j) * 32 + lane] + (s.Dv * dy + dt * sb);
        if (a.ddelta) a.ddelta[i] = st[(OD * TS + j) * 32 + lane] + dd;
        if (a.dz) a.dz[i] = st[(OZ * TS + j) * 32 + lane] + dzv;
    }
}

// After every lane's w_step for step j: lane l sums row l of rb (value l: dB[n = l] for l < 16,
// dC[n = l - 16] above) over the warp's 32 channels, reading the row's eight 16-byte groups in the
// order i ^ (l & 7) so that a quarter-warp's loads hit eight different bank groups (the sum's
// order is fixed per value: deterministic)
template <int TS>
__host__ __device__ __forceinline__ void w_reduce(const args &a, const item &it, const float *rb, int b, int e0,
                                                  int lane, int j) {
    const int t = it.c * CK + it.s * TS + j;
    const float4 *row = reinterpret_cast<const float4 *>(rb + lane * 32);
    float p[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const float4 v = row[i ^ (lane & 7)];
        p[0] += v.x, p[1] += v.y, p[2] += v.z, p[3] += v.w;
    }
    float *dst = lane < N ? a.dBpart : a.dCpart;
    dst[(((size_t)(e0 / 32) * a.B + b) * a.L + t) * N + (lane & (N - 1))] = (p[0] + p[1]) + (p[2] + p[3]);
}

template <int TS>
__host__ __device__ __forceinline__ void lane_finish(const args &a, int b, int e, const lane_state<TS> &s) {
    if (e >= a.E) return;
    const size_t be = (size_t)b * a.E + e;
#pragma unroll
    for (int n = 0; n < N; n++) {
        a.dApart[be * N + n] = s.dA[n];
        if (a.dh0) a.dh0[be * N + n] += s.dh[n];
    }
    a.dDpart[be] = s.dD;
    a.dbpart[be] = s.db;
}

#ifdef __CUDACC__
using scan_tile::cp_commit;
using scan_tile::cp_wait;

template <int TS, int NST, int XF, int W>
__global__ void __launch_bounds__(32 * W) bwd_k(args a) {
    typedef lay<TS> Y;
    extern __shared__ __align__(16) float smem[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int e0 = (blockIdx.x * W + warp) * 32, b = blockIdx.y, e = e0 + lane;
    if (e0 >= a.E) return; // a whole warp, and no block-wide barrier below
    float *stg = smem + (size_t)warp * Y::template warp_floats<NST>(), *red = stg + NST * Y::STAGE,
          *sub = red + Y::RED;
    lane_state<TS> s;
    lane_init<TS>(a, b, e, s);
    item iss = first<TS>(a), run = iss;
    bool more = true; // iss is an item still to issue
#pragma unroll
    for (int k = 0; k < NST - 1; k++) {
        if (more) {
            issue<TS>(a, iss, stg + k * Y::STAGE, b, e0, lane);
            more = next<TS>(a, iss);
        }
        cp_commit(); // empty groups keep the count uniform
    }
    for (int k = 0;; k++) {
        if (more) { // into the stage item k-1 used, which every lane has left
            issue<TS>(a, iss, stg + ((k + NST - 1) % NST) * Y::STAGE, b, e0, lane);
            more = next<TS>(a, iss);
        }
        cp_commit();
        cp_wait<NST - 1>(); // this lane's copies of item k have landed
        __syncwarp();       // and every lane's
        const float *st = stg + (k % NST) * Y::STAGE;
        if (!run.w) {
            rep_tile<TS, XF>(a, run, st, sub, b, e, lane, s);
        } else {
            w_begin<TS, XF>(a, run, st, sub, b, e, lane, s);
            const int t0 = run.c * CK + run.s * TS;
#pragma unroll
            for (int j = TS - 1; j >= 0; j--) {
                if (t0 + j >= a.L) continue; // uniform over the warp
                float *rb = red + (j & 1) * 1024;
                w_step<TS, XF>(a, run, st, rb, b, e, lane, j, s);
                __syncwarp(); // the row is written (the other buffer is still being read: two)
                w_reduce<TS>(a, run, rb, b, e0, lane, j);
            }
        }
        __syncwarp(); // the stage and the sub-checkpoints are settled for the next item
        if (!next<TS>(a, run)) break;
    }
    lane_finish<TS>(a, b, e, s);
}

inline bool lane_bwd_usable(const float *u, const float *delta, const float *z, const float *dout, const float *du,
                            const float *ddelta, const float *dz, const float *Bm, const float *Cm, const float *ckpt,
                            int E, int N_) {
    auto al = [](const void *p) { return ((uintptr_t)p % 16) == 0; };
    return N_ == N && E % 4 == 0 && al(u) && al(delta) && (!z || al(z)) && al(dout) && (!du || al(du)) &&
           (!ddelta || al(ddelta)) && (!dz || al(dz)) && al(Bm) && al(Cm) && al(ckpt);
}

template <int TS, int NST, int XF, int W>
void launch(const args &a, cudaStream_t stream) {
    const size_t smem = (size_t)W * lay<TS>::template warp_floats<NST>() * sizeof(float);
    dim3 grid(mkc_blocks(mkc_blocks(a.E, 32), W), a.B);
    cudaFuncSetAttribute(bwd_k<TS, NST, XF, W>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    bwd_k<TS, NST, XF, W><<<grid, 32 * W, smem, stream>>>(a);
}
#endif

// The kernel's order of work on the host, one warp's 32 channels at a time: every lane's copies
// of an item, then every lane's part of it, with every lane's w_step of a step before any lane's
// w_reduce (the kernel's __syncwarp). The copies land at once here. For the lab's --sim mode.
template <int TS, int NST, int XF>
inline void simulate(const args &a) {
    typedef lay<TS> Y;
    float *wsm = new float[(size_t)Y::template warp_floats<NST>()];
    float *stg = wsm, *red = stg + NST * Y::STAGE, *sub = red + Y::RED;
    lane_state<TS> *s = new lane_state<TS>[32];
    for (int b = 0; b < a.B; b++)
        for (int e0 = 0; e0 < a.E; e0 += 32) {
            for (int l = 0; l < 32; l++) lane_init<TS>(a, b, e0 + l, s[l]);
            item iss = first<TS>(a), run = iss;
            bool more = true;
            for (int k = 0; k < NST - 1 && more; k++) {
                for (int l = 0; l < 32; l++) issue<TS>(a, iss, stg + k * Y::STAGE, b, e0, l);
                more = next<TS>(a, iss);
            }
            for (int k = 0;; k++) {
                if (more) {
                    for (int l = 0; l < 32; l++) issue<TS>(a, iss, stg + ((k + NST - 1) % NST) * Y::STAGE, b, e0, l);
                    more = next<TS>(a, iss);
                }
                const float *st = stg + (k % NST) * Y::STAGE;
                if (!run.w) {
                    for (int l = 0; l < 32; l++) rep_tile<TS, XF>(a, run, st, sub, b, e0 + l, l, s[l]);
                } else {
                    for (int l = 0; l < 32; l++) w_begin<TS, XF>(a, run, st, sub, b, e0 + l, l, s[l]);
                    const int t0 = run.c * CK + run.s * TS;
                    for (int j = TS - 1; j >= 0; j--) {
                        if (t0 + j >= a.L) continue;
                        float *rb = red + (j & 1) * 1024;
                        for (int l = 0; l < 32; l++) w_step<TS, XF>(a, run, st, rb, b, e0 + l, l, j, s[l]);
                        for (int l = 0; l < 32; l++) w_reduce<TS>(a, run, rb, b, e0, l, j);
                    }
                }
                if (!next<TS>(a, run)) break;
            }
            for (int l = 0; l < 32; l++) lane_finish<TS>(a, b, e0 + l, s[l]);
        }
    delete[] wsm;
    delete[] s;
}

} // namespace scan_lane_bwd
