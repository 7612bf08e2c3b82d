/* smamba.c — the S-Mamba forecaster (architecture in ts.h and
 * docs/TIMESERIES.md): variate tokens, bidirectional Mamba over them from the
 * core backbone, post-norm FFN blocks, linear head to the horizon.
 *
 * Letters: B windows, L lookback, H horizon, C variates, F covariates,
 * T = C + F tokens, M = B*T token rows, D width, Fd FFN width.
 * ref: Wang et al. 2024, "Is Mamba Effective for Time Series Forecasting?"
 * (S-Mamba); Liu et al. 2024 (iTransformer) for the inverted embedding. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "ts.h"

/* activations of one encoder layer */
typedef struct {
    float *in;            /* (M, D) layer input */
    float *h;             /* (M, D) after the Mamba residual */
    float *n1, *mean1, *rstd1; /* (M, D), (M), (M) */
    float *a1, *g1;       /* (M, Fd) FFN pre-activation and GELU output (after dropout) */
    float *mask_g, *mask_f; /* (M, Fd), (M, D) dropout masks */
    float *r2;            /* (M, D) n1 + FFN */
    float *out, *mean2, *rstd2; /* (M, D) LN2 output */
} sm_layer;

typedef struct {
    float *rmean, *rstd; /* (B, C) RevIN statistics */
    float *xn;           /* (B, L, C) */
    float *tok;          /* (M, L) */
    float *e0;           /* (M, D) embedding (after dropout) */
    float *mask_e;       /* (M, D) */
    sm_layer *ly;        /* n_layer */
    float *zf, *meanf, *rstdf; /* (M, D), (M), (M) final LN */
    float *zv;           /* (B*C, D) variate rows */
    float *hout;         /* (B*C, H) */
    /* backward scratch */
    float *d1, *d2, *d3; /* (M, D) */
    float *dff;          /* (M, Fd) */
    float *dzv;          /* (B*C, D) */
    float *dhout;        /* (B*C, H) */
} sm_acts;

const char *ts_block_name(int block) { return block == TS_BLOCK_PAPER ? "paper" : "shared"; }
int ts_block_parse(const char *s) {
    if (!strcmp(s, "shared")) return TS_BLOCK_SHARED;
    if (!strcmp(s, "paper")) return TS_BLOCK_PAPER;
    return -1;
}

static size_t carve(float **dst, float **p, size_t n) {
    *dst = *p;
    *p += n;
    return n;
}

/* Lay out the activations for B windows in m->buf (grown on demand). */
static void sm_layout(ts_smamba *m, sm_acts *a, int B) {
    const ts_smamba_cfg *c = &m->cfg;
    const size_t T = (size_t)c->C + c->F, M = (size_t)B * T, D = c->D, Fd = c->d_ff, L = c->L, H = c->H;
    const size_t BC = (size_t)B * c->C;
    size_t need = 2 * BC + (size_t)B * L * c->C + M * L + 2 * M * D +
                  (size_t)c->n_layer * (M * D * 6 + 4 * M + 3 * M * Fd) + M * D + 2 * M + BC * D + BC * H +
                  3 * M * D + M * Fd + BC * D + BC * H;
    if (B > m->cap_B) {
        free(m->buf);
        m->buf = mk_malloc(sizeof(float) * need);
        m->cap_B = B;
    }
    m->B = B;
    float *p = m->buf;
    carve(&a->rmean, &p, BC);
    carve(&a->rstd, &p, BC);
    carve(&a->xn, &p, (size_t)B * L * c->C);
    carve(&a->tok, &p, M * L);
    carve(&a->e0, &p, M * D);
    carve(&a->mask_e, &p, M * D);
    for (int l = 0; l < c->n_layer; l++) {
        sm_layer *y = &a->ly[l];
        carve(&y->h, &p, M * D);
        carve(&y->n1, &p, M * D);
        carve(&y->mean1, &p, M);
        carve(&y->rstd1, &p, M);
        carve(&y->a1, &p, M * Fd);
        carve(&y->g1, &p, M * Fd);
        carve(&y->mask_g, &p, M * Fd);
        carve(&y->mask_f, &p, M * D);
        carve(&y->r2, &p, M * D);
        carve(&y->out, &p, M * D);
        carve(&y->mean2, &p, M);
        carve(&y->rstd2, &p, M);
        y->in = l == 0 ? a->e0 : a->ly[l - 1].out;
    }
    carve(&a->zf, &p, M * D);
    carve(&a->meanf, &p, M);
    carve(&a->rstdf, &p, M);
    carve(&a->zv, &p, BC * D);
    carve(&a->hout, &p, BC * H);
    carve(&a->d1, &p, M * D);
    carve(&a->d2, &p, M * D);
    carve(&a->d3, &p, M * D);
    carve(&a->dff, &p, M * Fd);
    carve(&a->dzv, &p, BC * D);
    carve(&a->dhout, &p, BC * H);
    MK_ASSERT((size_t)(p - m->buf) <= need);
}

