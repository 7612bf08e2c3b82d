/* model.h — the vision classifier: patch embedding, learned positional
 * embedding, a class token in the middle of every scan (Vim), the shared
 * Mamba backbone over a set of scan orders, and a linear head.
 *
 * Dimension letters: B batch, P patch grid cells (gh*gw), L = P + 1 tokens,
 * D model width, F = C*k*k pixels per patch window, K classes.
 *
 * Token storage: patch i (row-major over the grid) at index i, the class
 * token at index P. The scan orders (vision/orders.c) put the class token in
 * the middle of each traversal, so the storage layout never matters.
 *
 * Patch embedding is a strided convolution (kernel k >= stride s, zero
 * padding (k-s)/2), computed as im2col + one GEMM; k == s gives plain ViT
 * patches, k > s overlapping ones. An optional convolutional stem (stem = S
 * channels > 0: conv 4x4 stride 2 pad 1, then GELU) runs before it, halving
 * the resolution; patch/kernel then apply to the stem's output. */
#ifndef MK_VISION_MODEL_H
#define MK_VISION_MODEL_H

#include "core/backend.h"
#include "core/ckpt.h"
#include "core/mamba.h"
#include "vision/image.h"

#define VISION_MAX_CLASS 64

enum { VISION_ORDER_ROW = 0, VISION_ORDER_BIDIR, VISION_ORDER_CROSS, VISION_ORDER_ATROUS, VISION_ORDER_COUNT };
enum { VISION_HEAD_CLS = 0, VISION_HEAD_MEAN = 1 };

typedef struct {
    int img_h, img_w, img_c; /* input the model expects */
    int patch, kernel;       /* stride s, window k */
    int stem;                /* stem channels S, 0 = no stem */
    int in_h, in_w, in_c;    /* derived: the map the patch embedding reads */
    int gh, gw, P, L;        /* derived */
    int n_class;
    int order, head;
    float mean[4], std[4];   /* per-channel normalisation, from the training set */
    char classes[VISION_MAX_CLASS][48];
    mamba_cfg mc;
} vision_cfg;

typedef struct {
    vision_cfg cfg;
    mk_params p;
    mamba_backbone bb;
    int stem_w, stem_b;   /* (S, C*16), (S); -1 without a stem */
    int patch_w, patch_b; /* (D, F), (D) */
    int pos;              /* (L, D) */
    int cls;              /* (D) */
    int head_w, head_b;   /* (K, D), (K) */
    int G;
    int *order_buf;               /* (G, L) */
    const int *orders[MK_MAX_DIR];
} vision_model;

/* Activations of one forward pass, kept for backward. Grown on demand. */
typedef struct {
    int B, cap;
    float *cols1;  /* (B, H/2*W/2, C*16) stem im2col */
    float *pre1;   /* (B, H/2*W/2, S) stem conv output */
    float *act1;   /* (B, H/2, W/2, S) after GELU (reused for its gradient in backward) */
    float *dact1;  /* (B, H/2*W/2, S) */
    float *dcols;  /* (B, P, F) */
    float *cols;   /* (B, P, F) im2col */
    float *x;      /* (B, L, D) tokens into the backbone */
    float *out;    /* (B, L, D) backbone output */
    float *feat;   /* (B, D) */
    float *logits; /* (B, K) */
    float *tmp;    /* (B, L, D) scratch */
    float *dfeat, *dout, *dx; /* backward */
    mamba_acts ma;
} vision_acts;

const char *vision_order_name(int order);
int vision_order_parse(const char *s); /* -1 if unknown */
int vision_order_dirs(int order);      /* G */
/* Fill o (G, L) with the scan orders of a gh x gw grid plus a class token
 * stored at index gh*gw, placed in the middle of each traversal. Returns G. */
int vision_orders_build(int order, int gh, int gw, int *o);

/* Fill derived fields (grid, L) and validate. 0 or -1 with mk_error. */
int vision_cfg_finish(vision_cfg *c);
void vision_cfg_to_config(const vision_cfg *c, mk_config *out);
int vision_cfg_from_config(vision_cfg *c, const mk_config *in);

