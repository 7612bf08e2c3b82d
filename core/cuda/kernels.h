/* kernels.h — the CUDA kernels' C interface (the .cu files in core/cuda). Only
 * core/backend.c, the CUDA tests and the kernel lab include this header.
 *
 * Every pointer here is a DEVICE pointer unless the name says host. Each op
 * has the same contract as its CPU twin in core/ops.h / core/scan.h (same
 * argument order, backward passes accumulate with +=), so the CPU path is the
 * reference the tests compare against. All launches go to one stream
 * (mkc_stream()); nothing synchronises except the copy helpers.
 *
 * Supported shapes (anything else: the caller falls back to the CPU; see
 * mkc_scan_supported and mkc_backbone_supported in core/backend.c):
 *   scan      N in {4, 8, 16, 32, 64} (N/4 lanes per channel), any B, L, E
 *   conv1d    K <= 8, no carried state (state_in/state_out NULL)
 *   norms     any row width C
 * Gradient reductions are deterministic: no floating-point atomics; partial
 * sums land in scratch buffers and are summed in a fixed order. */
#ifndef MK_CUDA_KERNELS_H
#define MK_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- device, memory, stream ---- */
int mkc_init(void);                      /* 0 ok; -1 no device (message in mkc_last_error) */
const char *mkc_last_error(void);
void *mkc_malloc(size_t bytes);          /* NULL on failure */
void mkc_free(void *p);
int mkc_upload(void *dst, const void *host, size_t bytes);   /* synchronous */
int mkc_download(void *host, const void *src, size_t bytes); /* synchronous */
int mkc_memset0(void *dst, size_t bytes);                    /* async */
int mkc_copy(void *dst, const void *src, size_t bytes);      /* async, device to device */
int mkc_sync(void);                      /* wait for the stream; 0 ok, -1 with a kernel error */
void *mkc_stream(void);                  /* the cudaStream_t all launches use */

/* Scratch that kernels may use between launches on the stream (grown on
 * demand, owned by the library). */
void *mkc_scratch(size_t bytes);

/* ---- selective scan (core/scan.h semantics) ---- */
int mkc_scan_supported(int N);
/* The forward (and the backward's checkpoint sweep) use the shared-memory staged kernel
 * (scan_tile.cuh) when the inputs allow it, with 2 or 4 states per lane (s = 2 or 4; any
 * other value: the default); s = 0 forces the register kernel everywhere; s = 16 the
 * one-lane-per-channel forward (scan_lane.cuh; fp32, N = 16, with an output: a trial mode, not
 * yet timed), the staged kernel elsewhere. Returns the previous setting. For tests, benchmarks
 * and the kernel lab. */
int mkc_scan_set_tiled(int s);
/* Host-side check of the staged kernel's lane orders (no device needed): the number of
 * violations, 0 when every order is a bijection with the shuffle partners it assumes. */
int mkc_scan_lane_map_errors(void);
void mkc_scan_forward(float *out, float *h_last, const float *u, const float *delta, const float *A,
                      const float *Bm, const float *Cm, const float *D, const float *z,
                      const float *delta_bias, const float *h0, int B, int L, int E, int N, int softplus);
void mkc_scan_backward(float *du, float *ddelta, float *dA, float *dBm, float *dCm, float *dD,
                       float *dz, float *ddelta_bias, float *dh0, const float *dout,
                       const float *dh_last, const float *u, const float *delta, const float *A,
                       const float *Bm, const float *Cm, const float *D, const float *z,
                       const float *delta_bias, const float *h0, int B, int L, int E, int N,
                       int softplus);

/* bf16 activations, fp32 state: u, delta, Bm, Cm, z and out are bf16 (raw bits in uint16_t, so
 * C callers need no CUDA header; mkc_bf16 / mkc_f32 below convert on the host); A, D,
 * delta_bias, h0 and h_last stay fp32, and every step's arithmetic is fp32. */
void mkc_scan_forward_bf16(uint16_t *out, float *h_last, const uint16_t *u, const uint16_t *delta, const float *A,
                           const uint16_t *Bm, const uint16_t *Cm, const float *D, const uint16_t *z,
                           const float *delta_bias, const float *h0, int B, int L, int E, int N, int softplus);
/* bf16 inputs (u, delta, Bm, Cm, z, dout), fp32 state; the gradients are fp32 and accumulate
 * (+=) exactly as mkc_scan_backward's. */
void mkc_scan_backward_bf16(float *du, float *ddelta, float *dA, float *dBm, float *dCm, float *dD, float *dz,
                            float *ddelta_bias, float *dh0, const uint16_t *dout, const float *dh_last,
                            const uint16_t *u, const uint16_t *delta, const float *A, const uint16_t *Bm,
                            const uint16_t *Cm, const float *D, const uint16_t *z, const float *delta_bias,
                            const float *h0, int B, int L, int E, int N, int softplus);
