/* points.c — point cloud classifier (see points.h). */
#include "vision/points.h"

#include <float.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/ops.h"

void points_cfg_default(points_cfg *c) {
    memset(c, 0, sizeof *c);
    c->npts = 512;
    c->ntok = 64;
    c->knn = 16;
    c->hidden = 32;
    c->n_class = 5;
    static const char *const def[5] = {"building", "car", "fence", "pole", "tree"};
    for (int i = 0; i < 5; i++) snprintf(c->classes[i], sizeof c->classes[i], "%s", def[i]);
    mamba_cfg_default(&c->mc, 64, 2);
    c->mc.n_dir = 3;
}

int points_cfg_check(const points_cfg *c) {
    if (c->npts < 1 || c->npts > 65536 || c->ntok < 1 || c->ntok > c->npts || c->knn < 1 || c->knn > c->npts ||
        c->hidden < 1 || c->hidden > 4096 || c->n_class < 2 || c->n_class > POINTS_MAX_CLASS || c->mc.n_dir < 1 ||
        c->mc.n_dir > 3 || c->mc.d_model < 1 || c->mc.d_model > 4096) {
        mk_error("invalid points config (points %d, tokens %d, k %d, hidden %d, classes %d, orders %d, d_model %d)",
                 c->npts, c->ntok, c->knn, c->hidden, c->n_class, c->mc.n_dir, c->mc.d_model);
        return -1;
    }
    return 0;
}

void points_cfg_to_config(const points_cfg *c, mk_config *out) {
    mk_config_init(out, "points");
    mk_config_set_int(out, "npts", c->npts);
    mk_config_set_int(out, "ntok", c->ntok);
    mk_config_set_int(out, "knn", c->knn);
    mk_config_set_int(out, "hidden", c->hidden);
    mk_config_set_int(out, "n_class", c->n_class);
    mamba_cfg_to_config(&c->mc, out);
    for (int i = 0; i < c->n_class; i++) {
        char k[32];
        snprintf(k, sizeof k, "class%d", i);
        mk_config_set(out, k, "%s", c->classes[i]);
    }
}

int points_cfg_from_config(points_cfg *c, const mk_config *in) {
    points_cfg_default(c);
    static const char *const key[] = {"npts", "ntok", "knn", "hidden", "n_class"};
    long v[5];
    for (int i = 0; i < 5; i++)
        if (mk_config_get_int(in, key[i], &v[i])) return -1;
    for (int i = 0; i < 5; i++)
        if (v[i] < 0 || v[i] > 65536) {
            mk_error("checkpoint config %s = %ld out of range", key[i], v[i]);
            return -1;
        }
    c->npts = (int)v[0], c->ntok = (int)v[1], c->knn = (int)v[2], c->hidden = (int)v[3], c->n_class = (int)v[4];
    if (mamba_cfg_from_config(&c->mc, in)) return -1;
    /* files from before the core stored n_dir call it n_order */
    long nord;
    if (mk_config_get(in, "n_order")) {
        if (mk_config_get_int(in, "n_order", &nord)) return -1;
        if (nord < 1 || nord > 3) {
            mk_error("checkpoint config n_order = %ld out of range (1..3)", nord);
            return -1;
        }
        c->mc.n_dir = (int)nord;
    }
    if (points_cfg_check(c)) return -1;
    for (int i = 0; i < c->n_class; i++) {
        char k[32];
        snprintf(k, sizeof k, "class%d", i);
        const char *s = mk_config_get(in, k);
        snprintf(c->classes[i], sizeof c->classes[i], "%s", s ? s : "?");
    }
    return 0;
}

/* match: a model file whose tensor table the declaration must equal before
 * anything is allocated (points_model_load), or NULL (a new model). */
