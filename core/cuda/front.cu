// front.cu — a patch classifier's own ops on the GPU (vision/model.c semantics): im2col and
// its adjoint for the strided patch / stem convolutions, GELU, the token assembly (patches +
// positional embedding, the class token at index P), and softmax cross-entropy with label
// smoothing. One thread per output element; the adjoint of im2col gathers (each image element
// sums the windows that cover it), so it needs no atomics and its sums have a fixed order.
#include <math.h>

#include "core/cuda/common.cuh"

namespace {

constexpr unsigned TPB = 256;

// cols (B, gh*gw, C*k*k), window element order (c, ky, kx), zero padding (k-s)/2; img (B, H, W, C)
__global__ void im2col_k(float *cols, const float *img, int H, int W, int C, int k, int s, int gh, int gw,
                         size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int F = C * k * k, pad = (k - s) / 2;
    const int f = (int)(i % F);
    const size_t bg = i / F;
    const int g = (int)(bg % ((size_t)gh * gw));
    const size_t b = bg / ((size_t)gh * gw);
    const int ch = f / (k * k), ky = (f / k) % k, kx = f % k;
    const int y = (g / gw) * s - pad + ky, x = (g % gw) * s - pad + kx;
    cols[i] = (y >= 0 && y < H && x >= 0 && x < W) ? img[((b * H + y) * W + x) * C + ch] : 0.f;
}

// dimg (B, H, W, C) += the sum over the windows that read each element, in (gy, gx) order
__global__ void col2im_k(float *dimg, const float *dcols, int H, int W, int C, int k, int s, int gh, int gw,
                         size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int F = C * k * k, pad = (k - s) / 2;
    const int ch = (int)(i % C);
    const size_t r = i / C;
    const int x = (int)(r % W), y = (int)((r / W) % H);
    const size_t b = r / ((size_t)W * H);
    // windows gy with 0 <= y + pad - gy*s < k
    int gy0 = y + pad - k + 1;
    gy0 = gy0 <= 0 ? 0 : (gy0 + s - 1) / s;
    int gy1 = (y + pad) / s;
    if (gy1 > gh - 1) gy1 = gh - 1;
    int gx0 = x + pad - k + 1;
    gx0 = gx0 <= 0 ? 0 : (gx0 + s - 1) / s;
    int gx1 = (x + pad) / s;
    if (gx1 > gw - 1) gx1 = gw - 1;
    float acc = 0.f;
    for (int gy = gy0; gy <= gy1; gy++)
        for (int gx = gx0; gx <= gx1; gx++) {
            const int ky = y + pad - gy * s, kx = x + pad - gx * s;
            acc += dcols[((b * gh + gy) * gw + gx) * F + ((size_t)ch * k + ky) * k + kx];
        }
    dimg[i] += acc;
}

// ref: core/act.c gelu_forward / gelu_backward (erfc form)
__global__ void gelu_fwd_k(float *o, const float *x, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n) o[i] = 0.5f * x[i] * erfcf(-x[i] * 0.70710678118f);
}
__global__ void gelu_bwd_k(float *dx, const float *dy, const float *x, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float v = x[i], cdf = 0.5f * erfcf(-v * 0.70710678118f), pdf = 0.39894228040f * expf(-0.5f * v * v);
    dx[i] += dy[i] * (cdf + v * pdf);
}

// x (B, P+1, D): x[b, t] = patches[b, t] + pos[t] for t < P, cls + pos[P] for t = P
__global__ void tokens_k(float *x, const float *patches, const float *pos, const float *cls, int P, int D, size_t n) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int d = (int)(i % D);
    const size_t bt = i / D;
    const int t = (int)(bt % (P + 1));
    const size_t b = bt / (P + 1);
    const float v = t < P ? patches[(b * P + t) * D + d] : cls[d];
    x[i] = v + pos[(size_t)t * D + d];
}

