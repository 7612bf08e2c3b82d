/* mil_model.c — MambaMIL / ABMIL forward, backward, training, cross-validation
 * and checkpoints (math in mil_model.h). One bag at a time: L instances. */
#include "pathology/mil_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/ops.h"

const char *const mil_type_names[MIL_NTYPES] = {"mamba", "abmil", "gated", "mean", "max"};
const char *const mil_order_names[MIL_NORDERS] = {"natural", "score"};

int mil_type_from_name(const char *s) {
    for (int i = 0; i < MIL_NTYPES; i++)
        if (!strcmp(s, mil_type_names[i])) return i;
    return -1;
}

int mil_order_from_name(const char *s) {
    for (int i = 0; i < MIL_NORDERS; i++)
        if (!strcmp(s, mil_order_names[i])) return i;
    return -1;
}

void mil_cfg_default(mil_cfg *c, int type, int F) {
    memset(c, 0, sizeof *c);
    c->type = type;
    c->F = F;
    c->D = 64;
    c->H = 64;
    c->n_layer = 1; /* the MambaMIL has 2; 1 with the residual gate was better (docs/MIL.md) */
    c->stride = 10; /* MambaMIL's default rate */
    c->d_state = 16;
    c->gated = 0;
    c->res_gate = 1; /* starts as ABMIL, learns how much sequence mixing to add */
    c->branch_drop = 0.f;
    c->dropout = 0.f;
}

/* match: a model file whose tensor table the declaration must equal before
 * anything is allocated (mil_model_load), or NULL (a new model). */
static int build(mil_model *m, const mil_cfg *c, unsigned long seed, const char *match) {
    memset(m, 0, sizeof *m);
    if (c->type < 0 || c->type >= MIL_NTYPES || c->F < 1 || c->F > MIL_MAX_FEATURES || c->D < 1 || c->D > 4096 ||
        c->H < 1 || c->H > 4096 || c->n_layer < 0 || c->n_layer > 32 || c->stride < 0 || c->d_state < 1 ||
        !(c->dropout >= 0 && c->dropout < 1) || !(c->branch_drop >= 0 && c->branch_drop < 1) || c->order < 0 ||
        c->order >= MIL_NORDERS || !(c->aux >= 0 && c->aux <= 100) || c->aux_mix < 0 || c->aux_mix > 1 ||
        c->attend_e < 0 || c->attend_e > 1) {
        mk_error("invalid MIL model config (type %d, F %d, D %d, H %d, layers %d, stride %d, d_state %d)", c->type,
                 c->F, c->D, c->H, c->n_layer, c->stride, c->d_state);
        return -1;
    }
    if (c->aux_mix && !(c->aux > 0)) {
        mk_error("aux_mix needs an auxiliary exit (aux > 0)");
        return -1;
    }
    m->c = *c;
    mk_params *p = &m->p;
    mk_params_init(p);
    const int F = c->F, D = c->D, H = c->H;
    m->fmean = mk_params_add(p, "scaler.mean", 0, 1, F);
    m->fstd = mk_params_add(p, "scaler.std", 0, 1, F);
    m->emb_w = mk_params_add(p, "embed.weight", 1, 2, D, F);
    m->emb_b = mk_params_add(p, "embed.bias", 0, 1, D);
    if (c->type == MIL_MAMBA) {
        mamba_cfg mc;
        mamba_cfg_default(&mc, D, c->n_layer);
        mc.d_state = c->d_state;
        mc.n_dir = c->stride > 0 ? 2 : 1; /* stride 0: plain Mamba, no SR branch (ablation) */
        mc.merge = MK_MERGE_SUM;
        mc.norm = MK_NORM_LN;
        mc.final_norm = 1;
        if (mamba_backbone_declare(&m->bb, p, "backbone.", &mc)) {
            mk_params_free(p);
            return -1;
        }
        m->has_bb = 1;
    }
    m->att_V = m->att_Vb = m->att_U = m->att_Ub = m->att_w = -1;
    int gated = c->type == MIL_GATED || (c->type == MIL_MAMBA && c->gated);
    if (c->type == MIL_MAMBA || c->type == MIL_ABMIL || c->type == MIL_GATED) {
        m->att_V = mk_params_add(p, "attn.V.weight", 1, 2, H, D);
        m->att_Vb = mk_params_add(p, "attn.V.bias", 0, 1, H);
        if (gated) {
            m->att_U = mk_params_add(p, "attn.U.weight", 1, 2, H, D);
            m->att_Ub = mk_params_add(p, "attn.U.bias", 0, 1, H);
        }
        m->att_w = mk_params_add(p, "attn.w.weight", 1, 1, H);
    }
    m->cls_w = mk_params_add(p, "classifier.weight", 1, 1, D);
    m->cls_b = mk_params_add(p, "classifier.bias", 0, 1, 1);
    m->gamma = m->has_bb && c->res_gate ? mk_params_add(p, "res_gate.gamma", 0, 1, D) : -1;
    if (match && mk_ckpt_check_table(match, "mil", p)) {
        mil_model_free(m);
        return -1;
    }
    mk_params_alloc(p);

    /* The backbone draws from a stream of its own, so that the embedding, attention and
     * classifier start from the same weights and see the same dropout masks in every model
     * type with the same seed: MambaMIL with the gate at 0 then *is* that seed's ABMIL, and
     * the benchmark compares the two on common random numbers (docs/MIL.md). */
    mk_rng_seed(&m->rng, seed);
    mk_rng_seed(&m->bb_rng, seed ^ 0x6a09e667f3bcc909ull);
    mk_init_const(mk_param(p, m->fmean), F, 0.f);
    mk_init_const(mk_param(p, m->fstd), F, 1.f);
    mk_init_linear(mk_param(p, m->emb_w), mk_param(p, m->emb_b), D, F, &m->rng);
    if (m->has_bb) mamba_backbone_init(&m->bb, &m->bb_rng);
    if (m->att_V >= 0) {
        mk_init_linear(mk_param(p, m->att_V), mk_param(p, m->att_Vb), H, D, &m->rng);
        if (m->att_U >= 0) mk_init_linear(mk_param(p, m->att_U), mk_param(p, m->att_Ub), H, D, &m->rng);
        mk_init_linear(mk_param(p, m->att_w), NULL, 1, H, &m->rng);
    }
    mk_init_linear(mk_param(p, m->cls_w), mk_param(p, m->cls_b), 1, D, &m->rng);
    if (m->gamma >= 0) mk_init_const(mk_param(p, m->gamma), D, 0.f);
    mamba_acts_init(&m->acts);
    return 0;
}

