/* optim.h — AdamW with decoupled weight decay, warmup + cosine schedule and
 * global gradient-norm clipping.
 *
 * ref: Loshchilov & Hutter 2019 (AdamW). Decay applies only to tensors
 * declared with decay=1 (matrices); norms, biases, A_log and D are exempt. */
#ifndef MK_OPTIM_H
#define MK_OPTIM_H

#include "params.h"

typedef struct {
    float lr;           /* peak learning rate */
    float beta1, beta2; /* 0.9, 0.999 */
    float eps;          /* 1e-8 */
    float weight_decay; /* e.g. 0.05 */
    float clip;         /* max global grad norm; <= 0 disables */
    long warmup;        /* linear warmup steps */
    long total;         /* total steps (cosine to min_lr_frac * lr) */
    float min_lr_frac;  /* e.g. 0.01 */
} mk_adamw_cfg;

mk_adamw_cfg mk_adamw_defaults(float lr, long total_steps);
/* Learning rate at step (0-based) under warmup + cosine. */
float mk_lr_at(const mk_adamw_cfg *c, long step);
/* L2 norm of all gradients. */
float mk_grad_norm(const mk_params *p);
/* sum of x[i]^2 in double (the norm's sum; the host emulation's too) */
double mk_sumsq(const float *x, size_t n);
/* Clip (if cfg->clip > 0), then one AdamW update with lr_at(p->step); p->step++.
 * Moments are allocated on first use. Returns the pre-clip gradient norm; a
 * non-finite norm skips the step (weights, moments and step unchanged). */
float mk_adamw_step(mk_params *p, const mk_adamw_cfg *c);

#endif
