/* backend.h — which device runs the core. The only place that knows CUDA
 * exists is core/backend.c (+ core/cuda/); everything else asks here.
 *
 * Domain commands take `--device cpu|cuda` and call mk_device_parse; on a
 * machine without a usable GPU (or a build without CUDA) "cuda" falls back to
 * the CPU with a one-line notice.
 *
 * A backbone runs on the GPU after mamba_backbone_set_device(m, MK_DEV_CUDA):
 * mamba_backbone_forward/backward then keep to their CPU contract (host x,
 * out, dout, dx; gradients += into m->p->grad) but run every op on the GPU
 * with all activations resident there. Per call: the parameter table is
 * uploaded at the start of forward, x up, out down; dout and the host's
 * gradients up at the start of backward (the device adds onto them in place, as
 * the CPU's ops do), dx and the gradients down at its end. The CPU path is the
 * reference (tests/test_cuda.c compares the two).
 *
 * mamba_backbone_cuda_train_step runs a whole training step on the GPU
 * (forward, MSE loss, backward, clipping, AdamW) with parameters, gradients
 * and moments resident: only x, target and the loss cross the bus. */
#ifndef MK_BACKEND_H
#define MK_BACKEND_H

#include "mamba.h"
#include "optim.h"

enum { MK_DEV_CPU = 0, MK_DEV_CUDA = 1 };

/* 1 if this build has CUDA and a device is visible. Cheap after the first call. */
int mk_cuda_available(void);
/* Name of device 0 ("NVIDIA H100 80GB HBM3"), or a reason it is unavailable. */
const char *mk_cuda_device_name(void);
/* "cpu" -> MK_DEV_CPU; "cuda"/"gpu" -> MK_DEV_CUDA if available, else MK_DEV_CPU
 * with a notice on stderr; anything else -> -1 with mk_error set. */
int mk_device_parse(const char *name);

/* 1 if the CUDA kernels cover this backbone's shapes (d_state in {4,8,16,32,64},
 * d_conv <= 8); else 0 with the reason in why. */
int mamba_backbone_cuda_supported(const mamba_backbone *m, char *why, int len);
/* Select the device for a backbone. MK_DEV_CUDA: 0 on success; -1 with
 * mk_error when no GPU / unsupported shapes (m stays on the CPU). MK_DEV_CPU
 * releases the GPU state (after mamba_backbone_cuda_sync_host if resident). */
int mamba_backbone_set_device(mamba_backbone *m, int device);
/* A domain model's backbones to the device its command was given (dev from
 * mk_device_parse). All or none: if one cannot go to the GPU (shapes the kernels do
 * not cover, no memory), all stay on the CPU and one line on stderr says why, once
 * per process ("mambakit: --device cuda: REASON; running on the CPU"). Returns the
 * device they run on. */
int mamba_backbones_use_device(mamba_backbone *const *bbs, int n, int dev);
/* Release GPU memory held for m (called by mamba_backbone_free). */
void mamba_backbone_release_device(mamba_backbone *m);

/* Hooks called at the top of mamba_backbone_forward/backward: return 0 when
 * the GPU did the work, -1 to run the CPU path. */
int mk_cuda_backbone_forward(mamba_backbone *m, mamba_acts *a, float *out, const float *x, int B, int L,
                             const int *const *orders, const int *ps, int per_sample, int training, mk_rng *rng);
int mk_cuda_backbone_backward(mamba_backbone *m, mamba_acts *a, float *dx, const float *dout);

/* One resident training step on the GPU: out = backbone(x), loss = mean((out -
 * target)^2), backward, global-norm clip + AdamW (same math as mk_adamw_step,
 * over the whole table m->p). x, target (B, L, D) on the host; orders as for
 * mamba_backbone_forward (training mode). Returns the
 * loss, or NAN with mk_error. Parameters then live on the GPU until
 * mamba_backbone_cuda_sync_host copies them (and the moments) back. */
float mamba_backbone_cuda_train_step(mamba_backbone *m, mamba_acts *a, const float *x, const float *target, int B,
                                     int L, const int *const *orders, const mk_adamw_cfg *c, mk_rng *rng);
/* For a backbone that borrows another's device table (mk_cuda_ts_train_step), copies that
 * table back. */
int mamba_backbone_cuda_sync_host(mamba_backbone *m);