static int build(points_model *m, const points_cfg *c, mk_rng *rng, const char *match) {
    memset(m, 0, sizeof *m);
    if (points_cfg_check(c)) return -1;
    m->cfg = *c;
    const int H = c->hidden, D = c->mc.d_model, C = c->n_class;
    mk_params_init(&m->p);
    m->w1 = mk_params_add(&m->p, "embed.mlp1.weight", 1, 2, H, 3);
    m->b1 = mk_params_add(&m->p, "embed.mlp1.bias", 0, 1, H);
    m->w2 = mk_params_add(&m->p, "embed.mlp2.weight", 1, 2, D, H);
    m->b2 = mk_params_add(&m->p, "embed.mlp2.bias", 0, 1, D);
    m->pw = mk_params_add(&m->p, "embed.pos.weight", 1, 2, D, 3);
    m->pb = mk_params_add(&m->p, "embed.pos.bias", 0, 1, D);
    if (mamba_backbone_declare(&m->bb, &m->p, "backbone.", &c->mc)) {
        mk_params_free(&m->p);
        return -1;
    }
    m->hw = mk_params_add(&m->p, "head.weight", 1, 2, C, D);
    m->hb = mk_params_add(&m->p, "head.bias", 0, 1, C);
    if (match && mk_ckpt_check_table(match, "points", &m->p)) {
        points_model_free(m);
        return -1;
    }
    mk_params_alloc(&m->p);
    if (rng) {
        mk_init_linear(mk_param(&m->p, m->w1), mk_param(&m->p, m->b1), H, 3, rng);
        mk_init_linear(mk_param(&m->p, m->w2), mk_param(&m->p, m->b2), D, H, rng);
        mk_init_linear(mk_param(&m->p, m->pw), mk_param(&m->p, m->pb), D, 3, rng);
        mamba_backbone_init(&m->bb, rng);
        mk_init_linear(mk_param(&m->p, m->hw), mk_param(&m->p, m->hb), C, D, rng);
    }
    return 0;
}

int points_model_init(points_model *m, const points_cfg *c, mk_rng *rng) { return build(m, c, rng, NULL); }

int points_model_load(points_model *m, const char *path) {
    mk_config cfg;
    points_cfg pc;
    memset(m, 0, sizeof *m);
    if (mk_ckpt_read_config(path, "points", &cfg)) return -1;
    if (points_cfg_from_config(&pc, &cfg)) {
        char e[512];
        snprintf(e, sizeof e, "%s", mk_last_error());
        mk_error("%s: %s", path, e);
        return -1;
    }
    if (build(m, &pc, NULL, path)) return -1;
    if (mk_ckpt_load(path, "points", &cfg, &m->p, 0)) {
        points_model_free(m);
        return -1;
    }
    return 0;
}

int points_model_use_device(points_model *m, int dev) {
    mamba_backbone *bb = &m->bb;
    return mamba_backbones_use_device(&bb, 1, dev);
}

void points_model_free(points_model *m) {
    mamba_backbone_free(&m->bb);
    mk_params_free(&m->p);
}

void points_input_alloc(points_input *in, const points_cfg *c) {
    in->rel = mk_malloc(sizeof(float) * c->ntok * c->knn * 3);
    in->ctr = mk_malloc(sizeof(float) * c->ntok * 3);
    in->order = mk_malloc(sizeof(int) * c->mc.n_dir * c->ntok);
}
void points_input_free(points_input *in) {
    free(in->rel);
    free(in->ctr);
    free(in->order);
}

/* argsort helpers (qsort with a file-static key; single-threaded callers only) */
typedef struct { float v; int i; } kv;
static int kv_cmp(const void *a, const void *b) {
    const kv *x = a, *y = b;
    if (x->v < y->v) return -1;
    if (x->v > y->v) return 1;
    return x->i - y->i;
}

