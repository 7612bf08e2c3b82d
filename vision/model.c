/* model.c — the vision classifier (shapes and layout in vision/model.h). */
#include "vision/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "vision/image.h"

/* ------------------------------------------------------------- config */

int vision_cfg_finish(vision_cfg *c) {
    if (c->img_h < 1 || c->img_w < 1 || c->img_h > 1024 || c->img_w > 1024 || c->img_c < 1 || c->img_c > 4) {
        mk_error("vision config: input %dx%dx%d is out of range", c->img_h, c->img_w, c->img_c);
        return -1;
    }
    if (c->stem < 0 || c->stem > 256 || (c->stem && (c->img_h % 2 || c->img_w % 2))) {
        mk_error("vision config: stem of %d channels on a %dx%d input (needs even sides, <= 256 channels)", c->stem,
                 c->img_h, c->img_w);
        return -1;
    }
    c->in_h = c->stem ? c->img_h / 2 : c->img_h;
    c->in_w = c->stem ? c->img_w / 2 : c->img_w;
    c->in_c = c->stem ? c->stem : c->img_c;
    if (c->patch < 1 || c->kernel < c->patch || c->kernel > 4 * c->patch || (c->kernel - c->patch) % 2 ||
        c->in_h % c->patch || c->in_w % c->patch) {
        mk_error("vision config: patch stride %d / kernel %d do not tile a %dx%d map (kernel - stride must be even)",
                 c->patch, c->kernel, c->in_h, c->in_w);
        return -1;
    }
    if (c->n_class < 2 || c->n_class > VISION_MAX_CLASS) {
        mk_error("vision config: %d classes (2..%d)", c->n_class, VISION_MAX_CLASS);
        return -1;
    }
    if (vision_order_dirs(c->order) < 1 || (c->head != VISION_HEAD_CLS && c->head != VISION_HEAD_MEAN)) {
        mk_error("vision config: unknown scan order or head");
        return -1;
    }
    c->gh = c->in_h / c->patch;
    c->gw = c->in_w / c->patch;
    c->P = c->gh * c->gw;
    c->L = c->P + 1;
    if (c->P > 65536) {
        mk_error("vision config: %d patches is too many", c->P);
        return -1;
    }
    c->mc.n_dir = vision_order_dirs(c->order);
    for (int i = 0; i < c->img_c; i++)
        if (!(c->std[i] > 0)) {
            mk_error("vision config: channel %d std %g must be positive", i, c->std[i]);
            return -1;
        }
    return 0;
}

void vision_cfg_to_config(const vision_cfg *c, mk_config *out) {
    mk_config_init(out, "vision");
    mk_config_set_int(out, "img_h", c->img_h);
    mk_config_set_int(out, "img_w", c->img_w);
    mk_config_set_int(out, "img_c", c->img_c);
    mk_config_set_int(out, "patch", c->patch);
    mk_config_set_int(out, "kernel", c->kernel);
    mk_config_set_int(out, "stem", c->stem);
    mk_config_set_int(out, "n_class", c->n_class);
    mk_config_set(out, "order", "%s", vision_order_name(c->order));
    mk_config_set(out, "head", "%s", c->head == VISION_HEAD_CLS ? "cls" : "mean");
    mamba_cfg_to_config(&c->mc, out);
    char k[32];
    for (int i = 0; i < c->img_c; i++) {
        snprintf(k, sizeof k, "mean%d", i);
        mk_config_set_float(out, k, c->mean[i]);
        snprintf(k, sizeof k, "std%d", i);
        mk_config_set_float(out, k, c->std[i]);
    }
    for (int i = 0; i < c->n_class; i++) {
        snprintf(k, sizeof k, "class%d", i);
        mk_config_set(out, k, "%s", c->classes[i]);
    }
}

