// sisdr.cu — the enhancer's waveform term on the GPU (audio/model.c semantics:
// audio_sisdr_grad_one for each of B signals): resynthesise y = ISTFT(X * mask^(1/p)), take
// -SI-SDR(y, ref), and push its gradient back through the ISTFT into dz. The inverse and the
// adjoint rfft are GEMMs with a windowed real-DFT basis (cuBLAS through mkc_linear_forward); the
// overlap-add is a gather (each sample sums the frames that cover it, in frame order) and the
// per-signal sums are block reductions in double with a fixed tree: no atomics.
#include <math.h>

#include "core/cuda/common.cuh"

namespace {

constexpr unsigned TPB = 256;

// Y (BT, 2F) = [Re X * g, Im X * g], g = mask^(1/p)
__global__ void gain_k(float *Y, const float *mask, const float *xre, const float *xim, int F, float ip, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    const size_t bt = i / F;
    const int f = (int)(i % F);
    const float g = powf(mask[i], ip);
    Y[bt * 2 * F + f] = xre[i] * g;
    Y[bt * 2 * F + F + f] = xim[i] * g;
}

// y (B, ns): the frames (B, T, N) overlap-added (frame t covers samples [t H - P, t H - P + N)),
// over the window sum; in frame order, as audio_stft_inverse adds them
__global__ void ola_k(float *y, const float *frames, const float *wsum, int T, int N, int H, size_t ns, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    const size_t b = i / ns, j = i % ns;
    const long jp = (long)j + (N - H);
    long t0 = jp - N + 1 <= 0 ? 0 : (jp - N + 1 + H - 1) / H, t1 = jp / H;
    if (t1 > T - 1) t1 = T - 1;
    float acc = 0.f;
    for (long t = t0; t <= t1; t++) acc += frames[((size_t)b * T + t) * N + (jp - t * H)];
    const float w = wsum[jp % H];
    y[i] = w > 1e-6f ? acc / w : 0.f;
}

__device__ double block_sum(double v, double *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    const double r = sh[0];
    __syncthreads();
    return r;
}

// one block per signal: a = <y,r> / <r,r>, t = a r, e = y - t; neg[b] = -10 log10(|t|^2 / |e|^2);
// dy = k (2 t / |t|^2 - 2 e / |e|^2), k = -(10 / ln 10) weight / B
__global__ void sisdr_k(float *dy, float *neg, const float *y, const float *ref, size_t ns, double k) {
    __shared__ double sh[TPB];
    const size_t b = blockIdx.x;
    const float *yb = y + b * ns, *rb = ref + b * ns;
    double yr = 0, rr = 0;
    for (size_t i = threadIdx.x; i < ns; i += blockDim.x) yr += (double)yb[i] * rb[i], rr += (double)rb[i] * rb[i];
    yr = block_sum(yr, sh);
    rr = 1e-12 + block_sum(rr, sh);
    const double a = yr / rr;
    double tt = 0, ee = 0;
    for (size_t i = threadIdx.x; i < ns; i += blockDim.x) {
        const double t = a * rb[i], e = yb[i] - t;
        tt += t * t, ee += e * e;
    }
    tt = 1e-12 + block_sum(tt, sh);
    ee = 1e-12 + block_sum(ee, sh);
    if (threadIdx.x == 0) neg[b] = (float)(-10 * log10(tt / ee));
    for (size_t i = threadIdx.x; i < ns; i += blockDim.x) {
        const double t = a * rb[i], e = yb[i] - t;
        dy[b * ns + i] = (float)(k * (2 * t / tt - 2 * e / ee));
    }
}

// the ISTFT's adjoint, framing: dfr (B, T, N) = dy / wsum at each frame's samples (0 outside)
__global__ void adj_frames_k(float *dfr, const float *dy, const float *wsum, int T, int N, int H, size_t ns, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    const size_t bt = i / N, b = bt / T;
    const long t = (long)(bt % T), j = t * H - (N - H) + (long)(i % N);
    dfr[i] = j >= 0 && (size_t)j < ns ? dy[b * ns + j] / wsum[(j + N - H) % H] : 0.f;
}

// dz += d(term)/dz from dspec (BT, 2F) = d(term)/d[Re Y, Im Y] through Y = X mask^(1/p) and
// mask = beta sigmoid(z): dmask/dz = mask (1 - mask / beta)
__global__ void combine_k(float *dz, const float *dspec, const float *mask, const float *xre, const float *xim, int F,
                          float ip, float beta, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    const size_t bt = i / F;
    const int f = (int)(i % F);
    const float mv = mask[i];
    if (mv <= 0) return;
    const float dre = dspec[bt * 2 * F + f], dim = (f == 0 || f == F - 1) ? 0.f : dspec[bt * 2 * F + F + f];
    const float dg = dre * xre[i] + dim * xim[i];
    const float dmask = dg * ip * powf(mv, ip - 1.f);
    dz[i] += dmask * mv * (1.f - mv / beta);
}

} // namespace

#define EW(n) mkc_blocks((n), TPB), TPB, 0, mkc_s()

size_t mkc_sisdr_work_floats(int B, int T, int F, int N, size_t ns) {
    const size_t BT = (size_t)B * T, a = BT * 2 * F, c = BT * N;
    return ((a + 3) & ~(size_t)3) + ((c + 3) & ~(size_t)3) + 2 * (size_t)B * ns;
}

void mkc_sisdr_grad(float *dz, float *neg, const float *mask, const float *xre, const float *xim, const float *ref,
                    const float *basis, const float *wsum, float *work, int B, int T, int F,
                    int N, int H, size_t ns, float power, float beta, float weight) {
    const size_t BT = (size_t)B * T, BTF = BT * F, BTN = BT * N;
    float *spec = work, *frames = spec + ((BT * 2 * F + 3) & ~(size_t)3), *y = frames + ((BTN + 3) & ~(size_t)3),
          *dy = y + (size_t)B * ns;
    const float ip = 1.f / power;
    if (!BTF || !ns) return;
    gain_k<<<EW(BTF)>>>(spec, mask, xre, xim, F, ip, BTF);
    MKC_CHECK_LAUNCH("sisdr gain");
    mkc_linear_forward(frames, spec, basis, NULL, (int)BT, 2 * F, N); // windowed inverse rfft / N per frame
    ola_k<<<EW((size_t)B * ns)>>>(y, frames, wsum, T, N, H, ns, (size_t)B * ns);
    MKC_CHECK_LAUNCH("sisdr overlap-add");
    sisdr_k<<<B, TPB, 0, mkc_s()>>>(dy, neg, y, ref, ns, -(10 / log(10.0)) * weight / B);
    MKC_CHECK_LAUNCH("sisdr");
    adj_frames_k<<<EW(BTN)>>>(frames, dy, wsum, T, N, H, ns, BTN);
    MKC_CHECK_LAUNCH("sisdr adjoint frames");
    // the adjoint, windowed rfft x c_k / N: spec = frames basis (the input-gradient product of the
    // linear layer above, with the same basis: no transposed copy)
    mkc_memset0(spec, sizeof(float) * BT * 2 * F);
    mkc_linear_backward(spec, NULL, NULL, frames, NULL, basis, (int)BT, 2 * F, N);
    combine_k<<<EW(BTF)>>>(dz, spec, mask, xre, xim, F, ip, beta, BTF);
    MKC_CHECK_LAUNCH("sisdr combine");
}