/* A patch classifier around a backbone (vision/model.h describes one), for the resident
 * GPU step below: shapes, and indices of its tensors in the backbone's parameter table
 * (the model's whole table; -1 where absent). Input images (B, img_h, img_w, img_c),
 * already normalised; an optional stem (conv 4x4 stride 2 pad 1 with `stem` channels, then
 * GELU) makes the (in_h, in_w, in_c) map that the patch convolution (window kernel, stride
 * patch, zero padding (kernel - patch) / 2) cuts into gh x gw = P tokens; token P is the
 * class token; the head is linear on the class token's backbone output. */
typedef struct {
    int img_h, img_w, img_c;
    int stem, stem_w, stem_b;
    int in_h, in_w, in_c;
    int kernel, patch, gh, gw;
    int patch_w, patch_b, pos, cls;
    int n_class, head_w, head_b;
    float smooth; /* label smoothing of the softmax cross-entropy */
    float kd_alpha, kd_temp; /* distillation (a step given teacher probabilities): weight, temperature */
} mk_cls_frontend;

/* One resident training step of such a classifier on the GPU: patch embedding, backbone,
 * head, cross-entropy with label smoothing, backward, global-norm clip and AdamW over the
 * whole table (mk_adamw_step's math), with parameters, gradients, moments and every
 * activation on the device: only the images and labels (and, distilling, the teachers'
 * probabilities tprob (B, n_class) at temperature kd_temp; NULL otherwise) go up, the
 * per-image losses and hits come down. The same random draws as vision_forward (orders,
 * drop-path). Sets *loss
 * (the mean) and *correct (argmax hits); returns 0, or -1 with mk_error (no device, shapes
 * the kernels do not take, out of memory, a failed launch). Parameters stay on the GPU
 * until mamba_backbone_cuda_sync_host. */
int mk_cuda_cls_train_step(mamba_backbone *m, mamba_acts *a, const mk_cls_frontend *f, const float *img, const int *y,
                           const float *tprob, int B, const int *const *orders, const mk_adamw_cfg *c, mk_rng *rng,
                           float *loss, int *correct);

/* The same classifier's forward on the GPU (inference: no drop-path, nothing kept for a
 * backward): images (B, ...) in, the class token's features feat (B, D) and logits (B,
 * n_class) out (either may be NULL). Uses the resident parameters if a training step left
 * them there, else uploads the host's. 0, or -1 (not on a GPU, or an error in mk_error). */
int mk_cuda_cls_forward(mamba_backbone *m, mamba_acts *a, const mk_cls_frontend *f, const float *img, int B,
                        const int *const *orders, float *feat, float *logits);

/* A frame model around a backbone (audio/model.h's enhancer), for the resident GPU step below:
 * features feat (B, L, F) per frame -> h0 = feat W_in^T + b_in (B, L, D) -> backbone -> z = h
 * W_out^T + b_out (+ u * feat, a per-bin skip) -> mask = beta * sigmoid(z) (B, L, F); the loss is
 * audio_mask_loss's spectral loss with magnitude weight mag_w. Indices into the backbone's
 * parameter table (the model's whole table); skip_u -1 without the skip. */
typedef struct {
    int F;
    int w_in, b_in, w_out, b_out, skip_u;
    float beta, mag_w;
} mk_enh_frontend;

/* The waveform term on the device (mkc_sisdr_grad: the enhancer's weighted -SI-SDR of the
 * signals resynthesised from the mask): its weight, the STFT's shape and basis, and the
 * batch's noisy spectrum and clean signals, all host memory; neg_sisdr receives each signal's
 * -SI-SDR (dB). */
typedef struct {
    float weight, power;
    int n_fft, hop;
    size_t n;               /* samples per signal */
    const float *basis;     /* (n_fft, 2F): frame = basis [Re; Im] (windowed inverse rfft / n_fft) */
    const float *wsum;      /* (hop) the window sum of the overlap-add */
    const float *xre, *xim; /* (B, L, F) the noisy spectrum */
    const float *ref;       /* (B, n) the clean signals */
    float *neg_sisdr;       /* (B) out */
} mk_enh_waveform;

/* A loss term that the step computes on the host: given the batch's mask (B, L, F) it adds its
 * gradient with respect to z to dz (B, L, F) (both host memory) and returns its value in units
 * of the mean loss. */
typedef double (*mk_enh_host_term)(void *ctx, const float *mask, float *dz);