int vision_cfg_from_config(vision_cfg *c, const mk_config *in) {
    memset(c, 0, sizeof *c);
    long v[6];
    static const char *ik[] = {"img_h", "img_w", "img_c", "patch", "kernel", "n_class"};
    for (int i = 0; i < 6; i++)
        if (mk_config_get_int(in, ik[i], &v[i])) return -1;
    for (int i = 0; i < 6; i++)
        if (v[i] < 0 || v[i] > 100000) {
            mk_error("vision config: %s = %ld is out of range", ik[i], v[i]);
            return -1;
        }
    c->img_h = (int)v[0], c->img_w = (int)v[1], c->img_c = (int)v[2];
    c->patch = (int)v[3], c->kernel = (int)v[4], c->n_class = (int)v[5];
    long st = 0;
    if (mk_config_get(in, "stem") && mk_config_get_int(in, "stem", &st)) return -1;
    if (st < 0 || st > 256) {
        mk_error("vision config: stem = %ld is out of range", st);
        return -1;
    }
    c->stem = (int)st;
    if (mamba_cfg_from_config(&c->mc, in)) return -1;
    const char *s = mk_config_get(in, "order");
    c->order = s ? vision_order_parse(s) : -1;
    if (c->order < 0) {
        mk_error("vision config: unknown scan order '%s'", s ? s : "(none)");
        return -1;
    }
    s = mk_config_get(in, "head");
    if (!s || (strcmp(s, "cls") && strcmp(s, "mean"))) {
        mk_error("vision config: unknown head '%s'", s ? s : "(none)");
        return -1;
    }
    c->head = !strcmp(s, "cls") ? VISION_HEAD_CLS : VISION_HEAD_MEAN;
    double d;
    if (c->img_c < 1 || c->img_c > 4 || c->n_class < 2 || c->n_class > VISION_MAX_CLASS) {
        mk_error("vision config: %d channels / %d classes out of range", c->img_c, c->n_class);
        return -1;
    }
    char k[32];
    for (int i = 0; i < c->img_c; i++) {
        snprintf(k, sizeof k, "mean%d", i);
        if (mk_config_get_float(in, k, &d)) return -1;
        c->mean[i] = (float)d;
        snprintf(k, sizeof k, "std%d", i);
        if (mk_config_get_float(in, k, &d)) return -1;
        c->std[i] = (float)d;
    }
    for (int i = 0; i < c->n_class; i++) {
        snprintf(k, sizeof k, "class%d", i);
        s = mk_config_get(in, k);
        snprintf(c->classes[i], sizeof c->classes[i], "%s", s ? s : "");
        if (!s) snprintf(c->classes[i], sizeof c->classes[i], "class%d", i);
    }
    return vision_cfg_finish(c);
}

/* -------------------------------------------------------------- model */

/* match: a model file whose tensor table the declaration must equal before
 * anything is allocated (vision_model_load), or NULL (a new model). */
static int build(vision_model *m, const vision_cfg *cin, const char *match) {
    memset(m, 0, sizeof *m);
    m->cfg = *cin;
    vision_cfg *c = &m->cfg;
    if (vision_cfg_finish(c)) return -1;
    const int D = c->mc.d_model, F = c->in_c * c->kernel * c->kernel;
    mk_params_init(&m->p);
    m->stem_w = m->stem_b = -1;
    if (c->stem) {
        m->stem_w = mk_params_add(&m->p, "stem.weight", 1, 2, c->stem, c->img_c * 16);
        m->stem_b = mk_params_add(&m->p, "stem.bias", 0, 1, c->stem);
    }
    m->patch_w = mk_params_add(&m->p, "patch_embed.weight", 1, 2, D, F);
    m->patch_b = mk_params_add(&m->p, "patch_embed.bias", 0, 1, D);
    m->pos = mk_params_add(&m->p, "pos_embed", 0, 2, c->L, D);
    m->cls = mk_params_add(&m->p, "cls_token", 0, 1, D);
    if (mamba_backbone_declare(&m->bb, &m->p, "backbone.", &c->mc)) {
        mk_params_free(&m->p);
        return -1;
    }
    m->head_w = mk_params_add(&m->p, "head.weight", 1, 2, c->n_class, D);
    m->head_b = mk_params_add(&m->p, "head.bias", 0, 1, c->n_class);
    if (match && mk_ckpt_check_table(match, "vision", &m->p)) {
        mamba_backbone_free(&m->bb);
        mk_params_free(&m->p);
        return -1;
    }
    mk_params_alloc(&m->p);
    m->G = vision_order_dirs(c->order);
    m->order_buf = mk_malloc(sizeof(int) * (size_t)m->G * c->L);
    vision_orders_build(c->order, c->gh, c->gw, m->order_buf);
    for (int g = 0; g < m->G; g++) m->orders[g] = m->order_buf + (size_t)g * c->L;
    return 0;
}

