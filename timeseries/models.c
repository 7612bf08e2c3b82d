/* models.c — RevIN, the baselines (last value, seasonal naive, DLinear), the
 * standardised series with its windows, and the training harness shared by
 * every model (same windows, same loss, same metrics). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/ops.h"
#include "core/optim.h"
#include "ts.h"

const char *ts_model_name(int kind) {
    switch (kind) {
    case TS_MODEL_NAIVE: return "naive";
    case TS_MODEL_SNAIVE: return "snaive";
    case TS_MODEL_DLINEAR: return "dlinear";
    case TS_MODEL_SMAMBA: return "smamba";
    case TS_MODEL_ENSEMBLE: return "ensemble";
    default: return "?";
    }
}

/* ---------------------------------------------------------------- RevIN */

/* ref: Kim et al. 2022 (RevIN); iTransformer/S-Mamba use_norm: var unbiased=False, +1e-5. */
void ts_revin_norm(float *xn, float *mean, float *std, const float *x, int B, int L, int C) {
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const float *xb = x + (size_t)b * L * C + c;
            double s = 0, v = 0;
            for (int l = 0; l < L; l++) s += xb[(size_t)l * C];
            double mu = s / L;
            for (int l = 0; l < L; l++) v += (xb[(size_t)l * C] - mu) * (xb[(size_t)l * C] - mu);
            float sd = (float)sqrt(v / L + 1e-5);
            mean[(size_t)b * C + c] = (float)mu;
            std[(size_t)b * C + c] = sd;
            float *ob = xn + (size_t)b * L * C + c;
            for (int l = 0; l < L; l++) ob[(size_t)l * C] = (float)((xb[(size_t)l * C] - mu) / sd);
        }
}

void ts_revin_denorm(float *y, const float *yn, const float *mean, const float *std, int B, int H, int C) {
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int c = 0; c < C; c++) {
                size_t i = ((size_t)b * H + h) * C + c;
                y[i] = yn[i] * std[(size_t)b * C + c] + mean[(size_t)b * C + c];
            }
}

/* ------------------------------------------------------------ baselines */

void ts_naive_forward(float *pred, const float *x, int B, int L, int H, int C) {
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            memcpy(pred + ((size_t)b * H + h) * C, x + ((size_t)b * L + L - 1) * C, sizeof(float) * C);
}

void ts_snaive_forward(float *pred, const float *x, int B, int L, int H, int C, int P) {
    MK_ASSERT(P >= 1 && P <= L);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            memcpy(pred + ((size_t)b * H + h) * C, x + ((size_t)b * L + L - P + h % P) * C, sizeof(float) * C);
}

/* ref: DLinear series_decomp: AvgPool1d(k, stride 1) over the series padded
 * with (k-1)/2 copies of its first and last value, for each of `cols`
 * adjacent columns of x (n, cols). A running sum in double per column: each
 * step adds the row entering the window and takes away the one leaving it,
 * so the cost is O(n), not O(n k) (k is 25 by default: the direct sum was
 * 17 % of a whole `forecast` fit), and the loop runs along the columns, where
 * it vectorises. Sums of floats in double are exact unless the values span
 * more than 2^29, so this gives the direct sum's result. acc: cols doubles. */
void ts_moving_avg(float *trend, const float *x, int n, int cols, int k, double *acc) {
    const int pad = (k - 1) / 2;
    const size_t C = (size_t)cols;
#define MK_ROW(j) (x + (size_t)((j) < 0 ? 0 : (j) >= n ? n - 1 : (j)) * C)
    for (size_t c = 0; c < C; c++) acc[c] = 0;
    for (int j = -pad; j <= k - 1 - pad; j++) {
        const float *r = MK_ROW(j);
#pragma omp simd
        for (size_t c = 0; c < C; c++) acc[c] += r[c];
    }
    for (int i = 0; i < n; i++) {
        const float *in = MK_ROW(i - pad + k), *out = MK_ROW(i - pad);
        float *t = trend + (size_t)i * C;
#pragma omp simd
        for (size_t c = 0; c < C; c++) {
            t[c] = (float)(acc[c] / k);
            acc[c] += (double)in[c] - (double)out[c];
        }
    }
#undef MK_ROW
}

