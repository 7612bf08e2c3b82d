/* cuda_emu.c — the CUDA kernel API (core/cuda/kernels.h) on the host, for checking the
 * backend's orchestration without a GPU. "Device" pointers are host memory, every launch runs
 * the CPU twin of the op (core/ops.h, core/scan.h, vision/model.h) or, where there is none, a
 * loop written from the kernel's definition, and nothing is asynchronous. tests/test_cuda.c built against this (make target
 * test_cuda_emu) then compares core/backend.c's resident backbone, classifier, enhancer, point and forecaster steps with the
 * CPU path: a wrong buffer, a missing op, an op in the wrong order or a random draw out of step
 * shows there, on any machine. The kernels themselves are not tested here (their twins are the
 * CPU ops); test_cuda on a GPU does that. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cuda/kernels.h"
#include "core/ops.h"
#include "core/optim.h"
#include "core/scan.h"
#include "core/util.h"
#include "audio/model.h"  /* the CPU twins of core/cuda/mask.cu's ops */
#include "pathology/mil_model.h" /* the CPU twins of core/cuda/mil.cu's score, sort and orders */
#include "vision/model.h" /* the CPU twins of core/cuda/front.cu's ops */

int mk_cuda_probe(char *name, int len) {
    snprintf(name, len, "host emulation of the CUDA kernel API (tests/emu/cuda_emu.c)");
    return 1;
}

int mkc_init(void) { return 0; }
const char *mkc_last_error(void) { return "no error (emulated)"; }
void *mkc_malloc(size_t bytes) { return malloc(bytes ? bytes : 1); }
void mkc_free(void *p) { free(p); }
int mkc_upload(void *dst, const void *host, size_t bytes) { return memcpy(dst, host, bytes), 0; }
int mkc_download(void *host, const void *src, size_t bytes) { return memcpy(host, src, bytes), 0; }
int mkc_memset0(void *dst, size_t bytes) { return memset(dst, 0, bytes), 0; }
int mkc_copy(void *dst, const void *src, size_t bytes) { return memmove(dst, src, bytes), 0; }
int mkc_sync(void) { return 0; }
void *mkc_stream(void) { return NULL; }
void *mkc_scratch(size_t bytes) {
    static void *buf;
    static size_t cap;
    if (bytes > cap) {
        free(buf);
        buf = mk_malloc(bytes);
        cap = bytes;
    }
    return buf;
}