void points_prepare(const points_cfg *c, points_input *in, const float *xyz, int n, uint64_t seed, int augment) {
    const int P = c->npts, L = c->ntok, K = c->knn, G = c->mc.n_dir;
    mk_rng rng;
    mk_rng_seed(&rng, seed);
    float *pts = mk_malloc(sizeof(float) * P * 3);
    /* sample: without replacement while points last, then with replacement */
    int *idx = mk_malloc(sizeof(int) * (n > P ? n : P));
    for (int i = 0; i < n; i++) idx[i] = i;
    int take = n < P ? n : P;
    for (int i = 0; i < take; i++) {
        int j = i + mk_rng_int(&rng, n - i);
        int t = idx[i];
        idx[i] = idx[j], idx[j] = t;
    }
    for (int i = take; i < P; i++) idx[i] = idx[mk_rng_int(&rng, n)];
    for (int i = 0; i < P; i++)
        for (int d = 0; d < 3; d++) pts[i * 3 + d] = xyz[(size_t)idx[i] * 3 + d];
    /* centre, unit radius (in double) */
    double mu[3] = {0, 0, 0};
    for (int i = 0; i < P; i++)
        for (int d = 0; d < 3; d++) mu[d] += pts[i * 3 + d];
    for (int d = 0; d < 3; d++) mu[d] /= P;
    double r2 = 0;
    for (int i = 0; i < P; i++) {
        double s = 0;
        for (int d = 0; d < 3; d++) {
            double v = pts[i * 3 + d] - mu[d];
            s += v * v;
        }
        if (s > r2) r2 = s;
    }
    double sc = r2 > 0 ? 1.0 / sqrt(r2) : 1.0;
    float ca = 1, sa = 0, s_aug = 1;
    if (augment) {
        float th = 6.2831853f * mk_rng_uniform(&rng);
        ca = cosf(th), sa = sinf(th);
        s_aug = expf(logf(0.8f) + mk_rng_uniform(&rng) * (logf(1.25f) - logf(0.8f)));
    }
    for (int i = 0; i < P; i++) {
        float x = (float)((pts[i * 3] - mu[0]) * sc), y = (float)((pts[i * 3 + 1] - mu[1]) * sc),
              z = (float)((pts[i * 3 + 2] - mu[2]) * sc);
        pts[i * 3] = s_aug * (ca * x - sa * y);
        pts[i * 3 + 1] = s_aug * (sa * x + ca * y);
        pts[i * 3 + 2] = s_aug * z;
    }
    /* farthest point sampling from the point farthest from the centroid */
    float *dmin = mk_malloc(sizeof(float) * P);
    int cur = 0;
    float best = -1;
    for (int i = 0; i < P; i++) {
        float s = pts[i * 3] * pts[i * 3] + pts[i * 3 + 1] * pts[i * 3 + 1] + pts[i * 3 + 2] * pts[i * 3 + 2];
        if (s > best) best = s, cur = i;
    }
    for (int i = 0; i < P; i++) dmin[i] = FLT_MAX;
    for (int t = 0; t < L; t++) {
        for (int d = 0; d < 3; d++) in->ctr[t * 3 + d] = pts[cur * 3 + d];
        int nxt = 0;
        float far = -1;
        for (int i = 0; i < P; i++) {
            float dx = pts[i * 3] - pts[cur * 3], dy = pts[i * 3 + 1] - pts[cur * 3 + 1],
                  dz = pts[i * 3 + 2] - pts[cur * 3 + 2];
            float s = dx * dx + dy * dy + dz * dz;
            if (s < dmin[i]) dmin[i] = s;
            if (dmin[i] > far) far = dmin[i], nxt = i;
        }
        cur = nxt;
    }
    /* k nearest neighbours of each centre (sort by distance, ties by index) */
    kv *buf = mk_malloc(sizeof(kv) * P);
    for (int t = 0; t < L; t++) {
        const float *q = in->ctr + t * 3;
        for (int i = 0; i < P; i++) {
            float dx = pts[i * 3] - q[0], dy = pts[i * 3 + 1] - q[1], dz = pts[i * 3 + 2] - q[2];
            buf[i].v = dx * dx + dy * dy + dz * dz;
            buf[i].i = i;
        }
        qsort(buf, P, sizeof(kv), kv_cmp);
        for (int j = 0; j < K; j++)
            for (int d = 0; d < 3; d++) in->rel[((size_t)t * K + j) * 3 + d] = pts[buf[j].i * 3 + d] - q[d];
    }
    /* scan orders: centres sorted along x, y, z */
    for (int g = 0; g < G; g++) {
        for (int t = 0; t < L; t++) buf[t].v = in->ctr[t * 3 + g], buf[t].i = t;
        qsort(buf, L, sizeof(kv), kv_cmp);
        for (int t = 0; t < L; t++) in->order[g * L + t] = buf[t].i;
    }
    free(buf);
    free(dmin);
    free(idx);
    free(pts);
}