/* One resident training step of such a frame model on the GPU: input projection, backbone,
 * mask, spectral loss, backward, global-norm clip and AdamW over the whole table (mk_adamw_step's
 * math), parameters, gradients, moments and activations on the device. Up go the per-frame
 * inputs (B, L, F): features feat, compressed noisy magnitude c, compressed clean magnitude cc
 * and cos(phase difference) cosd. With wf (else NULL), the waveform term on the device (its
 * spectrum, signals and basis go up too, its B values come down). Or with term (else NULL), a
 * host round trip inside the step: the mask comes down into hmask, dz into hdz, term adds its
 * part to hdz, and dz goes back up (hmask, hdz: host buffers of B * L * F floats). orders and rng as for mamba_backbone_forward
 * in training mode. Sets *loss (the mean spectral loss plus term's value); returns 0, or -1
 * with mk_error (no device, out of memory, a failed launch). Parameters stay on the GPU until
 * mamba_backbone_cuda_sync_host. */
int mk_cuda_enh_train_step(mamba_backbone *m, mamba_acts *a, const mk_enh_frontend *f, const float *feat, const float *c,
                           const float *cc, const float *cosd, int B, int L, const int *const *orders,
                           const mk_adamw_cfg *cfg, mk_rng *rng, const mk_enh_waveform *wf, mk_enh_host_term term,
                           void *ctx, float *hmask, float *hdz, float *loss);

/* The same frame model's inference forward on the GPU (audio/model.c's net_forward with training
 * 0): the step's forward without its loss, activations on the device; the features feat (B, L,
 * F) go up and the mask (B, L, F) comes down, where the host's ISTFT, loss and SI-SDR take over.
 * orders as for mamba_backbone_forward. Uses the resident parameters if a training step left
 * them there, else uploads the host's (and leaves the host's copy the newer one). 0, or -1 with
 * mk_error (the backbone not on a GPU, a front end not of the model's shapes, out of memory, a
 * failed launch). */
int mk_cuda_enh_forward(mamba_backbone *m, mamba_acts *a, const mk_enh_frontend *f, const float *feat, int B, int L,
                        const int *const *orders, float *mask);

/* A point-cloud classifier around a backbone (vision/points.h), for the resident GPU step
 * below. Per object: L tokens, each a patch of K neighbours; rel (L, K, 3) -> h1 = rel W1^T + b1
 * (L*K, H) -> ReLU -> h2 = a1 W2^T + b2 (L*K, D) -> x = max over K of h2 + ctr (L, 3) Pw^T + pb
 * (L, D) -> the backbone with the object's G scan orders -> the mean over the L tokens ->
 * logits = feat Hw^T + hb (n_class). n objects run as one batch: every op over all n, the
 * backbone one (n, L) pass with per-sample orders (mamba_backbone_forward_ps). Indices into the
 * backbone's parameter table (the model's whole table). */
typedef struct {
    int L, K, H, n_class;
    int w1, b1, w2, b2, pw, pb, head_w, head_b;
} mk_pts_frontend;

/* One resident training step of such a classifier over n objects on the GPU: the batch's
 * forward, softmax cross-entropy (scale 1 / n) and backward, then global-norm clip and AdamW over
 * the whole table (mk_adamw_step's math); parameters, gradients, moments and every activation on
 * the device, points_train_batch's computation op for op. The backbone's random draws
 * (shuffles, drop-path masks: mamba_backbone_draw's, object by object) are made on the host and
 * go up with the batch's inputs: rel (n, L, K, 3), ctr (n, L, 3), order (n, G, L), labels y (n,
 * each in [0, n_class)). Only the n losses and hits come down. Sets *loss (the mean) and *correct
 * (argmax hits); returns 0, or -1 with mk_error (no device, a bad label or shape, out of memory, a
 * failed launch). Parameters stay on the GPU until mamba_backbone_cuda_sync_host. */
int mk_cuda_pts_train_step(mamba_backbone *m, mamba_acts *a, const mk_pts_frontend *f, const float *rel,
                           const float *ctr, const int *order, const int *y, int n, const mk_adamw_cfg *c, mk_rng *rng,
                           float *loss, int *correct);

/* The same classifier's forward on the GPU for n objects (inference: no shuffles or drop-path,
 * nothing kept for a backward), as the step runs it: rel (n, L, K, 3), ctr (n, L, 3), order
 * (n, G, L) up; the features feat (n, D) and logits (n, n_class) down (either may be NULL). Uses
 * the resident parameters if a training step left them there, else uploads the host's (and
 * leaves them the host's: it never makes the device copy the newer one). 0, or -1 with mk_error
 * (not on a GPU, a front end not of the model's shapes, out of memory, a failed launch). */
