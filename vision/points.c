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

/* The K nearest of P points to q, nearest first, ties to the lower index: the
 * first K of a sort by (distance, index), kept by insertion into a sorted
 * list of K, since a full sort of all P per centre (64 sorts of 512 every
 * object, every epoch) was 40 % of a training epoch. A later point enters only
 * if strictly nearer than the K-th, which is the index tie-break. scratch
 * holds K floats. */
void points_knn(int *nb, const float *pts, int P, const float *q, int K, float *scratch) {
    MK_ASSERT(K >= 1 && K <= P);
    float *bv = scratch;
    int m = 0;
    for (int i = 0; i < P; i++) {
        float dx = pts[i * 3] - q[0], dy = pts[i * 3 + 1] - q[1], dz = pts[i * 3 + 2] - q[2];
        float s = dx * dx + dy * dy + dz * dz;
        if (m == K && !(s < bv[K - 1])) continue;
        int j = m < K ? m++ : K - 1;
        for (; j > 0 && bv[j - 1] > s; j--) bv[j] = bv[j - 1], nb[j] = nb[j - 1];
        bv[j] = s, nb[j] = i;
    }
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
    /* k nearest neighbours of each centre */
    int *nb = mk_malloc(sizeof(int) * K);
    float *nbd = mk_malloc(sizeof(float) * K);
    for (int t = 0; t < L; t++) {
        const float *q = in->ctr + t * 3;
        points_knn(nb, pts, P, q, K, nbd);
        for (int j = 0; j < K; j++)
            for (int d = 0; d < 3; d++) in->rel[((size_t)t * K + j) * 3 + d] = pts[nb[j] * 3 + d] - q[d];
    }
    free(nb), free(nbd);
    kv *buf = mk_malloc(sizeof(kv) * L);
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
    a->L = c->ntok, a->K = c->knn, a->H = c->hidden, a->D = c->mc.d_model, a->C = c->n_class, a->G = c->mc.n_dir;
    mamba_acts_init(&a->ma);
}

void points_acts_free(points_acts *a) {
    free(a->rel), free(a->ctr), free(a->order);
    free(a->h1), free(a->a1), free(a->da1), free(a->h2), free(a->dh2), free(a->amax);
    free(a->x), free(a->out), free(a->dout), free(a->dx), free(a->feat), free(a->logits), free(a->dlogits),
        free(a->dfeat);
    mamba_acts_free(&a->ma);
}

/* Buffers for n objects, and the n objects' inputs packed into them (one copy each to a GPU) */
static void acts_pack(points_acts *a, const points_input *in, int n) {
    const size_t L = a->L, LK = L * a->K, H = a->H, D = a->D, GL = (size_t)a->G * L;
    if (n > a->cap) {
        const size_t N = (size_t)n;
        a->rel = mk_realloc(a->rel, sizeof(float) * N * LK * 3);
        a->ctr = mk_realloc(a->ctr, sizeof(float) * N * L * 3);
        a->order = mk_realloc(a->order, sizeof(int) * N * GL);
        a->h1 = mk_realloc(a->h1, sizeof(float) * N * LK * H);
        a->a1 = mk_realloc(a->a1, sizeof(float) * N * LK * H);
        a->da1 = mk_realloc(a->da1, sizeof(float) * N * LK * H);
        a->h2 = mk_realloc(a->h2, sizeof(float) * N * LK * D);
        a->dh2 = mk_realloc(a->dh2, sizeof(float) * N * LK * D);
        a->amax = mk_realloc(a->amax, sizeof(int) * N * L * D);
        a->x = mk_realloc(a->x, sizeof(float) * N * L * D);
        a->out = mk_realloc(a->out, sizeof(float) * N * L * D);
        a->dout = mk_realloc(a->dout, sizeof(float) * N * L * D);
        a->dx = mk_realloc(a->dx, sizeof(float) * N * L * D);
        a->feat = mk_realloc(a->feat, sizeof(float) * N * D);
        a->dfeat = mk_realloc(a->dfeat, sizeof(float) * N * D);
        a->logits = mk_realloc(a->logits, sizeof(float) * N * a->C);
        a->dlogits = mk_realloc(a->dlogits, sizeof(float) * N * a->C);
        a->cap = n;
    }
    for (int i = 0; i < n; i++) {
        memcpy(a->rel + i * LK * 3, in[i].rel, sizeof(float) * LK * 3);
        memcpy(a->ctr + i * L * 3, in[i].ctr, sizeof(float) * L * 3);
        memcpy(a->order + i * GL, in[i].order, sizeof(int) * GL);
    }
    a->n = n;
}

/* Inference on the GPU (mk_cuda_pts_forward) for the n objects packed in a: feat (n, D) and
 * logits (n, C). 0; or -1 where the device cannot run it, after one notice per process, and the
 * caller runs the host's front end around the per-call backbone instead. */
static int points_forward_cuda(points_model *m, points_acts *a) {
    static int said;
    mk_pts_frontend f;
    points_model_frontend(m, &f);
    int rc = mk_cuda_pts_forward(&m->bb, &a->ma, &f, a->rel, a->ctr, a->order, a->n, a->feat, a->logits);
    if (rc && !said++)
        fprintf(stderr, "mambakit: points: the GPU forward failed (%s); the point MLP and head run on the host\n",
                mk_last_error());
    return rc;
}

