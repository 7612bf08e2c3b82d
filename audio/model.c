/* model.c — the speech enhancer (math in model.h). */
#include "audio/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/ops.h"
#include "core/util.h"

/* Offline inference runs the network on chunks of this many frames with CTX
 * frames of context on each side, so memory stays bounded on long files
 * (bidirectional context beyond CTX frames = 1.25 s is not used). */
#define CHUNK_FRAMES 4000
#define CTX_FRAMES 200

void audio_enhancer_cfg_default(audio_enhancer_cfg *c, int causal) {
    memset(c, 0, sizeof *c);
    c->sr = 8000;
    c->n_fft = 200;
    c->hop = 50;
    c->d_model = 64;
    c->n_layer = 3;
    c->d_state = 16;
    c->causal = causal;
    c->power = 0.3f;
    c->beta = 1.25f;
    c->ema = 0.98f;
    c->skip = 1;
}

/* match: a model file whose tensor table the declaration must equal before
 * anything is allocated (loading), or NULL (a new model). */
static int declare(audio_enhancer *m, const audio_enhancer_cfg *c, const char *match) {
    memset(m, 0, sizeof *m);
    if (c->sr < 4000 || c->sr > 48000 || c->d_model < 4 || c->d_model > 1024 || c->n_layer < 1 || c->n_layer > 32 ||
        !(c->power > 0.05f && c->power <= 1.f) || !(c->beta >= 1.f && c->beta <= 4.f) ||
        !(c->ema > 0.f && c->ema < 1.f)) {
        mk_error("invalid enhancer config (sr %d, d_model %d, layers %d, power %g, beta %g)", c->sr, c->d_model,
                 c->n_layer, c->power, c->beta);
        return -1;
    }
    if (audio_stft_init(&m->stft, c->n_fft, c->hop)) return -1;
    m->cfg = *c;
    m->F = m->stft.F;
    mk_params_init(&m->p);
    const int D = c->d_model, F = m->F;
    m->w_in = mk_params_add(&m->p, "in_proj.weight", 1, 2, D, F);
    m->b_in = mk_params_add(&m->p, "in_proj.bias", 0, 1, D);
    mamba_cfg mc;
    mamba_cfg_default(&mc, D, c->n_layer);
    mc.d_state = c->d_state;
    mc.n_dir = c->causal ? 1 : 2;
    if (mamba_backbone_declare(&m->bb, &m->p, "backbone.", &mc)) {
        audio_stft_free(&m->stft);
        mk_params_free(&m->p);
        return -1;
    }
    m->w_out = mk_params_add(&m->p, "mask.weight", 1, 2, F, D);
    m->b_out = mk_params_add(&m->p, "mask.bias", 0, 1, F);
    m->skip_u = c->skip ? mk_params_add(&m->p, "mask.skip", 0, 1, F) : -1;
    if (match && mk_ckpt_check_table(match, "enhance", &m->p)) {
        audio_enhancer_free(m);
        return -1;
    }
    mk_params_alloc(&m->p);
    return 0;
}

int audio_enhancer_create(audio_enhancer *m, const audio_enhancer_cfg *c, unsigned long long seed) {
    if (declare(m, c, NULL)) return -1;
    mk_rng rng;
    mk_rng_seed(&rng, seed);
    mk_init_linear(mk_param(&m->p, m->w_in), mk_param(&m->p, m->b_in), c->d_model, m->F, &rng);
    mamba_backbone_init(&m->bb, &rng);
    mk_init_linear(mk_param(&m->p, m->w_out), NULL, m->F, c->d_model, &rng);
    /* start near the identity: mask = beta * sigmoid(1) ~ 0.91 */
    mk_init_const(mk_param(&m->p, m->b_out), m->F, 1.0f);
    return 0;
}

int audio_enhancer_use_device(audio_enhancer *m, int dev) {
    mamba_backbone *bb = &m->bb;
    return mamba_backbones_use_device(&bb, 1, dev);
}