void points_acts_init(points_acts *a, const points_cfg *c) {
    memset(a, 0, sizeof *a);
    const size_t LK = (size_t)c->ntok * c->knn, L = c->ntok, H = c->hidden, D = c->mc.d_model;
    a->h1 = mk_malloc(sizeof(float) * LK * H);
    a->a1 = mk_malloc(sizeof(float) * LK * H);
    a->da1 = mk_malloc(sizeof(float) * LK * H);
    a->h2 = mk_malloc(sizeof(float) * LK * D);
    a->dh2 = mk_malloc(sizeof(float) * LK * D);
    a->amax = mk_malloc(sizeof(int) * L * D);
    a->x = mk_malloc(sizeof(float) * L * D);
    a->out = mk_malloc(sizeof(float) * L * D);
    a->dout = mk_malloc(sizeof(float) * L * D);
    a->dx = mk_malloc(sizeof(float) * L * D);
    a->feat = mk_malloc(sizeof(float) * D);
    a->logits = mk_malloc(sizeof(float) * c->n_class);
    mamba_acts_init(&a->ma);
}

void points_acts_free(points_acts *a) {
    free(a->h1), free(a->a1), free(a->da1), free(a->h2), free(a->dh2), free(a->amax);
    free(a->x), free(a->out), free(a->dout), free(a->dx), free(a->feat), free(a->logits);
    mamba_acts_free(&a->ma);
}

/* n objects' inputs packed (n, ...) so that each goes up to the GPU in one copy */
typedef struct {
    float *rel, *ctr;
    int *order;
} pts_packed;
static void pts_pack(const points_model *m, const points_input *in, int n, pts_packed *b) {
    const points_cfg *c = &m->cfg;
    const size_t L = c->ntok, LK3 = L * c->knn * 3, GL = (size_t)c->mc.n_dir * L;
    b->rel = mk_malloc(sizeof(float) * n * LK3), b->ctr = mk_malloc(sizeof(float) * n * L * 3);
    b->order = mk_malloc(sizeof(int) * n * GL);
    for (int i = 0; i < n; i++) {
        memcpy(b->rel + i * LK3, in[i].rel, sizeof(float) * LK3);
        memcpy(b->ctr + i * L * 3, in[i].ctr, sizeof(float) * L * 3);
        memcpy(b->order + i * GL, in[i].order, sizeof(int) * GL);
    }
}
static void pts_packed_free(pts_packed *b) { free(b->rel), free(b->ctr), free(b->order); }

/* Inference on the GPU (mk_cuda_pts_forward) for n objects: feat (n, D) and logits (n, C), either
 * may be NULL. 0; or -1 where the device cannot run it, after one notice per process, and the
 * caller runs the host's front end around the per-call backbone instead. */
static int points_forward_cuda(points_model *m, points_acts *a, const points_input *in, int n, float *feat,
                               float *logits) {
    static int said;
    mk_pts_frontend f;
    points_model_frontend(m, &f);
    int rc;
    if (n == 1) { /* one object's inputs are already contiguous */
        rc = mk_cuda_pts_forward(&m->bb, &a->ma, &f, in->rel, in->ctr, in->order, 1, feat, logits);
    } else {
        pts_packed b;
        pts_pack(m, in, n, &b);
        rc = mk_cuda_pts_forward(&m->bb, &a->ma, &f, b.rel, b.ctr, b.order, n, feat, logits);
        pts_packed_free(&b);
    }
    if (rc && !said++)
        fprintf(stderr, "mambakit: points: the GPU forward failed (%s); the point MLP and head run on the host\n",
                mk_last_error());
    return rc;
}