int mkc_scan_supported(int N) { return N == 4 || N == 8 || N == 16 || N == 32 || N == 64; }
int mkc_scan_set_tiled(int s) { return s; }
int mkc_scan_lane_map_errors(void) { return 0; }
static ssm_scan_dims dims(int B, int L, int E, int N, int softplus) {
    ssm_scan_dims d = {B, L, E, N, softplus};
    return d;
}
void mkc_scan_forward(float *out, float *h_last, const float *u, const float *delta, const float *A, const float *Bm,
                      const float *Cm, const float *D, const float *z, const float *delta_bias, const float *h0, int B,
                      int L, int E, int N, int softplus) {
    ssm_scan_forward(out, h_last, u, delta, A, Bm, Cm, D, z, delta_bias, h0, dims(B, L, E, N, softplus));
}
void mkc_scan_backward(float *du, float *ddelta, float *dA, float *dBm, float *dCm, float *dD, float *dz,
                       float *ddelta_bias, float *dh0, const float *dout, const float *dh_last, const float *u,
                       const float *delta, const float *A, const float *Bm, const float *Cm, const float *D,
                       const float *z, const float *delta_bias, const float *h0, int B, int L, int E, int N,
                       int softplus) {
    ssm_scan_backward(du, ddelta, dA, dBm, dCm, dD, dz, ddelta_bias, dh0, dout, dh_last, u, delta, A, Bm, Cm, D, z,
                      delta_bias, h0, dims(B, L, E, N, softplus));
}
static float *widen(const uint16_t *h, size_t n) {
    if (!h) return NULL;
    float *f = mk_malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) f[i] = mkc_f32(h[i]);
    return f;
}
void mkc_scan_forward_bf16(uint16_t *out, float *h_last, const uint16_t *u, const uint16_t *delta, const float *A,
                           const uint16_t *Bm, const uint16_t *Cm, const float *D, const uint16_t *z,
                           const float *delta_bias, const float *h0, int B, int L, int E, int N, int softplus) {
    size_t BLE = (size_t)B * L * E, BLN = (size_t)B * L * N;
    float *fu = widen(u, BLE), *fd = widen(delta, BLE), *fb = widen(Bm, BLN), *fc = widen(Cm, BLN), *fz = widen(z, BLE);
    float *fo = mk_malloc(sizeof(float) * (BLE ? BLE : 1));
    mkc_scan_forward(fo, h_last, fu, fd, A, fb, fc, D, fz, delta_bias, h0, B, L, E, N, softplus);
    for (size_t i = 0; i < BLE; i++) out[i] = mkc_bf16(fo[i]);
    free(fu), free(fd), free(fb), free(fc), free(fz), free(fo);
}
void mkc_scan_backward_bf16(float *du, float *ddelta, float *dA, float *dBm, float *dCm, float *dD, float *dz,
                            float *ddelta_bias, float *dh0, const uint16_t *dout, const float *dh_last,
                            const uint16_t *u, const uint16_t *delta, const float *A, const uint16_t *Bm,
                            const uint16_t *Cm, const float *D, const uint16_t *z, const float *delta_bias,
                            const float *h0, int B, int L, int E, int N, int softplus) {
    size_t BLE = (size_t)B * L * E, BLN = (size_t)B * L * N;
    float *fo = widen(dout, BLE), *fu = widen(u, BLE), *fd = widen(delta, BLE), *fb = widen(Bm, BLN),
          *fc = widen(Cm, BLN), *fz = widen(z, BLE);
    mkc_scan_backward(du, ddelta, dA, dBm, dCm, dD, dz, ddelta_bias, dh0, fo, dh_last, fu, fd, A, fb, fc, D, fz,
                      delta_bias, h0, B, L, E, N, softplus);
    free(fo), free(fu), free(fd), free(fb), free(fc), free(fz);
}