void audio_enhancer_free(audio_enhancer *m) {
    mamba_backbone_free(&m->bb);
    mk_params_free(&m->p);
    audio_stft_free(&m->stft);
    memset(m, 0, sizeof *m);
}

void audio_enhancer_config(const audio_enhancer *m, mk_config *c) {
    const audio_enhancer_cfg *e = &m->cfg;
    mk_config_init(c, "enhance");
    mk_config_set_int(c, "sample_rate", e->sr);
    mk_config_set_int(c, "n_fft", e->n_fft);
    mk_config_set_int(c, "hop", e->hop);
    mk_config_set_int(c, "d_model", e->d_model);
    mk_config_set_int(c, "n_layer", e->n_layer);
    mk_config_set_int(c, "d_state", e->d_state);
    mk_config_set_int(c, "causal", e->causal);
    mk_config_set_float(c, "power", e->power);
    mk_config_set_float(c, "beta", e->beta);
    mk_config_set_float(c, "ema", e->ema);
    mk_config_set_int(c, "skip", e->skip);
}

int audio_enhancer_save(const audio_enhancer *m, const char *path, int with_optim, const mk_config *extra) {
    mk_config c;
    audio_enhancer_config(m, &c);
    if (extra)
        for (int i = 0; i < extra->n; i++) mk_config_set(&c, extra->key[i], "%s", extra->val[i]);
    return mk_ckpt_save(path, &c, &m->p, with_optim);
}

int audio_enhancer_load(audio_enhancer *m, const char *path, int want_optim) {
    return audio_enhancer_load_ex(m, path, want_optim, 0);
}

/* A missing or unreadable config value: the message names the file. */
static int config_fail(const char *path) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", mk_last_error());
    mk_error("%s: %s", path, msg);
    return -1;
}

int audio_enhancer_load_ex(audio_enhancer *m, const char *path, int want_optim, int add_skip) {
    mk_config c;
    if (mk_ckpt_read_config(path, "enhance", &c)) return -1;
    audio_enhancer_cfg e;
    audio_enhancer_cfg_default(&e, 0);
    long v;
    double f;
#define GETI(key, field, lo, hi)                                                            \
    if (mk_config_get_int(&c, key, &v)) return config_fail(path);                           \
    if (v < lo || v > hi) {                                                                 \
        mk_error("%s: config %s = %ld is out of range", path, key, v);                     \
        return -1;                                                                          \
    }                                                                                       \
    e.field = (int)v;
#define GETF(key, field)                                         \
    if (mk_config_get_float(&c, key, &f)) return config_fail(path); \
    e.field = (float)f;
    GETI("sample_rate", sr, 4000, 48000)
    GETI("n_fft", n_fft, 4, 65536)
    GETI("hop", hop, 1, 65536)
    GETI("d_model", d_model, 4, 1024)
    GETI("n_layer", n_layer, 1, 32)
    GETI("d_state", d_state, 1, 64)
    GETI("causal", causal, 0, 1)
    GETF("power", power)
    GETF("beta", beta)
    GETF("ema", ema)
    e.skip = 0;
    if (mk_config_get(&c, "skip")) {
        GETI("skip", skip, 0, 1)
    }
#undef GETI
#undef GETF
    if (declare(m, &e, path)) return -1;
    if (mk_ckpt_load(path, "enhance", &c, &m->p, want_optim)) {
        audio_enhancer_free(m);
        return -1;
    }
    if (add_skip && !e.skip) {
        /* rebuild with the skip tensor and copy every old tensor by name */
        audio_enhancer old = *m;
        e.skip = 1;
        if (declare(m, &e, NULL)) {
            audio_enhancer_free(&old);
            return -1;
        }
        for (int i = 0; i < old.p.n; i++) {
            int j = mk_params_find(&m->p, old.p.t[i].name);
            MK_ASSERT(j >= 0 && m->p.t[j].numel == old.p.t[i].numel);
            memcpy(mk_param(&m->p, j), mk_param(&old.p, i), sizeof(float) * old.p.t[i].numel);
        }
        m->p.step = old.p.step;
        audio_enhancer_free(&old);
    }
    return 0;
}

