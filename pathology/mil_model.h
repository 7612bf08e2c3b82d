/* mil_model.h — MambaMIL (SR-Mamba) and attention-MIL baselines for bags.
 *
 * Letters: L instances in the bag, F features, D model width, H attention
 * hidden width, R the SR stride.
 *
 *   xs  = (x - mu) / sigma                    (L, F)  train-set standardisation
 *   e   = dropout(relu(xs @ We^T + be))       (L, D)  instance embedding
 *   h   = SRMamba^2(e) + final LayerNorm      (L, D)  MIL_MAMBA only, else h = e
 *   h   = e + gamma * LN(SRMamba^n(e))        (L, D)  with res_gate: gamma (D) learned,
 *         initialised to 0, so training starts as ABMIL on the same embedding;
 *         branch_drop p: in training the branch is dropped for a whole bag with
 *         probability p and scaled by 1/(1-p) otherwise
 *         each layer: h += out_proj( scan(natural) + scan(interleave_R) )
 *         (order SCORE: "natural" is the instances sorted by w^T tanh(V e_i + bV), e without
 *         dropout, highest first)
 *         (core/mamba.h backbone: G = 2 orders, LayerNorm pre-norm, sum merge)
 *   a   = softmax_i( w^T tanh(V h_i + bV) )                     plain attention
 *   a   = softmax_i( w^T (tanh(V h_i + bV) * sigm(U h_i + bU)) ) gated attention
 *         attend_e (MIL_MAMBA): the same with e_i in place of h_i; z still pools h
 *   z   = sum_i a_i h_i   (or the mean / element-wise max of h for those baselines)
 *   p   = sigmoid(wc . z + bc)
 *   aux > 0 (MIL_MAMBA): the same pooling and classifier on e give a second logit l_e;
 *         loss = BCE(l_h) + aux * BCE(l_e) (deep supervision of the order-free path);
 *         aux_mix: the prediction is sigmoid((l_h + l_e) / 2)
 * ref: Ilse, Tomczak & Welling 2018 (ABMIL, Eq. 9-10); Yang et al. 2024
 * (MambaMIL: Sequence Reordering in computational pathology, SR-Mamba).
 *
 * The stride-R interleave reads x0, xR, x2R, ..., x1, x1+R, ... over the bag
 * padded to a multiple of R, with the padding dropped: a permutation of the
 * L real instances, built per bag since lengths differ. Batch = one bag. */
#ifndef MIL_MODEL_H
#define MIL_MODEL_H

#include "core/ckpt.h"
#include "core/mamba.h"
#include "core/optim.h"
#include "pathology/mil_bags.h"

enum { MIL_MAMBA = 0, MIL_ABMIL, MIL_GATED, MIL_MEAN, MIL_MAX, MIL_NTYPES };
/* The sequence the SR-Mamba scans read (MIL_MAMBA). NATURAL: the bag's own order (slide
 * tiles in reading order). SCORE: the instances sorted by their attention score on the
 * embedding (the pooling's own w, V on e, no gradient through the sort), highest first;
 * the model then no longer depends on the order of a bag's rows, as a set-valued bag
 * (molecule conformations, image segments) asks. */
enum { MIL_ORDER_NATURAL = 0, MIL_ORDER_SCORE, MIL_NORDERS };
extern const char *const mil_order_names[MIL_NORDERS]; /* "natural" "score" */
int mil_order_from_name(const char *s); /* -1 if unknown */
extern const char *const mil_type_names[MIL_NTYPES]; /* "mamba" "abmil" "gated" "mean" "max" */
int mil_type_from_name(const char *s); /* -1 if unknown */

typedef struct {
    int type;
    int F, D, H;  /* features, width, attention hidden */
    int n_layer;  /* SR-Mamba layers (MIL_MAMBA) */
    int stride;   /* R of the interleave order; 0 = no SR branch (plain Mamba, G = 1) */
    int d_state;  /* N */
    int gated;    /* gated attention pooling for MIL_MAMBA */
    int res_gate; /* MIL_MAMBA: h = e + gamma * SRMamba(e), gamma (D) learned, zero at init */
    float branch_drop; /* res_gate: drop the whole SR-Mamba branch for a training bag with this
                          probability (else scale it by 1/(1-p)): the model must also work as ABMIL */
    float dropout;
    int order;    /* MIL_ORDER_*: what the scans read (MIL_MAMBA) */
    float aux;    /* MIL_MAMBA: weight of an auxiliary loss on the embedding's own exit, the same
                     pooling and classifier applied to e instead of h (0 = none) */
    int aux_mix;  /* with aux: predict from the mean of the two exits' logits (else h's alone) */
    int attend_e; /* MIL_MAMBA: the pooling's attention weights from e, pooling h (else from h) */
} mil_cfg;