// one thread per row, in double as vision_xent_smooth: dlogits = (softmax - q) / B with
// q = (1 - eps) onehot(y) + eps / K; loss_row = -sum q log softmax; hit_row = argmax == y
// (first maximum, as the CPU). With tprob, vision_xent_kd: the soft term T^2 KL(tprob ||
// softmax(z / T)) weighted alpha, the hard one 1 - alpha; d/dz of T^2 KL = T (softmax(z / T) - tprob)
__global__ void xent_k(float *dlogits, float *loss_row, float *hit_row, const float *logits, const int *y, int B,
                       int K, float eps, const float *tprob, float alpha, float T) {
    int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= B) return;
    const float *z = logits + (size_t)b * K;
    float mx = z[0];
    int am = 0;
    for (int k = 1; k < K; k++)
        if (z[k] > mx) mx = z[k], am = k;
    double s = 0;
    for (int k = 0; k < K; k++) s += exp((double)z[k] - mx);
    const double lse = mx + log(s);
    double loss = 0;
    for (int k = 0; k < K; k++) {
        const double q = (k == y[b] ? 1.0 - eps : 0.0) + eps / K, lp = z[k] - lse; /* eps / K in float, as the CPU */
        loss -= q * lp;
        dlogits[(size_t)b * K + k] = (float)((exp(lp) - q) / B);
    }
    if (tprob) {
        const float *q = tprob + (size_t)b * K;
        double sT = 0, soft = 0;
        for (int k = 0; k < K; k++) sT += exp(((double)z[k] - mx) / T);
        const double lseT = log(sT);
        for (int k = 0; k < K; k++) {
            const double lp = ((double)z[k] - mx) / T - lseT;
            if (q[k] > 0) soft += q[k] * (log((double)q[k]) - lp);
            float *dz = dlogits + (size_t)b * K + k;
            *dz = (float)((1.0 - alpha) * *dz + alpha * T * (exp(lp) - q[k]) / B);
        }
        loss = (1.0 - alpha) * loss + (double)alpha * T * T * soft;
    }
    loss_row[b] = (float)loss;
    hit_row[b] = am == y[b] ? 1.f : 0.f;
}

} // namespace

#define EW(n) mkc_blocks((n), TPB), TPB, 0, mkc_s()

void mkc_im2col(float *cols, const float *img, int B, int H, int W, int C, int k, int s, int gh, int gw) {
    size_t n = (size_t)B * gh * gw * C * k * k;
    if (n) im2col_k<<<EW(n)>>>(cols, img, H, W, C, k, s, gh, gw, n);
    MKC_CHECK_LAUNCH("im2col");
}
void mkc_col2im_add(float *dimg, const float *dcols, int B, int H, int W, int C, int k, int s, int gh, int gw) {
    size_t n = (size_t)B * H * W * C;
    if (n) col2im_k<<<EW(n)>>>(dimg, dcols, H, W, C, k, s, gh, gw, n);
    MKC_CHECK_LAUNCH("col2im");
}
void mkc_gelu_forward(float *out, const float *inp, size_t n) {
    if (n) gelu_fwd_k<<<EW(n)>>>(out, inp, n);
    MKC_CHECK_LAUNCH("gelu");
}
void mkc_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    if (n) gelu_bwd_k<<<EW(n)>>>(dinp, dout, inp, n);
    MKC_CHECK_LAUNCH("gelu_backward");
}
void mkc_tokens(float *x, const float *patches, const float *pos, const float *cls, int B, int P, int D) {
    size_t n = (size_t)B * (P + 1) * D;
    if (n) tokens_k<<<EW(n)>>>(x, patches, pos, cls, P, D, n);
    MKC_CHECK_LAUNCH("tokens");
}
void mkc_xent_smooth(float *dlogits, float *loss_row, float *hit_row, const float *logits, const int *y, int B, int K,
                     float eps, const float *tprob, float alpha, float T) {
    if (B > 0)
        xent_k<<<mkc_blocks(B, 64), 64, 0, mkc_s()>>>(dlogits, loss_row, hit_row, logits, y, B, K, eps, tprob, alpha, T);
    MKC_CHECK_LAUNCH("xent");
}