/* Declare + allocate the model (values uninitialised until _init or a load). */
int vision_model_create(vision_model *m, const vision_cfg *c);
void vision_model_init(vision_model *m, mk_rng *rng);
void vision_model_free(vision_model *m);
/* Build from a .mkm file (task "vision"); with_optim loads AdamW state too
 * (for resuming). cfg_out, if not NULL, receives the file's full config. */
int vision_model_load(vision_model *m, const char *path, int with_optim, mk_config *cfg_out);
size_t vision_model_num_params(const vision_model *m);

void vision_acts_init(vision_acts *a);
void vision_acts_free(vision_acts *a);

/* img: (B, img_h, img_w, img_c), already normalised. Fills a->logits (and a->feat, the
 * features the head reads). Inference with the backbone on a GPU runs the whole forward
 * there (mk_cuda_cls_forward) and fills only those two. */
void vision_forward(vision_model *m, vision_acts *a, const float *img, int B, int training, mk_rng *rng);
/* dlogits (B, K): accumulates parameter gradients. */
void vision_backward(vision_model *m, vision_acts *a, const float *dlogits);

/* Softmax cross-entropy with label smoothing eps over logits (B, K):
 * sets dlogits = d(mean loss)/d(logits); returns the mean loss; *correct
 * counts argmax hits. */
float vision_xent_smooth(float *dlogits, int *correct, const float *logits, const int *y, int B, int K, float eps);
/* Knowledge distillation (ref: Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a
 * Neural Network"): (1 - alpha) x the loss above + alpha T^2 KL(tprob || softmax(logits / T)),
 * tprob (B, K) the teacher's distribution at temperature T (rows summing to 1); the T^2 keeps
 * the soft term's gradient on the scale of the hard one. dlogits, return and *correct as above. */
float vision_xent_kd(float *dlogits, int *correct, const float *logits, const float *tprob, const int *y, int B, int K,
                     float eps, float alpha, float T);

/* im2col for a strided convolution over a (B, H, W, C) map: cols (B, gh*gw, C*k*k), window
 * element order (c, ky, kx), zero padding (k - s) / 2; col2im_add is its adjoint (dimg +=).
 * The patch embedding's and stem's, and the CPU twins of core/cuda/front.cu's. */
void vision_im2col(float *cols, const float *img, int B, int H, int W, int C, int k, int s, int gh, int gw);
void vision_col2im_add(float *dimg, const float *dcols, int B, int H, int W, int C, int k, int s, int gh, int gw);

/* The model as the backend's resident GPU classifier step sees it (core/backend.h), with
 * label smoothing eps. 0, or -1 when that step does not cover the model (the mean head). */
int vision_model_frontend(const vision_model *m, float eps, mk_cls_frontend *f);

/* Normalise an image (already at the model's size and channels) into dst (H*W*C). */
void vision_normalise(const vision_model *m, float *dst, const float *px01);
/* How a picture is brought to the model's input size:
 * STRETCH resizes the whole picture to (img_h, img_w) (aspect ratio not kept);
 * PHOTO trims the background, fits the object with its aspect ratio kept and
 *   inverts the picture when its background's brightness is on the other side
 *   of 0.5 from the model's training mean (vision_image_fit: Fashion-MNIST's own
 *   conversion of product photos, dark garments on white becoming light on black);
 * AUTO is PHOTO for such a picture and STRETCH for any other. */
enum { VISION_FIT_STRETCH = 0, VISION_FIT_PHOTO = 1, VISION_FIT_AUTO = 2 };
/* Convert + fit + normalise a decoded picture into dst (img_h*img_w*img_c);
 * *photo (may be NULL) tells whether the photo conversion was applied. */
void vision_prepare_image(const vision_model *m, const vision_image *im, int fit, float *dst, int *photo);
/* Decode a file, then vision_prepare_image. 0 or -1 with mk_error naming the file. */
int vision_prepare_file(const vision_model *m, const char *path, int fit, float *dst, int *photo);

#endif