/* fp32 -> bf16 rounding to nearest even (NaN stays NaN), and back (exact). */
static inline uint16_t mkc_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}
static inline float mkc_f32(uint16_t h) {
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* ---- linear through cuBLAS (fp32; TF32 if mkc_set_tf32(1)) ---- */
void mkc_set_tf32(int on);
void mkc_linear_forward(float *out, const float *inp, const float *W, const float *b, int M, int IN, int OUT);
void mkc_linear_backward(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                         const float *W, int M, int IN, int OUT);

/* ---- norms ---- */
void mkc_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int M, int C, float eps);
void mkc_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                          const float *rstd, int M, int C);
void mkc_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                           const float *b, int M, int C, float eps);
void mkc_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                            const float *w, const float *mean, const float *rstd, int M, int C);

/* ---- activations, elementwise ---- */
void mkc_silu_forward(float *out, const float *inp, size_t n);
void mkc_silu_backward(float *dinp, const float *dout, const float *inp, size_t n);
void mkc_softplus_forward(float *out, const float *inp, size_t n);
void mkc_softplus_backward(float *dinp, const float *dout, const float *inp, size_t n);
void mkc_vec_acc(float *out, const float *a, size_t n);       /* out += a */
void mkc_vec_scale(float *out, float s, size_t n);
void mkc_neg_exp(float *out, const float *inp, size_t n);     /* out = -exp(inp)  (A from A_log) */
void mkc_mul_acc(float *out, const float *a, const float *b, size_t n); /* out += a*b */
/* out[b, i] = a[b, i] + mask[b] * br[b, i] over B rows of per elements (residual + drop-path) */
void mkc_residual(float *out, const float *a, const float *br, const float *mask, int B, size_t per);
/* out[b, i] = inp[b, i] * mask[b] */
void mkc_rowscale(float *out, const float *inp, const float *mask, int B, size_t per);

/* ---- causal depthwise conv1d (no carried state) ---- */
void mkc_conv1d_forward(float *out, const float *inp, const float *w, const float *b, int B, int L, int C, int K);
void mkc_conv1d_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                         const float *w, int B, int L, int C, int K);

/* ---- scan orders (order: device int array of L, or NULL = identity) ---- */
void mkc_gather_rows(float *out, const float *inp, const int *order, int B, int L, int C);
void mkc_scatter_add_rows(float *out, const float *inp, const int *order, int B, int L, int C, float alpha);
/* Copy columns [c0, c0+w) of a (M, C) matrix into a dense (M, w) one, or add back. */
void mkc_split_cols(float *out, const float *inp, int M, int C, int c0, int w);
void mkc_merge_cols(float *out, const float *inp, int M, int C, int c0, int w); /* out[:, c0:c0+w] = inp */
/* out[m*ldo + j] = inp[m*ldi + j] for m < M, j < w (a strided 2-D copy; the scan's zero-padded state) */
void mkc_copy_cols(float *out, int ldo, const float *inp, int ldi, int M, int w);
/* out[m, :] = v (broadcast a (C) row to M rows) ; colsum: out[c] += sum_m inp[m, c] */
void mkc_broadcast_row(float *out, const float *v, int M, int C);
void mkc_colsum(float *out, const float *inp, int M, int C);

/* ---- losses ---- */
/* dpred = scale * 2 (pred - target) / n (dpred may alias target); returns the mean
 * squared error (synchronises) */
float mkc_mse_forward_backward(float *dpred, const float *pred, const float *target, size_t n, float scale);

/* ---- a patch classifier's front end and loss (core/cuda/front.cu; vision/model.c semantics) ---- */
/* cols (B, gh*gw, C*k*k), window order (c, ky, kx), zero padding (k-s)/2, from img (B, H, W, C);
 * col2im_add is its adjoint: dimg += (a gather per image element: no atomics) */
void mkc_im2col(float *cols, const float *img, int B, int H, int W, int C, int k, int s, int gh, int gw);
void mkc_col2im_add(float *dimg, const float *dcols, int B, int H, int W, int C, int k, int s, int gh, int gw);
void mkc_gelu_forward(float *out, const float *inp, size_t n);
void mkc_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n); /* dinp += */
/* x (B, P+1, D): patch token t < P is patches[b, t] + pos[t]; token P is cls + pos[P] */
void mkc_tokens(float *x, const float *patches, const float *pos, const float *cls, int B, int P, int D);
/* softmax cross-entropy with label smoothing eps per row of logits (B, K): dlogits = d(mean
 * loss)/d logits, loss_row (B) each row's loss, hit_row (B) 1 where the argmax is y. With
 * tprob (B, K) (else NULL): knowledge distillation as vision_xent_kd, (1 - alpha) x that loss +
 * alpha T^2 KL(tprob || softmax(logits / T)) */
