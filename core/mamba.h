/* mamba.h — Mamba-1 mixer and the residual pre-norm backbone over scan orders.
 *
 * Dimension letters: B batch, L tokens, D model width, E inner width (expand*D),
 * N state size, R dt_rank, K conv kernel, G number of scan directions.
 *
 * One layer (Vim "bimamba v2" shape, generalised to G directions):
 *   r      = norm(h)                                   (B, L, D)
 *   x, z   = r @ in_proj[0:E]^T, r @ in_proj[E:2E]^T     (B, L, E) each, shared
 *   for each direction g with order o_g (a permutation of the L tokens):
 *     xg, zg = gather(x, o_g), gather(z, o_g)
 *     xc     = silu(conv1d_g(xg))                         causal depthwise, K taps
 *     dbc    = xc @ x_proj_g^T -> dt_in (R), Bm (N), Cm (N)
 *     delta  = dt_in @ dt_proj_g^T                        (+ dt bias inside the scan)
 *     yg     = scan(xc, delta, A_g = -exp(A_log_g), Bm, Cm, D_g, zg)
 *     y     += scatter(yg, o_g) * (1/G for mean merge, 1 for sum)
 *   h      = h + drop_path(y @ out_proj^T)
 * Final norm after the last layer.
 *
 * With selective = 0 the selection mechanism is off (an LTI SSM like S4D):
 * delta = 0 (dt = softplus(dt_bias)), and Bm, Cm are learned constant vectors
 * instead of projections of the input. Used to show what selection buys.
 *
 * Stochastic layer-wise shuffle (training only): layer l shuffles the token
 * sequence with probability shuffle_p * l/(n_layer-1) before its scans and
 * restores it after, i.e. each order o_g becomes pi∘o_g for a random pi.
 *
 * ref: Gu & Dao 2023 (Mamba); Zhu et al. 2024 (Vim); mamba_ssm modules/mamba_simple.py
 * for defaults and initialisation. */
#ifndef MK_MAMBA_H
#define MK_MAMBA_H

#include "ckpt.h"
#include "params.h"

#define MK_MAX_DIR 8

enum { MK_MERGE_MEAN = 0, MK_MERGE_SUM = 1 };
/* MK_NORM_NONE: no norm tensor; the mixer reads the residual stream itself
 * (r = h), and there is no final norm whatever final_norm says (S-Mamba's
 * encoder layer: x + mamba(x), normalised outside the backbone). */
enum { MK_NORM_RMS = 0, MK_NORM_LN = 1, MK_NORM_NONE = 2 };

typedef struct {
    int d_model, n_layer;
    int d_state;     /* N, default 16 */
    int d_conv;      /* K, default 4 (2..4) */
    int expand;      /* default 2 */
    int dt_rank;     /* default ceil(d_model/16) */
    int n_dir;       /* G scan directions per layer, default 1 */
    int merge;       /* MK_MERGE_MEAN (default) or MK_MERGE_SUM */
    int norm;        /* MK_NORM_RMS (default), MK_NORM_LN or MK_NORM_NONE */
    int final_norm;  /* 1 (default): norm after the last layer */
    int selective;   /* 1 (default) */
    float eps;       /* norm epsilon, 1e-5 */
    float drop_path; /* max drop-path rate (linear over depth), 0 */
    float shuffle_p; /* stochastic layer-wise shuffle max probability, 0 */
} mamba_cfg;

void mamba_cfg_default(mamba_cfg *c, int d_model, int n_layer);

/* The backbone's keys in a model file's config, written and checked the same way by every
 * task that stores a whole mamba_cfg: d_model n_layer d_state d_conv expand dt_rank (required,
 * range-checked before anything is sized from them) and n_dir norm drop_path shuffle_p
 * (optional: files written before they were stored keep mamba_cfg_default's values).
 * from_config starts from mamba_cfg_default; returns 0, or -1 with mk_error naming the key. */
void mamba_cfg_to_config(const mamba_cfg *c, mk_config *out);
int mamba_cfg_from_config(mamba_cfg *c, const mk_config *in);

typedef struct {
    int norm_w, norm_b; /* norm_b = -1 for RMSNorm; both -1 for MK_NORM_NONE */
    int in_proj;        /* (2E, D) */
    int out_proj;       /* (D, E) */
    int conv_w[MK_MAX_DIR], conv_b[MK_MAX_DIR]; /* (E, K), (E) */
    int x_proj[MK_MAX_DIR];                     /* (R+2N, E); -1 if !selective */
    int dt_w[MK_MAX_DIR], dt_b[MK_MAX_DIR];     /* (E, R), (E) */
    int A_log[MK_MAX_DIR], Dp[MK_MAX_DIR];      /* (E, N), (E) */
    int Bc[MK_MAX_DIR], Cc[MK_MAX_DIR];         /* (N) each, only if !selective */
} mamba_layer_idx;

