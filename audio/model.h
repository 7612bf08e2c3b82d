/* model.h — the speech enhancer: a Mamba network over STFT frames predicting
 * a bounded magnitude mask.
 *
 * Dimension letters: B batch, T frames, F = n_fft/2+1 bins, D model width.
 *
 *   X      = STFT(noisy)                                   (B, T, F) complex
 *   c      = |X|^0.3                                       compressed magnitude
 *   feat   = c / sqrt(ema_t(mean_f c^2))                   causal level normalisation
 *   h      = feat @ W_in^T + b_in                          (B, T, D)
 *   h      = Mamba backbone over time                      offline: G=2 (forward + reversed
 *                                                          order, Vim bimamba v2); stream: G=1
 *   mask   = beta * sigmoid(h @ W_out^T + b_out + u * feat)  (B, T, F), in [0, beta]; the per-bin
 *                                                          skip u * feat lets each bin's own level
 *                                                          act directly (the D-wide path is low-rank)
 *   c_est  = mask * c ;  Y = X * mask^(1/0.3)              noisy phase kept
 *   y      = ISTFT(Y)
 * Loss (training): 0.7 * |c_est - c_clean|^2 + 0.3 * |c_est e^{i phi_noisy} - c_clean e^{i phi_clean}|^2,
 * averaged over all bins: the compressed magnitude and compressed complex losses
 * of SEMamba / MP-SENet, with the phase taken from the noisy input; optionally
 * plus w * (-SI-SDR) of the resynthesised waveform (gradient through the ISTFT,
 * whose adjoint is a windowed rfft).
 *
 * The level normalisation is an exponential moving average over frames with
 * bias correction (so it is causal and the same offline and streaming); it
 * makes the mask independent of the input gain.
 *
 * ref: Chao et al. 2024 (SEMamba); Lu et al. 2023 (MP-SENet, compressed
 * magnitude 0.3 and the learnable-sigmoid bounded mask). */
#ifndef MK_AUDIO_MODEL_H
#define MK_AUDIO_MODEL_H

#include <stddef.h>

#include "audio/stft.h"
#include "core/backend.h"
#include "core/ckpt.h"
#include "core/mamba.h"
#include "core/optim.h"

typedef struct {
    int sr;          /* model sample rate (8000) */
    int n_fft, hop;  /* 200, 50 at 8 kHz = 25 ms / 6.25 ms */
    int d_model, n_layer, d_state;
    int causal;      /* 1: G = 1, streamable; 0: bidirectional (G = 2) */
    float power;     /* magnitude compression, 0.3 */
    float beta;      /* mask bound, 1.25 */
    float ema;       /* level normalisation EMA coefficient per frame, 0.98 */
    int skip;        /* 1: per-bin skip u[f] * feat[f] added to the mask logits */
} audio_enhancer_cfg;

void audio_enhancer_cfg_default(audio_enhancer_cfg *c, int causal);

typedef struct {
    audio_enhancer_cfg cfg;
    int F;
    mk_params p;
    mamba_backbone bb;
    int w_in, b_in, w_out, b_out; /* (D, F), (D), (F, D), (F) */
    int skip_u;                   /* (F), -1 without the skip */
    audio_stft stft;
} audio_enhancer;

/* Declare + allocate + initialise. 0 or -1 with mk_error. */
int audio_enhancer_create(audio_enhancer *m, const audio_enhancer_cfg *c, unsigned long long seed);
/* Run the backbone's forward/backward (offline enhancement, training) on dev (MK_DEV_CPU /
 * MK_DEV_CUDA, from mk_device_parse; falls back to the CPU with a notice); the streaming
 * step always runs on the CPU. Returns the device. Call after any audio_enhancer_grow. */
int audio_enhancer_use_device(audio_enhancer *m, int dev);
void audio_enhancer_free(audio_enhancer *m);
/* Load a model file (task "enhance"); want_optim also restores AdamW state.
 * A model saved without the skip loads into a skip model when add_skip is 1
 * (u = 0: the same function), so training can continue with it. */
int audio_enhancer_load_ex(audio_enhancer *m, const char *path, int want_optim, int add_skip);
int audio_enhancer_load(audio_enhancer *m, const char *path, int want_optim);
/* Deepen a model to n_layer (>= its own) Mamba layers: the new layers come
 * after the old ones, initialised from seed but with a zero output
 * projection, so the grown model computes exactly what the old one did
 * (training then makes use of them). Optimiser state and step are dropped.
 * 0, or -1 with mk_error (m unchanged). */
int audio_enhancer_grow(audio_enhancer *m, int n_layer, unsigned long long seed);
/* Save (atomically), with optimiser state if with_optim. extra: more config
 * entries to record (e.g. training steps), may be NULL. */
int audio_enhancer_save(const audio_enhancer *m, const char *path, int with_optim, const mk_config *extra);
void audio_enhancer_config(const audio_enhancer *m, mk_config *c);

/* Algorithmic latency of streaming in samples at the model rate (n_fft). */
int audio_enhancer_latency(const audio_enhancer *m);

/* Offline enhancement of one mono signal at the model rate: y (n) from x (n).
 * y may equal x. Works for causal and bidirectional models. */
void audio_enhance(audio_enhancer *m, float *y, const float *x, size_t n);

/* ---- streaming: frame by frame with the recurrent state (causal models only) ---- */
typedef struct audio_stream audio_stream;
/* NULL with mk_error if the model is not causal. */
audio_stream *audio_stream_new(audio_enhancer *m);
/* Push n samples; writes up to n + hop output samples to out (aligned with the
 * input: the first output sample is the enhanced first input sample, it is
 * just released n_fft - 1 samples later). Returns how many were written. */