int audio_enhancer_grow(audio_enhancer *m, int n_layer, unsigned long long seed) {
    MK_ASSERT(n_layer >= m->cfg.n_layer);
    if (n_layer == m->cfg.n_layer) return 0;
    audio_enhancer_cfg c = m->cfg;
    const int n_old = c.n_layer;
    c.n_layer = n_layer;
    audio_enhancer old = *m;
    if (audio_enhancer_create(m, &c, seed)) {
        *m = old;
        return -1;
    }
    /* Layers are named by index and the new ones come last, before the final
     * norm, so every old tensor has its namesake. A new layer with a zero
     * output projection adds nothing to the residual stream: the grown model
     * computes what the old one did, yet its out_proj gets a gradient (the
     * layer's inner activations are not zero), so training can use it. */
    for (int i = 0; i < old.p.n; i++) {
        int j = mk_params_find(&m->p, old.p.t[i].name);
        MK_ASSERT(j >= 0 && m->p.t[j].numel == old.p.t[i].numel);
        memcpy(mk_param(&m->p, j), mk_param(&old.p, i), sizeof(float) * old.p.t[i].numel);
    }
    for (int l = n_old; l < n_layer; l++) {
        int o = m->bb.layer[l].out_proj;
        mk_init_const(mk_param(&m->p, o), m->p.t[o].numel, 0.0f);
    }
    audio_enhancer_free(&old);
    return 0;
}

int audio_enhancer_latency(const audio_enhancer *m) { return m->cfg.n_fft; }

/* ---------------------------------------------------------------- features */

typedef struct {
    double s; /* EMA of the per-frame mean c^2 */
    double ak; /* ema^k, for the bias correction */
} level_state;

static void level_init(level_state *l) { l->s = 0, l->ak = 1; }

/* One frame: c (F) compressed magnitude from re, im; feat (F) normalised. */
static void frame_features(const audio_enhancer *m, level_state *l, float *c, float *feat, const float *re,
                           const float *im) {
    const int F = m->F;
    const float hp = 0.5f * m->cfg.power;
    double e = 0;
    for (int f = 0; f < F; f++) {
        float p2 = re[f] * re[f] + im[f] * im[f];
        c[f] = p2 > 0 ? powf(p2, hp) : 0.f;
        e += (double)c[f] * c[f];
    }
    e /= F;
    const double a = m->cfg.ema;
    l->s = a * l->s + (1 - a) * e;
    l->ak *= a;
    float sc = (float)(1.0 / sqrt(l->s / (1 - l->ak) + 1e-6));
    for (int f = 0; f < F; f++) feat[f] = c[f] * sc;
}

/* ---------------------------------------------------------------- network */

void audio_train_ws_init(audio_train_ws *w) { memset(w, 0, sizeof *w); }

void audio_train_ws_free(audio_train_ws *w) {
    mamba_acts_free(&w->acts);
    free(w->nre);
    free(w->rev);
    free(w->basis);
    memset(w, 0, sizeof *w);
}

static void ws_ensure(audio_train_ws *w, const audio_enhancer *m, int B, int T) {
    if (w->nre && w->B * w->T >= B * T && w->T >= T) {
        w->B = B, w->T = T;
        return;
    }
    free(w->nre);
    free(w->rev);
    size_t BTF = (size_t)B * T * m->F, BTD = (size_t)B * T * m->cfg.d_model;
    float *p = mk_malloc(sizeof(float) * (12 * BTF + 3 * BTD));
    w->nre = p, p += BTF;
    w->nim = p, p += BTF;
    w->cre = p, p += BTF;
    w->cim = p, p += BTF;
    w->c = p, p += BTF;
    w->feat = p, p += BTF;
    w->cc = p, p += BTF;
    w->cosd = p, p += BTF;
    w->z = p, p += BTF;
    w->mask = p, p += BTF;
    w->dz = p, p += BTF;
    p += BTF; /* spare */
    w->h0 = p, p += BTD;
    w->h = p, p += BTD;
    w->dh = p, p += BTD;
    w->rev = mk_malloc(sizeof(int) * T);
    w->B = B, w->T = T;
}