int mk_cuda_pts_forward(mamba_backbone *m, mamba_acts *a, const mk_pts_frontend *f, const float *rel,
                        const float *ctr, const int *order, int n, float *feat, float *logits);

/* The S-Mamba forecaster (timeseries/ts.h) around its backbones, for the resident GPU step
 * below. B windows of L steps, C variates and F covariates make T = C + F tokens per window (M =
 * B * T rows): tokens (M, L) -> e0 = tok W_emb^T + b (M, D), dropout -> per layer: the Mamba
 * block (paper: two backbones, h = (in + Mamba_f(in)) + (in + flip(Mamba_r(flip(in)))) - in;
 * shared: one backbone of two scan directions), n1 = LN1(h), r2 = n1 + drop(W2 drop(GELU(W1
 * n1))), out = LN2(r2) -> LN_f -> the C variate rows of each window -> head (B*C, H) -> pred (B,
 * H, C) = hout * std + mean (RevIN's de-normalisation). Indices into the backbones' one
 * parameter table (the model's whole table). */
#define MK_TS_MAX_LAYER 16
typedef struct {
    int L, H, C, F, D, d_ff, n_layer;
    int paper;         /* 1: two backbones a layer (forward, reverse); 0: one (both directions) */
    float dropout;     /* > 0: the step takes dropout masks */
    int emb_w, emb_b;
    int ln1_w[MK_TS_MAX_LAYER], ln1_b[MK_TS_MAX_LAYER], ff1_w[MK_TS_MAX_LAYER], ff1_b[MK_TS_MAX_LAYER];
    int ff2_w[MK_TS_MAX_LAYER], ff2_b[MK_TS_MAX_LAYER], ln2_w[MK_TS_MAX_LAYER], ln2_b[MK_TS_MAX_LAYER];
    int lnf_w, lnf_b, head_w, head_b;
} mk_ts_frontend;

/* One resident training step of such a forecaster on the GPU: embedding, every layer's Mamba
 * block, LayerNorms and FFN, final norm, head, de-normalisation, MSE loss (scale 1), backward,
 * global-norm clip and AdamW over the whole table (mk_adamw_step's math). bbs: the model's n_bb
 * backbones (n_layer x 2 for paper, n_layer for shared), all declared in one table; on the first
 * call backbones 1..n_bb-1 give up their own device copy of the table and borrow backbone 0's
 * (parameters, gradients, moments: one table on the device, each backbone keeping its own
 * activations), so backbone 0 must outlive them on the GPU (the model frees them together).
 * Up go the batch's tokens tok (M, L) (RevIN-normalised windows, then the covariates),
 * RevIN's mean and std (B, C), the target (B, H, C) and, with dropout, the masks (the CPU's
 * draws: mask_e (M, D), then per layer mask_g (M, d_ff) and mask_f (M, D); NULL without);
 * the loss (the mean squared error) comes down. Returns 0, or -1 with mk_error (no device,
 * shapes that do not fit, out of memory, a failed launch). Parameters then stay on the GPU
 * until mamba_backbone_cuda_sync_host(&bbs[0]). */
int mk_cuda_ts_train_step(mamba_backbone *bbs, mamba_acts *acts, int n_bb, const mk_ts_frontend *f, const float *tok,
                          const float *rmean, const float *rstd, const float *target, const float *masks, int B,
                          const mk_adamw_cfg *c, float *loss);

/* The same forecaster's inference forward on the GPU (ts_smamba_forward with training 0): the
 * step's forward without dropout, its activations on the device; the tokens, RevIN's mean and
 * std go up and pred (B, H, C) comes down. Reads the resident parameters if a training step left
 * them there, else uploads the host's table (and leaves the host's copy the newer one). Returns
 * 0, or -1 with mk_error, as the step does. */
int mk_cuda_ts_forward(mamba_backbone *bbs, mamba_acts *acts, int n_bb, const mk_ts_frontend *f, const float *tok,
                       const float *rmean, const float *rstd, int B, float *pred);