void points_forward(points_model *m, points_acts *a, const points_input *in, int training, mk_rng *rng) {
    const points_cfg *c = &m->cfg;
    const int L = c->ntok, K = c->knn, H = c->hidden, D = c->mc.d_model, C = c->n_class, G = c->mc.n_dir;
    const int LK = L * K;
    const mk_params *p = &m->p;
    a->in = in;
    if (!training && m->bb.device == MK_DEV_CUDA && !points_forward_cuda(m, a, in, 1, a->feat, a->logits)) return;
    linear_forward(a->h1, in->rel, mk_param(p, m->w1), mk_param(p, m->b1), LK, 3, H);
    relu_forward(a->a1, a->h1, (size_t)LK * H);
    linear_forward(a->h2, a->a1, mk_param(p, m->w2), mk_param(p, m->b2), LK, H, D);
    /* max over the k neighbours, plus the position embedding */
    linear_forward(a->x, in->ctr, mk_param(p, m->pw), mk_param(p, m->pb), L, 3, D);
    for (int t = 0; t < L; t++)
        for (int d = 0; d < D; d++) {
            int bj = 0;
            float bv = a->h2[(size_t)t * K * D + d];
            for (int j = 1; j < K; j++) {
                float v = a->h2[((size_t)t * K + j) * D + d];
                if (v > bv) bv = v, bj = j;
            }
            a->amax[t * D + d] = bj;
            a->x[t * D + d] += bv;
        }
    const int *orders[MK_MAX_DIR];
    for (int g = 0; g < G; g++) orders[g] = in->order + (size_t)g * L;
    mamba_backbone_forward(&m->bb, &a->ma, a->out, a->x, 1, L, orders, training, rng);
    for (int d = 0; d < D; d++) a->feat[d] = 0;
    for (int t = 0; t < L; t++)
        for (int d = 0; d < D; d++) a->feat[d] += a->out[t * D + d];
    for (int d = 0; d < D; d++) a->feat[d] /= L;
    linear_forward(a->logits, a->feat, mk_param(p, m->hw), mk_param(p, m->hb), 1, D, C);
}

void points_backward(points_model *m, points_acts *a, const float *dlogits) {
    const points_cfg *c = &m->cfg;
    const int L = c->ntok, K = c->knn, H = c->hidden, D = c->mc.d_model, C = c->n_class;
    const int LK = L * K;
    const mk_params *p = &m->p;
    const points_input *in = a->in;
    float *dfeat = a->dx; /* D floats of scratch before dx is used */
    memset(dfeat, 0, sizeof(float) * D);
    linear_backward(dfeat, mk_grad(p, m->hw), mk_grad(p, m->hb), dlogits, a->feat, mk_param(p, m->hw), 1, D, C);
    for (int t = 0; t < L; t++)
        for (int d = 0; d < D; d++) a->dout[t * D + d] = dfeat[d] / L;
    memset(a->dx, 0, sizeof(float) * L * D);
    mamba_backbone_backward(&m->bb, &a->ma, a->dx, a->dout);
    linear_backward(NULL, mk_grad(p, m->pw), mk_grad(p, m->pb), a->dx, in->ctr, mk_param(p, m->pw), L, 3, D);
    memset(a->dh2, 0, sizeof(float) * LK * D);
    for (int t = 0; t < L; t++)
        for (int d = 0; d < D; d++) a->dh2[((size_t)t * K + a->amax[t * D + d]) * D + d] = a->dx[t * D + d];
    memset(a->da1, 0, sizeof(float) * LK * H);
    linear_backward(a->da1, mk_grad(p, m->w2), mk_grad(p, m->b2), a->dh2, a->a1, mk_param(p, m->w2), LK, H, D);
    /* relu backward in place: da1 -> dh1 (accumulating op, so use h1 buffer as target) */
    float *dh1 = a->a1; /* a1 no longer needed after w2's gradient */
    memset(dh1, 0, sizeof(float) * LK * H);
    relu_backward(dh1, a->da1, a->h1, (size_t)LK * H);
    linear_backward(NULL, mk_grad(p, m->w1), mk_grad(p, m->b1), dh1, in->rel, mk_param(p, m->w1), LK, 3, H);
}