/* Inference with the backbone on the GPU: the whole forward there (mk_cuda_enh_forward), so that
 * only the features go up and the mask comes down, and a training step's resident weights are
 * the ones read. 0, or -1 when the host path must run it (said once per process). */
static int net_forward_cuda(audio_enhancer *m, audio_train_ws *w, const float *feat, int B, int T,
                            const int *const *orders) {
    static int said;
    mk_enh_frontend f;
    audio_enhancer_frontend(m, &f);
    if (!mk_cuda_enh_forward(&m->bb, &w->acts, &f, feat, B, T, orders, w->mask)) return 0;
    if (!said++)
        fprintf(stderr, "mambakit: enhancer forward on the GPU: %s; falling back to the host path\n", mk_last_error());
    return -1;
}

/* feat (B, T, F) -> w->mask (B, T, F), saving h0, h, z for backward (training; inference on the
 * GPU leaves them untouched). */
static void net_forward(audio_enhancer *m, audio_train_ws *w, const float *feat, int B, int T, int training) {
    const int F = m->F, D = m->cfg.d_model, M = B * T;
    mk_order_reverse(w->rev, T);
    const int *orders[2] = {NULL, w->rev};
    if (!training && m->bb.device == MK_DEV_CUDA && !net_forward_cuda(m, w, feat, B, T, orders)) return;
    linear_forward(w->h0, feat, mk_param(&m->p, m->w_in), mk_param(&m->p, m->b_in), M, F, D);
    mamba_backbone_forward(&m->bb, &w->acts, w->h, w->h0, B, T, orders, training, NULL);
    linear_forward(w->z, w->h, mk_param(&m->p, m->w_out), mk_param(&m->p, m->b_out), M, D, F);
    audio_mask_forward(w->mask, w->z, feat, m->skip_u >= 0 ? mk_param(&m->p, m->skip_u) : NULL, M, F, m->cfg.beta);
}

void audio_mask_forward(float *mask, float *z, const float *feat, const float *u, size_t M, int F, float beta) {
    if (u)
        for (size_t i = 0; i < M * F; i++) z[i] += u[i % F] * feat[i];
    for (size_t i = 0; i < M * F; i++) mask[i] = beta * mk_sigmoidf(z[i]);
}

double audio_mask_loss(float *dz, const float *mask, const float *c, const float *cc, const float *cosd, size_t n,
                       float a, float inv, float beta) {
    double loss = 0;
    for (size_t i = 0; i < n; i++) {
        float e = mask[i] * c[i], ci = cc[i], cd = cosd[i];
        float dm = e - ci;
        loss += a * dm * dm + (1 - a) * (e * e + ci * ci - 2 * e * ci * cd);
        float de = inv * (2 * a * dm + 2 * (1 - a) * (e - ci * cd));
        float s = mask[i] / beta;
        dz[i] = de * c[i] * beta * s * (1 - s);
    }
    return loss;
}

/* Mask of one whole sequence (1, T, F) from its features, in bounded-memory chunks. */
static void sequence_mask(audio_enhancer *m, audio_train_ws *w, float *mask, const float *feat, size_t T) {
    const int F = m->F;
    for (size_t s = 0; s < T; s += CHUNK_FRAMES) {
        size_t e = s + CHUNK_FRAMES < T ? s + CHUNK_FRAMES : T;
        size_t a = s > CTX_FRAMES ? s - CTX_FRAMES : 0, b = e + CTX_FRAMES < T ? e + CTX_FRAMES : T;
        if (T <= CHUNK_FRAMES) a = 0, b = T;
        ws_ensure(w, m, 1, (int)(b - a));
        net_forward(m, w, feat + a * F, 1, (int)(b - a), 0);
        memcpy(mask + s * F, w->mask + (s - a) * F, sizeof(float) * (e - s) * F);
    }
}