int vision_model_create(vision_model *m, const vision_cfg *cin) { return build(m, cin, NULL); }

void vision_model_init(vision_model *m, mk_rng *rng) {
    const vision_cfg *c = &m->cfg;
    const int D = c->mc.d_model, F = c->in_c * c->kernel * c->kernel;
    if (c->stem) mk_init_linear(mk_param(&m->p, m->stem_w), mk_param(&m->p, m->stem_b), c->stem, c->img_c * 16, rng);
    mk_init_linear(mk_param(&m->p, m->patch_w), mk_param(&m->p, m->patch_b), D, F, rng);
    /* ref: ViT / Vim: trunc_normal(std=0.02) for pos_embed and cls_token */
    mk_init_normal(mk_param(&m->p, m->pos), (size_t)c->L * D, 0.02f, rng);
    mk_init_normal(mk_param(&m->p, m->cls), D, 0.02f, rng);
    mamba_backbone_init(&m->bb, rng);
    mk_init_normal(mk_param(&m->p, m->head_w), (size_t)c->n_class * D, 0.02f, rng);
    mk_init_const(mk_param(&m->p, m->head_b), c->n_class, 0.f);
}

void vision_model_free(vision_model *m) {
    mamba_backbone_free(&m->bb);
    mk_params_free(&m->p);
    free(m->order_buf);
    memset(m, 0, sizeof *m);
}

int vision_model_load(vision_model *m, const char *path, int with_optim, mk_config *cfg_out) {
    mk_config *cf = mk_malloc(sizeof *cf);
    vision_cfg vc;
    memset(m, 0, sizeof *m);
    if (mk_ckpt_read_config(path, "vision", cf)) goto fail;
    if (vision_cfg_from_config(&vc, cf)) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", mk_last_error());
        mk_error("%s: %s", path, msg);
        goto fail;
    }
    if (build(m, &vc, path)) goto fail;
    if (with_optim) mk_params_alloc_optim(&m->p);
    if (mk_ckpt_load(path, "vision", cf, &m->p, with_optim)) {
        vision_model_free(m);
        goto fail;
    }
    if (cfg_out) *cfg_out = *cf;
    free(cf);
    return 0;
fail:
    free(cf);
    return -1;
}

size_t vision_model_num_params(const vision_model *m) { return m->p.total; }

/* --------------------------------------------------------- activations */

void vision_acts_init(vision_acts *a) {
    memset(a, 0, sizeof *a);
    mamba_acts_init(&a->ma);
}
void vision_acts_free(vision_acts *a) {
    free(a->cols1);
    free(a->pre1);
    free(a->act1);
    free(a->dact1);
    free(a->dcols);
    free(a->cols);
    free(a->x);
    free(a->out);
    free(a->feat);
    free(a->logits);
    free(a->tmp);
    free(a->dfeat);
    free(a->dout);
    free(a->dx);
    mamba_acts_free(&a->ma);
    memset(a, 0, sizeof *a);
}
static void acts_ensure(const vision_model *m, vision_acts *a, int B) {
    a->B = B;
    if (B <= a->cap) return;
    const vision_cfg *c = &m->cfg;
    const size_t D = c->mc.d_model, F = (size_t)c->in_c * c->kernel * c->kernel, L = c->L;
    const size_t S1 = (size_t)c->in_h * c->in_w; /* stem output positions */
    a->cap = B;
#define GROW(p, n) (free(p), (p) = mk_malloc(sizeof(float) * (n)))
    if (c->stem) {
        GROW(a->cols1, B * S1 * c->img_c * 16);
        GROW(a->pre1, B * S1 * c->stem);
        GROW(a->act1, B * S1 * c->stem);
        GROW(a->dact1, B * S1 * c->stem);
        GROW(a->dcols, (size_t)B * c->P * F);
    }
    GROW(a->cols, (size_t)B * c->P * F);
    GROW(a->x, B * L * D);
    GROW(a->out, B * L * D);
    GROW(a->tmp, B * L * D);
    GROW(a->feat, B * D);
    GROW(a->logits, (size_t)B * c->n_class);
    GROW(a->dfeat, B * D);
    GROW(a->dout, B * L * D);
    GROW(a->dx, B * L * D);
#undef GROW
}

