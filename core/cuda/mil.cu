// mil.cu — MambaMIL's own ops on the GPU (pathology/mil_model.c semantics): the feature
// standardisation, tanh and sigmoid, the attention logits and their backward, the score order
// (a stable radix sort on the device: the scans read the sorted bag without a host round trip),
// the SR interleave of it as the backbone's scan orders, the residual gate, the attention
// softmax and pooling, the classifier with its BCE gradient, and their backwards.
// Letters: L instances, F features, D width, H attention hidden, R the SR stride.
// Every sum over the bag's rows runs in row order in one thread (or, for the two scalars of the
// softmax, in one block in a fixed tree), so nothing needs atomics and results do not change
// run to run. A bag is one sequence; the per-channel loops over L are what the CPU does too.
#include <cub/cub.cuh>
#include <math.h>

#include "core/cuda/common.cuh"

namespace {

constexpr unsigned TPB = 256;

// ref: core/act.c tanh_forward / sigmoid_forward (mk_sigmoidf's two branches)
__global__ void tanh_k(float *o, const float *x, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) o[i] = tanhf(x[i]);
}
__global__ void sigmoid_k(float *o, const float *x, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = x[i];
    if (v >= 0) o[i] = 1.f / (1.f + expf(-v));
    else {
        float e = expf(v);
        o[i] = e / (1.f + e);
    }
}

__global__ void standardize_k(float *xs, const float *x, const float *mu, const float *sd, int F, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    int j = (int)(i % F);
    xs[i] = (x[i] - mu[j]) / sd[j];
}

// one thread per row: s_i = sum_k w[k] t[i,k] (* g[i,k]), k in order
__global__ void att_score_k(float *s, const float *t, const float *g, const float *w, int L, int H) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= L) return;
    const float *ti = t + (size_t)i * H;
    float acc = 0.f;
    if (g) {
        const float *gi = g + (size_t)i * H;
        for (int k = 0; k < H; k++) acc += __fmul_rn(__fmul_rn(w[k], ti[k]), gi[k]);
    } else
        for (int k = 0; k < H; k++) acc += __fmul_rn(w[k], ti[k]);
    s[i] = acc;
}

// The sort key: the float's bits made order-preserving as an unsigned integer (sign flipped for
// positives, all bits for negatives), -0.0 folded onto +0.0 (by_score calls them equal) and NaN
// sent to 0, below every number (by_score puts it last); a stable descending sort then gives
// by_score's order, ties in row order.
__global__ void sort_key_k(unsigned *key, int *idx, const float *s, int L) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= L) return;
    const float v = s[i];
    unsigned k = 0;
    if (!isnan(v)) {
        unsigned b = __float_as_uint(v);
        if ((b << 1) == 0) b = 0; /* -0.0 -> +0.0 */
        k = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
    }
    key[i] = k;
    idx[i] = i;
}

// the t-th entry of mil_order_interleave(L, R): rows r < rem hold q + 1 entries, the rest q
__device__ int interleave_at(int t, int L, int R) {
    if (R <= 0 || R >= L) return t;
    const int q = L / R, rem = L % R, head = rem * (q + 1);
    int r, j;
    if (t < head) r = t / (q + 1), j = t % (q + 1);
    else r = rem + (t - head) / q, j = (t - head) % q;
    return r + j * R;
}
__global__ void orders_k(int *orders, const int *base, int L, int R, int NL, int G) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)NL * G * L) return;
    const int t = (int)(i % L), g = (int)((i / L) % G);
    const int o = g == 0 ? t : interleave_at(t, L, R);
    orders[i] = base ? base[o] : o;
}

__global__ void gate_k(float *h, const float *e, const float *mo, const float *gamma, float sc, int D, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    h[i] = e[i] + __fmul_rn(__fmul_rn(sc, gamma[i % D]), mo[i]);
}
// one thread per channel: rows in order, as the CPU's i-outer loop adds into dgamma[d]
__global__ void gate_bwd_k(float *mo, float *dgamma, const float *dh, const float *gamma, float sc, int L, int D) {
    int d = blockIdx.x * blockDim.x + threadIdx.x;
    if (d >= D) return;
    float acc = dgamma[d];
    for (int i = 0; i < L; i++) {
        size_t q = (size_t)i * D + d;
        float dv = __fmul_rn(sc, dh[q]);
        acc += __fmul_rn(dv, mo[q]);
        mo[q] = __fmul_rn(gamma[d], dv);
    }
    dgamma[d] = acc;
}

// one block: the max, then the sum of exp(s - max) in double, then a = e / sum
__global__ void softmax_k(float *a, const float *s, int L) {
    __shared__ float smax[TPB];
    __shared__ double ssum[TPB];
    float m = -INFINITY;
    for (int i = threadIdx.x; i < L; i += blockDim.x) m = fmaxf(m, s[i]);
    smax[threadIdx.x] = m;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w /= 2) {
        if (threadIdx.x < w) smax[threadIdx.x] = fmaxf(smax[threadIdx.x], smax[threadIdx.x + w]);
        __syncthreads();
    }
    m = smax[0];
    double acc = 0;
    for (int i = threadIdx.x; i < L; i += blockDim.x) {
        float ex = expf(s[i] - m);
        a[i] = ex;
        acc += ex;
    }
    ssum[threadIdx.x] = acc;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w /= 2) {
        if (threadIdx.x < w) ssum[threadIdx.x] += ssum[threadIdx.x + w];
        __syncthreads();
    }
    const double sum = ssum[0];
    for (int i = threadIdx.x; i < L; i += blockDim.x) a[i] = (float)(a[i] / sum);
}

