/* ops.h — the core's elementwise and small layers, each a _forward/_backward pair.
 *
 * Conventions (llm.c style): outputs first, then inputs, then weights, then
 * sizes. Backward functions ACCUMULATE (+=) into every gradient they receive
 * (input gradients too), so callers zero gradient buffers once per step.
 * Any gradient pointer may be NULL when it is not needed.
 *
 * Shapes: activations are token-major. M = number of rows (tokens, B*L),
 * C = row width. A (M, C) buffer holds row m at inp + m*C. */
#ifndef MK_OPS_H
#define MK_OPS_H

#include <stddef.h>
#include <stdint.h>
#include "util.h"

/* ---- linear: out (M, OUT) = inp (M, IN) @ W^T + b, W (OUT, IN), b (OUT) or NULL ---- */
/* Call once at start-up, after OMP_NUM_THREADS is known: gives a pthread-built
 * OpenBLAS one thread when OpenMP runs several (see linear.c). */
void blas_fit_threads(void);
/* the OpenBLAS core a re-run with OPENBLAS_CORETYPE should ask for, when the library fell back
 * to its generic kernels on a CPU that has AVX2 or AVX-512 (else NULL); the core in use */
const char *blas_better_core(void);
const char *blas_core_name(void);
void linear_forward(float *out, const float *inp, const float *W, const float *b, int M, int IN, int OUT);
/* dinp += dout @ W ; dW += dout^T @ inp ; db += column sums of dout */
void linear_backward(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                     const float *W, int M, int IN, int OUT);
/* C (M, N) += A (M, K) @ B (K, N), or @ B^T with B (N, K) when transB: for layouts
 * that linear_* does not fit (DLinear's time-major windows) */
void matmul_acc(float *C, const float *A, const float *B, int M, int N, int K, int transB);

/* ---- RMSNorm: out = x / sqrt(mean(x^2) + eps) * w. rstd (M) saved for backward ---- */
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int M, int C, float eps);
void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                      const float *rstd, int M, int C);

/* ---- LayerNorm: out = (x - mean) * rstd * w + b. mean, rstd (M) ---- */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, int M, int C, float eps);
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int M, int C);

/* ---- activations over n elements ---- */
void silu_forward(float *out, const float *inp, size_t n);
void silu_backward(float *dinp, const float *dout, const float *inp, size_t n);
void gelu_forward(float *out, const float *inp, size_t n); /* exact erf form */
void gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);
void gelu_backward_inplace(float *d, const float *inp, size_t n); /* d *= GELU'(inp) */
void relu_forward(float *out, const float *inp, size_t n);
void relu_backward(float *dinp, const float *dout, const float *inp, size_t n);
void tanh_forward(float *out, const float *inp, size_t n);
void tanh_backward(float *dinp, const float *dout, const float *out, size_t n); /* uses output */
void sigmoid_forward(float *out, const float *inp, size_t n);
void sigmoid_backward(float *dinp, const float *dout, const float *out, size_t n); /* uses output */
void softplus_forward(float *out, const float *inp, size_t n);
void softplus_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* Overflow-guarded scalar helpers shared by the ops and the scan. */
static inline float mk_softplusf(float x);
static inline float mk_sigmoidf(float x);
#include <math.h>
static inline float mk_softplusf(float x) { return x > 20.f ? x : log1pf(expf(x)); }
static inline float mk_sigmoidf(float x) {
    if (x >= 0) return 1.f / (1.f + expf(-x));
    float e = expf(x);
    return e / (1.f + e);
}
static inline float mk_siluf(float x) { return x * mk_sigmoidf(x); }

/* ---- depthwise causal conv1d over time, channels last ----
 * inp (B, L, C), w (C, K), b (C) or NULL, out (B, L, C):
 *   out[b,t,c] = b[c] + sum_k w[c,k] * x[b, t-(K-1)+k, c]
 * where x at negative time comes from state_in (B, K-1, C) (zeros if NULL).
 * state_out (B, K-1, C), if not NULL, receives the last K-1 inputs (including
 * state_in when L < K-1), so a sequence processed in chunks equals one piece. */
void conv1d_forward(float *out, float *state_out, const float *inp, const float *state_in,
                    const float *w, const float *b, int B, int L, int C, int K);
/* conv1d_forward without state, and act = SiLU(out) in the same pass: the same
 * bits as conv1d_forward followed by silu_forward. */
void conv1d_silu_forward(float *out, float *act, const float *inp, const float *w, const float *b, int B, int L, int C, int K);
/* dstate_in (B, K-1, C) may be NULL. */
void conv1d_backward(float *dinp, float *dstate_in, float *dw, float *db, const float *dout,
                     const float *inp, const float *state_in, const float *w, int B, int L, int C, int K);

/* ---- dropout: mask (n) holds 0 or 1/(1-p); generated from rng when training ---- */
void dropout_forward(float *out, float *mask, const float *inp, size_t n, float p, mk_rng *rng);
void dropout_backward(float *dinp, const float *dout, const float *mask, size_t n);
/* Drop-path (stochastic depth) on a residual branch: per-sample keep mask (B). */
void droppath_mask(float *mask, int B, float p, mk_rng *rng);
void droppath_forward(float *out, const float *inp, const float *mask, int B, size_t per_sample);
void droppath_backward(float *dinp, const float *dout, const float *mask, int B, size_t per_sample);

/* ---- losses: return the mean loss; dlogits/dpred are SET (not accumulated)
 * to d(loss)/d(input) scaled by `scale` (pass 1 for the plain mean). ---- */
/* logits (M, C), targets (M); targets < 0 are ignored (not counted in the mean).
 * probs (M, C) may be NULL; correct (count of argmax hits) may be NULL. */
float crossentropy_forward_backward(float *dlogits, float *probs, int *correct, const float *logits,
                                    const int *targets, int M, int C, float scale);
float mse_forward_backward(float *dpred, const float *pred, const float *target, size_t n, float scale);
float l1_forward_backward(float *dpred, const float *pred, const float *target, size_t n, float scale);

/* ---- gather / scatter of tokens by an index order (scan orders) ----
 * order (L): position t of the scan reads source token order[t].
 * gather: out[b,t,:] = inp[b,order[t],:]; scatter_add: out[b,order[t],:] += alpha*inp[b,t,:].
 * order == NULL means identity. */
void gather_rows(float *out, const float *inp, const int *order, int B, int L, int C);
void scatter_add_rows(float *out, const float *inp, const int *order, int B, int L, int C, float alpha);

/* ---- misc ---- */
void vec_add(float *out, const float *a, const float *b, size_t n);
void vec_acc(float *out, const float *a, size_t n); /* out += a */
void vec_scale(float *out, float s, size_t n);
void softmax_rows(float *out, const float *inp, int M, int C);

#endif