int ts_dlinear_declare(ts_dlinear *m, mk_params *p, int L, int H, int C, int kernel) {
    memset(m, 0, sizeof *m);
    if (L < 1 || H < 1 || C < 1 || kernel < 1 || kernel % 2 == 0) {
        mk_error("invalid DLinear config (L %d, H %d, C %d, kernel %d)", L, H, C, kernel);
        return -1;
    }
    m->L = L, m->H = H, m->C = C, m->k = kernel, m->p = p;
    m->ws = mk_params_add(p, "seasonal.weight", 0, 2, H, L);
    m->bs = mk_params_add(p, "seasonal.bias", 0, 1, H);
    m->wt = mk_params_add(p, "trend.weight", 0, 2, H, L);
    m->bt = mk_params_add(p, "trend.bias", 0, 1, H);
    return 0;
}

void ts_dlinear_init(ts_dlinear *m, mk_rng *rng) {
    /* ref: DLinear initialises both weight matrices to 1/L (an average). */
    mk_init_linear(mk_param(m->p, m->ws), mk_param(m->p, m->bs), m->H, m->L, rng);
    mk_init_linear(mk_param(m->p, m->wt), mk_param(m->p, m->bt), m->H, m->L, rng);
    mk_init_const(mk_param(m->p, m->ws), (size_t)m->H * m->L, 1.f / m->L);
    mk_init_const(mk_param(m->p, m->wt), (size_t)m->H * m->L, 1.f / m->L);
}

void ts_dlinear_free(ts_dlinear *m) {
    free(m->buf);
    memset(m, 0, sizeof *m);
}

/* The windows are laid out time-major, x (L, B·C): the moving average then runs
 * along the rows, vectorised across all B·C series at once, each linear layer
 * is one GEMM with B·C columns, and only rows of C floats are copied in and
 * out. buf: acc (B·C doubles), seas (L, B·C), trend (L, B·C), out (H, B·C),
 * dout (H, B·C). */
void ts_dlinear_forward(ts_dlinear *m, float *pred, const float *x, int B) {
    const int L = m->L, H = m->H, C = m->C, R = B * C;
    if (B > m->cap) {
        free(m->buf);
        m->buf = mk_malloc(sizeof(float) * (size_t)R * (2 + 2 * L + 2 * H));
        m->cap = B;
    }
    m->B = B;
    double *acc = (double *)m->buf;
    float *seas = m->buf + 2 * (size_t)R, *trend = seas + (size_t)R * L, *out = trend + (size_t)R * L;
    for (int b = 0; b < B; b++)
        for (int l = 0; l < L; l++)
            memcpy(seas + (size_t)l * R + (size_t)b * C, x + ((size_t)b * L + l) * C, sizeof(float) * C);
    ts_moving_avg(trend, seas, L, R, m->k, acc);
    for (size_t i = 0; i < (size_t)L * R; i++) seas[i] -= trend[i];
    const float *bs = mk_param(m->p, m->bs), *bt = mk_param(m->p, m->bt);
    for (int h = 0; h < H; h++) {
        const float bias = bs[h] + bt[h];
        for (int r = 0; r < R; r++) out[(size_t)h * R + r] = bias;
    }
    matmul_acc(out, mk_param(m->p, m->ws), seas, H, R, L, 0);
    matmul_acc(out, mk_param(m->p, m->wt), trend, H, R, L, 0);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            memcpy(pred + ((size_t)b * H + h) * C, out + (size_t)h * R + (size_t)b * C, sizeof(float) * C);
}

void ts_dlinear_backward(ts_dlinear *m, const float *dpred) {
    const int L = m->L, H = m->H, C = m->C, B = m->B, R = B * C;
    float *seas = m->buf + 2 * (size_t)R, *trend = seas + (size_t)R * L, *dout = trend + (size_t)R * L + (size_t)R * H;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            memcpy(dout + (size_t)h * R + (size_t)b * C, dpred + ((size_t)b * H + h) * C, sizeof(float) * C);
    /* dW (H, L) += dout (H, R) @ x^T (R, L); db[h] += the sum of dout's row h */
    matmul_acc(mk_grad(m->p, m->ws), dout, seas, H, L, R, 1);
    matmul_acc(mk_grad(m->p, m->wt), dout, trend, H, L, R, 1);
    float *gbs = mk_grad(m->p, m->bs), *gbt = mk_grad(m->p, m->bt);
    for (int h = 0; h < H; h++) {
        float sum = 0;
        for (int r = 0; r < R; r++) sum += dout[(size_t)h * R + r];
        gbs[h] += sum, gbt[h] += sum;
    }
}