/* im2col for a strided conv over a (B, H, W, C) map: cols (B, gh*gw, C*k*k),
 * window element order (c, ky, kx), zero padding (k-s)/2. */
void vision_im2col(float *cols, const float *img, int B, int H, int W, int C, int k, int s, int gh, int gw) {
    const int pad = (k - s) / 2;
    const size_t F = (size_t)C * k * k;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < gh; gy++)
            for (int gx = 0; gx < gw; gx++) {
                float *d = cols + ((size_t)b * gh * gw + (size_t)gy * gw + gx) * F;
                const float *im = img + (size_t)b * H * W * C;
                for (int ch = 0; ch < C; ch++)
                    for (int ky = 0; ky < k; ky++) {
                        int y = gy * s - pad + ky;
                        for (int kx = 0; kx < k; kx++) {
                            int x = gx * s - pad + kx;
                            *d++ = (y >= 0 && y < H && x >= 0 && x < W) ? im[((size_t)y * W + x) * C + ch] : 0.f;
                        }
                    }
            }
}
/* The adjoint of im2col: dimg (B, H, W, C) += scatter of dcols. One thread
 * per image, so the overlapping windows never race. */
void vision_col2im_add(float *dimg, const float *dcols, int B, int H, int W, int C, int k, int s, int gh, int gw) {
    const int pad = (k - s) / 2;
    const size_t F = (size_t)C * k * k;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < gh; gy++)
            for (int gx = 0; gx < gw; gx++) {
                const float *d = dcols + ((size_t)b * gh * gw + (size_t)gy * gw + gx) * F;
                float *im = dimg + (size_t)b * H * W * C;
                for (int ch = 0; ch < C; ch++)
                    for (int ky = 0; ky < k; ky++) {
                        int y = gy * s - pad + ky;
                        for (int kx = 0; kx < k; kx++, d++) {
                            int x = gx * s - pad + kx;
                            if (y >= 0 && y < H && x >= 0 && x < W) im[((size_t)y * W + x) * C + ch] += *d;
                        }
                    }
            }
}

void vision_forward(vision_model *m, vision_acts *a, const float *img, int B, int training, mk_rng *rng) {
    const vision_cfg *c = &m->cfg;
    const mk_params *p = &m->p;
    const int D = c->mc.d_model, P = c->P, L = c->L, F = c->in_c * c->kernel * c->kernel;
    acts_ensure(m, a, B);
    if (!training && m->bb.device == MK_DEV_CUDA) {
        /* inference with the backbone on a GPU: the whole forward there (feat and logits come
         * back); where the backend does not cover the model, the CPU front end below */
        mk_cls_frontend f;
        if (!vision_model_frontend(m, 0.f, &f) && !mk_cuda_cls_forward(&m->bb, &a->ma, &f, img, B, m->orders, a->feat, a->logits))
            return;
    }
    const float *map = img;
    if (c->stem) {
        const int S1 = c->in_h * c->in_w;
        vision_im2col(a->cols1, img, B, c->img_h, c->img_w, c->img_c, 4, 2, c->in_h, c->in_w);
        linear_forward(a->pre1, a->cols1, mk_param(p, m->stem_w), mk_param(p, m->stem_b), B * S1, c->img_c * 16,
                       c->stem);
        gelu_forward(a->act1, a->pre1, (size_t)B * S1 * c->stem);
        map = a->act1;
    }
    vision_im2col(a->cols, map, B, c->in_h, c->in_w, c->in_c, c->kernel, c->patch, c->gh, c->gw);
    linear_forward(a->tmp, a->cols, mk_param(p, m->patch_w), mk_param(p, m->patch_b), B * P, F, D);
    const float *pos = mk_param(p, m->pos), *cls = mk_param(p, m->cls);
    for (int b = 0; b < B; b++) {
        float *x = a->x + (size_t)b * L * D;
        vec_add(x, a->tmp + (size_t)b * P * D, pos, (size_t)P * D);
        vec_add(x + (size_t)P * D, cls, pos + (size_t)P * D, D);
    }
    mamba_backbone_forward(&m->bb, &a->ma, a->out, a->x, B, L, m->orders, training, rng);
    for (int b = 0; b < B; b++) {
        float *f = a->feat + (size_t)b * D;
        const float *o = a->out + (size_t)b * L * D;
        if (c->head == VISION_HEAD_CLS) memcpy(f, o + (size_t)P * D, sizeof(float) * D);
        else {
            memset(f, 0, sizeof(float) * D);
            for (int t = 0; t < P; t++) vec_acc(f, o + (size_t)t * D, D);
            vec_scale(f, 1.f / P, D);
        }
    }
    linear_forward(a->logits, a->feat, mk_param(p, m->head_w), mk_param(p, m->head_b), B, D, c->n_class);
}