int ts_smamba_declare(ts_smamba *m, mk_params *p, const ts_smamba_cfg *c) {
    memset(m, 0, sizeof *m);
    if (c->L < 1 || c->H < 1 || c->C < 1 || c->F < 0 || c->D < 1 || c->n_layer < 1 || c->n_layer > 16 ||
        c->d_ff < 1) {
        mk_error("invalid S-Mamba config (L %d, H %d, C %d, F %d, D %d, layers %d, d_ff %d)", c->L, c->H, c->C,
                 c->F, c->D, c->n_layer, c->d_ff);
        return -1;
    }
    m->cfg = *c;
    m->p = p;
    const int D = c->D, NL = c->n_layer, T = c->C + c->F;
    m->emb_w = mk_params_add(p, "embed.weight", 1, 2, D, c->L);
    m->emb_b = mk_params_add(p, "embed.bias", 0, 1, D);
    if (c->block != TS_BLOCK_SHARED && c->block != TS_BLOCK_PAPER) {
        mk_error("invalid S-Mamba block %d", c->block);
        return -1;
    }
    const int per = c->block == TS_BLOCK_PAPER ? 2 : 1;
    m->n_bb = per * NL;
    m->mamba = mk_calloc(m->n_bb, sizeof(mamba_backbone));
    m->macts = mk_calloc(m->n_bb, sizeof(mamba_acts));
    for (int i = 0; i < m->n_bb; i++) mamba_acts_init(&m->macts[i]);
    int **ix[8] = {&m->ln1_w, &m->ln1_b, &m->ff1_w, &m->ff1_b, &m->ff2_w, &m->ff2_b, &m->ln2_w, &m->ln2_b};
    for (int k = 0; k < 8; k++) *ix[k] = mk_calloc(NL, sizeof(int));
    char nm[MK_NAME_MAX];
    for (int l = 0; l < NL; l++) {
        mamba_cfg mc;
        mamba_cfg_default(&mc, D, 1);
        mc.d_state = c->d_state;
        mc.d_conv = c->d_conv;
        mc.expand = c->expand;
        mc.final_norm = 0;
        if (c->block == TS_BLOCK_PAPER) {
            /* two complete Mamba modules, no norm before them (x + mamba(x)) */
            mc.n_dir = 1;
            mc.norm = MK_NORM_NONE;
            snprintf(nm, sizeof nm, "enc.%d.mamba_f.", l);
            if (mamba_backbone_declare(&m->mamba[2 * l], p, nm, &mc)) return -1;
            snprintf(nm, sizeof nm, "enc.%d.mamba_r.", l);
            if (mamba_backbone_declare(&m->mamba[2 * l + 1], p, nm, &mc)) return -1;
        } else {
            mc.n_dir = 2;
            mc.merge = MK_MERGE_SUM;
            snprintf(nm, sizeof nm, "enc.%d.mamba.", l);
            if (mamba_backbone_declare(&m->mamba[l], p, nm, &mc)) return -1;
        }
#define ADD(field, suffix, decay, ...) \
    (snprintf(nm, sizeof nm, "enc.%d.%s", l, suffix), m->field[l] = mk_params_add(p, nm, decay, __VA_ARGS__))
        ADD(ln1_w, "norm1.weight", 0, 1, D);
        ADD(ln1_b, "norm1.bias", 0, 1, D);
        ADD(ff1_w, "ffn1.weight", 1, 2, c->d_ff, D);
        ADD(ff1_b, "ffn1.bias", 0, 1, c->d_ff);
        ADD(ff2_w, "ffn2.weight", 1, 2, D, c->d_ff);
        ADD(ff2_b, "ffn2.bias", 0, 1, D);
        ADD(ln2_w, "norm2.weight", 0, 1, D);
        ADD(ln2_b, "norm2.bias", 0, 1, D);
#undef ADD
    }
    m->lnf_w = mk_params_add(p, "norm_f.weight", 0, 1, D);
    m->lnf_b = mk_params_add(p, "norm_f.bias", 0, 1, D);
    m->head_w = mk_params_add(p, "head.weight", 1, 2, c->H, D);
    m->head_b = mk_params_add(p, "head.bias", 0, 1, c->H);
    m->orders[0] = mk_malloc(sizeof(int) * T);
    m->orders[1] = mk_malloc(sizeof(int) * T);
    mk_order_identity(m->orders[0], T);
    mk_order_reverse(m->orders[1], T);
    return 0;
}