/* MambaMIL (pathology/mil_model.h) around its SR-Mamba backbone, for the resident GPU step below.
 * One bag of L instances: x (L, F) -> xs = (x - mean) / std -> e = relu(xs W_e^T + b_e) (L, D)
 * -> [score order: s = w^T tanh(V e + bV) (* sigm(U e + bU)) on e before dropout, the rows by s,
 * highest first] -> e *= dropout mask -> the backbone over (1, L) with G = 2 scan orders (the
 * base order and its stride-R interleave; G = 1 for R = 0) -> h = e + gamma * out (res_gate)
 * or h = out -> attention (or gated attention) pooling of h -> logit = wc . z + bc, BCE. Indices
 * into the backbone's parameter table (the model's whole table); -1 where absent. */
typedef struct {
    int F, D, H, R;
    int score_order;   /* the scans read the bag sorted by the attention logit on e */
    float dropout;     /* > 0: the step takes the embedding's dropout mask */
    int fmean, fstd, emb_w, emb_b;
    int att_V, att_Vb, att_U, att_Ub, att_w; /* att_U, att_Ub -1: plain attention */
    int cls_w, cls_b;
    int gamma;         /* the residual gate (D), or -1: h is the backbone's output */
    int attend_e;      /* --attend e: the attention weights from e (after dropout), h pooled */
    float aux;         /* > 0: the auxiliary exit, the same pooling and classifier on e alone
                          (logit l_e; loss + aux BCE(l_e), its gradient aux (sigm(l_e) - y) / batch) */
    /* branch drop, drawn by the step's caller for this bag (a forward leaves both 0): branch_off
     * 1 drops the gated branch (h = e: no backbone pass, none of its draws); else h = e +
     * branch_scale * gamma * out, where a branch_scale of 0 stands for 1 */
    int branch_off;
    float branch_scale;
} mk_mil_frontend;

/* One bag's resident training step of such a model on the GPU: forward, BCE on the logit with
 * the gradient scaled by 1 / batch (mil_train's), backward, gradients accumulating in place on
 * the device over the bags of an optimiser step; begin: zero them first (the step's first bag);
 * update: then global-norm clip and AdamW over the whole table (mk_adamw_step's math). The
 * score order is computed and sorted on the device and the backbone's orders built there. Up go
 * the bag's features x (L, F), its label y (0/1) and, with dropout, the embedding's mask dmask
 * (L, D) drawn on the host as the CPU draws it; the backbone's own draws (drop-path) are made
 * from rng as mamba_backbone_forward makes them. Only the logit comes down (*logit, and with the
 * auxiliary exit its logit *aux_logit, which may be NULL; the caller computes the loss and
 * probability from them as the CPU does). Returns 0, or -1 with mk_error
 * (no device, a bad shape or label, a backbone drawing shuffled orders, out of memory, a failed
 * launch). Parameters stay on the GPU until mamba_backbone_cuda_sync_host. */
int mk_cuda_mil_train_step(mamba_backbone *m, mamba_acts *a, const mk_mil_frontend *f, const float *x, int L, int y,
                           const float *dmask, int batch, int begin, int update, const mk_adamw_cfg *c, mk_rng *rng,
                           float *logit, float *aux_logit);

/* The same model's forward on the GPU for one bag (inference: no dropout or drop-path, nothing
 * kept for a backward), mil_forward(..., training 0) op for op: the bag's features x (L, F) go
 * up, the logit (*logit; with the auxiliary exit its logit too, *aux_logit, which may be NULL:
 * the caller mixes them as the model says) and, if att is not NULL, the attention weights att (L)
 * come down. Uses
 * the resident parameters if a training step left them there, else uploads the host's (and
 * leaves them non-resident). 0, or -1 (not on a GPU, or an error in mk_error: shapes the step
 * does not take, out of memory, a failed launch). */
int mk_cuda_mil_forward(mamba_backbone *m, mamba_acts *a, const mk_mil_frontend *f, const float *x, int L,
                        float *logit, float *aux_logit, float *att);

/* Benchmark the CUDA scan at (B, L, E, N) on random Mamba-shaped inputs
 * (S4D-real A, D, z, softplus dt): res[0] forward us, res[1] backward us
 * (median of reps, CUDA events, L2 flushed), res[2] the device's measured
 * copy bandwidth in bytes/s, res[3] / res[4] forward / backward us with bf16
 * activations (same values rounded; fp32 state and gradients), res[5] forward us
 * with the register kernel forced (the staged kernel's predecessor). 0, or -1
 * with mk_error. */
int mk_cuda_bench_scan(int B, int L, int E, int N, int reps, double res[6]);

#endif