void vision_backward(vision_model *m, vision_acts *a, const float *dlogits) {
    const vision_cfg *c = &m->cfg;
    const mk_params *p = &m->p;
    const int B = a->B, D = c->mc.d_model, P = c->P, L = c->L, F = c->in_c * c->kernel * c->kernel;
    memset(a->dfeat, 0, sizeof(float) * (size_t)B * D);
    linear_backward(a->dfeat, mk_grad(p, m->head_w), mk_grad(p, m->head_b), dlogits, a->feat,
                    mk_param(p, m->head_w), B, D, c->n_class);
    memset(a->dout, 0, sizeof(float) * (size_t)B * L * D);
    for (int b = 0; b < B; b++) {
        const float *df = a->dfeat + (size_t)b * D;
        float *o = a->dout + (size_t)b * L * D;
        if (c->head == VISION_HEAD_CLS) memcpy(o + (size_t)P * D, df, sizeof(float) * D);
        else
            for (int t = 0; t < P; t++)
                for (int i = 0; i < D; i++) o[(size_t)t * D + i] = df[i] / P;
    }
    memset(a->dx, 0, sizeof(float) * (size_t)B * L * D);
    mamba_backbone_backward(&m->bb, &a->ma, a->dx, a->dout);
    float *gpos = mk_grad(p, m->pos), *gcls = mk_grad(p, m->cls);
    for (int b = 0; b < B; b++) {
        const float *dx = a->dx + (size_t)b * L * D;
        vec_acc(gpos, dx, (size_t)L * D);
        vec_acc(gcls, dx + (size_t)P * D, D);
        memcpy(a->tmp + (size_t)b * P * D, dx, sizeof(float) * (size_t)P * D);
    }
    if (c->stem) memset(a->dcols, 0, sizeof(float) * (size_t)B * P * F);
    linear_backward(c->stem ? a->dcols : NULL, mk_grad(p, m->patch_w), mk_grad(p, m->patch_b), a->tmp, a->cols,
                    mk_param(p, m->patch_w), B * P, F, D);
    if (c->stem) {
        const int S1 = c->in_h * c->in_w;
        const size_t n1 = (size_t)B * S1 * c->stem;
        memset(a->dact1, 0, sizeof(float) * n1);
        vision_col2im_add(a->dact1, a->dcols, B, c->in_h, c->in_w, c->in_c, c->kernel, c->patch, c->gh, c->gw);
        float *dpre1 = a->act1; /* the GELU output is not needed any more: reuse it */
        memset(dpre1, 0, sizeof(float) * n1);
        gelu_backward(dpre1, a->dact1, a->pre1, n1);
        linear_backward(NULL, mk_grad(p, m->stem_w), mk_grad(p, m->stem_b), dpre1, a->cols1, mk_param(p, m->stem_w),
                        B * S1, c->img_c * 16, c->stem);
    }
}

float vision_xent_smooth(float *dlogits, int *correct, const float *logits, const int *y, int B, int K, float eps) {
    double loss = 0;
    int hit = 0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * K;
        float *dz = dlogits ? dlogits + (size_t)b * K : NULL;
        float mx = z[0];
        int am = 0;
        for (int k = 1; k < K; k++)
            if (z[k] > mx) mx = z[k], am = k;
        hit += am == y[b];
        double s = 0;
        for (int k = 0; k < K; k++) s += exp((double)z[k] - mx);
        double lse = mx + log(s);
        /* target distribution q = (1-eps) onehot + eps/K */
        for (int k = 0; k < K; k++) {
            double q = (k == y[b] ? 1.0 - eps : 0.0) + eps / K;
            double lp = z[k] - lse;
            loss -= q * lp;
            if (dz) dz[k] = (float)((exp(lp) - q) / B);
        }
    }
    if (correct) *correct = hit;
    return (float)(loss / B);
}