// one thread per channel: z[d] = sum_i a_i v[i, d], rows in order
__global__ void pool_k(float *z, const float *a, const float *v, int L, int D) {
    int d = blockIdx.x * blockDim.x + threadIdx.x;
    if (d >= D) return;
    float acc = 0.f;
    for (int i = 0; i < L; i++) acc += __fmul_rn(a[i], v[(size_t)i * D + d]);
    z[d] = acc;
}

__global__ void head_k(float *lg, const float *z, const float *wc, const float *bc, float y, int batch, int D) {
    float l = bc[0];
    for (int d = 0; d < D; d++) l += __fmul_rn(wc[d], z[d]);
    float p;
    if (l >= 0) p = 1.f / (1.f + expf(-l));
    else {
        float e = expf(l);
        p = e / (1.f + e);
    }
    lg[0] = l;
    lg[1] = (p - y) / (float)batch;
}

__global__ void head_bwd_k(float *gwc, float *gbc, const float *lg, const float *z, int D) {
    int d = blockIdx.x * blockDim.x + threadIdx.x;
    const float dl = lg[1];
    if (d < D) gwc[d] += __fmul_rn(dl, z[d]);
    if (d == 0) gbc[0] += dl;
}
// one thread per row: dv_i += a_i dz, da_i = sum_d dz_d v_id (d in order)
__global__ void pool_bwd_k(float *dv, float *da, const float *lg, const float *v, const float *a, const float *wc,
                           int L, int D) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= L) return;
    const float dl = lg[1], ai = a[i];
    float acc = 0.f;
    for (int d = 0; d < D; d++) {
        size_t q = (size_t)i * D + d;
        float dz = __fmul_rn(dl, wc[d]);
        dv[q] += __fmul_rn(ai, dz);
        acc += __fmul_rn(dz, v[q]);
    }
    da[i] = acc;
}

__global__ void softmax_bwd_k(float *da, const float *a, int L) {
    __shared__ double ssum[TPB];
    double acc = 0;
    for (int i = threadIdx.x; i < L; i += blockDim.x) acc += (double)a[i] * da[i];
    ssum[threadIdx.x] = acc;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w /= 2) {
        if (threadIdx.x < w) ssum[threadIdx.x] += ssum[threadIdx.x + w];
        __syncthreads();
    }
    const float adot = (float)ssum[0];
    for (int i = threadIdx.x; i < L; i += blockDim.x) da[i] = __fmul_rn(a[i], da[i] - adot);
}

// dt, dg per element (written)
__global__ void att_dt_k(float *dt, float *dg, const float *ds, const float *t, const float *g, const float *w, int H,
                         size_t n) {
    size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (q >= n) return;
    const int k = (int)(q % H);
    const float dsw = __fmul_rn(ds[q / H], w[k]), tq = t[q];
    if (g) {
        const float gq = g[q];
        dt[q] = __fmul_rn(__fmul_rn(dsw, gq), 1.f - __fmul_rn(tq, tq));
        dg[q] = __fmul_rn(__fmul_rn(dsw, tq), __fmul_rn(gq, 1.f - gq));
    } else
        dt[q] = __fmul_rn(dsw, 1.f - __fmul_rn(tq, tq));
}
// one thread per hidden unit: gw[k] += ds_i t_ik (g_ik), rows in order
__global__ void att_gw_k(float *gw, const float *ds, const float *t, const float *g, int L, int H) {
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= H) return;
    float acc = gw[k];
    for (int i = 0; i < L; i++) {
        size_t q = (size_t)i * H + k;
        float v = __fmul_rn(ds[i], t[q]);
        acc += g ? __fmul_rn(v, g[q]) : v;
    }
    gw[k] = acc;
}

} // namespace

#define EW(n) mkc_blocks((n), TPB), TPB, 0, mkc_s()

void mkc_tanh_forward(float *out, const float *inp, size_t n) {
    if (n) tanh_k<<<EW(n)>>>(out, inp, n);
    MKC_CHECK_LAUNCH("tanh");
}
void mkc_sigmoid_forward(float *out, const float *inp, size_t n) {
    if (n) sigmoid_k<<<EW(n)>>>(out, inp, n);
    MKC_CHECK_LAUNCH("sigmoid");
}
void mkc_mil_standardize(float *xs, const float *x, const float *mu, const float *sd, int L, int F) {
    size_t n = (size_t)L * F;
    if (n) standardize_k<<<EW(n)>>>(xs, x, mu, sd, F, n);
    MKC_CHECK_LAUNCH("mil_standardize");
}
void mkc_mil_att_score(float *s, const float *t, const float *g, const float *w, int L, int H) {
    if (L > 0) att_score_k<<<EW(L)>>>(s, t, g, w, L, H);
    MKC_CHECK_LAUNCH("mil_att_score");
}