void mkc_set_tf32(int on) { (void)on; }
void mkc_linear_forward(float *out, const float *inp, const float *W, const float *b, int M, int IN, int OUT) {
    linear_forward(out, inp, W, b, M, IN, OUT);
}
void mkc_linear_backward(float *dinp, float *dW, float *db, const float *dout, const float *inp, const float *W, int M,
                         int IN, int OUT) {
    linear_backward(dinp, dW, db, dout, inp, W, M, IN, OUT);
}
void mkc_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int M, int C, float eps) {
    rmsnorm_forward(out, rstd, inp, w, M, C, eps);
}
void mkc_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                          const float *rstd, int M, int C) {
    rmsnorm_backward(dinp, dw, dout, inp, w, rstd, M, C);
}
void mkc_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                           int M, int C, float eps) {
    layernorm_forward(out, mean, rstd, inp, w, b, M, C, eps);
}
void mkc_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                            const float *mean, const float *rstd, int M, int C) {
    layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, M, C);
}
void mkc_silu_forward(float *out, const float *inp, size_t n) { silu_forward(out, inp, n); }
void mkc_silu_backward(float *dinp, const float *dout, const float *inp, size_t n) { silu_backward(dinp, dout, inp, n); }
void mkc_softplus_forward(float *out, const float *inp, size_t n) { softplus_forward(out, inp, n); }
void mkc_softplus_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    softplus_backward(dinp, dout, inp, n);
}
void mkc_vec_acc(float *out, const float *a, size_t n) { vec_acc(out, a, n); }
void mkc_vec_scale(float *out, float s, size_t n) { vec_scale(out, s, n); }
void mkc_neg_exp(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = -expf(inp[i]);
}
void mkc_mul_acc(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] += a[i] * b[i];
}
void mkc_residual(float *out, const float *a, const float *br, const float *mask, int B, size_t per) {
    for (size_t i = 0; i < (size_t)B * per; i++) out[i] = a[i] + mask[i / per] * br[i];
}
void mkc_rowscale(float *out, const float *inp, const float *mask, int B, size_t per) {
    for (size_t i = 0; i < (size_t)B * per; i++) out[i] = inp[i] * mask[i / per];
}
void mkc_conv1d_forward(float *out, const float *inp, const float *w, const float *b, int B, int L, int C, int K) {
    conv1d_forward(out, NULL, inp, NULL, w, b, B, L, C, K);
}
void mkc_conv1d_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w, int B,
                         int L, int C, int K) {
    conv1d_backward(dinp, NULL, dw, db, dout, inp, NULL, w, B, L, C, K);
}
void mkc_gather_rows(float *out, const float *inp, const int *order, int B, int L, int C) {
    gather_rows(out, inp, order, B, L, C);
}
void mkc_scatter_add_rows(float *out, const float *inp, const int *order, int B, int L, int C, float alpha) {
    scatter_add_rows(out, inp, order, B, L, C, alpha);
}
void mkc_split_cols(float *out, const float *inp, int M, int C, int c0, int w) {
    for (size_t m = 0; m < (size_t)M; m++) memcpy(out + m * w, inp + m * C + c0, sizeof(float) * w);
}
void mkc_merge_cols(float *out, const float *inp, int M, int C, int c0, int w) {
    for (size_t m = 0; m < (size_t)M; m++) memcpy(out + m * C + c0, inp + m * w, sizeof(float) * w);
}
void mkc_copy_cols(float *out, int ldo, const float *inp, int ldi, int M, int w) {
    for (size_t m = 0; m < (size_t)M; m++) memcpy(out + m * ldo, inp + m * ldi, sizeof(float) * w);
}
void mkc_broadcast_row(float *out, const float *v, int M, int C) {
    for (size_t m = 0; m < (size_t)M; m++) memcpy(out + m * C, v, sizeof(float) * C);
}
void mkc_colsum(float *out, const float *inp, int M, int C) {
    for (size_t m = 0; m < (size_t)M; m++)
        for (int c = 0; c < C; c++) out[c] += inp[m * C + c];
}

void mkc_im2col(float *cols, const float *img, int B, int H, int W, int C, int k, int s, int gh, int gw) {
    vision_im2col(cols, img, B, H, W, C, k, s, gh, gw);
}
void mkc_col2im_add(float *dimg, const float *dcols, int B, int H, int W, int C, int k, int s, int gh, int gw) {
    vision_col2im_add(dimg, dcols, B, H, W, C, k, s, gh, gw);
}
void mkc_gelu_forward(float *out, const float *inp, size_t n) { gelu_forward(out, inp, n); }
void mkc_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) { gelu_backward(dinp, dout, inp, n); }
void mkc_tokens(float *x, const float *patches, const float *pos, const float *cls, int B, int P, int D) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t <= P; t++)
            for (int d = 0; d < D; d++)
                x[((size_t)b * (P + 1) + t) * D + d] =
                    (t < P ? patches[((size_t)b * P + t) * D + d] : cls[d]) + pos[(size_t)t * D + d];
}
/* the batch's gradient as the CPU computes it; each row's loss and hit from the same function
 * on that row alone */
void mkc_xent_smooth(float *dlogits, float *loss_row, float *hit_row, const float *logits, const int *y, int B, int K,
                     float eps, const float *tprob, float alpha, float T) {
    if (tprob) vision_xent_kd(dlogits, NULL, logits, tprob, y, B, K, eps, alpha, T);
    else vision_xent_smooth(dlogits, NULL, logits, y, B, K, eps);
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * K;
        int hit;
        loss_row[b] = tprob ? vision_xent_kd(NULL, &hit, z, tprob + (size_t)b * K, y + b, 1, K, eps, alpha, T)
                            : vision_xent_smooth(NULL, &hit, z, y + b, 1, K, eps);
        hit_row[b] = hit;
    }
}