int mil_model_create(mil_model *m, const mil_cfg *c, unsigned long seed) { return build(m, c, seed, NULL); }

void mil_model_free(mil_model *m) {
    if (m->has_bb) mamba_backbone_free(&m->bb);
    mamba_acts_free(&m->acts);
    mk_params_free(&m->p);
    free(m->buf);
    free(m->amax);
    free(m->ord);
    free(m->base);
    free(m->sortbuf);
    memset(m, 0, sizeof *m);
}

void mil_model_fit_scaler(mil_model *m, const mil_bags *b) {
    const int F = m->c.F;
    float *mu = mk_param(&m->p, m->fmean), *sd = mk_param(&m->p, m->fstd);
    double *s = mk_calloc(2 * (size_t)F, sizeof(double)), *s2 = s + F;
    for (long r = 0; r < b->n_inst; r++)
        for (int j = 0; j < F; j++) {
            double v = b->x[(size_t)r * F + j];
            s[j] += v;
            s2[j] += v * v;
        }
    double n = b->n_inst > 0 ? (double)b->n_inst : 1;
    for (int j = 0; j < F; j++) {
        double mean = s[j] / n, var = s2[j] / n - mean * mean;
        mu[j] = (float)mean;
        sd[j] = var > 1e-12 ? (float)sqrt(var) : 1.f;
    }
    free(s);
}

void mil_order_interleave(int *o, int L, int R) {
    int t = 0;
    for (int r = 0; r < R && r < L; r++)
        for (int j = r; j < L; j += R) o[t++] = j;
}

/* highest score first; equal scores in bag order, NaN (diverged weights) last, so the
 * comparison is a total order whatever the scores */