/* --------------------------------------------------------------- series */

void ts_series_build(ts_series *s, const ts_table *t, int n_fit, char freq) {
    memset(s, 0, sizeof *s);
    const int n = t->n_rows, C = t->n_cols;
    s->n = n, s->C = C;
    s->F = t->time_kind == TS_TIME_DATE ? ts_time_nfeat(freq) : 0;
    s->x = mk_malloc(sizeof(float) * (size_t)n * C);
    s->mean = mk_malloc(sizeof(float) * C);
    s->std = mk_malloc(sizeof(float) * C);
    if (n_fit < 1 || n_fit > n) n_fit = n;
    for (int c = 0; c < C; c++) {
        double mu = 0, v = 0;
        for (int r = 0; r < n_fit; r++) mu += t->x[(size_t)r * C + c];
        mu /= n_fit;
        for (int r = 0; r < n_fit; r++) v += (t->x[(size_t)r * C + c] - mu) * (t->x[(size_t)r * C + c] - mu);
        double sd = sqrt(v / n_fit);
        if (!(sd > 1e-12 * (fabs(mu) + 1))) sd = 1; /* constant column */
        s->mean[c] = (float)mu;
        s->std[c] = (float)sd;
        mu = s->mean[c], sd = s->std[c]; /* the stored (float) scaler, so a saved model reproduces it exactly */
        for (int r = 0; r < n; r++) s->x[(size_t)r * C + c] = (float)((t->x[(size_t)r * C + c] - mu) / sd);
    }
    if (s->F) {
        s->mark = mk_malloc(sizeof(float) * (size_t)n * s->F);
        for (int r = 0; r < n; r++) ts_time_features(s->mark + (size_t)r * s->F, t->t[r], freq);
    }
}

void ts_series_free(ts_series *s) {
    free(s->x);
    free(s->mark);
    free(s->mean);
    free(s->std);
    memset(s, 0, sizeof *s);
}

void ts_window(const ts_series *s, const ts_split *sp, int w, int L, int H, float *x, float *y, float *mark) {
    int r0 = sp->start + w;
    MK_ASSERT(w >= 0 && r0 + L + (y ? H : 0) <= sp->end);
    memcpy(x, s->x + (size_t)r0 * s->C, sizeof(float) * (size_t)L * s->C);
    if (y) memcpy(y, s->x + (size_t)(r0 + L) * s->C, sizeof(float) * (size_t)H * s->C);
    if (mark && s->F) memcpy(mark, s->mark + (size_t)r0 * s->F, sizeof(float) * (size_t)L * s->F);
}

/* ---------------------------------------------------------------- model */

static int build(ts_model *m, int kind, const ts_smamba_cfg *sm, int L, int H, int C, int F, int period,
                 uint64_t seed, const char *match) {
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->L = L, m->H = H, m->C = C, m->F = F, m->period = period;
    mk_params_init(&m->p);
    mk_rng rng;
    mk_rng_seed(&rng, seed);
    if (kind == TS_MODEL_SNAIVE && (period < 1 || period > L)) {
        mk_error("seasonal naive: period %d is not in [1, lookback %d]", period, L);
        return -1;
    }
    const int has_sm = kind == TS_MODEL_SMAMBA || kind == TS_MODEL_ENSEMBLE;
    const int has_dl = kind == TS_MODEL_DLINEAR || kind == TS_MODEL_ENSEMBLE;
    if (!has_sm && !has_dl) return 0;
    /* an ensemble declares S-Mamba's tensors, then DLinear's, into the one table */
    if (has_sm) {
        ts_smamba_cfg c = *sm;
        c.L = L, c.H = H, c.C = C, c.F = F;
        m->sm = c;
        if (ts_smamba_declare(&m->smamba, &m->p, &c)) {
            ts_model_free(m); /* what the declaration allocated before it failed */
            return -1;
        }
    }
    if (has_dl && ts_dlinear_declare(&m->dlinear, &m->p, L, H, C, L >= 25 ? 25 : (L % 2 ? L : L - 1))) {
        ts_model_free(m);
        return -1;
    }
    if (match && mk_ckpt_check_table(match, "forecast", &m->p)) {
        ts_model_free(m);
        return -1;
    }
    mk_params_alloc(&m->p);
    if (has_sm) {
        ts_smamba_init(&m->smamba, &rng);
        mk_rng_seed(&m->smamba.rng, seed ^ 0xd50b0a7ULL);
    }
    if (has_dl) ts_dlinear_init(&m->dlinear, &rng);
    return 0;
}