void mkc_mil_sort_desc(int *order, const float *s, int L) {
    if (L < 1) return;
    // keys in/out, indices in, and CUB's temporary storage, grown on demand; one stream, so
    // one set of buffers serves every call
    static void *buf;
    static size_t cap;
    size_t tmp = 0;
    cub::DeviceRadixSort::SortPairsDescending(nullptr, tmp, (const unsigned *)nullptr, (unsigned *)nullptr,
                                              (const int *)nullptr, (int *)nullptr, L, 0, 32, mkc_s());
    const size_t kb = ((sizeof(unsigned) * (size_t)L + 255) / 256) * 256;
    const size_t need = 3 * kb + tmp;
    if (need > cap) {
        if (buf) cudaFree(buf);
        buf = nullptr;
        cap = 0;
        cudaError_t e = cudaMalloc(&buf, need);
        if (e != cudaSuccess) {
            buf = nullptr;
            mkc_note_error("mil_sort_desc (out of device memory)", e);
            return;
        }
        cap = need;
    }
    char *p = (char *)buf;
    unsigned *kin = (unsigned *)p, *kout = (unsigned *)(p + kb);
    int *iin = (int *)(p + 2 * kb);
    sort_key_k<<<EW(L)>>>(kin, iin, s, L);
    MKC_CHECK_LAUNCH("mil_sort_key");
    cudaError_t e =
        cub::DeviceRadixSort::SortPairsDescending(p + 3 * kb, tmp, kin, kout, iin, order, L, 0, 32, mkc_s());
    if (e != cudaSuccess) mkc_note_error("mil_sort_desc", e);
}

void mkc_mil_orders(int *orders, const int *base, int L, int R, int NL, int G) {
    size_t n = (size_t)NL * G * L;
    if (n) orders_k<<<EW(n)>>>(orders, base, L, R, NL, G);
    MKC_CHECK_LAUNCH("mil_orders");
}
void mkc_mil_gate_forward(float *h, const float *e, const float *mo, const float *gamma, float sc, int L, int D) {
    size_t n = (size_t)L * D;
    if (n) gate_k<<<EW(n)>>>(h, e, mo, gamma, sc, D, n);
    MKC_CHECK_LAUNCH("mil_gate");
}
void mkc_mil_gate_backward(float *mo, float *dgamma, const float *dh, const float *gamma, float sc, int L, int D) {
    if (D > 0) gate_bwd_k<<<mkc_blocks(D, 64), 64, 0, mkc_s()>>>(mo, dgamma, dh, gamma, sc, L, D);
    MKC_CHECK_LAUNCH("mil_gate_backward");
}
void mkc_mil_softmax(float *a, const float *s, int L) {
    if (L > 0) softmax_k<<<1, TPB, 0, mkc_s()>>>(a, s, L);
    MKC_CHECK_LAUNCH("mil_softmax");
}
void mkc_mil_pool(float *z, const float *a, const float *v, int L, int D) {
    if (D > 0) pool_k<<<mkc_blocks(D, 64), 64, 0, mkc_s()>>>(z, a, v, L, D);
    MKC_CHECK_LAUNCH("mil_pool");
}
void mkc_mil_head(float *lg, const float *z, const float *wc, const float *bc, float y, int batch, int D) {
    head_k<<<1, 1, 0, mkc_s()>>>(lg, z, wc, bc, y, batch > 0 ? batch : 1, D);
    MKC_CHECK_LAUNCH("mil_head");
}
void mkc_mil_pool_backward(float *dv, float *da, float *gwc, float *gbc, const float *lg, const float *v,
                           const float *a, const float *z, const float *wc, int L, int D) {
    if (D > 0) head_bwd_k<<<mkc_blocks(D, 64), 64, 0, mkc_s()>>>(gwc, gbc, lg, z, D);
    MKC_CHECK_LAUNCH("mil_head_backward");
    if (L > 0) pool_bwd_k<<<EW(L)>>>(dv, da, lg, v, a, wc, L, D);
    MKC_CHECK_LAUNCH("mil_pool_backward");
}
void mkc_mil_softmax_backward(float *da, const float *a, int L) {
    if (L > 0) softmax_bwd_k<<<1, TPB, 0, mkc_s()>>>(da, a, L);
    MKC_CHECK_LAUNCH("mil_softmax_backward");
}
void mkc_mil_att_score_backward(float *dt, float *dg, float *gw, const float *ds, const float *t, const float *g,
                                const float *w, int L, int H) {
    size_t n = (size_t)L * H;
    if (n) {
        att_gw_k<<<mkc_blocks(H, 64), 64, 0, mkc_s()>>>(gw, ds, t, g, L, H);
        att_dt_k<<<EW(n)>>>(dt, dg, ds, t, g, w, H, n);
    }
    MKC_CHECK_LAUNCH("mil_att_score_backward");
}