float vision_xent_kd(float *dlogits, int *correct, const float *logits, const float *tprob, const int *y, int B, int K,
                     float eps, float alpha, float T) {
    float hard = vision_xent_smooth(dlogits, correct, logits, y, B, K, eps);
    double soft = 0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * K, *q = tprob + (size_t)b * K;
        double mx = z[0];
        for (int k = 1; k < K; k++)
            if (z[k] > mx) mx = z[k];
        double s = 0;
        for (int k = 0; k < K; k++) s += exp((z[k] - mx) / T);
        double lse = log(s);
        for (int k = 0; k < K; k++) {
            double lp = (z[k] - mx) / T - lse; /* log softmax(z / T) */
            if (q[k] > 0) soft += q[k] * (log(q[k]) - lp);
            /* d/dz of T^2 KL = T (softmax(z / T) - q) */
            if (dlogits)
                dlogits[(size_t)b * K + k] =
                    (float)((1.0 - alpha) * dlogits[(size_t)b * K + k] + alpha * T * (exp(lp) - q[k]) / B);
        }
    }
    return (float)((1.0 - alpha) * hard + alpha * T * T * soft / B);
}

int vision_model_frontend(const vision_model *m, float eps, mk_cls_frontend *f) {
    const vision_cfg *c = &m->cfg;
    if (c->head != VISION_HEAD_CLS) return -1;
    memset(f, 0, sizeof *f);
    f->img_h = c->img_h, f->img_w = c->img_w, f->img_c = c->img_c;
    f->stem = c->stem, f->stem_w = m->stem_w, f->stem_b = m->stem_b;
    f->in_h = c->in_h, f->in_w = c->in_w, f->in_c = c->in_c;
    f->kernel = c->kernel, f->patch = c->patch, f->gh = c->gh, f->gw = c->gw;
    f->patch_w = m->patch_w, f->patch_b = m->patch_b, f->pos = m->pos, f->cls = m->cls;
    f->n_class = c->n_class, f->head_w = m->head_w, f->head_b = m->head_b;
    f->smooth = eps;
    return 0;
}

/* --------------------------------------------------------------- input */

void vision_normalise(const vision_model *m, float *dst, const float *px01) {
    const vision_cfg *c = &m->cfg;
    size_t n = (size_t)c->img_h * c->img_w;
    for (size_t i = 0; i < n; i++)
        for (int ch = 0; ch < c->img_c; ch++)
            dst[i * c->img_c + ch] = (px01[i * c->img_c + ch] - c->mean[ch]) / c->std[ch];
}

/* The tolerance of the background trim: JPEG noise and anti-aliasing stay
 * inside it (a garment edge that close to the background is trimmed with it). */
#define PHOTO_TRIM_TOL 0.1f

void vision_prepare_image(const vision_model *m, const vision_image *im, int fit, float *dst, int *photo) {
    const vision_cfg *c = &m->cfg;
    vision_image cv, rs;
    vision_image_convert(&cv, im, c->img_c);
    int use = 0, negate = 0;
    if (fit != VISION_FIT_STRETCH) {
        int cc = c->img_c == 2 || c->img_c == 4 ? c->img_c - 1 : c->img_c;
        float mm = 0;
        for (int ch = 0; ch < cc; ch++) mm += c->mean[ch] / cc;
        negate = (vision_image_border_mean(&cv) > 0.5f) != (mm > 0.5f);
        use = fit == VISION_FIT_PHOTO || negate;
    }
    if (use) vision_image_fit(&rs, &cv, c->img_h, c->img_w, PHOTO_TRIM_TOL, negate);
    else vision_image_resize(&rs, &cv, c->img_h, c->img_w);
    vision_image_free(&cv);
    vision_normalise(m, dst, rs.px);
    vision_image_free(&rs);
    if (photo) *photo = use;
}

int vision_prepare_file(const vision_model *m, const char *path, int fit, float *dst, int *photo) {
    vision_image im;
    if (vision_image_load(&im, path)) return -1;
    vision_prepare_image(m, &im, fit, dst, photo);
    vision_image_free(&im);
    return 0;
}