size_t audio_stream_push(audio_stream *s, const float *x, size_t n, float *out);
/* End of input: writes the remaining samples (at most n_fft) and returns the count. */
size_t audio_stream_flush(audio_stream *s, float *out);
void audio_stream_free(audio_stream *s);

/* ---- training ---- */
typedef struct {
    int B, T;
    mamba_acts acts;
    float *nre, *nim, *cre, *cim;       /* (B, T, F) noisy / clean spectra */
    float *c, *feat, *cc, *cosd;        /* (B, T, F) compressed noisy, features, compressed clean, cos(phase diff) */
    float *h0, *h, *z, *mask, *dz, *dh; /* h0, h, dh (B, T, D); z, mask, dz (B, T, F) */
    int *rev;                           /* (T) reversed order */
    float sisdr_weight;                 /* > 0: add sisdr_weight * (-SI-SDR in dB) of the waveform */
    float last_sisdr;                   /* mean SI-SDR (dB) of the last batch when sisdr_weight > 0 */
    int sisdr_on_host;                  /* the GPU step: the SI-SDR term on the host, a round trip
                                         * inside the step (else on the device) */
    float *basis;                       /* (n_fft, 2F) audio_enhancer_istft_basis, for the GPU step */
} audio_train_ws;

void audio_train_ws_init(audio_train_ws *w);
void audio_train_ws_free(audio_train_ws *w);
/* Forward + backward on a batch of B pairs of n samples each (noisy, clean
 * (B, n)); accumulates gradients into m->p.grad and returns the loss. With
 * grad = 0 only the loss is computed (evaluation). */
float audio_enhancer_train_batch(audio_enhancer *m, audio_train_ws *w, const float *noisy, const float *clean, int B,
                                 size_t n, int grad);

/* The parts of a training batch, public so that the GPU step (mk_cuda_enh_train_step, via
 * audio_enhancer_train_step_cuda) and its host emulation share them with the CPU path. */

/* Weight of the compressed-magnitude term of the loss; the compressed complex term gets 1 - it. */
#define AUDIO_LOSS_MAG 0.7f
/* The host part of a batch, which is all a GPU step uploads: STFTs of noisy and clean (w->nre,
 * nim, cre, cim) and from them w->c, feat, cc, cosd (B, T, F); w->rev the reversed order.
 * Returns T. */
int audio_enhancer_prepare(audio_enhancer *m, audio_train_ws *w, const float *noisy, const float *clean, int B,
                           size_t n);
/* The bounded mask over M rows of F bins: z += u * feat per bin (u (F), NULL without the
 * skip), mask = beta * sigmoid(z). */
void audio_mask_forward(float *mask, float *z, const float *feat, const float *u, size_t M, int F, float beta);
/* The spectral loss over n bins (model.h's formula, a the magnitude weight): dz = inv * d loss /
 * d z through mask = beta * sigmoid(z); returns the loss summed over the n bins (double). */
double audio_mask_loss(float *dz, const float *mask, const float *c, const float *cc, const float *cosd, size_t n,
                       float a, float inv, float beta);
/* The waveform term, from w->mask, nre, nim (after a forward over T frames): adds
 * w->sisdr_weight * d mean_b(-SI-SDR_b) / dz to w->dz, sets w->last_sisdr, and returns
 * w->sisdr_weight * mean_b(-SI-SDR_b) (dB). */
double audio_enhancer_sisdr_grad(audio_enhancer *m, audio_train_ws *w, const float *clean, int B, size_t n, int T);
/* One signal's part of it (the twin of the GPU's mkc_sisdr_grad): mask, noisy spectrum xr, xi
 * (T, F), clean r (n); adds weight / B x d(-SI-SDR)/dz to dz (T, F); returns -SI-SDR (dB). */
double audio_sisdr_grad_one(audio_stft *st, float *dz, const float *mask, const float *xr, const float *xi,
                            const float *r, size_t n, int T, float power, float beta, float weight, int B);

/* The ISTFT of one frame as a matrix, basis (n_fft, 2F): basis [Re X; Im X] = audio_istft_frame's
 * output (the windowed inverse rfft / n_fft, DC and Nyquist imaginary parts dropped); its
 * transpose is the adjoint that audio_sisdr_grad_one applies (windowed rfft x c_k / n_fft). */
void audio_enhancer_istft_basis(const audio_enhancer *m, float *basis);
/* The enhancer's shapes and tensor indices for the resident GPU step (mk_cuda_enh_train_step). */
void audio_enhancer_frontend(const audio_enhancer *m, mk_enh_frontend *f);
/* One whole training step with the backbone on the GPU (audio_enhancer_use_device): the host
 * part (audio_enhancer_prepare) here, then the network, loss, backward and clipped AdamW (ac)
 * on the device, parameters and moments resident there until mamba_backbone_cuda_sync_host(&m->bb).
 * The SI-SDR term (w->sisdr_weight > 0) runs on the device too, or with w->sisdr_on_host on the
 * host from the mask inside the step.
 * The same arithmetic as audio_enhancer_train_batch + mk_adamw_step. Sets *loss (not finite
 * when training diverged: the update is then skipped); returns 0, or -1 with mk_error (a
 * device failure). */
int audio_enhancer_train_step_cuda(audio_enhancer *m, audio_train_ws *w, const float *noisy, const float *clean, int B,
                                   size_t n, const mk_adamw_cfg *ac, float *loss);

#endif