static int by_score(const void *pa, const void *pb) {
    const mil_score_idx *a = pa, *b = pb;
    const int an = isnan(a->s), bn = isnan(b->s);
    if (an != bn) return an - bn;
    if (!an && a->s != b->s) return a->s > b->s ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* attention logits s_i = w^T tanh(V v_i + bV) [* sigm(U v_i + bU)] of rows v (L, D) into s;
 * t, g (L, H) keep the activations */
static void att_logits(const mil_model *m, const float *v, int L, float *t, float *g, float *s) {
    const mk_params *p = &m->p;
    const int D = m->c.D, H = m->c.H;
    linear_forward(t, v, mk_param(p, m->att_V), mk_param(p, m->att_Vb), L, D, H);
    tanh_forward(t, t, (size_t)L * H);
    if (m->att_U >= 0) {
        linear_forward(g, v, mk_param(p, m->att_U), mk_param(p, m->att_Ub), L, D, H);
        sigmoid_forward(g, g, (size_t)L * H);
    }
    mil_att_score(s, t, m->att_U >= 0 ? g : NULL, mk_param(p, m->att_w), L, H);
}

void mil_att_score(float *s, const float *t, const float *g, const float *w, int L, int H) {
    for (int i = 0; i < L; i++) {
        const float *ti = t + (size_t)i * H, *gi = g ? g + (size_t)i * H : NULL;
        float si = 0;
        if (gi)
            for (int k = 0; k < H; k++) si += w[k] * ti[k] * gi[k];
        else
            for (int k = 0; k < H; k++) si += w[k] * ti[k];
        s[i] = si;
    }
}

void mil_sort_by_score(int *order, const float *s, int L, mil_score_idx *buf) {
    for (int i = 0; i < L; i++) buf[i].s = s[i], buf[i].i = i;
    qsort(buf, (size_t)L, sizeof *buf, by_score);
    for (int i = 0; i < L; i++) order[i] = buf[i].i;
}

/* m->base = the bag's instances by attention logit on m->e, highest first; t, g, s are the
 * pooling's buffers, free until it runs */
static const int *order_by_score(mil_model *m, int L) {
    att_logits(m, m->e, L, m->t, m->g, m->s);
    mil_sort_by_score(m->base, m->s, L, m->sortbuf);
    return m->base;
}

/* Buffer per bag: xs (L,F), e_pre, e, dmask, h, m_out (L,D), t, g, t2, g2 (L,H), s, a, s2, a2
 * (L), z, z2 (D), backward scratch dh, de (L,D), dt, dg (L,H), da (L). */
static size_t bag_floats(const mil_cfg *c, int L) {
    return (size_t)L * (c->F + 7 * (size_t)c->D + 6 * (size_t)c->H + 5) + 2 * (size_t)c->D;
}

/* the auxiliary exit exists where h differs from e */
static int aux_on(const mil_model *m) { return m->has_bb && m->c.aux > 0 && m->att_V >= 0; }
/* attention computed on e rather than h (--attend e), where the two differ */
static int attend_e(const mil_model *m) { return m->has_bb && m->c.attend_e && m->att_V >= 0; }

static void ensure(mil_model *m, int L) {
    const mil_cfg *c = &m->c;
    if (L > m->cap) {
        free(m->buf);
        free(m->ord);
        free(m->base);
        free(m->sortbuf);
        m->buf = mk_malloc(sizeof(float) * bag_floats(c, L));
        m->ord = mk_malloc(sizeof(int) * L);
        m->base = mk_malloc(sizeof(int) * L);
        m->sortbuf = mk_malloc(sizeof(mil_score_idx) * L);
        m->cap = L;
    }
    if (!m->amax) m->amax = mk_malloc(sizeof(int) * c->D);
    m->L = L;
    float *q = m->buf;
    const size_t LD = (size_t)L * c->D, LH = (size_t)L * c->H;
    m->xs = q, q += (size_t)L * c->F;
    m->e_pre = q, q += LD;
    m->e = q, q += LD;
    m->dmask = q, q += LD;
    m->h = q, q += LD;
    m->m_out = q, q += LD;
    m->t = q, q += LH;
    m->g = q, q += LH;
    m->t2 = q, q += LH;
    m->g2 = q, q += LH;
    m->s = q, q += L;
    m->a = q, q += L;
    m->s2 = q, q += L;
    m->a2 = q, q += L;
    m->z = q, q += c->D;
    m->z2 = q, q += c->D;
}
static float *scratch(mil_model *m) { return m->z2 + m->c.D; }

/* attention / mean / max pooling of rows v (L, D) and the classifier: returns the logit.
 * The attention weights are computed on the rows k (L, D): v itself, or the embedding e
 * with --attend e. t, g (L, H), s, a (L) and z (D) keep what pool_backward needs; a is the
 * attention (mean: 1/L; max: the share of the D channels an instance wins, argmaxes in
 * m->amax). */
static float pool_forward(mil_model *m, const float *k, const float *v, int L, float *t, float *g, float *s, float *a,
                          float *z) {
    const mil_cfg *c = &m->c;
    const mk_params *p = &m->p;
    const int D = c->D;
    if (m->att_V >= 0) {
        att_logits(m, k, L, t, g, s);
        float smax = -INFINITY;
        for (int i = 0; i < L; i++)
            if (s[i] > smax) smax = s[i];
        double sum = 0;
        for (int i = 0; i < L; i++) sum += (a[i] = expf(s[i] - smax));
        for (int i = 0; i < L; i++) a[i] = (float)(a[i] / sum);
        memset(z, 0, sizeof(float) * D);
        for (int i = 0; i < L; i++)
            for (int d = 0; d < D; d++) z[d] += a[i] * v[(size_t)i * D + d];
    } else if (c->type == MIL_MEAN) {
        memset(z, 0, sizeof(float) * D);
        for (int i = 0; i < L; i++)
            for (int d = 0; d < D; d++) z[d] += v[(size_t)i * D + d];
        for (int d = 0; d < D; d++) z[d] /= L;
        for (int i = 0; i < L; i++) a[i] = 1.f / L;
    } else { /* max */
        for (int d = 0; d < D; d++) {
            int best = 0;
            for (int i = 1; i < L; i++)
                if (v[(size_t)i * D + d] > v[(size_t)best * D + d]) best = i;
            m->amax[d] = best;
            z[d] = v[(size_t)best * D + d];
        }
        for (int i = 0; i < L; i++) a[i] = 0;
        for (int d = 0; d < D; d++) a[m->amax[d]] += 1.f / D;
    }
    const float *wc = mk_param(p, m->cls_w);
    float lg = mk_param(p, m->cls_b)[0];
    for (int d = 0; d < D; d++) lg += wc[d] * z[d];
    return lg;
}

/* backward of pool_forward for d loss / d logit: parameter grads +=, dk and dv (L, D) +=
 * (the same buffer when k == v); dt, dg (L, H) and da (L) are scratch */
static void pool_backward(mil_model *m, const float *k, const float *v, int L, const float *t, const float *g,
                          const float *a, const float *z, float dlogit, float *dk, float *dv, float *dt, float *dg,
                          float *da) {
    const mil_cfg *c = &m->c;
    const mk_params *p = &m->p;
    const int D = c->D, H = c->H;
    const size_t LH = (size_t)L * H;
    /* classifier: logit = wc . z + bc */
    float *gwc = mk_grad(p, m->cls_w);
    const float *wc = mk_param(p, m->cls_w);
    mk_grad(p, m->cls_b)[0] += dlogit;
    for (int d = 0; d < D; d++) gwc[d] += dlogit * z[d];
    if (m->att_V >= 0) {
        /* z = sum a_i v_i: dv_i += a_i dz; da_i = dz . v_i */
        double adot = 0;
        for (int i = 0; i < L; i++) {
            float s = 0;
            for (int d = 0; d < D; d++) {
                float dz = dlogit * wc[d];
                dv[(size_t)i * D + d] += a[i] * dz;
                s += dz * v[(size_t)i * D + d];
            }
            da[i] = s;
            adot += (double)a[i] * s;
        }
        /* softmax: ds_i = a_i (da_i - sum_j a_j da_j), stored back in da */
        for (int i = 0; i < L; i++) da[i] = a[i] * (da[i] - (float)adot);
        const float *w = mk_param(p, m->att_w);
        float *gw = mk_grad(p, m->att_w);
        for (int i = 0; i < L; i++) {
            const float *ti = t + (size_t)i * H, *gi = g + (size_t)i * H;
            float *dti = dt + (size_t)i * H, *dgi = dg + (size_t)i * H;
            float ds = da[i];
            for (int k = 0; k < H; k++) {
                if (m->att_U >= 0) {
                    gw[k] += ds * ti[k] * gi[k];
                    dti[k] = ds * w[k] * gi[k];
                    dgi[k] = ds * w[k] * ti[k];
                } else {
                    gw[k] += ds * ti[k];
                    dti[k] = ds * w[k];
                }
            }
        }
        /* through tanh / sigmoid (they use their outputs) in place */
        for (size_t q = 0; q < LH; q++) dt[q] *= 1.f - t[q] * t[q];
        linear_backward(dk, mk_grad(p, m->att_V), mk_grad(p, m->att_Vb), dt, k, mk_param(p, m->att_V), L, D, H);
        if (m->att_U >= 0) {
            for (size_t q = 0; q < LH; q++) dg[q] *= g[q] * (1.f - g[q]);
            linear_backward(dk, mk_grad(p, m->att_U), mk_grad(p, m->att_Ub), dg, k, mk_param(p, m->att_U), L, D, H);
        }
    } else if (c->type == MIL_MEAN) {
        for (int i = 0; i < L; i++)
            for (int d = 0; d < D; d++) dv[(size_t)i * D + d] += dlogit * wc[d] / L;
    } else {
        for (int d = 0; d < D; d++) dv[(size_t)m->amax[d] * D + d] += dlogit * wc[d];
    }
}

static void mil_frontend(const mil_model *m, mk_mil_frontend *f);

/* Inference with the backbone on the GPU: the whole forward there (mk_cuda_mil_forward), for the
 * models the resident step covers, so that only the bag goes up and the logit and attention come
 * down instead of the embedding and the backbone's output crossing the bus every bag. 0 when it
 * ran (m->a, logit, aux_logit, prob set as the host path sets them), -1 to run the host path: a
 * model it does not cover, or a device failure (one notice per process). */
static int forward_on_device(mil_model *m, const float *x, int L) {
    if (!m->has_bb || m->bb.device != MK_DEV_CUDA || !mil_gpu_step_covers(m, NULL, NULL, 0)) return -1;
    mk_mil_frontend f;
    mil_frontend(m, &f);
    float lg, lg2;
    if (mk_cuda_mil_forward(&m->bb, &m->acts, &f, x, L, &lg, &lg2, m->a)) {
        static int told;
        if (!told++)
            fprintf(stderr, "mambakit: mil: the GPU forward failed (%s); the embedding, pooling and classifier run "
                            "on the host\n", mk_last_error());
        return -1;
    }
    m->logit = lg;
    m->aux_logit = aux_on(m) ? lg2 : 0.f;
    if (aux_on(m) && m->c.aux_mix) m->logit = 0.5f * (m->logit + m->aux_logit); /* as mil_forward mixes */
    m->prob = mk_sigmoidf(m->logit);
    if (m->gamma >= 0) m->branch_scale = 1.f;
    m->gpu_forwards++;
    return 0;
}

float mil_forward(mil_model *m, const float *x, int L, int training) {
    MK_ASSERT(L >= 1);
    ensure(m, L);
    m->training = training;
    if (!training && forward_on_device(m, x, L) == 0) return m->prob;
    const mil_cfg *c = &m->c;
    const mk_params *p = &m->p;
    const int F = c->F, D = c->D;
    const size_t LD = (size_t)L * D;
    const float *mu = mk_param(p, m->fmean), *sd = mk_param(p, m->fstd);
    for (int i = 0; i < L; i++)
        for (int j = 0; j < F; j++) m->xs[(size_t)i * F + j] = (x[(size_t)i * F + j] - mu[j]) / sd[j];
    linear_forward(m->e_pre, m->xs, mk_param(p, m->emb_w), mk_param(p, m->emb_b), L, F, D);
    relu_forward(m->e, m->e_pre, LD);
    /* the score order is taken before dropout, so it is a function of the bag (the same in
     * training as in prediction), not of the mask */
    const int *base = m->has_bb && c->order == MIL_ORDER_SCORE && m->att_V >= 0 ? order_by_score(m, L) : NULL;
    if (training && c->dropout > 0) dropout_forward(m->e, m->dmask, m->e, LD, c->dropout, &m->rng);
    if (m->has_bb) {
        if (c->stride > 0) {
            mil_order_interleave(m->ord, L, c->stride);
            if (base)
                for (int i = 0; i < L; i++) m->ord[i] = base[m->ord[i]];
        }
        const int *orders[2] = {base, m->ord};
        if (m->gamma >= 0) {
            m->branch_scale = 1.f;
            if (training && c->branch_drop > 0)
                m->branch_scale = mk_rng_uniform(&m->bb_rng) < c->branch_drop ? 0.f : 1.f / (1.f - c->branch_drop);
            if (m->branch_scale == 0.f) {
                memcpy(m->h, m->e, sizeof(float) * LD);
            } else {
                mamba_backbone_forward(&m->bb, &m->acts, m->m_out, m->e, 1, L, orders, training, &m->bb_rng);
                const float *gm = mk_param(p, m->gamma);
                const float sc = m->branch_scale;
                for (int i = 0; i < L; i++)
                    for (int d = 0; d < D; d++)
                        m->h[(size_t)i * D + d] =
                            m->e[(size_t)i * D + d] + sc * gm[d] * m->m_out[(size_t)i * D + d];
            }
        } else {
            mamba_backbone_forward(&m->bb, &m->acts, m->h, m->e, 1, L, orders, training, &m->bb_rng);
        }
    } else {
        memcpy(m->h, m->e, sizeof(float) * LD);
    }
    /* --attend e: which instances matter is learned on the order-free embedding (the same
     * logits, without dropout, chose the score order); the branch only changes what is pooled */
    m->logit = pool_forward(m, attend_e(m) ? m->e : m->h, m->h, L, m->t, m->g, m->s, m->a, m->z);
    /* the auxiliary exit: the same pooling and classifier on the embedding alone (what ABMIL
     * would see), trained beside the main exit so that the sequence branch only refines a
     * model that already works without it */
    m->aux_logit = 0.f;
    if (aux_on(m)) {
        m->aux_logit = pool_forward(m, m->e, m->e, L, m->t2, m->g2, m->s2, m->a2, m->z2);
        if (!training && c->aux_mix) m->logit = 0.5f * (m->logit + m->aux_logit);
    }
    m->prob = mk_sigmoidf(m->logit);
    return m->prob;
}

void mil_backward(mil_model *m, float dlogit, float dlogit_aux) {
    const mil_cfg *c = &m->c;
    const mk_params *p = &m->p;
    const int L = m->L, F = c->F, D = c->D, H = c->H;
    const size_t LD = (size_t)L * D, LH = (size_t)L * H;
    float *dh = scratch(m), *de = dh + LD, *dt = de + LD, *dg = dt + LH, *da = dg + LH;
    memset(dh, 0, sizeof(float) * LD);
    memset(de, 0, sizeof(float) * LD);
    const int ae = attend_e(m);
    pool_backward(m, ae ? m->e : m->h, m->h, L, m->t, m->g, m->a, m->z, dlogit, ae ? de : dh, dh, dt, dg, da);
    if (m->gamma >= 0) {
        /* h = e + s gamma * m_out: dgamma = s sum_i dh_i * m_out_i; dm_out = s gamma * dh (in m_out) */
        for (size_t q = 0; q < LD; q++) de[q] += dh[q];
        const float sc = m->branch_scale;
        if (sc != 0.f) {
            const float *gm = mk_param(p, m->gamma);
            float *gg = mk_grad(p, m->gamma);
            for (int i = 0; i < L; i++)
                for (int d = 0; d < D; d++) {
                    float *mo = m->m_out + (size_t)i * D + d, dv = sc * dh[(size_t)i * D + d];
                    gg[d] += dv * *mo;
                    *mo = gm[d] * dv;
                }
            mamba_backbone_backward(&m->bb, &m->acts, de, m->m_out);
        }
    } else if (m->has_bb) {
        mamba_backbone_backward(&m->bb, &m->acts, de, dh);
    } else {
        for (size_t q = 0; q < LD; q++) de[q] += dh[q];
    }
    if (aux_on(m) && dlogit_aux != 0.f)
        pool_backward(m, m->e, m->e, L, m->t2, m->g2, m->a2, m->z2, dlogit_aux, de, de, dt, dg, da);
    /* dropout (in place on e), relu, embedding */
    if (m->training && c->dropout > 0)
        for (size_t k = 0; k < LD; k++) de[k] *= m->dmask[k];
    for (size_t k = 0; k < LD; k++) de[k] = m->e_pre[k] > 0 ? de[k] : 0.f;
    linear_backward(NULL, mk_grad(p, m->emb_w), mk_grad(p, m->emb_b), de, m->xs, mk_param(p, m->emb_w), L, F, D);
}

/* ------------------------------------------------------------- training */

void mil_train_opts_default(mil_train_opts *o) {
    o->epochs = 40;
    o->lr = 5e-4f;
    o->weight_decay = 1e-4f;
    o->batch = 1;
    o->clip = 5.f;
    o->seed = 1;
    o->shuffle_inst = 0;
    o->gate_l1 = 0.f;
    o->quiet = 0;
    o->device = MK_DEV_CPU;
    o->gpu_step = MIL_GPU_FULL;
}

int mil_model_use_device(mil_model *m, int dev) {
    if (!m->has_bb) return MK_DEV_CPU;
    mamba_backbone *bb = &m->bb;
    return mamba_backbones_use_device(&bb, 1, dev);
}

int mil_gpu_step_covers(const mil_model *m, const mil_train_opts *o, char *why, int len) {
    const char *r = NULL;
    if (!m->has_bb || m->att_V < 0) r = "a model without an SR-Mamba backbone";
    else if (m->bb.cfg.shuffle_p > 0 && m->bb.cfg.n_layer > 1) r = "a backbone with shuffled scan orders";
    else if (o && o->gate_l1 > 0 && m->gamma >= 0) r = "--gate-l1 (its step runs with AdamW on the host)";
    if (r && why) snprintf(why, len, "%s", r);
    return !r;
}

/* the model's tensors for the device step */
static void mil_frontend(const mil_model *m, mk_mil_frontend *f) {
    memset(f, 0, sizeof *f);
    f->F = m->c.F, f->D = m->c.D, f->H = m->c.H, f->R = m->c.stride;
    f->score_order = m->c.order == MIL_ORDER_SCORE;
    f->dropout = m->c.dropout;
    f->fmean = m->fmean, f->fstd = m->fstd, f->emb_w = m->emb_w, f->emb_b = m->emb_b;
    f->att_V = m->att_V, f->att_Vb = m->att_Vb, f->att_U = m->att_U, f->att_Ub = m->att_Ub, f->att_w = m->att_w;
    f->cls_w = m->cls_w, f->cls_b = m->cls_b, f->gamma = m->gamma;
    f->attend_e = attend_e(m);
    f->aux = aux_on(m) ? m->c.aux : 0.f;
}

int mil_train_bag_cuda(mil_model *m, const float *x, int L, int y, int batch, int begin, int update,
                       const mk_adamw_cfg *ac) {
    if (L < 1) {
        mk_error("mil: empty bag");
        return -1;
    }
    ensure(m, L);
    const size_t LD = (size_t)L * m->c.D;
    m->training = 1;
    /* mil_forward's dropout draws, made here on the host in its order (the mask goes up) */
    if (m->c.dropout > 0) {
        memset(m->e, 0, sizeof(float) * LD);
        dropout_forward(m->e, m->dmask, m->e, LD, m->c.dropout, &m->rng);
    }
    mk_mil_frontend f;
    mil_frontend(m, &f);
    /* branch drop's draw, where mil_forward makes it: after the dropout's, before the backbone's */
    if (m->gamma >= 0) {
        m->branch_scale = 1.f;
        if (m->c.branch_drop > 0)
            m->branch_scale = mk_rng_uniform(&m->bb_rng) < m->c.branch_drop ? 0.f : 1.f / (1.f - m->c.branch_drop);
        f.branch_off = m->branch_scale == 0.f, f.branch_scale = m->branch_scale;
    }
    float lg, lg2;
    if (mk_cuda_mil_train_step(&m->bb, &m->acts, &f, x, L, y, m->c.dropout > 0 ? m->dmask : NULL, batch, begin,
                               update, ac, &m->bb_rng, &lg, &lg2))
        return -1;
    m->logit = lg;
    m->aux_logit = aux_on(m) ? lg2 : 0.f;
    m->prob = mk_sigmoidf(lg);
    return 0;
}

int mil_soft_threshold(float *g, int n, float thr) {
    int zero = 0;
    for (int i = 0; i < n; i++) {
        float a = fabsf(g[i]) - thr;
        g[i] = a > 0 ? copysignf(a, g[i]) : 0.f;
        zero += g[i] == 0.f;
    }
    return zero;
}

static long gate_zero, gate_total;
void mil_gate_l1_stats(long *zero, long *total) {
    *zero = gate_zero;
    *total = gate_total;
}

float mil_train(mil_model *m, const mil_bags *b, const mil_train_opts *o, const char *progress_label) {
    const int n = b->n_bags, batch = o->batch > 0 ? o->batch : 1;
    long steps_per_epoch = (n + batch - 1) / batch, total = steps_per_epoch * o->epochs;
    mk_adamw_cfg ac = mk_adamw_defaults(o->lr, total > 0 ? total : 1);
    ac.weight_decay = o->weight_decay;
    ac.clip = o->clip;
    /* on a GPU the whole step stays on the device where the model is covered: parameters,
     * gradients and moments come back once, after the last step (for prediction and saving) */
    int resident = 0;
    if (mil_model_use_device(m, o->device) == MK_DEV_CUDA && o->gpu_step != MIL_GPU_FULL) {
        static int told;
        if (!told++)
            fprintf(stderr, "mil train: backbone on the GPU; embedding, pooling, classifier and AdamW on the CPU "
                            "(--gpu-step backbone)\n");
    } else if (m->has_bb && m->bb.device == MK_DEV_CUDA) {
        char why[128] = "";
        resident = mil_gpu_step_covers(m, o, why, sizeof why);
        for (int i = 0; resident && i < n; i++)
            if (b->label[i] != 0 && b->label[i] != 1) resident = 0, snprintf(why, sizeof why, "a bag without a 0/1 label");
        static int told_full, told_backbone; /* once per process: cross-validation trains many models */
        if (resident && !told_full++)
            fprintf(stderr, "mil train: every op of the training step on the GPU (parameters resident; copied back "
                            "for prediction and saving)\n");
        if (!resident && !told_backbone++)
            fprintf(stderr, "mil train: the whole-step GPU path does not cover %s; the backbone alone runs on the "
                            "GPU\n", why);
    }
    mk_params_alloc_optim(&m->p);
    mk_params_zero_grad(&m->p);
    mk_rng rng;
    mk_rng_seed(&rng, o->seed * 7919 + 17);
    int *perm = mk_malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) perm[i] = i;
    /* --shuffle-instances: when a bag is a set (Musk conformations, image segments, random
     * draws) its file order means nothing, yet the scans read it; a fresh order every time
     * teaches the sequence branch not to rely on it. Drawn from the loop's own stream, so
     * every model type with the same seed sees the same orders. */
    int *iperm = NULL;
    float *xperm = NULL;
    long maxL = 0;
    if (o->shuffle_inst) {
        for (int i = 0; i < n; i++)
            if (mil_bag_len(b, i) > maxL) maxL = mil_bag_len(b, i);
        iperm = mk_malloc(sizeof(int) * (size_t)maxL);
        xperm = mk_malloc(sizeof(float) * (size_t)maxL * b->F);
    }
    mk_progress pr;
    int show = progress_label && !o->quiet;
    if (show) mk_progress_start(&pr, progress_label, o->epochs);
    float last = 0;
    for (int ep = 0; ep < o->epochs; ep++) {
        mk_rng_shuffle(&rng, perm, n);
        double loss = 0;
        int correct = 0;
        for (int k = 0; k < n; k++) {
            int i = perm[k], L = (int)mil_bag_len(b, i);
            const float *x = mil_bag_x(b, i);
            if (iperm) {
                for (int j = 0; j < L; j++) iperm[j] = j;
                mk_rng_shuffle(&rng, iperm, L);
                for (int j = 0; j < L; j++)
                    memcpy(xperm + (size_t)j * b->F, x + (size_t)iperm[j] * b->F, sizeof(float) * b->F);
                x = xperm;
            }
            float pr1;
            if (resident) {
                if (mil_train_bag_cuda(m, x, L, b->label[i], batch, k % batch == 0,
                                       (k + 1) % batch == 0 || k + 1 == n, &ac)) {
                    /* a device failure mid-run is not recoverable: one line and a non-zero exit (no model
                     * file is written; nothing crashes) */
                    fprintf(stderr, "mambakit: mil train: %s\n", mk_last_error());
                    exit(1);
                }
                pr1 = m->prob;
            } else {
                pr1 = mil_forward(m, x, L, 1);
            }
            float y = (float)b->label[i];
            /* BCE on the logit: softplus(l) - y l; plus aux x the same on the auxiliary exit */
            loss += mk_softplusf(m->logit) - y * m->logit;
            float daux = 0.f;
            if (aux_on(m)) {
                loss += m->c.aux * (mk_softplusf(m->aux_logit) - y * m->aux_logit);
                daux = m->c.aux * ((mk_sigmoidf(m->aux_logit) - y) / batch); /* the device step's order */
            }
            correct += (pr1 >= 0.5f) == (b->label[i] == 1);
            if (resident) continue; /* backward and AdamW ran on the device */
            mil_backward(m, (pr1 - y) / batch, daux);
            if ((k + 1) % batch == 0 || k + 1 == n) {
                long before = m->p.step;
                mk_adamw_step(&m->p, &ac);
                if (o->gate_l1 > 0 && m->gamma >= 0 && m->p.step > before) /* not after a skipped step */
                    mil_soft_threshold(mk_param(&m->p, m->gamma), m->c.D, o->gate_l1 * mk_lr_at(&ac, before));
                mk_params_zero_grad(&m->p);
            }
        }
        last = (float)(loss / n);
        if (show) {
            char ex[64];
            snprintf(ex, sizeof ex, "loss %.4f  train acc %.1f%%", last, 100.0 * correct / n);
            mk_progress_update(&pr, ep + 1, "epoch", ex);
        }
    }
    if (show) mk_progress_end(&pr);
    if (resident && mamba_backbone_cuda_sync_host(&m->bb)) {
        fprintf(stderr, "mambakit: mil train: %s\n", mk_last_error());
        exit(1);
    }
    if (o->gate_l1 > 0 && m->gamma >= 0) {
        const float *g = mk_param(&m->p, m->gamma);
        for (int d = 0; d < m->c.D; d++) gate_zero += g[d] == 0.f;
        gate_total += m->c.D;
    }
    free(perm);
    free(iperm);
    free(xperm);
    return last;
}