void audio_enhance(audio_enhancer *m, float *y, const float *x, size_t n) {
    const int F = m->F;
    size_t T = audio_stft_frames(&m->stft, n), TF = T * F;
    float *re = mk_malloc(sizeof(float) * 4 * TF), *im = re + TF, *c = im + TF, *feat = c + TF;
    audio_stft_forward(&m->stft, re, im, x, n);
    level_state lv;
    level_init(&lv);
    for (size_t t = 0; t < T; t++) frame_features(m, &lv, c + t * F, feat + t * F, re + t * F, im + t * F);
    audio_train_ws w;
    audio_train_ws_init(&w);
    sequence_mask(m, &w, c, feat, T); /* c now holds the mask */
    audio_train_ws_free(&w);
    const float ip = 1.f / m->cfg.power;
    for (size_t i = 0; i < TF; i++) {
        float g = powf(c[i], ip);
        re[i] *= g;
        im[i] *= g;
    }
    audio_stft_inverse(&m->stft, y, n, re, im, T);
    free(re);
}

/* Resynthesise each y_b = ISTFT(X * mask^(1/p)) and push d(-SI-SDR)/dy back through the
 * ISTFT into w->dz. With t = <y,r>/<r,r> r and
 * e = y - t: -SI-SDR = -(10/ln 10)(ln|t|^2 - ln|e|^2), so
 * d/dy = -(10/ln 10)(2t/|t|^2 - 2e/|e|^2). */
double audio_sisdr_grad_one(audio_stft *st, float *dz, const float *mk, const float *xr, const float *xi,
                            const float *r, size_t n, int T, float power, float beta, float weight, int B) {
    const int F = st->F, N = st->n_fft, H = st->hop, P = N - H;
    const size_t TF = (size_t)T * F;
    const float ip = 1.f / power;
    float *yre = mk_malloc(sizeof(float) * (2 * TF + 2 * n + N + 2 * F));
    float *yim = yre + TF, *y = yim + TF, *dy = y + n, *fr = dy + n, *are = fr + N, *aim = are + F;
    for (size_t i = 0; i < TF; i++) {
        float g = powf(mk[i], ip);
        yre[i] = xr[i] * g, yim[i] = xi[i] * g;
    }
    audio_stft_inverse(st, y, n, yre, yim, (size_t)T);
    double yr = 0, rr = 1e-12;
    for (size_t i = 0; i < n; i++) yr += (double)y[i] * r[i], rr += (double)r[i] * r[i];
    double a = yr / rr, tt = 1e-12, ee = 1e-12;
    for (size_t i = 0; i < n; i++) {
        double t = a * r[i], e = y[i] - t;
        tt += t * t, ee += e * e;
    }
    double sisdr = 10 * log10(tt / ee);
    double k = -(10 / log(10.0)) * weight / B;
    for (size_t i = 0; i < n; i++) {
        double t = a * r[i], e = y[i] - t;
        dy[i] = (float)(k * (2 * t / tt - 2 * e / ee));
    }
    /* adjoint of the ISTFT: frame t gets rfft(window * dy / wsum) * c_k / N */
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < N; i++) {
            long j = (long)t * H - P + i;
            fr[i] = j >= 0 && (size_t)j < n ? dy[j] / st->wsum[(j + P) % H] : 0.f;
        }
        audio_stft_frame(st, are, aim, fr);
        for (int f = 0; f < F; f++) {
            float ck = (f == 0 || f == F - 1) ? 1.f / N : 2.f / N;
            float dre = are[f] * ck, dim = (f == 0 || f == F - 1) ? 0.f : aim[f] * ck;
            size_t o = (size_t)t * F + f;
            float mv = mk[o];
            if (mv <= 0) continue;
            float dg = dre * xr[o] + dim * xi[o];
            float dmask = dg * ip * powf(mv, ip - 1.f);
            dz[o] += dmask * mv * (1.f - mv / beta);
        }
    }
    free(yre);
    return -sisdr;
}