/* the point classifier's ops: points_forward / points_backward's loops */
void mkc_relu_forward(float *out, const float *inp, size_t n) { relu_forward(out, inp, n); }
void mkc_relu_backward(float *dinp, const float *dout, const float *inp, size_t n) { relu_backward(dinp, dout, inp, n); }
void mkc_group_max(float *out, int *arg, const float *inp, int M, int K, int D) {
    for (size_t m = 0; m < (size_t)M; m++)
        for (int d = 0; d < D; d++) {
            int bj = 0;
            float bv = inp[m * K * D + d];
            for (int j = 1; j < K; j++) {
                float v = inp[(m * K + j) * D + d];
                if (v > bv) bv = v, bj = j;
            }
            arg[m * D + d] = bj;
            out[m * D + d] += bv;
        }
}
void mkc_group_max_backward(float *dinp, const float *dout, const int *arg, int M, int K, int D) {
    for (size_t m = 0; m < (size_t)M; m++)
        for (int d = 0; d < D; d++) dinp[(m * K + arg[m * D + d]) * D + d] += dout[m * D + d];
}
void mkc_mean_rows(float *out, const float *inp, int n, int M, int C) {
    for (size_t g = 0; g < (size_t)n; g++) {
        float *o = out + g * C;
        const float *x = inp + g * M * C;
        for (int c = 0; c < C; c++) o[c] = 0;
        for (size_t m = 0; m < (size_t)M; m++)
            for (int c = 0; c < C; c++) o[c] += x[m * C + c];
        for (int c = 0; c < C; c++) o[c] /= M;
    }
}
void mkc_mean_rows_backward(float *dinp, const float *dout, int n, int M, int C) {
    for (size_t g = 0; g < (size_t)n; g++)
        for (size_t m = 0; m < (size_t)M; m++)
            for (int c = 0; c < C; c++) dinp[(g * M + m) * C + c] += dout[g * C + c] / M;
}
/* row by row through the CPU's own function, as the kernel computes each row alone */
void mkc_xent(float *dlogits, float *loss_row, float *hit_row, const float *logits, const int *y, int B, int K,
              float scale) {
    for (int b = 0; b < B; b++) {
        int hit = 0;
        loss_row[b] = crossentropy_forward_backward(dlogits + (size_t)b * K, NULL, &hit, logits + (size_t)b * K, y + b,
                                                    1, K, scale);
        hit_row[b] = (float)hit;
    }
}

void mkc_mask_forward(float *mask, float *z, const float *feat, const float *u, int M, int F, float beta) {
    audio_mask_forward(mask, z, feat, u, M, F, beta);
}
/* row by row, as the kernel sums: each row's dz is what the whole batch's call writes */
void mkc_mask_loss(float *dz, float *loss_row, const float *mask, const float *c, const float *cc, const float *cosd,
                   int M, int F, float a, float inv, float beta) {
    for (int r = 0; r < M; r++) {
        size_t o = (size_t)r * F;
        loss_row[r] = (float)audio_mask_loss(dz + o, mask + o, c + o, cc + o, cosd + o, F, a, inv, beta);
    }
}

/* the waveform term signal by signal with the CPU's FFTs (the basis and work are not needed) */
size_t mkc_sisdr_work_floats(int B, int T, int F, int N, size_t ns) { return 1; }
void mkc_sisdr_grad(float *dz, float *neg, const float *mask, const float *xre, const float *xim, const float *ref,
                    const float *basis, const float *wsum, float *work, int B, int T, int F,
                    int N, int H, size_t ns, float power, float beta, float weight) {
    static audio_stft st; /* one STFT per shape (a process trains one model) */
    if (st.n_fft != N || st.hop != H) {
        if (st.n_fft) audio_stft_free(&st);
        MK_ASSERT(audio_stft_init(&st, N, H) == 0);
    }
    const size_t TF = (size_t)T * F;
    for (int b = 0; b < B; b++)
        neg[b] = (float)audio_sisdr_grad_one(&st, dz + b * TF, mask + b * TF, xre + b * TF, xim + b * TF, ref + b * ns,
                                             ns, T, power, beta, weight, B);
}