float points_train_batch(points_model *m, points_acts *a, const points_input *in, const int *labels, int n,
                         const mk_adamw_cfg *opt, mk_rng *rng, int *correct) {
    const int C = m->cfg.n_class;
    float dl[POINTS_MAX_CLASS];
    double loss = 0;
    int hits = 0;
    mk_params_zero_grad(&m->p);
    for (int i = 0; i < n; i++) {
        points_forward(m, a, &in[i], 1, rng);
        int ok = 0;
        loss += crossentropy_forward_backward(dl, NULL, &ok, a->logits, &labels[i], 1, C, 1.f / n);
        hits += ok;
        points_backward(m, a, dl);
    }
    mk_adamw_step(&m->p, opt);
    if (correct) *correct = hits;
    return (float)(loss / n);
}

void points_model_frontend(const points_model *m, mk_pts_frontend *f) {
    memset(f, 0, sizeof *f);
    f->L = m->cfg.ntok, f->K = m->cfg.knn, f->H = m->cfg.hidden, f->n_class = m->cfg.n_class;
    f->w1 = m->w1, f->b1 = m->b1, f->w2 = m->w2, f->b2 = m->b2, f->pw = m->pw, f->pb = m->pb;
    f->head_w = m->hw, f->head_b = m->hb;
}

int points_train_batch_cuda(points_model *m, points_acts *a, const points_input *in, const int *labels, int n,
                            const mk_adamw_cfg *opt, mk_rng *rng, float *loss, int *correct) {
    if (n < 1) {
        mk_error("points: empty batch");
        return -1;
    }
    pts_packed b;
    pts_pack(m, in, n, &b);
    mk_pts_frontend f;
    points_model_frontend(m, &f);
    int rc = mk_cuda_pts_train_step(&m->bb, &a->ma, &f, b.rel, b.ctr, b.order, labels, n, opt, rng, loss, correct);
    pts_packed_free(&b);
    return rc;
}

void points_predict_batch(points_model *m, points_acts *a, const points_input *in, int n, float *probs, int *cls) {
    const int C = m->cfg.n_class;
    float *lg = mk_malloc(sizeof(float) * (size_t)n * C);
    /* on a GPU the n objects go up together: one copy of the weights and one wait for n forwards */
    if (m->bb.device != MK_DEV_CUDA || points_forward_cuda(m, a, in, n, NULL, lg))
        for (int i = 0; i < n; i++) {
            points_forward(m, a, &in[i], 0, NULL);
            memcpy(lg + (size_t)i * C, a->logits, sizeof(float) * C);
        }
    for (int i = 0; i < n; i++) {
        float *pr = probs + (size_t)i * C;
        softmax_rows(pr, lg + (size_t)i * C, 1, C);
        int best = 0;
        for (int k = 1; k < C; k++)
            if (pr[k] > pr[best]) best = k;
        cls[i] = best;
    }
    free(lg);
}

int points_predict(points_model *m, points_acts *a, const points_input *in, float *probs) {
    const int C = m->cfg.n_class;
    points_forward(m, a, in, 0, NULL);
    float tmp[POINTS_MAX_CLASS];
    if (!probs) probs = tmp;
    softmax_rows(probs, a->logits, 1, C);
    int best = 0;
    for (int k = 1; k < C; k++)
        if (probs[k] > probs[best]) best = k;
    return best;
}