void mil_predict(mil_model *m, const mil_bags *b, float *prob) {
    for (int i = 0; i < b->n_bags; i++) prob[i] = mil_forward(m, mil_bag_x(b, i), (int)mil_bag_len(b, i), 0);
}

/* ---------------------------------------------------------------- metrics */

typedef struct {
    float s;
    int y;
} scored;
static int cmp_scored(const void *a, const void *b) {
    float x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    return (x > y) - (x < y);
}

double mil_auc(const float *score, const int *label, int n) {
    /* Mann-Whitney U with mid-ranks for ties */
    scored *v = mk_malloc(sizeof(scored) * (n ? n : 1));
    int np = 0, nn = 0;
    for (int i = 0; i < n; i++) {
        v[i].s = score[i];
        v[i].y = label[i];
        np += label[i] == 1;
        nn += label[i] == 0;
    }
    if (!np || !nn) {
        free(v);
        return NAN;
    }
    qsort(v, n, sizeof *v, cmp_scored);
    double rank_sum = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && v[j].s == v[i].s) j++;
        double mid = (i + 1 + j) / 2.0; /* ranks i+1..j */
        for (int k = i; k < j; k++)
            if (v[k].y == 1) rank_sum += mid;
        i = j;
    }
    free(v);
    return (rank_sum - (double)np * (np + 1) / 2) / ((double)np * nn);
}