float mkc_mse_forward_backward(float *dpred, const float *pred, const float *target, size_t n, float scale) {
    return mse_forward_backward(dpred, pred, target, n, scale); /* elementwise: dpred may alias target */
}
double mkc_sumsq(const float *x, size_t n) { return mk_sumsq(x, n); }
void mkc_adamw(float *w, const float *g, float *m, float *v, const float *decay, size_t n, float lr, float beta1,
               float beta2, float eps, float wd, float gscale, float bc1, float bc2) {
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * gscale;
        float mi = beta1 * m[i] + (1 - beta1) * gi, vi = beta2 * v[i] + (1 - beta2) * gi * gi;
        m[i] = mi, v[i] = vi;
        float wdi = decay ? wd * decay[i] : wd, mh = mi / bc1, vh = vi / bc2;
        w[i] -= lr * (mh / (sqrtf(vh) + eps) + wdi * w[i]);
    }
}

double mkc_time_us(void (*fn)(void *), void *arg, int reps, int flush) {
    (void)flush;
    double t0 = mk_time();
    for (int r = 0; r < reps; r++) fn(arg);
    return reps > 0 ? (mk_time() - t0) * 1e6 / reps : 0;
}
double mkc_copy_bandwidth(void) { return 0; }

/* core/cuda/ts.cu's ops, written from timeseries/smamba.c's loops */
void mkc_mul(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] * b[i];
}
void mkc_bidir_merge(float *h, const float *r, const float *in, size_t n) {
    for (size_t i = 0; i < n; i++) h[i] += r[i] - in[i];
}
void mkc_vec_sub(float *out, const float *a, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] -= a[i];
}
void mkc_ts_gelu_grad(float *dg, const float *x, size_t n) { gelu_backward_inplace(dg, x, n); }
void mkc_ts_denorm(float *pred, const float *hout, const float *mean, const float *sd, int B, int C, int H) {
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int h = 0; h < H; h++)
                pred[((size_t)b * H + h) * C + c] =
                    hout[((size_t)b * C + c) * H + h] * sd[(size_t)b * C + c] + mean[(size_t)b * C + c];
}
void mkc_ts_denorm_backward(float *dhout, const float *dpred, const float *sd, int B, int C, int H) {
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int h = 0; h < H; h++)
                dhout[((size_t)b * C + c) * H + h] = dpred[((size_t)b * H + h) * C + c] * sd[(size_t)b * C + c];
}

/* core/cuda/mil.cu's ops, written from pathology/mil_model.c's loops (the CPU path MambaMIL
 * trains with) */