int ts_model_create(ts_model *m, int kind, const ts_smamba_cfg *sm, int L, int H, int C, int F, int period,
                    uint64_t seed) {
    return build(m, kind, sm, L, H, C, F, period, seed, NULL);
}

int ts_model_create_matching(ts_model *m, int kind, const ts_smamba_cfg *sm, int L, int H, int C, int F, int period,
                             const char *match) {
    return build(m, kind, sm, L, H, C, F, period, 0, match);
}

void ts_model_relink(ts_model *m) {
    m->dlinear.p = &m->p;
    m->smamba.p = &m->p;
    if (m->kind == TS_MODEL_SMAMBA || m->kind == TS_MODEL_ENSEMBLE)
        for (int i = 0; i < m->smamba.n_bb; i++) m->smamba.mamba[i].p = &m->p;
}

int ts_model_use_device(ts_model *m, int dev) {
    if ((m->kind != TS_MODEL_SMAMBA && m->kind != TS_MODEL_ENSEMBLE) || dev != MK_DEV_CUDA) return MK_DEV_CPU;
    mamba_backbone **bbs = mk_malloc(sizeof(*bbs) * m->smamba.n_bb);
    for (int i = 0; i < m->smamba.n_bb; i++) bbs[i] = &m->smamba.mamba[i];
    int d = mamba_backbones_use_device(bbs, m->smamba.n_bb, dev);
    free(bbs);
    return d;
}

void ts_model_free(ts_model *m) {
    if (m->kind == TS_MODEL_SMAMBA || m->kind == TS_MODEL_ENSEMBLE) ts_smamba_free(&m->smamba);
    if (m->kind == TS_MODEL_DLINEAR || m->kind == TS_MODEL_ENSEMBLE) ts_dlinear_free(&m->dlinear);
    mk_params_free(&m->p);
    memset(m, 0, sizeof *m);
}

void ts_model_predict(ts_model *m, float *pred, const float *x, const float *mark, int B) {
    switch (m->kind) {
    case TS_MODEL_NAIVE: ts_naive_forward(pred, x, B, m->L, m->H, m->C); break;
    case TS_MODEL_SNAIVE: ts_snaive_forward(pred, x, B, m->L, m->H, m->C, m->period); break;
    case TS_MODEL_DLINEAR: ts_dlinear_forward(&m->dlinear, pred, x, B); break;
    case TS_MODEL_SMAMBA: ts_smamba_forward(&m->smamba, pred, x, mark, B); break;
    case TS_MODEL_ENSEMBLE: {
        const size_t n = (size_t)B * m->H * m->C;
        float *dl = mk_malloc(sizeof(float) * n);
        ts_smamba_forward(&m->smamba, pred, x, mark, B);
        ts_dlinear_forward(&m->dlinear, dl, x, B);
        for (size_t i = 0; i < n; i++) pred[i] = 0.5f * (pred[i] + dl[i]);
        free(dl);
        break;
    }
    default: MK_ASSERT(0);
    }
}

int ts_model_ensemble(ts_model *e, const ts_model *smamba, const ts_model *dlinear) {
    MK_ASSERT(smamba->kind == TS_MODEL_SMAMBA && dlinear->kind == TS_MODEL_DLINEAR);
    MK_ASSERT(smamba->L == dlinear->L && smamba->H == dlinear->H && smamba->C == dlinear->C);
    if (ts_model_create(e, TS_MODEL_ENSEMBLE, &smamba->sm, smamba->L, smamba->H, smamba->C, smamba->F, 0, 0))
        return -1;
    /* the table is S-Mamba's tensors then DLinear's, in the members' own order */
    const ts_model *mem[2] = {smamba, dlinear};
    int copied = 0;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < mem[k]->p.n; i++, copied++) {
            MK_ASSERT(copied < e->p.n);
            const mk_tensor *a = &e->p.t[copied], *b = &mem[k]->p.t[i];
            MK_ASSERT(!strcmp(a->name, b->name) && a->numel == b->numel);
            memcpy(mk_param(&e->p, copied), mk_param(&mem[k]->p, i), sizeof(float) * a->numel);
        }
    MK_ASSERT(copied == e->p.n);
    return 0;
}