int mil_cross_validate(const mil_bags *b, const mil_cfg *c, const mil_train_opts *o, int folds, int repeats,
                       double *acc, double *auc, double *fold_acc, int show_progress) {
    const int n = b->n_bags;
    int np = mil_bags_positives(b), nn = 0;
    for (int i = 0; i < n; i++) nn += b->label[i] == 0;
    if (np + nn != n) {
        mk_error("cross-validation needs a label (0/1) on every bag");
        return -1;
    }
    if (folds < 2 || np < folds || nn < folds) {
        mk_error("%d-fold stratified CV needs at least %d bags of each class (have %d positive, %d negative)", folds,
                 folds, np, nn);
        return -1;
    }
    int *fold = mk_malloc(sizeof(int) * n), *pos = mk_malloc(sizeof(int) * n), *neg = mk_malloc(sizeof(int) * n);
    int *tr = mk_malloc(sizeof(int) * n), *te = mk_malloc(sizeof(int) * n);
    float *oof = mk_malloc(sizeof(float) * n), *pt = mk_malloc(sizeof(float) * n);
    mk_progress pr;
    if (show_progress) mk_progress_start(&pr, "cv", (long)folds * repeats);
    int rc = 0;
    for (int r = 0; r < repeats && !rc; r++) {
        mk_rng rng;
        mk_rng_seed(&rng, o->seed * 1000003ul + (unsigned long)r * 7907ul + 11);
        int kp = 0, kn = 0;
        for (int i = 0; i < n; i++) {
            if (b->label[i] == 1) pos[kp++] = i;
            else neg[kn++] = i;
        }
        mk_rng_shuffle(&rng, pos, kp);
        mk_rng_shuffle(&rng, neg, kn);
        /* deal positives then negatives round-robin: every fold gets
         * floor or ceil of its share of each class */
        int start = mk_rng_int(&rng, folds);
        for (int i = 0; i < kp; i++) fold[pos[i]] = (start + i) % folds;
        for (int i = 0; i < kn; i++) fold[neg[i]] = (start + kp + i) % folds;
        for (int f = 0; f < folds; f++) {
            int ntr = 0, nte = 0;
            for (int i = 0; i < n; i++) {
                if (fold[i] == f) te[nte++] = i;
                else tr[ntr++] = i;
            }
            mil_bags btr, bte;
            mil_bags_subset(&btr, b, tr, ntr);
            mil_bags_subset(&bte, b, te, nte);
            mil_model m;
            if (mil_model_create(&m, c, o->seed + 101ul * r + f)) {
                rc = -1;
                mil_bags_free(&btr);
                mil_bags_free(&bte);
                break;
            }
            mil_model_fit_scaler(&m, &btr);
            mil_train_opts oo = *o;
            oo.seed = o->seed + 1009ul * r + 31ul * f;
            mil_train(&m, &btr, &oo, NULL);
            mil_predict(&m, &bte, pt);
            int ok = 0;
            for (int k = 0; k < nte; k++) {
                oof[te[k]] = pt[k];
                ok += (pt[k] >= 0.5f) == (bte.label[k] == 1);
            }
            if (fold_acc) fold_acc[(size_t)r * folds + f] = (double)ok / nte;
            mil_model_free(&m);
            mil_bags_free(&btr);
            mil_bags_free(&bte);
            if (show_progress) {
                char ex[64];
                snprintf(ex, sizeof ex, "repeat %d fold %d acc %.3f", r + 1, f + 1, (double)ok / nte);
                mk_progress_update(&pr, (long)r * folds + f + 1, "fold", ex);
            }
        }
        if (rc) break;
        int ok = 0;
        for (int i = 0; i < n; i++) ok += (oof[i] >= 0.5f) == (b->label[i] == 1);
        acc[r] = (double)ok / n;
        auc[r] = mil_auc(oof, b->label, n);
    }
    if (show_progress) mk_progress_end(&pr);
    free(fold);
    free(pos);
    free(neg);
    free(tr);
    free(te);
    free(oof);
    free(pt);
    return rc;
}

