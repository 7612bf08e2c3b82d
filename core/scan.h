/* scan.h — the selective scan S6, as mamba_ssm's selective_scan_ref defines it.
 *
 * ref: Gu & Dao 2023, "Mamba", Alg. 2; mamba_ssm/ops/selective_scan_interface.py
 *   dt[t,e]  = softplus(delta[t,e] + delta_bias[e])          (if softplus)
 *   h[t,e,n] = exp(dt*A[e,n]) * h[t-1,e,n] + dt * B[t,n] * u[t,e]
 *   y[t,e]   = sum_n C[t,n] * h[t,e,n] + D[e] * u[t,e]
 *   out      = y * silu(z[t,e])                                (if z)
 *
 * Layout (token-major, matching the linear layers that feed it):
 *   u, delta, z, out (B, L, E)   Bm, Cm (B, L, N)   A (E, N)   D, delta_bias (E)
 *   h0, h_last (B, E, N)
 * Optional inputs (D, z, delta_bias, h0) may be NULL; h_last may be NULL.
 * A sequence processed in chunks, passing h_last on as h0, gives the same
 * result as processing it in one piece.
 *
 * The backward pass recomputes states (checkpoints every MK_SCAN_CHUNK steps)
 * instead of storing (B, L, E, N) states. Gradients accumulate (+=).
 * dBm/dCm are reductions over E; they are summed in a fixed order so results
 * are identical run to run for the same thread count. */
#ifndef MK_SCAN_H
#define MK_SCAN_H

#include <stddef.h>

#define MK_SCAN_CHUNK 64
#define MK_SCAN_MAXN 64 /* largest d_state the CPU kernels take */

typedef struct {
    int B, L, E, N;
    int softplus; /* apply softplus(delta + delta_bias) */
} ssm_scan_dims;

/* Optimised path: OpenMP over (batch, channel blocks), SIMD over the state. */
void ssm_scan_forward(float *out, float *h_last, const float *u, const float *delta, const float *A,
                      const float *Bm, const float *Cm, const float *D, const float *z,
                      const float *delta_bias, const float *h0, ssm_scan_dims d);

/* dout (B,L,E) in; grads accumulate. dh_last (B,E,N) may be NULL (zero);
 * dh0 (B,E,N) may be NULL. */
void ssm_scan_backward(float *du, float *ddelta, float *dA, float *dBm, float *dCm, float *dD,
                       float *dz, float *ddelta_bias, float *dh0, const float *dout,
                       const float *dh_last, const float *u, const float *delta, const float *A,
                       const float *Bm, const float *Cm, const float *D, const float *z,
                       const float *delta_bias, const float *h0, ssm_scan_dims d);

/* The same pair with the chunk-start states shared: the forward stores the
 * state before every MK_SCAN_CHUNK-th step into ck (ssm_scan_ck_floats(d)
 * floats, layout (B, L/CHUNK, N, E)) and the backward starts from them
 * instead of re-running the first sweep. ck must come from a forward over
 * the same inputs. */
size_t ssm_scan_ck_floats(ssm_scan_dims d);
void ssm_scan_forward_ck(float *out, float *h_last, float *ck, const float *u, const float *delta,
                         const float *A, const float *Bm, const float *Cm, const float *D, const float *z,
                         const float *delta_bias, const float *h0, ssm_scan_dims d);
void ssm_scan_backward_ck(float *du, float *ddelta, float *dA, float *dBm, float *dCm, float *dD,
                          float *dz, float *ddelta_bias, float *dh0, const float *dout,
                          const float *dh_last, const float *ck, const float *u, const float *delta,
                          const float *A, const float *Bm, const float *Cm, const float *D,
                          const float *z, const float *delta_bias, const float *h0, ssm_scan_dims d);

/* Plain scalar loops, single thread, libm expf: the baseline for the benchmark
 * and a second implementation for the tests. Same contract as above. */
void ssm_scan_forward_scalar(float *out, float *h_last, const float *u, const float *delta,
                             const float *A, const float *Bm, const float *Cm, const float *D,
                             const float *z, const float *delta_bias, const float *h0,
                             ssm_scan_dims d);
void ssm_scan_backward_scalar(float *du, float *ddelta, float *dA, float *dBm, float *dCm,
                              float *dD, float *dz, float *ddelta_bias, float *dh0,
                              const float *dout, const float *dh_last, const float *u,
                              const float *delta, const float *A, const float *Bm,
                              const float *Cm, const float *D, const float *z,
                              const float *delta_bias, const float *h0, ssm_scan_dims d);

/* Which form of the backward walk the optimised backward uses (core/scan.c says why
 * there are two): -1 by the CPU (the default), 0 the omp simd form, 1 the register form.
 * For the tests, which run both; not thread-safe against a running backward. */
void ssm_scan_walk_form(int form);

/* One recurrent step for a batch of single tokens (B, E): updates h (B,E,N)
 * in place and writes out (B, E). Same math as one time step of the scan. */
void ssm_scan_step(float *out, float *h, const float *u, const float *delta, const float *A,
                   const float *Bm, const float *Cm, const float *D, const float *z,
                   const float *delta_bias, int B, int E, int N, int softplus);

#endif