static void eval_stride(ts_model *m, const ts_series *s, const ts_split *sp, int stride, double *mse,
                        double *mae) {
    const int L = m->L, H = m->H, C = m->C, F = s->F, nw = (ts_split_windows(sp, L, H) + stride - 1) / stride;
    const int BS = 128;
    float *x = mk_malloc(sizeof(float) * (size_t)BS * L * C), *y = mk_malloc(sizeof(float) * (size_t)BS * H * C);
    float *pr = mk_malloc(sizeof(float) * (size_t)BS * H * C);
    float *mk = F ? mk_malloc(sizeof(float) * (size_t)BS * L * F) : NULL;
    double se = 0, ae = 0;
    for (int w0 = 0; w0 < nw; w0 += BS) {
        int B = nw - w0 < BS ? nw - w0 : BS;
        for (int b = 0; b < B; b++)
            ts_window(s, sp, (w0 + b) * stride, L, H, x + (size_t)b * L * C, y + (size_t)b * H * C,
                      mk ? mk + (size_t)b * L * F : NULL);
        ts_model_predict(m, pr, x, mk, B);
        for (size_t i = 0; i < (size_t)B * H * C; i++) {
            double d = (double)pr[i] - y[i];
            se += d * d;
            ae += fabs(d);
        }
    }
    double n = (double)nw * H * C;
    *mse = nw ? se / n : NAN;
    *mae = nw ? ae / n : NAN;
    free(x), free(y), free(pr), free(mk);
}

void ts_model_eval(ts_model *m, const ts_series *s, const ts_split *sp, double *mse, double *mae) {
    eval_stride(m, s, sp, 1, mse, mae);
}

/* type1 sets lr·0.5^(k-1) after epoch k (1-based; utils/tools.py adjust_learning_rate, called
 * with epoch + 1), so epochs 1 and 2 both run at the full lr and the halving starts at the
 * third: lr·0.5^max(0, ep-1) for 0-based ep. */
float ts_type1_lr(float lr, int ep) { return lr * powf(0.5f, (float)(ep > 0 ? ep - 1 : 0)); }