/* ------------------------------------------------------------ checkpoints */

int mil_model_save(const mil_model *m, const char *path) {
    mk_config cfg;
    mk_config_init(&cfg, "mil");
    mk_config_set(&cfg, "type", "%s", mil_type_names[m->c.type]);
    mk_config_set_int(&cfg, "features", m->c.F);
    mk_config_set_int(&cfg, "d_model", m->c.D);
    mk_config_set_int(&cfg, "attn_hidden", m->c.H);
    mk_config_set_int(&cfg, "n_layer", m->c.n_layer);
    mk_config_set_int(&cfg, "stride", m->c.stride);
    mk_config_set_int(&cfg, "d_state", m->c.d_state);
    mk_config_set_int(&cfg, "gated", m->c.gated);
    mk_config_set_int(&cfg, "res_gate", m->c.res_gate);
    mk_config_set_float(&cfg, "branch_drop", m->c.branch_drop);
    mk_config_set_float(&cfg, "dropout", m->c.dropout);
    mk_config_set(&cfg, "order", "%s", mil_order_names[m->c.order]);
    if (m->c.aux > 0) { /* written only when used: a model without the exit saves as it did before */
        mk_config_set_float(&cfg, "aux", m->c.aux);
        mk_config_set_int(&cfg, "aux_mix", m->c.aux_mix);
    }
    if (m->c.attend_e) mk_config_set(&cfg, "attend", "e"); /* likewise */
    return mk_ckpt_save(path, &cfg, &m->p, 0);
}