double audio_enhancer_sisdr_grad(audio_enhancer *m, audio_train_ws *w, const float *clean, int B, size_t n, int T) {
    const size_t TF = (size_t)T * m->F;
    double total = 0;
    for (int b = 0; b < B; b++)
        total += audio_sisdr_grad_one(&m->stft, w->dz + b * TF, w->mask + b * TF, w->nre + b * TF, w->nim + b * TF,
                                      clean + b * n, n, T, m->cfg.power, m->cfg.beta, w->sisdr_weight, B);
    w->last_sisdr = (float)(-total / B);
    return w->sisdr_weight * total / B;
}

int audio_enhancer_prepare(audio_enhancer *m, audio_train_ws *w, const float *noisy, const float *clean, int B,
                           size_t n) {
    const int F = m->F;
    const int T = (int)audio_stft_frames(&m->stft, n);
    const size_t TF = (size_t)T * F, BTF = (size_t)B * TF;
    ws_ensure(w, m, B, T);
    const float hp = 0.5f * m->cfg.power;
    for (int b = 0; b < B; b++) {
        audio_stft_forward(&m->stft, w->nre + b * TF, w->nim + b * TF, noisy + b * n, n);
        audio_stft_forward(&m->stft, w->cre + b * TF, w->cim + b * TF, clean + b * n, n);
        level_state lv;
        level_init(&lv);
        for (int t = 0; t < T; t++) {
            size_t o = b * TF + (size_t)t * F;
            frame_features(m, &lv, w->c + o, w->feat + o, w->nre + o, w->nim + o);
        }
    }
    for (size_t i = 0; i < BTF; i++) {
        float nr = w->nre[i], ni = w->nim[i], cr = w->cre[i], ci = w->cim[i];
        float p2 = cr * cr + ci * ci, nn = sqrtf(nr * nr + ni * ni), cn = sqrtf(p2);
        w->cc[i] = p2 > 0 ? powf(p2, hp) : 0.f;
        w->cosd[i] = nn > 0 && cn > 0 ? (nr * cr + ni * ci) / (nn * cn) : 1.f; /* cos(phi_clean - phi_noisy) */
    }
    mk_order_reverse(w->rev, T);
    return T;
}

float audio_enhancer_train_batch(audio_enhancer *m, audio_train_ws *w, const float *noisy, const float *clean, int B,
                                 size_t n, int grad) {
    const int F = m->F, D = m->cfg.d_model;
    const int T = audio_enhancer_prepare(m, w, noisy, clean, B, n);
    const size_t BTF = (size_t)B * T * F;
    net_forward(m, w, w->feat, B, T, grad);
    const float inv = 1.f / (float)BTF;
    double loss = audio_mask_loss(w->dz, w->mask, w->c, w->cc, w->cosd, BTF, AUDIO_LOSS_MAG, inv, m->cfg.beta);
    if (w->sisdr_weight > 0) loss += BTF * audio_enhancer_sisdr_grad(m, w, clean, B, n, T);
    if (grad) {
        const int M = B * T;
        if (m->skip_u >= 0) {
            float *du = mk_grad(&m->p, m->skip_u);
            for (size_t i = 0; i < (size_t)M * F; i++) du[i % F] += w->dz[i] * w->feat[i];
        }
        memset(w->dh, 0, sizeof(float) * (size_t)M * D);
        linear_backward(w->dh, mk_grad(&m->p, m->w_out), mk_grad(&m->p, m->b_out), w->dz, w->h,
                        mk_param(&m->p, m->w_out), M, D, F);
        /* h0 is no longer needed: reuse it for dh0 */
        float *dh0 = w->h0;
        memset(dh0, 0, sizeof(float) * (size_t)M * D);
        mamba_backbone_backward(&m->bb, &w->acts, dh0, w->dh);
        linear_backward(NULL, mk_grad(&m->p, m->w_in), mk_grad(&m->p, m->b_in), dh0, w->feat,
                        mk_param(&m->p, m->w_in), M, F, D);
    }
    return (float)(loss * inv);
}

void audio_enhancer_frontend(const audio_enhancer *m, mk_enh_frontend *f) {
    memset(f, 0, sizeof *f);
    f->F = m->F;
    f->w_in = m->w_in, f->b_in = m->b_in, f->w_out = m->w_out, f->b_out = m->b_out, f->skip_u = m->skip_u;
    f->beta = m->cfg.beta;
    f->mag_w = AUDIO_LOSS_MAG;
}