void mkc_xent_smooth(float *dlogits, float *loss_row, float *hit_row, const float *logits, const int *y, int B, int K,
                     float eps, const float *tprob, float alpha, float T);

/* ---- a point-cloud classifier's front end and loss (core/cuda/points.cu; vision/points.c semantics) ---- */
void mkc_relu_forward(float *out, const float *inp, size_t n);
void mkc_relu_backward(float *dinp, const float *dout, const float *inp, size_t n); /* dinp += */
/* out (M, D) += max over the K rows of each group of inp (M, K, D); arg (M, D) = the first k
 * holding the maximum. The backward sends dout to that k: dinp (M, K, D) += (a gather per
 * input element: no atomics) */
void mkc_group_max(float *out, int *arg, const float *inp, int M, int K, int D);
void mkc_group_max_backward(float *dinp, const float *dout, const int *arg, int M, int K, int D);
/* out (n, C): each group's mean of its M rows of inp (n, M, C) (written: summed in row order in
 * float, then divided by M); the backward dinp (n, M, C) += dout / M on every row of a group */
void mkc_mean_rows(float *out, const float *inp, int n, int M, int C);
void mkc_mean_rows_backward(float *dinp, const float *dout, int n, int M, int C);
/* softmax cross-entropy of each row of logits (B, K) alone, as crossentropy_forward_backward
 * with M = 1: dlogits = scale (softmax - onehot(y)) (written), loss_row (B) = logsumexp - z[y],
 * hit_row (B) 1 where the first argmax is y. y in [0, K): the caller checks. */
void mkc_xent(float *dlogits, float *loss_row, float *hit_row, const float *logits, const int *y, int B, int K,
              float scale);

/* ---- a frame model's mask and loss (core/cuda/mask.cu; audio/model.c semantics) ---- */
/* z (M, F) += u * feat per bin (u (F), or NULL: no skip, z untouched); mask = beta * sigmoid(z) */
void mkc_mask_forward(float *mask, float *z, const float *feat, const float *u, int M, int F, float beta);
/* audio_mask_loss row by row: dz (M, F) = inv * d loss / d z (written, not added); loss_row (M)
 * the loss summed over each row's F bins */
void mkc_mask_loss(float *dz, float *loss_row, const float *mask, const float *c, const float *cc, const float *cosd,
                   int M, int F, float a, float inv, float beta);

/* The waveform term of B signals (core/cuda/sisdr.cu; audio_sisdr_grad_one for each): y_b =
 * ISTFT(X_b mask_b^(1/power)), neg (B) = -SI-SDR(y_b, ref_b) in dB, and dz (B, T, F) += weight /
 * B x d(-SI-SDR_b)/dz through mask = beta sigmoid(z). xre, xim (B, T, F) the noisy spectrum, ref
 * (B, ns) the clean signals; basis (N, 2F): frame = basis [Re; Im], the windowed inverse rfft /
 * N with the DC and Nyquist imaginary parts dropped (its transpose is the ISTFT's adjoint per
 * frame); wsum (H) the window sum; work: mkc_sisdr_work_floats floats. */
size_t mkc_sisdr_work_floats(int B, int T, int F, int N, size_t ns);
void mkc_sisdr_grad(float *dz, float *neg, const float *mask, const float *xre, const float *xim, const float *ref,
                    const float *basis, const float *wsum, float *work, int B, int T, int F,
                    int N, int H, size_t ns, float power, float beta, float weight);

/* ---- the S-Mamba forecaster's own ops (core/cuda/ts.cu; timeseries/smamba.c semantics) ---- */
/* out = a * b elementwise (written; out may alias a or b): a dropout mask applied */
void mkc_mul(float *out, const float *a, const float *b, size_t n);
/* h += r - in (the paper block: forward module's output plus the reverse module's, the input
 * counted once); vec_sub: out -= a (its backward: the residual's gradient counted once) */
void mkc_bidir_merge(float *h, const float *r, const float *in, size_t n);
void mkc_vec_sub(float *out, const float *a, size_t n);
/* dg *= gelu'(x) = Phi(x) + x pdf(x) (in place; core/act.c gelu_backward_inplace) */
void mkc_ts_gelu_grad(float *dg, const float *x, size_t n);
/* RevIN's de-normalisation: pred (B, H, C) = hout (B, C, H) * sd + mean, mean and sd (B, C);
 * the backward dhout (B, C, H) = dpred (B, H, C) * sd (written) */