int mil_model_load(mil_model *m, const char *path) {
    mk_config cfg;
    memset(m, 0, sizeof *m);
    if (mk_ckpt_read_config(path, "mil", &cfg)) return -1;
    const char *t = mk_config_get(&cfg, "type");
    mil_cfg c;
    if (!t || mil_type_from_name(t) < 0) {
        mk_error("%s: unknown MIL model type '%s'", path, t ? t : "(none)");
        return -1;
    }
    long F, D, H, nl, st, ds, g;
    double dr;
    if (mk_config_get_int(&cfg, "features", &F) || mk_config_get_int(&cfg, "d_model", &D) ||
        mk_config_get_int(&cfg, "attn_hidden", &H) || mk_config_get_int(&cfg, "n_layer", &nl) ||
        mk_config_get_int(&cfg, "stride", &st) || mk_config_get_int(&cfg, "d_state", &ds) ||
        mk_config_get_int(&cfg, "gated", &g) || mk_config_get_float(&cfg, "dropout", &dr)) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s: %s", path, mk_last_error());
        mk_error("%s", msg);
        return -1;
    }
    if (F < 1 || F > MIL_MAX_FEATURES || D < 1 || D > 4096 || H < 1 || H > 4096 || nl < 0 || nl > 32 || st < 0 ||
        st > 1000000 || ds < 1 || ds > 64) {
        mk_error("%s: model config out of range", path);
        return -1;
    }
    mil_cfg_default(&c, mil_type_from_name(t), (int)F);
    c.D = (int)D, c.H = (int)H, c.n_layer = (int)nl, c.stride = (int)st, c.d_state = (int)ds, c.gated = (int)g;
    c.dropout = (float)dr;
    long rg = 0; /* absent in files written before the residual gate existed */
    if (mk_config_get(&cfg, "res_gate") && (mk_config_get_int(&cfg, "res_gate", &rg) || rg < 0 || rg > 1)) {
        mk_error("%s: res_gate must be 0 or 1", path);
        return -1;
    }
    c.res_gate = (int)rg;
    double bd = 0;
    if (mk_config_get(&cfg, "branch_drop") && (mk_config_get_float(&cfg, "branch_drop", &bd) || !(bd >= 0 && bd < 1))) {
        mk_error("%s: branch_drop must be in [0, 1)", path);
        return -1;
    }
    c.branch_drop = (float)bd;
    const char *os = mk_config_get(&cfg, "order"); /* absent in files written before it existed */
    c.order = os ? mil_order_from_name(os) : MIL_ORDER_NATURAL;
    if (c.order < 0) {
        mk_error("%s: order must be natural or score, not '%s'", path, os);
        return -1;
    }
    double ax = 0; /* absent: no auxiliary exit (files before it existed, or aux 0) */
    long mx = 0;
    if (mk_config_get(&cfg, "aux") && (mk_config_get_float(&cfg, "aux", &ax) || !(ax >= 0 && ax <= 100))) {
        mk_error("%s: aux must be in [0, 100]", path);
        return -1;
    }
    if (mk_config_get(&cfg, "aux_mix") && (mk_config_get_int(&cfg, "aux_mix", &mx) || mx < 0 || mx > 1)) {
        mk_error("%s: aux_mix must be 0 or 1", path);
        return -1;
    }
    c.aux = (float)ax, c.aux_mix = (int)mx;
    const char *at = mk_config_get(&cfg, "attend"); /* absent: attention on h */
    if (at && strcmp(at, "e") && strcmp(at, "h")) {
        mk_error("%s: attend must be e or h, not '%s'", path, at);
        return -1;
    }
    c.attend_e = at && !strcmp(at, "e");
    if (build(m, &c, 1, path)) return -1;
    if (mk_ckpt_load(path, "mil", &cfg, &m->p, 0)) {
        mil_model_free(m);
        return -1;
    }
    return 0;
}