void audio_enhancer_istft_basis(const audio_enhancer *m, float *basis) {
    const int N = m->cfg.n_fft, F = m->F;
    const double pi = 3.14159265358979323846;
    for (int i = 0; i < N; i++)
        for (int f = 0; f < F; f++) {
            const int edge = f == 0 || f == F - 1; /* DC and Nyquist: counted once, no imaginary part */
            const double th = 2 * pi * (double)(((long)f * i) % N) / N, s = (double)m->stft.window[i] * (edge ? 1 : 2) / N;
            basis[(size_t)i * 2 * F + f] = (float)(s * cos(th));
            basis[(size_t)i * 2 * F + F + f] = edge ? 0.f : (float)(-s * sin(th));
        }
}

typedef struct {
    audio_enhancer *m;
    audio_train_ws *w;
    const float *clean;
    int B, T;
    size_t n;
} sisdr_ctx;

/* the SI-SDR term inside the GPU step: the step has put the mask in w->mask and dz in w->dz */
static double sisdr_on_host(void *ctx, const float *mask, float *dz) {
    sisdr_ctx *s = ctx;
    MK_ASSERT(mask == s->w->mask && dz == s->w->dz);
    return audio_enhancer_sisdr_grad(s->m, s->w, s->clean, s->B, s->n, s->T);
}

int audio_enhancer_train_step_cuda(audio_enhancer *m, audio_train_ws *w, const float *noisy, const float *clean, int B,
                                   size_t n, const mk_adamw_cfg *ac, float *loss) {
    const int T = audio_enhancer_prepare(m, w, noisy, clean, B, n);
    mk_enh_frontend f;
    audio_enhancer_frontend(m, &f);
    const int *orders[2] = {NULL, w->rev};
    sisdr_ctx sc = {m, w, clean, B, T, n};
    const int on_host = w->sisdr_weight > 0 && w->sisdr_on_host, on_dev = w->sisdr_weight > 0 && !w->sisdr_on_host;
    mk_enh_waveform wf;
    float *neg = NULL;
    if (on_dev) {
        if (!w->basis) {
            w->basis = mk_malloc(sizeof(float) * m->cfg.n_fft * 2 * m->F);
            audio_enhancer_istft_basis(m, w->basis);
        }
        neg = mk_malloc(sizeof(float) * B);
        wf = (mk_enh_waveform){.weight = w->sisdr_weight, .power = m->cfg.power, .n_fft = m->cfg.n_fft,
                               .hop = m->cfg.hop, .n = n, .basis = w->basis, .wsum = m->stft.wsum, .xre = w->nre,
                               .xim = w->nim, .ref = clean, .neg_sisdr = neg};
    }
    int rc = mk_cuda_enh_train_step(&m->bb, &w->acts, &f, w->feat, w->c, w->cc, w->cosd, B, T, orders, ac, NULL,
                                    on_dev ? &wf : NULL, on_host ? sisdr_on_host : NULL, &sc, w->mask, w->dz, loss);
    if (on_dev && !rc) {
        double t = 0;
        for (int b = 0; b < B; b++) t += neg[b];
        w->last_sisdr = (float)(-t / B);
    }
    free(neg);
    return rc;
}

/* ---------------------------------------------------------------- streaming */

struct audio_stream {
    audio_enhancer *m;
    mamba_state st;
    level_state lv;
    float *in;      /* (n_fft) last n_fft input samples */
    float *ola;     /* (n_fft) overlap-add accumulator */
    float *re, *im, *c, *feat, *h0, *h, *z, *fr; /* one frame */
    int pend;       /* new samples in `in` since the last frame */
    size_t n_in, n_out_raw, n_out; /* samples pushed; raw samples produced; samples returned */
};