void ts_smamba_init(ts_smamba *m, mk_rng *rng) {
    const ts_smamba_cfg *c = &m->cfg;
    mk_params *p = m->p;
    mk_init_linear(mk_param(p, m->emb_w), mk_param(p, m->emb_b), c->D, c->L, rng);
    const int per = m->n_bb / c->n_layer;
    for (int l = 0; l < c->n_layer; l++) {
        for (int k = 0; k < per; k++) mamba_backbone_init(&m->mamba[per * l + k], rng);
        mk_init_const(mk_param(p, m->ln1_w[l]), c->D, 1.f);
        mk_init_const(mk_param(p, m->ln1_b[l]), c->D, 0.f);
        mk_init_linear(mk_param(p, m->ff1_w[l]), mk_param(p, m->ff1_b[l]), c->d_ff, c->D, rng);
        mk_init_linear(mk_param(p, m->ff2_w[l]), mk_param(p, m->ff2_b[l]), c->D, c->d_ff, rng);
        mk_init_const(mk_param(p, m->ln2_w[l]), c->D, 1.f);
        mk_init_const(mk_param(p, m->ln2_b[l]), c->D, 0.f);
    }
    mk_init_const(mk_param(p, m->lnf_w), c->D, 1.f);
    mk_init_const(mk_param(p, m->lnf_b), c->D, 0.f);
    mk_init_linear(mk_param(p, m->head_w), mk_param(p, m->head_b), c->H, c->D, rng);
}

void ts_smamba_free(ts_smamba *m) {
    if (m->mamba)
        for (int i = 0; i < m->n_bb; i++) {
            mamba_backbone_free(&m->mamba[i]);
            mamba_acts_free(&m->macts[i]);
        }
    free(m->mamba);
    free(m->macts);
    int *ix[8] = {m->ln1_w, m->ln1_b, m->ff1_w, m->ff1_b, m->ff2_w, m->ff2_b, m->ln2_w, m->ln2_b};
    for (int k = 0; k < 8; k++) free(ix[k]);
    free(m->orders[0]);
    free(m->orders[1]);
    free(m->buf);
    memset(m, 0, sizeof *m);
}

/* RevIN, then one token per variate (its normalised window) and per covariate, into a->tok
 * (the CPU forward's first step and the GPU step's input) */
static void sm_tokens(const ts_smamba *m, sm_acts *a, const float *x, const float *mark, int B) {
    const int L = m->cfg.L, C = m->cfg.C, F = m->cfg.F, T = C + F;
    ts_revin_norm(a->xn, a->rmean, a->rstd, x, B, L, C);
    for (int b = 0; b < B; b++) {
        for (int cc = 0; cc < C; cc++) {
            float *t = a->tok + ((size_t)b * T + cc) * L;
            for (int l = 0; l < L; l++) t[l] = a->xn[((size_t)b * L + l) * C + cc];
        }
        for (int f = 0; f < F; f++) {
            float *t = a->tok + ((size_t)b * T + C + f) * L;
            for (int l = 0; l < L; l++) t[l] = mark[((size_t)b * L + l) * F + f];
        }
    }
}