void mil_cfg_default(mil_cfg *c, int type, int F);

typedef struct {
    mil_cfg c;
    mk_params p;
    mamba_backbone bb;
    int has_bb;
    int fmean, fstd;              /* (F) standardisation, not trained */
    int emb_w, emb_b;             /* (D, F), (D) */
    int att_V, att_Vb;            /* (H, D), (H) */
    int att_U, att_Ub;            /* (H, D), (H): gated only, else -1 */
    int att_w;                    /* (H) */
    int cls_w, cls_b;             /* (D), (1) */
    int gamma;                    /* (D) residual gate (res_gate), else -1 */
    /* activations of the last forward (one bag), grown on demand */
    mamba_acts acts;
    int L, cap;
    float *buf;
    float *xs, *e_pre, *e, *dmask, *h, *t, *g, *s, *a, *z; /* see mil_model.c */
    float *t2, *g2, *s2, *a2, *z2; /* the auxiliary exit's pooling of e (aux > 0) */
    float *m_out;                 /* (L, D) backbone output when res_gate */
    int *amax;                    /* (D) argmax rows for max pooling */
    int *ord;                     /* (L) interleave order (of the base order, if any) */
    int *base;                    /* (L) the base order (MIL_ORDER_SCORE) */
    void *sortbuf;                /* (L) score/index pairs for the sort */
    float logit, prob;
    float aux_logit;              /* the auxiliary exit's logit in the last forward (aux > 0) */
    int training;
    long gpu_forwards;            /* inference forwards that ran whole on the GPU (mk_cuda_mil_forward) */
    float branch_scale;           /* res_gate: 0 (branch dropped), 1/(1-p) or 1 in the last forward */
    mk_rng rng;                   /* init of the shared parts, dropout masks */
    mk_rng bb_rng;                /* the backbone's own init, drop-path and branch drop */
} mil_model;

/* Declare + allocate + initialise (weights from seed). 0 or -1 with mk_error. */
int mil_model_create(mil_model *m, const mil_cfg *c, unsigned long seed);
void mil_model_free(mil_model *m);
/* Set the standardisation from a training set (per-feature mean / std). */
void mil_model_fit_scaler(mil_model *m, const mil_bags *b);

/* One bag x (L, F): returns the probability; keeps activations for backward.
 * Attention per instance is then in m->a (L) (mean: 1/L; max: share of the D
 * channels the instance wins). For inference (training 0) with the backbone on the GPU and a
 * model the resident step covers, the whole forward runs there (mk_cuda_mil_forward): then only
 * m->a, m->logit, m->aux_logit and m->prob are set, not the other activations. */
float mil_forward(mil_model *m, const float *x, int L, int training);
/* Backward of the last forward given dlogit (d loss / d logit) and dlogit_aux (d loss / d
 * aux_logit; ignored without an auxiliary exit). Grads += . */
void mil_backward(mil_model *m, float dlogit, float dlogit_aux);

/* The interleave order (padding dropped). o (L). */
void mil_order_interleave(int *o, int L, int R);
/* The attention logits s_i = w . t_i (plain) or w . (t_i * g_i) (gated; g NULL for plain) of
 * rows t, g (L, H), summed in k order; and the bag ordered by them, highest first, equal
 * scores in row order, NaN last (a stable order whatever the scores), via buf (L). Shared by
 * the CPU model and the CUDA kernels' host emulation. */
typedef struct {
    float s;
    int i;
} mil_score_idx;
void mil_att_score(float *s, const float *t, const float *g, const float *w, int L, int H);
void mil_sort_by_score(int *order, const float *s, int L, mil_score_idx *buf);

