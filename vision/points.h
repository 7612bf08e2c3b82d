/* points.h — a Point-Cloud-Mamba-style classifier for small point clouds.
 *
 * Per object (a batch of objects runs as one, each with its own scan orders):
 *   1. sample / pad to P points (deterministic per seed), centre on the mean,
 *      scale to unit maximum radius; with augment: random rotation about z and scale.
 *   2. L patch centres by farthest point sampling, each with its k nearest points;
 *      rel (L, k, 3) = neighbour - centre.
 *   3. token = max over k of W2 relu(W1 rel + b1) + b2       (shared point-MLP, H hidden)
 *            + Wp centre + bp                                 (position embedding)
 *   4. the shared Mamba backbone over G scan orders: the centres sorted along x, y, z
 *      (G = 1..3: x; x,y; x,y,z), per object: mamba_backbone_forward_ps's `orders`.
 *   5. mean over the L tokens, linear head to n_class logits.
 *
 * Dimension letters: P points, L tokens (centres), k neighbours, H point-MLP width,
 * D model width, C classes, G scan orders. */
#ifndef MK_VISION_POINTS_H
#define MK_VISION_POINTS_H

#include <stdint.h>

#include "core/backend.h"
#include "core/ckpt.h"
#include "core/mamba.h"
#include "core/optim.h"

#define POINTS_MAX_CLASS 16

typedef struct {
    int npts;    /* P */
    int ntok;    /* L */
    int knn;     /* k */
    int hidden;  /* H */
    int n_class; /* C */
    char classes[POINTS_MAX_CLASS][32];
    mamba_cfg mc; /* mc.n_dir = G (1..3) */
} points_cfg;

void points_cfg_default(points_cfg *c);
/* Validate. 0 or -1 with mk_error. */
int points_cfg_check(const points_cfg *c);
void points_cfg_to_config(const points_cfg *c, mk_config *out);
int points_cfg_from_config(points_cfg *c, const mk_config *in);

typedef struct {
    points_cfg cfg;
    mk_params p;
    mamba_backbone bb;
    int w1, b1, w2, b2; /* (H,3) (H) (D,H) (D) */
    int pw, pb;         /* (D,3) (D) */
    int hw, hb;         /* (C,D) (C) */
} points_model;

/* Declare + allocate + (if rng) initialise. 0 or -1 with mk_error. */
int points_model_init(points_model *m, const points_cfg *c, mk_rng *rng);
/* Build from a .mkm file (task "points"); the file's tensor table is checked
 * against its config before anything is allocated. 0 or -1 with mk_error. */
int points_model_load(points_model *m, const char *path);
/* Run the Mamba backbone on dev (MK_DEV_CPU / MK_DEV_CUDA from mk_device_parse; falls back
 * to the CPU with a notice). Returns the device. */
int points_model_use_device(points_model *m, int dev);
void points_model_free(points_model *m);

/* One object's tokens, ready for the network. */
typedef struct {
    float *rel;  /* (L, k, 3) */
    float *ctr;  /* (L, 3) */
    int *order;  /* (G, L) */
} points_input;

void points_input_alloc(points_input *in, const points_cfg *c);
void points_input_free(points_input *in);
/* Steps 1-2 and the scan orders for one object of n >= 1 points xyz (n, 3).
 * Same seed, same result. augment: random z-rotation and scale 0.8..1.25. */
void points_prepare(const points_cfg *c, points_input *in, const float *xyz, int n, uint64_t seed, int augment);
/* indices of the K nearest of P points (xyz rows) to q, nearest first, ties to the
 * lower index; scratch: K floats */
void points_knn(int *nb, const float *pts, int P, const float *q, int K, float *scratch);

/* The activations of a batch of n objects, grown on demand (L tokens, k neighbours each) */
typedef struct {
    int cap, n;   /* objects the buffers hold; objects of the last forward */
    int L, K, H, D, C, G;
    float *rel;   /* (n, L, k, 3) the batch's inputs, packed */
    float *ctr;   /* (n, L, 3) */
    int *order;   /* (n, G, L) */
    float *h1;    /* (n L k, H) pre-ReLU */
    float *a1;    /* (n L k, H) */
    float *h2;    /* (n L k, D) */
    int *amax;    /* (n L, D) argmax neighbour */
    float *x;     /* (n L, D) tokens into the backbone */
    float *out;   /* (n L, D) */
    float *feat;  /* (n, D) */
    float *logits; /* (n, C) */
    float *dlogits, *dfeat, *dout, *dx, *dh2, *da1; /* backward */
    mamba_acts ma;
} points_acts;

void points_acts_init(points_acts *a, const points_cfg *c);
void points_acts_free(points_acts *a);

/* Forward for n objects as one batch: every op over all n, the backbone one (n, L) pass with
 * each object's own scan orders (mamba_backbone_forward_ps, whose draws are those of n passes
 * over one object each); logits (n, C) in a->logits, features (n, D) in a->feat. Inference
 * (training 0) with the backbone on a GPU runs the whole forward there (mk_cuda_pts_forward) and
 * fills only feat and logits: the other activations stay on the device, so a backward needs a
 * training forward. Where the device cannot run it, the host's path (one notice). */
void points_forward_batch(points_model *m, points_acts *a, const points_input *in, int n, int training,
                          mk_rng *rng);
/* Backward of the last forward from dlogits (n, C); accumulates into m->p.grad. */
void points_backward_batch(points_model *m, points_acts *a, const float *dlogits);
/* The same for one object (n = 1) */
void points_forward(points_model *m, points_acts *a, const points_input *in, int training, mk_rng *rng);
void points_backward(points_model *m, points_acts *a, const float *dlogits);

/* Forward + backward over n prepared objects as one batch, one AdamW step (grads averaged).
 * Returns the mean loss; *correct (may be NULL) counts argmax hits. */
float points_train_batch(points_model *m, points_acts *a, const points_input *in, const int *labels, int n,
                         const mk_adamw_cfg *opt, mk_rng *rng, int *correct);
/* The model's front end as core/backend.h's mk_pts_frontend (shapes and tensor indices) for
 * the resident GPU step. */
void points_model_frontend(const points_model *m, mk_pts_frontend *f);
/* points_train_batch with every op of the step on the GPU (mk_cuda_pts_train_step): the same
 * computation and random draws, the objects' inputs packed and sent up once; parameters and
 * moments stay on the device until mamba_backbone_cuda_sync_host(&m->bb). Sets *loss (the
 * mean) and *correct (may be NULL); 0, or -1 with mk_error (no device, out of memory, a bad
 * label, a failed launch). */
int points_train_batch_cuda(points_model *m, points_acts *a, const points_input *in, const int *labels, int n,
                            const mk_adamw_cfg *opt, mk_rng *rng, float *loss, int *correct);
/* Class probabilities probs (n, C) and argmax classes cls (n) for n prepared objects, one
 * batched forward (on a GPU one device call for all n). */
void points_predict_batch(points_model *m, points_acts *a, const points_input *in, int n, float *probs, int *cls);
/* Class probabilities (C) for one prepared object; returns the argmax. */
int points_predict(points_model *m, points_acts *a, const points_input *in, float *probs);
#endif