void ts_smamba_forward(ts_smamba *m, float *pred, const float *x, const float *mark, int B) {
    const ts_smamba_cfg *c = &m->cfg;
    const mk_params *p = m->p;
    const int L = c->L, H = c->H, C = c->C, F = c->F, T = C + F, D = c->D, Fd = c->d_ff, M = B * T;
    sm_layer ly[16];
    sm_acts a;
    a.ly = ly;
    sm_layout(m, &a, B);
    sm_tokens(m, &a, x, mark, B);
    if (!m->training && m->n_bb > 0 && m->mamba[0].device == MK_DEV_CUDA) {
        /* inference with the backbones on a GPU: the whole forward there (validation passes,
         * forecasts, evaluations), not the embedding, FFN and head here around per-call backbones */
        mk_ts_frontend fe;
        ts_smamba_cuda_frontend(m, &fe);
        m->drop_on = 0;
        if (!mk_cuda_ts_forward(m->mamba, m->macts, m->n_bb, &fe, a.tok, a.rmean, a.rstd, B, pred)) return;
        static int told;
        if (!told++) fprintf(stderr, "mambakit: S-Mamba's GPU forward failed (%s); the embedding, FFN and head run "
                                     "on the CPU around the GPU's backbones\n", mk_last_error());
    }
    linear_forward(a.e0, a.tok, mk_param(p, m->emb_w), mk_param(p, m->emb_b), M, L, D);
    const int drop = m->drop_on = m->training && c->dropout > 0;
    if (drop) dropout_forward(a.e0, a.mask_e, a.e0, (size_t)M * D, c->dropout, &m->rng);
    const int *const ord[2] = {m->orders[0], m->orders[1]};
    for (int l = 0; l < c->n_layer; l++) {
        sm_layer *y = &ly[l];
        if (c->block == TS_BLOCK_PAPER) {
            /* h = (in + Mamba_f(in)) + (in + flip(Mamba_r(flip(in)))) - in;
             * a.d1 (backward scratch) holds the reverse module's output */
            mamba_backbone_forward(&m->mamba[2 * l], &m->macts[2 * l], y->h, y->in, B, T, NULL, 0, NULL);
            mamba_backbone_forward(&m->mamba[2 * l + 1], &m->macts[2 * l + 1], a.d1, y->in, B, T, ord + 1, 0, NULL);
            for (size_t i = 0; i < (size_t)M * D; i++) y->h[i] += a.d1[i] - y->in[i];
        } else {
            mamba_backbone_forward(&m->mamba[l], &m->macts[l], y->h, y->in, B, T, ord, 0, NULL);
        }
        layernorm_forward(y->n1, y->mean1, y->rstd1, y->h, mk_param(p, m->ln1_w[l]), mk_param(p, m->ln1_b[l]), M, D,
                          1e-5f);
        linear_forward(y->a1, y->n1, mk_param(p, m->ff1_w[l]), mk_param(p, m->ff1_b[l]), M, D, Fd);
        gelu_forward(y->g1, y->a1, (size_t)M * Fd);
        if (drop) dropout_forward(y->g1, y->mask_g, y->g1, (size_t)M * Fd, c->dropout, &m->rng);
        linear_forward(y->r2, y->g1, mk_param(p, m->ff2_w[l]), mk_param(p, m->ff2_b[l]), M, Fd, D);
        if (drop) dropout_forward(y->r2, y->mask_f, y->r2, (size_t)M * D, c->dropout, &m->rng);
        vec_acc(y->r2, y->n1, (size_t)M * D);
        layernorm_forward(y->out, y->mean2, y->rstd2, y->r2, mk_param(p, m->ln2_w[l]), mk_param(p, m->ln2_b[l]), M,
                          D, 1e-5f);
    }
    layernorm_forward(a.zf, a.meanf, a.rstdf, ly[c->n_layer - 1].out, mk_param(p, m->lnf_w), mk_param(p, m->lnf_b),
                      M, D, 1e-5f);
    for (int b = 0; b < B; b++)
        memcpy(a.zv + (size_t)b * C * D, a.zf + (size_t)b * T * D, sizeof(float) * (size_t)C * D);
    linear_forward(a.hout, a.zv, mk_param(p, m->head_w), mk_param(p, m->head_b), B * C, D, H);
    /* (B, C, H) -> (B, H, C), de-normalised */
    for (int b = 0; b < B; b++)
        for (int cc = 0; cc < C; cc++) {
            const float *hrow = a.hout + ((size_t)b * C + cc) * H;
            float mu = a.rmean[(size_t)b * C + cc], sd = a.rstd[(size_t)b * C + cc];
            for (int h = 0; h < H; h++) pred[((size_t)b * H + h) * C + cc] = hrow[h] * sd + mu;
        }
}