void points_forward_batch(points_model *m, points_acts *a, const points_input *in, int n, int training,
                          mk_rng *rng) {
    const int L = a->L, K = a->K, H = a->H, D = a->D, C = a->C;
    const int NT = n * L, NLK = NT * K; /* tokens and neighbour rows of the whole batch */
    const mk_params *p = &m->p;
    acts_pack(a, in, n);
    if (!training && m->bb.device == MK_DEV_CUDA && !points_forward_cuda(m, a)) return;
    linear_forward(a->h1, a->rel, mk_param(p, m->w1), mk_param(p, m->b1), NLK, 3, H);
    relu_forward(a->a1, a->h1, (size_t)NLK * H);
    linear_forward(a->h2, a->a1, mk_param(p, m->w2), mk_param(p, m->b2), NLK, H, D);
    /* max over the k neighbours, plus the position embedding */
    linear_forward(a->x, a->ctr, mk_param(p, m->pw), mk_param(p, m->pb), NT, 3, D);
    for (size_t t = 0; t < (size_t)NT; t++)
        for (int d = 0; d < D; d++) {
            int bj = 0;
            float bv = a->h2[t * K * D + d];
            for (int j = 1; j < K; j++) {
                float v = a->h2[(t * K + j) * D + d];
                if (v > bv) bv = v, bj = j;
            }
            a->amax[t * D + d] = bj;
            a->x[t * D + d] += bv;
        }
    mamba_backbone_forward_ps(&m->bb, &a->ma, a->out, a->x, n, L, a->order, training, rng);
    for (int i = 0; i < n; i++) { /* each object's mean over its L tokens, summed in order */
        float *f = a->feat + (size_t)i * D;
        const float *o = a->out + (size_t)i * L * D;
        for (int d = 0; d < D; d++) f[d] = 0;
        for (int t = 0; t < L; t++)
            for (int d = 0; d < D; d++) f[d] += o[t * D + d];
        for (int d = 0; d < D; d++) f[d] /= L;
    }
    linear_forward(a->logits, a->feat, mk_param(p, m->hw), mk_param(p, m->hb), n, D, C);
}

void points_backward_batch(points_model *m, points_acts *a, const float *dlogits) {
    const int n = a->n, L = a->L, K = a->K, H = a->H, D = a->D, C = a->C;
    const int NT = n * L, NLK = NT * K;
    const mk_params *p = &m->p;
    memset(a->dfeat, 0, sizeof(float) * n * D);
    linear_backward(a->dfeat, mk_grad(p, m->hw), mk_grad(p, m->hb), dlogits, a->feat, mk_param(p, m->hw), n, D, C);
    for (int i = 0; i < n; i++)
        for (int t = 0; t < L; t++)
            for (int d = 0; d < D; d++) a->dout[((size_t)i * L + t) * D + d] = a->dfeat[(size_t)i * D + d] / L;
    memset(a->dx, 0, sizeof(float) * NT * D);
    mamba_backbone_backward(&m->bb, &a->ma, a->dx, a->dout);
    linear_backward(NULL, mk_grad(p, m->pw), mk_grad(p, m->pb), a->dx, a->ctr, mk_param(p, m->pw), NT, 3, D);
    memset(a->dh2, 0, sizeof(float) * NLK * D);
    for (size_t t = 0; t < (size_t)NT; t++)
        for (int d = 0; d < D; d++) a->dh2[(t * K + a->amax[t * D + d]) * D + d] = a->dx[t * D + d];
    memset(a->da1, 0, sizeof(float) * NLK * H);
    linear_backward(a->da1, mk_grad(p, m->w2), mk_grad(p, m->b2), a->dh2, a->a1, mk_param(p, m->w2), NLK, H, D);
    /* relu backward: da1 -> dh1 (an accumulating op, so into a1's buffer, which w2's gradient
     * no longer needs) */
    float *dh1 = a->a1;
    memset(dh1, 0, sizeof(float) * NLK * H);
    relu_backward(dh1, a->da1, a->h1, (size_t)NLK * H);
    linear_backward(NULL, mk_grad(p, m->w1), mk_grad(p, m->b1), dh1, a->rel, mk_param(p, m->w1), NLK, 3, H);
}

void points_forward(points_model *m, points_acts *a, const points_input *in, int training, mk_rng *rng) {
    points_forward_batch(m, a, in, 1, training, rng);
}
void points_backward(points_model *m, points_acts *a, const float *dlogits) { points_backward_batch(m, a, dlogits); }

float points_train_batch(points_model *m, points_acts *a, const points_input *in, const int *labels, int n,
                         const mk_adamw_cfg *opt, mk_rng *rng, int *correct) {
    const int C = m->cfg.n_class;
    double loss = 0;
    int hits = 0;
    mk_params_zero_grad(&m->p);
    points_forward_batch(m, a, in, n, 1, rng);
    for (int i = 0; i < n; i++) { /* row by row, as the GPU step's cross-entropy */
        int ok = 0;
        loss += crossentropy_forward_backward(a->dlogits + (size_t)i * C, NULL, &ok, a->logits + (size_t)i * C,
                                              &labels[i], 1, C, 1.f / n);
        hits += ok;
    }
    points_backward_batch(m, a, a->dlogits);
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
    acts_pack(a, in, n);
    mk_pts_frontend f;
    points_model_frontend(m, &f);
    return mk_cuda_pts_train_step(&m->bb, &a->ma, &f, a->rel, a->ctr, a->order, labels, n, opt, rng, loss, correct);
}

void points_predict_batch(points_model *m, points_acts *a, const points_input *in, int n, float *probs, int *cls) {
    const int C = m->cfg.n_class;
    points_forward_batch(m, a, in, n, 0, NULL);
    for (int i = 0; i < n; i++) {
        float *pr = probs + (size_t)i * C;
        softmax_rows(pr, a->logits + (size_t)i * C, 1, C);
        int best = 0;
        for (int k = 1; k < C; k++)
            if (pr[k] > pr[best]) best = k;
        cls[i] = best;
    }
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