audio_stream *audio_stream_new(audio_enhancer *m) {
    if (!m->cfg.causal) {
        mk_error("streaming needs a causal model (this one is bidirectional: use an enhance_stream model)");
        return NULL;
    }
    audio_stream *s = mk_calloc(1, sizeof *s);
    s->m = m;
    mamba_state_alloc(&s->st, &m->bb, 1);
    level_init(&s->lv);
    const int N = m->cfg.n_fft, F = m->F, D = m->cfg.d_model;
    s->in = mk_calloc((size_t)2 * N + 5 * F + 2 * D + N, sizeof(float));
    s->ola = s->in + N;
    s->re = s->ola + N;
    s->im = s->re + F;
    s->c = s->im + F;
    s->feat = s->c + F;
    s->z = s->feat + F;
    s->h0 = s->z + F;
    s->h = s->h0 + D;
    s->fr = s->h + D;
    return s;
}

void audio_stream_free(audio_stream *s) {
    if (!s) return;
    mamba_state_free(&s->st);
    free(s->in);
    free(s);
}

/* Process the frame in s->in; appends hop output samples (dropping the first
 * P = n_fft - hop, which precede the signal) and returns how many. */
static size_t stream_frame(audio_stream *s, float *out) {
    audio_enhancer *m = s->m;
    const int N = m->cfg.n_fft, H = m->cfg.hop, F = m->F, D = m->cfg.d_model, P = N - H;
    audio_stft_frame(&m->stft, s->re, s->im, s->in);
    frame_features(m, &s->lv, s->c, s->feat, s->re, s->im);
    linear_forward(s->h0, s->feat, mk_param(&m->p, m->w_in), mk_param(&m->p, m->b_in), 1, F, D);
    mamba_backbone_step(&m->bb, &s->st, s->h, s->h0);
    linear_forward(s->z, s->h, mk_param(&m->p, m->w_out), mk_param(&m->p, m->b_out), 1, D, F);
    if (m->skip_u >= 0)
        for (int f = 0; f < F; f++) s->z[f] += mk_param(&m->p, m->skip_u)[f] * s->feat[f];
    const float ip = 1.f / m->cfg.power;
    for (int f = 0; f < F; f++) {
        float g = powf(m->cfg.beta * mk_sigmoidf(s->z[f]), ip);
        s->re[f] *= g;
        s->im[f] *= g;
    }
    audio_istft_frame(&m->stft, s->fr, s->re, s->im);
    for (int i = 0; i < N; i++) s->ola[i] += s->fr[i];
    size_t k = 0;
    for (int i = 0; i < H; i++, s->n_out_raw++) {
        float v = s->ola[i] / m->stft.wsum[i];
        if (s->n_out_raw >= (size_t)P) out[k++] = v;
    }
    memmove(s->ola, s->ola + H, sizeof(float) * (N - H));
    memset(s->ola + N - H, 0, sizeof(float) * H);
    return k;
}

size_t audio_stream_push(audio_stream *s, const float *x, size_t n, float *out) {
    const int N = s->m->cfg.n_fft, H = s->m->cfg.hop;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        s->in[N - H + s->pend++] = x[i];
        if (s->pend == H) {
            k += stream_frame(s, out + k);
            memmove(s->in, s->in + H, sizeof(float) * (N - H));
            s->pend = 0;
        }
    }
    s->n_in += n;
    s->n_out += k;
    return k;
}

size_t audio_stream_flush(audio_stream *s, float *out) {
    const int N = s->m->cfg.n_fft, H = s->m->cfg.hop;
    size_t k = 0;
    float tmp[8192];
    MK_ASSERT(H <= (int)(sizeof tmp / sizeof tmp[0]));
    while (s->n_out + k < s->n_in) {
        for (; s->pend < H; s->pend++) s->in[N - H + s->pend] = 0.f;
        size_t got = stream_frame(s, tmp);
        memmove(s->in, s->in + H, sizeof(float) * (N - H));
        s->pend = 0;
        size_t want = s->n_in - s->n_out - k;
        if (got > want) got = want;
        memcpy(out + k, tmp, sizeof(float) * got);
        k += got;
    }
    s->n_out += k;
    return k;
}