double ts_model_fit(ts_model *m, const ts_series *s, const ts_split *tr, const ts_split *va, const ts_train_cfg *tc) {
    double vmse, vmae;
    const int vs = tc->val_stride > 1 ? tc->val_stride : 1;
    if (m->kind == TS_MODEL_NAIVE || m->kind == TS_MODEL_SNAIVE || m->kind == TS_MODEL_ENSEMBLE) {
        /* nothing to train here: an ensemble's members were fitted on their own (ts_model_ensemble) */
        eval_stride(m, s, va, vs, &vmse, &vmae);
        return vmse;
    }
    const int L = m->L, H = m->H, C = m->C, F = s->F, BS = tc->batch > 0 ? tc->batch : 32;
    const int nw = ts_split_windows(tr, L, H);
    int per_epoch = tc->max_train_windows > 0 && tc->max_train_windows < nw ? tc->max_train_windows : nw;
    /* the reference's train loader drops the last partial batch (drop_last=True): a batch of a
     * few windows would get a full Adam step; keep one batch when there are fewer windows */
    int steps = per_epoch >= BS ? per_epoch / BS : 1;
    mk_rng rng;
    mk_rng_seed(&rng, tc->seed ^ 0x5eedULL);
    int *perm = mk_malloc(sizeof(int) * (nw ? nw : 1));
    for (int i = 0; i < nw; i++) perm[i] = i;
    float *x = mk_malloc(sizeof(float) * (size_t)BS * L * C), *y = mk_malloc(sizeof(float) * (size_t)BS * H * C);
    float *pr = mk_malloc(sizeof(float) * (size_t)BS * H * C), *dp = mk_malloc(sizeof(float) * (size_t)BS * H * C);
    float *mk = F ? mk_malloc(sizeof(float) * (size_t)BS * L * F) : NULL;
    float *best = mk_malloc(sizeof(float) * m->p.total);
    memcpy(best, m->p.data, sizeof(float) * m->p.total);
    /* ref: Autoformer/iTransformer/S-Mamba recipe: Adam, MSE, "type1" lr schedule, early
     * stopping on the validation MSE (patience 3). */
    mk_adamw_cfg oc = mk_adamw_defaults(tc->lr, 0);
    oc.weight_decay = 0;
    oc.warmup = 0;
    oc.total = 0;
    oc.clip = 0;
    /* S-Mamba with its backbones on a GPU: every op of the step there (mk_cuda_ts_train_step),
     * the weights resident; they come back to the host (sync_host) before each validation for
     * the best-weights snapshot, which reads the host's table (the validation's forwards run on
     * the device, mk_cuda_ts_forward, uploading that table per batch: small beside the batch) */
    int resident = m->kind == TS_MODEL_SMAMBA && m->smamba.n_bb > 0 && m->smamba.mamba[0].device == MK_DEV_CUDA &&
                   !m->gpu_backbone_only;
    mamba_backbone *owner = resident ? &m->smamba.mamba[0] : NULL;
    double best_v = INFINITY;
    int bad = 0;
    mk_progress pg;
    char extra[160];
    mk_progress_start(&pg, tc->label ? tc->label : ts_model_name(m->kind), (long)tc->epochs * steps);
    double t0 = mk_time();
    long done = 0;
    int out_of_time = 0;
    for (int ep = 0; ep < tc->epochs && nw > 0 && !out_of_time; ep++) {
        oc.lr = ts_type1_lr(tc->lr, ep);
        mk_rng_shuffle(&rng, perm, nw);
        double tl = 0;
        int nb = 0;
        for (int st = 0; st < steps && !out_of_time; st++) {
            int w0 = st * BS, B = per_epoch - w0 < BS ? per_epoch - w0 : BS;
            for (int b = 0; b < B; b++)
                ts_window(s, tr, perm[w0 + b], L, H, x + (size_t)b * L * C, y + (size_t)b * H * C,
                          mk ? mk + (size_t)b * L * F : NULL);
            float loss = 0;
            if (resident && ts_smamba_train_step_cuda(&m->smamba, x, mk, y, B, &oc, &loss)) {
                /* refused before the first launch, or a launch failed: the device's weights and
                 * moments come back if it can give them, and the per-call path goes on from there */
                fprintf(stderr, "mambakit: the GPU training step failed (%s); the rest runs the backbones only on "
                                "the GPU\n",
                        mk_last_error());
                mamba_backbone_cuda_sync_host(owner);
                resident = 0;
            }
            if (!resident) {
                mk_params_zero_grad(&m->p);
                m->smamba.training = 1;
                ts_model_predict(m, pr, x, mk, B);
                m->smamba.training = 0;
                loss = mse_forward_backward(dp, pr, y, (size_t)B * H * C, 1.f);
                if (m->kind == TS_MODEL_SMAMBA) ts_smamba_backward(&m->smamba, dp);
                else ts_dlinear_backward(&m->dlinear, dp);
                mk_adamw_step(&m->p, &oc);
            }
            tl += loss, nb++;
            done++;
            if (tc->verbose) {
                snprintf(extra, sizeof extra, "epoch %d/%d  loss %.4f  best val %.4f", ep + 1, tc->epochs, tl / nb,
                         best_v);
                mk_progress_update(&pg, done, "step", extra);
            }
            /* the budget is checked per step; the partial epoch is still validated */
            if (tc->time_budget > 0 && mk_time() - t0 > tc->time_budget) out_of_time = 1;
        }
        if (resident && mamba_backbone_cuda_sync_host(owner)) {
            /* the device's weights cannot come back: stop here with the best weights so far */
            fprintf(stderr, "mambakit: copying the weights back from the GPU failed (%s); training stops\n",
                    mk_last_error());
            break;
        }
        eval_stride(m, s, va, vs, &vmse, &vmae);
        if (vmse < best_v) {
            best_v = vmse;
            bad = 0;
            memcpy(best, m->p.data, sizeof(float) * m->p.total);
        } else if (++bad >= tc->patience) {
            break;
        }
    }
    if (tc->verbose) {
        snprintf(extra, sizeof extra, "best val mse %.4f", best_v);
        pg.total = done;
        mk_progress_update(&pg, done, "step", extra);
        mk_progress_end(&pg);
    }
    memcpy(m->p.data, best, sizeof(float) * m->p.total);
    free(best), free(perm), free(x), free(y), free(pr), free(dp), free(mk);
    return best_v;
}