typedef struct {
    mamba_cfg cfg;
    int D, E, N, R, K, G;
    mamba_layer_idx *layer; /* n_layer */
    int normf_w, normf_b;
    mk_params *p; /* the table this backbone lives in (may hold other tensors too) */
    int device;   /* MK_DEV_CPU (default) or MK_DEV_CUDA (core/backend.h) */
    void *dev;    /* backend state owned by core/backend.c, NULL on the CPU */
} mamba_backbone;

/* Declare the backbone's tensors into p under name prefix (e.g. "backbone.").
 * Returns 0, or -1 with mk_error for an invalid config. */
int mamba_backbone_declare(mamba_backbone *m, mk_params *p, const char *prefix, const mamba_cfg *c);
/* After mk_params_alloc: mamba_ssm's initialisation. */
void mamba_backbone_init(mamba_backbone *m, mk_rng *rng);
void mamba_backbone_free(mamba_backbone *m);
size_t mamba_backbone_num_params(const mamba_backbone *m);

/* Activations saved by forward for backward: one allocation, grown on demand. */
typedef struct {
    int B, L, cap_BL;   /* shape of the last forward; capacity in tokens */
    float *buf;         /* the one allocation */
    size_t buf_floats;
    float *scratch;     /* per-step temporaries (also inside buf) */
    int *orders;        /* effective orders used by the last forward: (n_layer, G, L), or with
                           per-sample orders (n_layer, G, B*L) rows of the whole batch */
    float *dp_mask;     /* (n_layer, B) drop-path masks */
    int training;
    int per_sample;     /* the last forward read per-sample orders (mamba_backbone_forward_ps) */
} mamba_acts;

void mamba_acts_init(mamba_acts *a);
void mamba_acts_free(mamba_acts *a);

/* x, out (B, L, D). orders: G pointers, each an order of L indices or NULL for
 * identity (orders itself may be NULL: all identity). training enables
 * drop-path and shuffle (rng required then). Saves what backward needs. */
void mamba_backbone_forward(mamba_backbone *m, mamba_acts *a, float *out, const float *x, int B,
                            int L, const int *const *orders, int training, mk_rng *rng);
/* The same over B samples that each have their own scan orders: orders (B, G, L), sample b's
 * direction g at orders + (b G + g) L (NULL: identity for all). One pass over (B, L) computes
 * what B passes over (1, L) with each sample's orders would (up to the order of float sums in
 * the weight gradients), and makes the same random draws in the same order: sample by sample,
 * each sample's as its own pass makes them. */
void mamba_backbone_forward_ps(mamba_backbone *m, mamba_acts *a, float *out, const float *x, int B, int L,
                               const int *orders, int training, mk_rng *rng);
/* One forward's random draws, before any layer runs (mamba.c and core/backend.c share it):
 * the effective orders eff and the drop-path masks dpm (n_layer, B). Shared orders (ps NULL):
 * per_sample 0: orders as mamba_backbone_forward's, eff (n_layer, G, L), drawn layer by layer.
 * per_sample 1: ps (B, G, L) as above (NULL: identity), eff (n_layer, G, B L), each entry a
 * row of the whole batch, drawn sample by sample. rng may be NULL when training is 0. */
void mamba_backbone_draw(const mamba_backbone *m, int B, int L, const int *const *orders, const int *ps,
                         int per_sample, int training, mk_rng *rng, int *eff, float *dpm);
/* dout (B, L, D) -> dx (+=), parameter grads (+=) into m->p->grad.
 * Uses the activations of the last forward. dx may be NULL. */
void mamba_backbone_backward(mamba_backbone *m, mamba_acts *a, float *dx, const float *dout);

/* ---- recurrent inference: one token at a time, O(1) memory per token ----
 * Only for G == 1 with the identity order (causal model). */
typedef struct {
    int B;
    float *conv;  /* (n_layer, B, K-1, E) */
    float *ssm;   /* (n_layer, B, E, N) */
    float *tmp;   /* scratch */
} mamba_state;

void mamba_state_alloc(mamba_state *s, const mamba_backbone *m, int B);
void mamba_state_reset(mamba_state *s, const mamba_backbone *m);
void mamba_state_free(mamba_state *s);
/* x, out (B, D): one new token per batch entry. */
void mamba_backbone_step(mamba_backbone *m, mamba_state *s, float *out, const float *x);

/* Helpers for front ends building orders. */
void mk_order_identity(int *o, int L);
void mk_order_reverse(int *o, int L);
/* Inverse permutation: inv[o[t]] = t. */
void mk_order_invert(int *inv, const int *o, int L);
/* 1 if o is a permutation of 0..L-1. */
int mk_order_is_perm(const int *o, int L);

#endif