void mkc_tanh_forward(float *out, const float *inp, size_t n) { tanh_forward(out, inp, n); }
void mkc_sigmoid_forward(float *out, const float *inp, size_t n) { sigmoid_forward(out, inp, n); }
void mkc_mil_standardize(float *xs, const float *x, const float *mu, const float *sd, int L, int F) {
    for (int i = 0; i < L; i++)
        for (int j = 0; j < F; j++) xs[(size_t)i * F + j] = (x[(size_t)i * F + j] - mu[j]) / sd[j];
}
void mkc_mil_att_score(float *s, const float *t, const float *g, const float *w, int L, int H) {
    mil_att_score(s, t, g, w, L, H);
}
/* the kernel's twin: the CPU model's stable sort (highest first, -0.0 equal to +0.0, NaN last) */
void mkc_mil_sort_desc(int *order, const float *s, int L) {
    mil_score_idx *v = mk_malloc(sizeof *v * (L > 0 ? L : 1));
    mil_sort_by_score(order, s, L, v);
    free(v);
}
void mkc_mil_orders(int *orders, const int *base, int L, int R, int NL, int G) {
    int *il = mk_malloc(sizeof(int) * (L > 0 ? L : 1));
    mil_order_interleave(il, L, R);
    for (int l = 0; l < NL; l++)
        for (int g = 0; g < G; g++)
            for (int k = 0; k < L; k++) {
                int o = g == 0 ? k : il[k];
                orders[((size_t)l * G + g) * L + k] = base ? base[o] : o;
            }
    free(il);
}
void mkc_mil_gate_forward(float *h, const float *e, const float *mo, const float *gamma, float sc, int L, int D) {
    for (int i = 0; i < L; i++)
        for (int d = 0; d < D; d++) h[(size_t)i * D + d] = e[(size_t)i * D + d] + sc * gamma[d] * mo[(size_t)i * D + d];
}
void mkc_mil_gate_backward(float *mo, float *dgamma, const float *dh, const float *gamma, float sc, int L, int D) {
    for (int i = 0; i < L; i++)
        for (int d = 0; d < D; d++) {
            float *m = mo + (size_t)i * D + d, dv = sc * dh[(size_t)i * D + d];
            dgamma[d] += dv * *m;
            *m = gamma[d] * dv;
        }
}
void mkc_mil_softmax(float *a, const float *s, int L) {
    float smax = -INFINITY;
    for (int i = 0; i < L; i++)
        if (s[i] > smax) smax = s[i];
    double sum = 0;
    for (int i = 0; i < L; i++) sum += (a[i] = expf(s[i] - smax));
    for (int i = 0; i < L; i++) a[i] = (float)(a[i] / sum);
}
void mkc_mil_pool(float *z, const float *a, const float *v, int L, int D) {
    memset(z, 0, sizeof(float) * D);
    for (int i = 0; i < L; i++)
        for (int d = 0; d < D; d++) z[d] += a[i] * v[(size_t)i * D + d];
}
void mkc_mil_head(float *lg, const float *z, const float *wc, const float *bc, float y, int batch, int D) {
    float l = bc[0];
    for (int d = 0; d < D; d++) l += wc[d] * z[d];
    lg[0] = l;
    lg[1] = (mk_sigmoidf(l) - y) / (batch > 0 ? batch : 1);
}
void mkc_mil_pool_backward(float *dv, float *da, float *gwc, float *gbc, const float *lg, const float *v,
                           const float *a, const float *z, const float *wc, int L, int D) {
    const float dl = lg[1];
    gbc[0] += dl;
    for (int d = 0; d < D; d++) gwc[d] += dl * z[d];
    for (int i = 0; i < L; i++) {
        float s = 0;
        for (int d = 0; d < D; d++) {
            float dz = dl * wc[d];
            dv[(size_t)i * D + d] += a[i] * dz;
            s += dz * v[(size_t)i * D + d];
        }
        da[i] = s;
    }
}
void mkc_mil_softmax_backward(float *da, const float *a, int L) {
    double adot = 0;
    for (int i = 0; i < L; i++) adot += (double)a[i] * da[i];
    for (int i = 0; i < L; i++) da[i] = a[i] * (da[i] - (float)adot);
}
void mkc_mil_att_score_backward(float *dt, float *dg, float *gw, const float *ds, const float *t, const float *g,
                                const float *w, int L, int H) {
    for (int i = 0; i < L; i++)
        for (int k = 0; k < H; k++) {
            size_t q = (size_t)i * H + k;
            if (g) {
                gw[k] += ds[i] * t[q] * g[q];
                dt[q] = ds[i] * w[k] * g[q];
                dg[q] = ds[i] * w[k] * t[q];
            } else {
                gw[k] += ds[i] * t[q];
                dt[q] = ds[i] * w[k];
            }
        }
    for (size_t q = 0; q < (size_t)L * H; q++) {
        dt[q] *= 1.f - t[q] * t[q];
        if (g) dg[q] *= g[q] * (1.f - g[q]);
    }
}