typedef struct {
    int epochs;
    float lr, weight_decay;
    int batch; /* bags per optimiser step */
    float clip; /* global gradient-norm clip, 0 = none */
    unsigned long seed;
    int shuffle_inst; /* present each training bag in a fresh random instance order */
    float gate_l1;    /* res_gate: after each AdamW step gamma <- sign*max(|gamma| - gate_l1*lr, 0)
                         (a proximal L1 step: an entry stays at 0 unless its gradient is consistent) */
    int quiet;
    int device; /* where the SR-Mamba backbone trains: MK_DEV_CPU or MK_DEV_CUDA (core/backend.h) */
    int gpu_step; /* with MK_DEV_CUDA: MIL_GPU_FULL, every op of the step on the GPU (where the model
                     is covered, see mil_gpu_step_covers), or MIL_GPU_BACKBONE, the backbone alone */
} mil_train_opts;
enum { MIL_GPU_FULL = 0, MIL_GPU_BACKBONE };
void mil_train_opts_default(mil_train_opts *o);
/* g[i] <- sign(g[i]) * max(|g[i]| - thr, 0); returns how many entries are 0 after it */
int mil_soft_threshold(float *g, int n, float thr);
/* gate entries trained with --gate-l1 in this process, and how many ended at exactly 0 */
void mil_gate_l1_stats(long *zero, long *total);

/* Run the model's SR-Mamba backbone (if it has one) on dev (MK_DEV_CPU / MK_DEV_CUDA, from
 * mk_device_parse); falls back to the CPU with a notice. Returns the device it runs on. */
int mil_model_use_device(mil_model *m, int dev);

/* 1 if the resident GPU step (mk_cuda_mil_train_step) covers this model trained with o: MambaMIL
 * with or without the residual gate, any number of layers, natural or score order, attention or
 * gated attention, attention on e (--attend e), the auxiliary exit (--aux, --aux-mix),
 * embedding dropout, branch drop, --shuffle-instances (the loop permutes the bag before the
 * step), any batch and clip; else 0 with the reason in why (a backbone with shuffled orders, the
 * baselines), and the loop runs the backbone alone on the GPU. o NULL: no training options
 * (inference; mil_forward's test for mk_cuda_mil_forward). */
int mil_gpu_step_covers(const mil_model *m, const mil_train_opts *o, char *why, int len);
/* One bag's resident training step on the GPU, as mil_train runs it (its backbone on the GPU):
 * the dropout mask drawn from m->rng and branch drop's draw from m->bb_rng as mil_forward draws
 * them, then mk_cuda_mil_train_step with
 * label y, the gradient scaled by 1 / batch, begin (zero the gradients first) and update (AdamW
 * with ac after). Sets m->logit and m->prob; returns 0, or -1 with mk_error. */
int mil_train_bag_cuda(mil_model *m, const float *x, int L, int y, int batch, int begin, int update,
                       const mk_adamw_cfg *ac);

/* Train on every bag of b (labels must be 0/1). Returns the final epoch's mean loss. */
float mil_train(mil_model *m, const mil_bags *b, const mil_train_opts *o, const char *progress_label);
/* Probabilities for every bag into prob (n_bags). */
void mil_predict(mil_model *m, const mil_bags *b, float *prob);

/* Area under the ROC curve (ties count half); NaN if one class is absent. */
double mil_auc(const float *score, const int *label, int n);

/* Stratified k-fold CV repeated `repeats` times. acc/auc (repeats) receive the
 * out-of-fold accuracy and AUC of each repeat (pooled over its folds);
 * fold_acc (repeats*folds) each fold's accuracy. Returns 0 or -1 (mk_error). */
int mil_cross_validate(const mil_bags *b, const mil_cfg *c, const mil_train_opts *o, int folds, int repeats,
                       double *acc, double *auc, double *fold_acc, int show_progress);

/* Attention heat strips as a PNG: one row per bag (left: true label, then the
 * predicted probability, then instance attention scaled to the bag's max;
 * bags longer than the strip show the max over the instances of a pixel).
 * attn holds the bags' attention one after another (lens[b] each);
 * label may hold -1 (unknown). 0, or -1 with mk_error (also without libpng). */
int mil_plot_attention(const char *path, int n_bags, const long *lens, const float *attn, const float *prob,
                       const int *label);

/* Checkpoint task "mil". */
int mil_model_save(const mil_model *m, const char *path);
int mil_model_load(mil_model *m, const char *path);

#endif