void ts_smamba_backward(ts_smamba *m, const float *dpred) {
    const ts_smamba_cfg *c = &m->cfg;
    const mk_params *p = m->p;
    const int B = m->B, L = c->L, H = c->H, C = c->C, T = C + c->F, D = c->D, Fd = c->d_ff, M = B * T;
    sm_layer ly[16];
    sm_acts a;
    a.ly = ly;
    sm_layout(m, &a, B);
    for (int b = 0; b < B; b++)
        for (int cc = 0; cc < C; cc++) {
            float *d = a.dhout + ((size_t)b * C + cc) * H;
            float sd = a.rstd[(size_t)b * C + cc];
            for (int h = 0; h < H; h++) d[h] = dpred[((size_t)b * H + h) * C + cc] * sd;
        }
    memset(a.dzv, 0, sizeof(float) * (size_t)B * C * D);
    linear_backward(a.dzv, mk_grad(p, m->head_w), mk_grad(p, m->head_b), a.dhout, a.zv, mk_param(p, m->head_w),
                    B * C, D, H);
    /* d1 = d(zf): variate rows get the head gradient, covariate rows nothing */
    memset(a.d1, 0, sizeof(float) * (size_t)M * D);
    for (int b = 0; b < B; b++)
        memcpy(a.d1 + (size_t)b * T * D, a.dzv + (size_t)b * C * D, sizeof(float) * (size_t)C * D);
    /* d2 = d(last layer out) */
    memset(a.d2, 0, sizeof(float) * (size_t)M * D);
    layernorm_backward(a.d2, mk_grad(p, m->lnf_w), mk_grad(p, m->lnf_b), a.d1, ly[c->n_layer - 1].out,
                       mk_param(p, m->lnf_w), a.meanf, a.rstdf, M, D);
    for (int l = c->n_layer - 1; l >= 0; l--) {
        sm_layer *y = &ly[l];
        /* d2 = d(out) -> d3 = d(r2) */
        memset(a.d3, 0, sizeof(float) * (size_t)M * D);
        layernorm_backward(a.d3, mk_grad(p, m->ln2_w[l]), mk_grad(p, m->ln2_b[l]), a.d2, y->r2,
                           mk_param(p, m->ln2_w[l]), y->mean2, y->rstd2, M, D);
        /* r2 = n1 + ffn(n1): d1 = d(n1) */
        memcpy(a.d1, a.d3, sizeof(float) * (size_t)M * D);
        memset(a.dff, 0, sizeof(float) * (size_t)M * Fd);
        if (m->drop_on) /* r2 = n1 + drop(f): d(f) = d3 * mask_f (d1 already holds d(n1)) */
            for (size_t i = 0; i < (size_t)M * D; i++) a.d3[i] *= y->mask_f[i];
        linear_backward(a.dff, mk_grad(p, m->ff2_w[l]), mk_grad(p, m->ff2_b[l]), a.d3, y->g1,
                        mk_param(p, m->ff2_w[l]), M, Fd, D);
        /* gelu backward accumulates: reuse a1's gradient in place via a temp pass */
        float *dg = a.dff;
        if (m->drop_on)
            for (size_t i = 0; i < (size_t)M * Fd; i++) dg[i] *= y->mask_g[i];
        gelu_backward_inplace(dg, y->a1, (size_t)M * Fd);
        linear_backward(a.d1, mk_grad(p, m->ff1_w[l]), mk_grad(p, m->ff1_b[l]), dg, y->n1, mk_param(p, m->ff1_w[l]),
                        M, D, Fd);
        /* n1 = LN1(h): d3 = d(h) */
        memset(a.d3, 0, sizeof(float) * (size_t)M * D);
        layernorm_backward(a.d3, mk_grad(p, m->ln1_w[l]), mk_grad(p, m->ln1_b[l]), a.d1, y->h,
                           mk_param(p, m->ln1_w[l]), y->mean1, y->rstd1, M, D);
        /* h = backbone(in): d2 = d(in) */
        memset(a.d2, 0, sizeof(float) * (size_t)M * D);
        if (c->block == TS_BLOCK_PAPER) { /* both modules add d(h) through their residual: count it once */
            mamba_backbone_backward(&m->mamba[2 * l], &m->macts[2 * l], a.d2, a.d3);
            mamba_backbone_backward(&m->mamba[2 * l + 1], &m->macts[2 * l + 1], a.d2, a.d3);
            for (size_t i = 0; i < (size_t)M * D; i++) a.d2[i] -= a.d3[i];
        } else {
            mamba_backbone_backward(&m->mamba[l], &m->macts[l], a.d2, a.d3);
        }
    }
    if (m->drop_on)
        for (size_t i = 0; i < (size_t)M * D; i++) a.d2[i] *= a.mask_e[i];
    linear_backward(NULL, mk_grad(p, m->emb_w), mk_grad(p, m->emb_b), a.d2, a.tok, mk_param(p, m->emb_w), M, L, D);
}