void mkc_ts_denorm(float *pred, const float *hout, const float *mean, const float *sd, int B, int C, int H);
void mkc_ts_denorm_backward(float *dhout, const float *dpred, const float *sd, int B, int C, int H);

/* ---- MambaMIL's own ops (core/cuda/mil.cu; pathology/mil_model.c semantics) ---- */
/* tanhf / mk_sigmoidf elementwise (out may alias inp) */
void mkc_tanh_forward(float *out, const float *inp, size_t n);
void mkc_sigmoid_forward(float *out, const float *inp, size_t n);
/* xs (L, F) = (x - mu) / sd per feature (the train-set standardisation) */
void mkc_mil_standardize(float *xs, const float *x, const float *mu, const float *sd, int L, int F);
/* attention logits s (L) = sum_k w[k] t[i, k] (* g[i, k] when g is not NULL; summed in k order
 * in float, as att_logits) */
void mkc_mil_att_score(float *s, const float *t, const float *g, const float *w, int L, int H);
/* order (L) = the rows by s, highest first, equal scores in row order, NaN last (by_score's
 * total order; -0.0 ties +0.0): a stable radix sort of an order-preserving key */
void mkc_mil_sort_desc(int *order, const float *s, int L);
/* The backbone's scan orders for NL layers, (NL, G, L): order 0 the base (NULL: the bag's own
 * order), order 1 (G = 2) the stride-R interleave of it, base[interleave_R[t]] (mil_order_interleave) */
void mkc_mil_orders(int *orders, const int *base, int L, int R, int NL, int G);
/* the residual gate h (L, D) = e + (sc * gamma[d]) * mo; backward per channel d over the rows in
 * order: dv = sc * dh, dgamma[d] += dv * mo, then mo = gamma[d] * dv (in place: the backbone's dout) */
void mkc_mil_gate_forward(float *h, const float *e, const float *mo, const float *gamma, float sc, int L, int D);
void mkc_mil_gate_backward(float *mo, float *dgamma, const float *dh, const float *gamma, float sc, int L, int D);
/* a (L) = softmax(s) as pool_forward: max, exp(s - max) summed in double, divided (in double) */
void mkc_mil_softmax(float *a, const float *s, int L);
/* z (D) = sum_i a[i] v[i, :] (written; summed over the rows in order) */
void mkc_mil_pool(float *z, const float *a, const float *v, int L, int D);
/* the classifier and BCE gradient on the device: lg[0] = bc[0] + sum_d wc[d] z[d] (d order),
 * lg[1] = (sigmoid(lg[0]) - y) / batch, the d loss / d logit the backward reads */
void mkc_mil_head(float *lg, const float *z, const float *wc, const float *bc, float y, int batch, int D);
/* pool_backward's first half for dlogit = lg[1]: gwc[d] += dl z[d], gbc[0] += dl; dv (L, D) +=
 * a_i dz with dz = dl wc; da (L) = dz . v_i (written) */
void mkc_mil_pool_backward(float *dv, float *da, float *gwc, float *gbc, const float *lg, const float *v,
                           const float *a, const float *z, const float *wc, int L, int D);
/* the softmax's backward in place: da_i = a_i (da_i - (float) sum_j a_j da_j), the sum in double */
void mkc_mil_softmax_backward(float *da, const float *a, int L);
/* the attention logits' backward for ds (L): gw[k] += sum_i ds_i t_ik (g_ik) (rows in order);
 * dt (L, H) = ds w g (1 - t^2) and, gated (g not NULL), dg = ds w t (g (1 - g)) (written) */
void mkc_mil_att_score_backward(float *dt, float *dg, float *gw, const float *ds, const float *t, const float *g,
                                const float *w, int L, int H);

/* ---- optimiser ---- */
/* Sum of squares of n floats (deterministic, synchronises). */
double mkc_sumsq(const float *x, size_t n);
/* One AdamW step over n floats with per-element decay flags folded into wd
 * (decay: device float array of 0/1 or NULL = all decay). Same math as mk_adamw_step. */
void mkc_adamw(float *w, const float *g, float *m, float *v, const float *decay, size_t n, float lr, float beta1,
               float beta2, float eps, float wd, float gscale, float bc1, float bc2);

/* ---- timing ---- */
/* Median time in microseconds of fn(arg) over reps launches on the stream,
 * measured with CUDA events; flush: overwrite a buffer of 4x the L2 size first. */
double mkc_time_us(void (*fn)(void *), void *arg, int reps, int flush);
/* Device-to-device copy bandwidth in bytes/s (bytes read + written), 1 GiB. */
double mkc_copy_bandwidth(void);

#ifdef __cplusplus
}
#endif
#endif