void ts_smamba_cuda_frontend(const ts_smamba *m, mk_ts_frontend *f) {
    const ts_smamba_cfg *c = &m->cfg;
    memset(f, 0, sizeof *f);
    f->L = c->L, f->H = c->H, f->C = c->C, f->F = c->F, f->D = c->D, f->d_ff = c->d_ff, f->n_layer = c->n_layer;
    f->paper = c->block == TS_BLOCK_PAPER;
    f->dropout = c->dropout;
    f->emb_w = m->emb_w, f->emb_b = m->emb_b;
    for (int l = 0; l < c->n_layer && l < MK_TS_MAX_LAYER; l++) {
        f->ln1_w[l] = m->ln1_w[l], f->ln1_b[l] = m->ln1_b[l], f->ff1_w[l] = m->ff1_w[l], f->ff1_b[l] = m->ff1_b[l];
        f->ff2_w[l] = m->ff2_w[l], f->ff2_b[l] = m->ff2_b[l], f->ln2_w[l] = m->ln2_w[l], f->ln2_b[l] = m->ln2_b[l];
    }
    f->lnf_w = m->lnf_w, f->lnf_b = m->lnf_b, f->head_w = m->head_w, f->head_b = m->head_b;
}

int ts_smamba_train_step_cuda(ts_smamba *m, const float *x, const float *mark, const float *y, int B,
                              const mk_adamw_cfg *oc, float *loss) {
    const ts_smamba_cfg *c = &m->cfg;
    const int C = c->C, F = c->F, T = C + F;
    const size_t M = (size_t)B * T, MD = M * c->D, MF = M * c->d_ff;
    if (B < 1 || (F > 0 && !mark)) {
        mk_error("S-Mamba GPU step: empty batch or no covariates");
        return -1;
    }
    sm_layer ly[16];
    sm_acts a;
    a.ly = ly;
    sm_layout(m, &a, B);
    sm_tokens(m, &a, x, mark, B); /* as ts_smamba_forward: the host prepares the tokens */
    /* its dropout draws, by the same calls in the same order (the embedding's, then per layer
     * the FFN activation's and output's), into one array that goes up with the batch */
    const int drop = c->dropout > 0;
    float *masks = NULL, *scratch = NULL;
    if (drop) {
        masks = mk_malloc(sizeof(float) * (MD + (size_t)c->n_layer * (MF + MD)));
        scratch = mk_calloc(MF > MD ? MF : MD, sizeof(float));
        float *q = masks;
        dropout_forward(scratch, q, scratch, MD, c->dropout, &m->rng), q += MD;
        for (int l = 0; l < c->n_layer; l++) {
            dropout_forward(scratch, q, scratch, MF, c->dropout, &m->rng), q += MF;
            dropout_forward(scratch, q, scratch, MD, c->dropout, &m->rng), q += MD;
        }
    }
    m->drop_on = drop;
    mk_ts_frontend fe;
    ts_smamba_cuda_frontend(m, &fe);
    int rc = mk_cuda_ts_train_step(m->mamba, m->macts, m->n_bb, &fe, a.tok, a.rmean, a.rstd, y, masks, B, oc, loss);
    free(masks), free(scratch);
    return rc;
}
