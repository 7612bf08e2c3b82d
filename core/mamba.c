/* mamba.c — Mamba-1 mixer over G scan orders and the residual pre-norm backbone
 * (math and shapes in mamba.h). T = B*L tokens throughout. */
#include "mamba.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "ops.h"
#include "scan.h"

void mamba_cfg_default(mamba_cfg *c, int d_model, int n_layer) {
    memset(c, 0, sizeof *c);
    c->d_model = d_model;
    c->n_layer = n_layer;
    c->d_state = 16;
    c->d_conv = 4;
    c->expand = 2;
    c->dt_rank = (d_model + 15) / 16;
    c->n_dir = 1;
    c->merge = MK_MERGE_MEAN;
    c->norm = MK_NORM_RMS;
    c->final_norm = 1;
    c->selective = 1;
    c->eps = 1e-5f;
}

static const char *const norm_name[] = {"rmsnorm", "layernorm", "none"};

void mamba_cfg_to_config(const mamba_cfg *c, mk_config *out) {
    mk_config_set_int(out, "d_model", c->d_model);
    mk_config_set_int(out, "n_layer", c->n_layer);
    mk_config_set_int(out, "d_state", c->d_state);
    mk_config_set_int(out, "d_conv", c->d_conv);
    mk_config_set_int(out, "expand", c->expand);
    mk_config_set_int(out, "dt_rank", c->dt_rank);
    mk_config_set_int(out, "n_dir", c->n_dir);
    mk_config_set(out, "norm", "%s", norm_name[c->norm >= MK_NORM_RMS && c->norm <= MK_NORM_NONE ? c->norm : 0]);
    mk_config_set_float(out, "drop_path", c->drop_path);
    mk_config_set_float(out, "shuffle_p", c->shuffle_p);
}

int mamba_cfg_from_config(mamba_cfg *c, const mk_config *in) {
    /* Upper bounds keep a hostile header from sizing a huge allocation; the real limits of
     * each field are mamba_backbone_declare's. */
    static const char *const key[] = {"d_model", "n_layer", "d_state", "d_conv", "expand", "dt_rank", "n_dir"};
    static const long lo[] = {1, 0, 1, 1, 1, 1, 1}, hi[] = {65536, 1024, MK_SCAN_MAXN, 8, 64, 65536, MK_MAX_DIR};
    long v[7] = {0, 0, 0, 0, 0, 0, 1};
    for (int i = 0; i < 7; i++) {
        if (i == 6 && !mk_config_get(in, key[i])) break;
        if (mk_config_get_int(in, key[i], &v[i])) return -1;
        if (v[i] < lo[i] || v[i] > hi[i]) {
            mk_error("model config: %s = %ld is out of range (%ld..%ld)", key[i], v[i], lo[i], hi[i]);
            return -1;
        }
    }
    mamba_cfg_default(c, (int)v[0], (int)v[1]);
    c->d_state = (int)v[2], c->d_conv = (int)v[3], c->expand = (int)v[4], c->dt_rank = (int)v[5], c->n_dir = (int)v[6];
    const char *s = mk_config_get(in, "norm");
    if (s) {
        c->norm = -1;
        for (int i = 0; i < 3; i++)
            if (!strcmp(s, norm_name[i])) c->norm = MK_NORM_RMS + i;
        if (c->norm < 0) {
            mk_error("model config: unknown norm '%s'", s);
            return -1;
        }
    }
    static const char *const fkey[] = {"drop_path", "shuffle_p"};
    float *f[] = {&c->drop_path, &c->shuffle_p};
    for (int i = 0; i < 2; i++) {
        double d;
        if (!mk_config_get(in, fkey[i])) continue;
        if (mk_config_get_float(in, fkey[i], &d)) return -1;
        if (!(d >= 0 && d <= 1)) {
            mk_error("model config: %s = %g is out of range (0..1)", fkey[i], d);
            return -1;
        }
        *f[i] = (float)d;
    }
    return 0;
}

int mamba_backbone_declare(mamba_backbone *m, mk_params *p, const char *prefix, const mamba_cfg *c) {
    memset(m, 0, sizeof *m);
    if (c->d_model < 1 || c->n_layer < 0 || c->d_state < 1 || c->d_state > MK_SCAN_MAXN || c->d_conv < 1 ||
        c->d_conv > 8 || c->expand < 1 || c->dt_rank < 1 || c->n_dir < 1 || c->n_dir > MK_MAX_DIR ||
        c->norm < MK_NORM_RMS || c->norm > MK_NORM_NONE) {
        mk_error("invalid Mamba config (d_model %d, n_layer %d, d_state %d, d_conv %d, expand %d, dt_rank %d, dirs %d, "
                 "norm %d)",
                 c->d_model, c->n_layer, c->d_state, c->d_conv, c->expand, c->dt_rank, c->n_dir, c->norm);
        return -1;
    }
    m->cfg = *c;
    m->D = c->d_model;
    m->E = c->expand * c->d_model;
    m->N = c->d_state;
    m->R = c->dt_rank;
    m->K = c->d_conv;
    m->G = c->n_dir;
    m->p = p;
    m->layer = mk_calloc(c->n_layer ? c->n_layer : 1, sizeof(mamba_layer_idx));
    char nm[MK_NAME_MAX];
#define NAME(...) (snprintf(nm, sizeof nm, __VA_ARGS__), nm)
    for (int l = 0; l < c->n_layer; l++) {
        mamba_layer_idx *L = &m->layer[l];
        L->norm_w = c->norm == MK_NORM_NONE ? -1 : mk_params_add(p, NAME("%slayers.%d.norm.weight", prefix, l), 0, 1, m->D);
        L->norm_b = c->norm == MK_NORM_LN ? mk_params_add(p, NAME("%slayers.%d.norm.bias", prefix, l), 0, 1, m->D) : -1;
        L->in_proj = mk_params_add(p, NAME("%slayers.%d.in_proj.weight", prefix, l), 1, 2, 2 * m->E, m->D);
        for (int g = 0; g < m->G; g++) {
            L->conv_w[g] = mk_params_add(p, NAME("%slayers.%d.dir%d.conv1d.weight", prefix, l, g), 1, 2, m->E, m->K);
            L->conv_b[g] = mk_params_add(p, NAME("%slayers.%d.dir%d.conv1d.bias", prefix, l, g), 0, 1, m->E);
            if (c->selective) {
                L->x_proj[g] = mk_params_add(p, NAME("%slayers.%d.dir%d.x_proj.weight", prefix, l, g), 1, 2,
                                             m->R + 2 * m->N, m->E);
                L->dt_w[g] = mk_params_add(p, NAME("%slayers.%d.dir%d.dt_proj.weight", prefix, l, g), 1, 2, m->E, m->R);
                L->Bc[g] = L->Cc[g] = -1;
            } else {
                L->x_proj[g] = L->dt_w[g] = -1;
                L->Bc[g] = mk_params_add(p, NAME("%slayers.%d.dir%d.B", prefix, l, g), 0, 1, m->N);
                L->Cc[g] = mk_params_add(p, NAME("%slayers.%d.dir%d.C", prefix, l, g), 0, 1, m->N);
            }
            L->dt_b[g] = mk_params_add(p, NAME("%slayers.%d.dir%d.dt_proj.bias", prefix, l, g), 0, 1, m->E);
            L->A_log[g] = mk_params_add(p, NAME("%slayers.%d.dir%d.A_log", prefix, l, g), 0, 2, m->E, m->N);
            L->Dp[g] = mk_params_add(p, NAME("%slayers.%d.dir%d.D", prefix, l, g), 0, 1, m->E);
        }
        L->out_proj = mk_params_add(p, NAME("%slayers.%d.out_proj.weight", prefix, l), 1, 2, m->D, m->E);
    }
    m->normf_w = m->normf_b = -1;
    if (c->final_norm && c->norm != MK_NORM_NONE) {
        m->normf_w = mk_params_add(p, NAME("%snorm_f.weight", prefix), 0, 1, m->D);
        if (c->norm == MK_NORM_LN) m->normf_b = mk_params_add(p, NAME("%snorm_f.bias", prefix), 0, 1, m->D);
    }
#undef NAME
    return 0;
}

size_t mamba_backbone_num_params(const mamba_backbone *m) {
    size_t n = 0;
    const int NL = m->cfg.n_layer;
    /* the backbone's tensors are contiguous in the table (declared together) */
    int first = NL > 0 ? (m->layer[0].norm_w >= 0 ? m->layer[0].norm_w : m->layer[0].in_proj) : m->normf_w;
    int last = m->normf_w >= 0 ? (m->normf_b >= 0 ? m->normf_b : m->normf_w) : NL > 0 ? m->layer[NL - 1].out_proj : -1;
    for (int i = first; first >= 0 && i <= last; i++) n += m->p->t[i].numel;
    return n;
}

void mamba_backbone_init(mamba_backbone *m, mk_rng *rng) {
    const mk_params *p = m->p;
    const int D = m->D, E = m->E, N = m->N, R = m->R, K = m->K;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        mamba_layer_idx *L = &m->layer[l];
        if (L->norm_w >= 0) mk_init_const(mk_param(p, L->norm_w), D, 1.f);
        if (L->norm_b >= 0) mk_init_const(mk_param(p, L->norm_b), D, 0.f);
        mk_init_linear(mk_param(p, L->in_proj), NULL, 2 * E, D, rng);
        for (int g = 0; g < m->G; g++) {
            /* nn.Conv1d default: U(+-1/sqrt(fan_in)), fan_in = K for depthwise */
            float kc = 1.f / sqrtf((float)K);
            mk_init_uniform(mk_param(p, L->conv_w[g]), (size_t)E * K, -kc, kc, rng);
            mk_init_uniform(mk_param(p, L->conv_b[g]), E, -kc, kc, rng);
            if (L->x_proj[g] >= 0) {
                mk_init_linear(mk_param(p, L->x_proj[g]), NULL, R + 2 * N, E, rng);
                /* ref: mamba_simple.py dt_init "random": std = dt_rank^-0.5 */
                float s = 1.f / sqrtf((float)R);
                mk_init_uniform(mk_param(p, L->dt_w[g]), (size_t)E * R, -s, s, rng);
            } else {
                mk_init_normal(mk_param(p, L->Bc[g]), N, 1.f, rng);
                mk_init_normal(mk_param(p, L->Cc[g]), N, 1.f / sqrtf((float)N), rng);
            }
            /* dt = exp(U(log 1e-3, log 1e-1)) clamped >= 1e-4; bias = softplus^-1(dt) */
            float *db = mk_param(p, L->dt_b[g]);
            for (int e = 0; e < E; e++) {
                float dt = expf(logf(1e-3f) + mk_rng_uniform(rng) * (logf(1e-1f) - logf(1e-3f)));
                if (dt < 1e-4f) dt = 1e-4f;
                db[e] = dt + logf(-expm1f(-dt));
            }
            /* S4D-real: A = -(1..N) */
            float *al = mk_param(p, L->A_log[g]);
            for (int e = 0; e < E; e++)
                for (int n = 0; n < N; n++) al[(size_t)e * N + n] = logf((float)(n + 1));
            mk_init_const(mk_param(p, L->Dp[g]), E, 1.f);
        }
        /* nn.Linear default, then GPT-2 style rescale of the residual output
         * projection by 1/sqrt(n_layer) (mamba_ssm _init_weights) */
        mk_init_linear(mk_param(p, L->out_proj), NULL, D, E, rng);
        vec_scale(mk_param(p, L->out_proj), 1.f / sqrtf((float)(m->cfg.n_layer > 0 ? m->cfg.n_layer : 1)),
                  (size_t)D * E);
    }
    if (m->normf_w >= 0) mk_init_const(mk_param(p, m->normf_w), D, 1.f);
    if (m->normf_b >= 0) mk_init_const(mk_param(p, m->normf_b), D, 0.f);
}

void mamba_backbone_free(mamba_backbone *m) {
    if (m->dev) mamba_backbone_release_device(m); /* core/backend.c */
    free(m->layer);
    m->layer = NULL;
}

/* ------------------------------------------------------------ activations */

typedef struct {
    float *xg, *convo, *xc, *dbc, *dtin, *Bm, *Cm, *delta, *zg;
    float *ck; /* scan chunk-start states */
} dir_acts;
typedef struct {
    float *h;      /* (T, D) input to the layer (residual stream) */
    float *normed; /* (T, D) */
    float *mean, *rstd; /* (T) */
    float *xin, *zin;   /* (T, E) */
    float *y;           /* (T, E) merged scan outputs */
    dir_acts dir[MK_MAX_DIR];
} layer_acts;

/* scan chunk-start states kept by forward for backward: (B, L/CHUNK, N, E) */
static size_t ck_floats(const mamba_backbone *m, int B, int L) {
    ssm_scan_dims sd = {B, L, m->E, m->N, 1};
    return ssm_scan_ck_floats(sd);
}
static size_t dir_floats(const mamba_backbone *m, int B, int L) {
    size_t T = (size_t)B * L;
    return T * (5 * (size_t)m->E + (m->R + 2 * m->N) + m->R + 2 * m->N) + ck_floats(m, B, L);
}
static size_t layer_floats(const mamba_backbone *m, int B, int L) {
    size_t T = (size_t)B * L;
    return T * (2 * (size_t)m->D + 2 + 3 * (size_t)m->E) + m->G * dir_floats(m, B, L);
}
/* scratch: forward yg (T,E), ybranch (T,D), A (E,N);
 * backward dres (T,D), dnormed (T,D), dxin,dzin,dy,dyg,dxc,dconvo,ddelta,dzg,dxg (9 x T,E),
 * ddbc (T,R+2N), dBm,dCm (T,N), A,dA (E,N) */
static size_t scratch_floats(const mamba_backbone *m, size_t T) {
    return T * (2 * (size_t)m->D + 9 * (size_t)m->E + (m->R + 2 * m->N) + 2 * m->N) + 2 * (size_t)m->E * m->N +
           T * (size_t)m->E;
}

static layer_acts get_layer(const mamba_backbone *m, const mamba_acts *a, int l) {
    size_t T = (size_t)a->B * a->L;
    layer_acts la;
    float *p = a->buf + (size_t)l * layer_floats(m, a->B, a->L);
    la.h = p, p += T * m->D;
    la.normed = p, p += T * m->D;
    la.mean = p, p += T;
    la.rstd = p, p += T;
    la.xin = p, p += T * m->E;
    la.zin = p, p += T * m->E;
    la.y = p, p += T * m->E;
    for (int g = 0; g < m->G; g++) {
        dir_acts *d = &la.dir[g];
        d->xg = p, p += T * m->E;
        d->convo = p, p += T * m->E;
        d->xc = p, p += T * m->E;
        d->delta = p, p += T * m->E;
        d->zg = p, p += T * m->E;
        d->dbc = p, p += T * (m->R + 2 * m->N);
        d->dtin = p, p += T * m->R;
        d->Bm = p, p += T * m->N;
        d->Cm = p, p += T * m->N;
        d->ck = p, p += ck_floats(m, a->B, a->L);
    }
    return la;
}
/* final: h_L (T,D), out normed (T,D) [not stored: caller's out], mean_f, rstd_f (T) */
static float *final_block(const mamba_backbone *m, const mamba_acts *a) {
    return a->buf + (size_t)m->cfg.n_layer * layer_floats(m, a->B, a->L);
}

void mamba_acts_init(mamba_acts *a) { memset(a, 0, sizeof *a); }
void mamba_acts_free(mamba_acts *a) {
    free(a->buf);
    free(a->orders);
    free(a->dp_mask);
    memset(a, 0, sizeof *a);
}

static void acts_ensure(const mamba_backbone *m, mamba_acts *a, int B, int L) {
    size_t T = (size_t)B * L;
    size_t need = (size_t)m->cfg.n_layer * layer_floats(m, B, L) + T * (m->D + 2) + scratch_floats(m, T);
    if (need > a->buf_floats) {
        free(a->buf);
        a->buf = mk_malloc(sizeof(float) * need);
        a->buf_floats = need;
    }
    a->B = B;
    a->L = L;
    a->scratch = a->buf + (size_t)m->cfg.n_layer * layer_floats(m, B, L) + T * (m->D + 2);
    size_t no = (size_t)(m->cfg.n_layer ? m->cfg.n_layer : 1) * m->G * T; /* room for per-sample orders */
    a->orders = mk_realloc(a->orders, sizeof(int) * no);
    a->dp_mask = mk_realloc(a->dp_mask, sizeof(float) * (size_t)(m->cfg.n_layer ? m->cfg.n_layer : 1) * B);
}

static void make_A(float *A, const float *A_log, size_t n) {
    for (size_t i = 0; i < n; i++) A[i] = -expf(A_log[i]);
}

static void norm_fwd(const mamba_backbone *m, float *out, float *mean, float *rstd, const float *inp, int wi, int bi,
                     int T) {
    const mk_params *p = m->p;
    if (m->cfg.norm == MK_NORM_NONE) { /* the mixer reads the residual stream itself */
        if (out != inp) memcpy(out, inp, sizeof(float) * (size_t)T * m->D);
    } else if (m->cfg.norm == MK_NORM_LN)
        layernorm_forward(out, mean, rstd, inp, mk_param(p, wi), mk_param(p, bi), T, m->D, m->cfg.eps);
    else
        rmsnorm_forward(out, rstd, inp, mk_param(p, wi), T, m->D, m->cfg.eps);
}
static void norm_bwd(const mamba_backbone *m, float *dinp, const float *dout, const float *inp, const float *mean,
                     const float *rstd, int wi, int bi, int T) {
    const mk_params *p = m->p;
    if (m->cfg.norm == MK_NORM_NONE)
        vec_acc(dinp, dout, (size_t)T * m->D);
    else if (m->cfg.norm == MK_NORM_LN)
        layernorm_backward(dinp, mk_grad(p, wi), mk_grad(p, bi), dout, inp, mk_param(p, wi), mean, rstd, T, m->D);
    else
        rmsnorm_backward(dinp, mk_grad(p, wi), dout, inp, mk_param(p, wi), rstd, T, m->D);
}

/* ---------------------------------------------------------------- forward */

/* One layer's draws for S samples (the whole batch, or one sample of a per-sample pass): the
 * shuffle and its permutation, then the drop-path masks, as the forward has always made them */
static void draw_layer(const mamba_backbone *m, int l, int S, int L, int training, mk_rng *rng, int **pi,
                       int *shuffle, float *dpm) {
    const int NL = m->cfg.n_layer;
    float sp = (training && NL > 1) ? m->cfg.shuffle_p * l / (NL - 1) : 0.f;
    *shuffle = sp > 0 && mk_rng_uniform(rng) < sp;
    if (*shuffle) {
        if (!*pi) *pi = mk_malloc(sizeof(int) * L);
        mk_order_identity(*pi, L);
        mk_rng_shuffle(rng, *pi, L);
    }
    float dp = (training && NL > 1) ? m->cfg.drop_path * l / (NL - 1) : 0.f;
    if (dp > 0) droppath_mask(dpm, S, dp, rng);
    else
        for (int b = 0; b < S; b++) dpm[b] = 1.f;
}

void mamba_backbone_draw(const mamba_backbone *m, int B, int L, const int *const *orders, const int *ps,
                         int per_sample, int training, mk_rng *rng, int *eff, float *dpm) {
    const int G = m->G, NL = m->cfg.n_layer;
    const size_t T = (size_t)B * L;
    int *pi = NULL, shuffle;
    if (!per_sample) {
        for (int l = 0; l < NL; l++) {
            draw_layer(m, l, B, L, training, rng, &pi, &shuffle, dpm + (size_t)l * B);
            int *e = eff + (size_t)l * G * L;
            for (int g = 0; g < G; g++)
                for (int t = 0; t < L; t++) {
                    int o = (orders && orders[g]) ? orders[g][t] : t;
                    e[(size_t)g * L + t] = shuffle ? pi[o] : o;
                }
        }
    } else {
        float mask;
        for (int b = 0; b < B; b++)
            for (int l = 0; l < NL; l++) {
                draw_layer(m, l, 1, L, training, rng, &pi, &shuffle, &mask);
                dpm[(size_t)l * B + b] = mask;
                for (int g = 0; g < G; g++) {
                    const int *ob = ps ? ps + ((size_t)b * G + g) * L : NULL;
                    int *e = eff + ((size_t)l * G + g) * T + (size_t)b * L;
                    for (int t = 0; t < L; t++) {
                        int o = ob ? ob[t] : t;
                        e[t] = b * L + (shuffle ? pi[o] : o);
                    }
                }
            }
    }
    free(pi);
}

static void forward_impl(mamba_backbone *m, mamba_acts *a, float *out, const float *x, int B, int L,
                         const int *const *orders, const int *ps, int per_sample, int training, mk_rng *rng) {
    if (m->device == MK_DEV_CUDA &&
        mk_cuda_backbone_forward(m, a, out, x, B, L, orders, ps, per_sample, training, rng) == 0)
        return; /* core/backend.c: the same forward on the GPU */
    const mk_params *p = m->p;
    const int D = m->D, E = m->E, N = m->N, R = m->R, K = m->K, G = m->G, NL = m->cfg.n_layer;
    const int T = B * L, XD = R + 2 * N;
    /* per-sample orders are rows of the whole batch: gathered as one sequence of T rows */
    const int OB = per_sample ? 1 : B, OL = per_sample ? T : L;
    acts_ensure(m, a, B, L);
    a->training = training;
    a->per_sample = per_sample;
    if (training) MK_ASSERT(rng || (m->cfg.drop_path <= 0 && m->cfg.shuffle_p <= 0));
    float *yg = a->scratch, *branch = yg + (size_t)T * E, *A = branch + (size_t)T * D;
    const float merge = m->cfg.merge == MK_MERGE_MEAN ? 1.f / G : 1.f;
    mamba_backbone_draw(m, B, L, orders, ps, per_sample, training, rng, a->orders, a->dp_mask);

    float *h = NL > 0 ? get_layer(m, a, 0).h : final_block(m, a);
    memcpy(h, x, sizeof(float) * (size_t)T * D);
    for (int l = 0; l < NL; l++) {
        const mamba_layer_idx *Li = &m->layer[l];
        layer_acts la = get_layer(m, a, l);
        const int *eff = a->orders + (size_t)l * G * OL;
        const float *dpm = a->dp_mask + (size_t)l * B;

        norm_fwd(m, la.normed, la.mean, la.rstd, la.h, Li->norm_w, Li->norm_b, T);
        const float *Win = mk_param(p, Li->in_proj);
        linear_forward(la.xin, la.normed, Win, NULL, T, D, E);
        linear_forward(la.zin, la.normed, Win + (size_t)E * D, NULL, T, D, E);
        memset(la.y, 0, sizeof(float) * (size_t)T * E);
        for (int g = 0; g < G; g++) {
            dir_acts *d = &la.dir[g];
            const int *o = eff + (size_t)g * OL;
            gather_rows(d->xg, la.xin, o, OB, OL, E);
            gather_rows(d->zg, la.zin, o, OB, OL, E);
            conv1d_silu_forward(d->convo, d->xc, d->xg, mk_param(p, Li->conv_w[g]), mk_param(p, Li->conv_b[g]), B, L, E, K);
            if (Li->x_proj[g] >= 0) {
                linear_forward(d->dbc, d->xc, mk_param(p, Li->x_proj[g]), NULL, T, E, XD);
                for (int t = 0; t < T; t++) {
                    const float *r = d->dbc + (size_t)t * XD;
                    memcpy(d->dtin + (size_t)t * R, r, sizeof(float) * R);
                    memcpy(d->Bm + (size_t)t * N, r + R, sizeof(float) * N);
                    memcpy(d->Cm + (size_t)t * N, r + R + N, sizeof(float) * N);
                }
                linear_forward(d->delta, d->dtin, mk_param(p, Li->dt_w[g]), NULL, T, R, E);
            } else {
                for (int t = 0; t < T; t++) {
                    memcpy(d->Bm + (size_t)t * N, mk_param(p, Li->Bc[g]), sizeof(float) * N);
                    memcpy(d->Cm + (size_t)t * N, mk_param(p, Li->Cc[g]), sizeof(float) * N);
                }
                memset(d->delta, 0, sizeof(float) * (size_t)T * E);
            }
            make_A(A, mk_param(p, Li->A_log[g]), (size_t)E * N);
            ssm_scan_dims sd = {B, L, E, N, 1};
            ssm_scan_forward_ck(yg, NULL, d->ck, d->xc, d->delta, A, d->Bm, d->Cm, mk_param(p, Li->Dp[g]), d->zg,
                             mk_param(p, Li->dt_b[g]), NULL, sd);
            scatter_add_rows(la.y, yg, o, OB, OL, E, merge);
        }
        linear_forward(branch, la.y, mk_param(p, Li->out_proj), NULL, T, E, D);
        float *hn = l + 1 < NL ? get_layer(m, a, l + 1).h : final_block(m, a);
        for (int b = 0; b < B; b++) {
            size_t o0 = (size_t)b * L * D;
            for (size_t i = 0; i < (size_t)L * D; i++) hn[o0 + i] = la.h[o0 + i] + dpm[b] * branch[o0 + i];
        }
    }
    float *hL = final_block(m, a);
    float *meanf = hL + (size_t)T * D, *rstdf = meanf + T;
    if (m->normf_w >= 0) norm_fwd(m, out, meanf, rstdf, hL, m->normf_w, m->normf_b, T);
    else memcpy(out, hL, sizeof(float) * (size_t)T * D);
}

void mamba_backbone_forward(mamba_backbone *m, mamba_acts *a, float *out, const float *x, int B, int L,
                            const int *const *orders, int training, mk_rng *rng) {
    forward_impl(m, a, out, x, B, L, orders, NULL, 0, training, rng);
}
void mamba_backbone_forward_ps(mamba_backbone *m, mamba_acts *a, float *out, const float *x, int B, int L,
                               const int *orders, int training, mk_rng *rng) {
    forward_impl(m, a, out, x, B, L, NULL, orders, 1, training, rng);
}

/* --------------------------------------------------------------- backward */

void mamba_backbone_backward(mamba_backbone *m, mamba_acts *a, float *dx, const float *dout) {
    if (m->device == MK_DEV_CUDA && mk_cuda_backbone_backward(m, a, dx, dout) == 0) return; /* core/backend.c */
    const mk_params *p = m->p;
    const int B = a->B, L = a->L, D = m->D, E = m->E, N = m->N, R = m->R, K = m->K, G = m->G, NL = m->cfg.n_layer;
    const int T = B * L, XD = R + 2 * N;
    const int OB = a->per_sample ? 1 : B, OL = a->per_sample ? T : L; /* as the forward gathered */
    const size_t TE = (size_t)T * E;
    const float merge = m->cfg.merge == MK_MERGE_MEAN ? 1.f / G : 1.f;
    float *s = a->scratch;
    float *dres = s;
    s += (size_t)T * D;
    float *dnormed = s;
    s += (size_t)T * D;
    float *dxin = s, *dzin = s + TE, *dy = s + 2 * TE, *dyg = s + 3 * TE, *dxc = s + 4 * TE, *dconvo = s + 5 * TE,
          *ddelta = s + 6 * TE, *dzg = s + 7 * TE, *dxg = s + 8 * TE;
    s += 9 * TE;
    float *ddbc = s;
    s += (size_t)T * XD;
    float *dBm = s, *dCm = s + (size_t)T * N;
    s += 2 * (size_t)T * N;
    float *A = s, *dA = s + (size_t)E * N;

    float *hL = final_block(m, a);
    float *meanf = hL + (size_t)T * D, *rstdf = meanf + T;
    memset(dres, 0, sizeof(float) * (size_t)T * D);
    if (m->normf_w >= 0) norm_bwd(m, dres, dout, hL, meanf, rstdf, m->normf_w, m->normf_b, T);
    else memcpy(dres, dout, sizeof(float) * (size_t)T * D);

    for (int l = NL - 1; l >= 0; l--) {
        const mamba_layer_idx *Li = &m->layer[l];
        layer_acts la = get_layer(m, a, l);
        const int *eff = a->orders + (size_t)l * G * OL;
        const float *dpm = a->dp_mask + (size_t)l * B;
        /* branch gradient = dres * drop-path mask, reusing dnormed as temp */
        float *dbranch = dnormed;
        for (int b = 0; b < B; b++) {
            size_t o0 = (size_t)b * L * D;
            for (size_t i = 0; i < (size_t)L * D; i++) dbranch[o0 + i] = dres[o0 + i] * dpm[b];
        }
        memset(dy, 0, sizeof(float) * TE);
        linear_backward(dy, mk_grad(p, Li->out_proj), NULL, dbranch, la.y, mk_param(p, Li->out_proj), T, E, D);
        memset(dxin, 0, sizeof(float) * 2 * TE); /* dxin, dzin */
        for (int g = 0; g < G; g++) {
            dir_acts *d = &la.dir[g];
            const int *o = eff + (size_t)g * OL;
            gather_rows(dyg, dy, o, OB, OL, E);
            if (merge != 1.f) vec_scale(dyg, merge, TE);
            memset(dxc, 0, sizeof(float) * TE);
            memset(ddelta, 0, sizeof(float) * TE);
            memset(dzg, 0, sizeof(float) * TE);
            memset(dBm, 0, sizeof(float) * 2 * (size_t)T * N);
            memset(dA, 0, sizeof(float) * (size_t)E * N);
            make_A(A, mk_param(p, Li->A_log[g]), (size_t)E * N);
            ssm_scan_dims sd = {B, L, E, N, 1};
            ssm_scan_backward_ck(dxc, ddelta, dA, dBm, dCm, mk_grad(p, Li->Dp[g]), dzg, mk_grad(p, Li->dt_b[g]), NULL,
                                 dyg, NULL, d->ck, d->xc, d->delta, A, d->Bm, d->Cm, mk_param(p, Li->Dp[g]), d->zg,
                              mk_param(p, Li->dt_b[g]), NULL, sd);
            /* A = -exp(A_log): dA_log = dA * A */
            float *gAl = mk_grad(p, Li->A_log[g]);
            for (size_t i = 0; i < (size_t)E * N; i++) gAl[i] += dA[i] * A[i];
            if (Li->x_proj[g] >= 0) {
                /* delta = dtin @ dt_w^T ; dbc = [dtin | Bm | Cm] = xc @ x_proj^T */
                float *ddtin = dconvo; /* (T, R) temp, dconvo not used yet */
                memset(ddtin, 0, sizeof(float) * (size_t)T * R);
                linear_backward(ddtin, mk_grad(p, Li->dt_w[g]), NULL, ddelta, d->dtin, mk_param(p, Li->dt_w[g]), T, R,
                                E);
                for (int t = 0; t < T; t++) {
                    float *r = ddbc + (size_t)t * XD;
                    memcpy(r, ddtin + (size_t)t * R, sizeof(float) * R);
                    memcpy(r + R, dBm + (size_t)t * N, sizeof(float) * N);
                    memcpy(r + R + N, dCm + (size_t)t * N, sizeof(float) * N);
                }
                linear_backward(dxc, mk_grad(p, Li->x_proj[g]), NULL, ddbc, d->xc, mk_param(p, Li->x_proj[g]), T, E,
                                XD);
            } else {
                float *gB = mk_grad(p, Li->Bc[g]), *gC = mk_grad(p, Li->Cc[g]);
                for (int t = 0; t < T; t++)
                    for (int n = 0; n < N; n++) {
                        gB[n] += dBm[(size_t)t * N + n];
                        gC[n] += dCm[(size_t)t * N + n];
                    }
            }
            memset(dconvo, 0, sizeof(float) * TE);
            silu_backward(dconvo, dxc, d->convo, TE);
            memset(dxg, 0, sizeof(float) * TE);
            conv1d_backward(dxg, NULL, mk_grad(p, Li->conv_w[g]), mk_grad(p, Li->conv_b[g]), dconvo, d->xg, NULL,
                            mk_param(p, Li->conv_w[g]), B, L, E, K);
            scatter_add_rows(dxin, dxg, o, OB, OL, E, 1.f);
            scatter_add_rows(dzin, dzg, o, OB, OL, E, 1.f);
        }
        const float *Win = mk_param(p, Li->in_proj);
        float *gWin = mk_grad(p, Li->in_proj);
        memset(dnormed, 0, sizeof(float) * (size_t)T * D);
        linear_backward(dnormed, gWin, NULL, dxin, la.normed, Win, T, D, E);
        linear_backward(dnormed, gWin + (size_t)E * D, NULL, dzin, la.normed, Win + (size_t)E * D, T, D, E);
        /* residual: dres (grad of h_l) = dres (identity path) + norm backward */
        norm_bwd(m, dres, dnormed, la.h, la.mean, la.rstd, Li->norm_w, Li->norm_b, T);
    }
    if (dx) vec_acc(dx, dres, (size_t)T * D);
}

/* ------------------------------------------------------------- recurrent */

void mamba_state_alloc(mamba_state *s, const mamba_backbone *m, int B) {
    MK_ASSERT(m->G == 1);
    int NL = m->cfg.n_layer ? m->cfg.n_layer : 1;
    s->B = B;
    s->conv = mk_calloc((size_t)NL * B * (m->K > 1 ? m->K - 1 : 1) * m->E, sizeof(float));
    s->ssm = mk_calloc((size_t)NL * B * m->E * m->N, sizeof(float));
    /* h, r, br (3 D) + mean, rstd (2) + xi..y (6 E) + dbc (R + 2N) + Bm, Cm (2N) per batch entry, A (E N) */
    s->tmp = mk_malloc(sizeof(float) * ((size_t)B * (3 * m->D + 2 + 6 * m->E + m->R + 4 * m->N) + (size_t)m->E * m->N));
}
void mamba_state_reset(mamba_state *s, const mamba_backbone *m) {
    int NL = m->cfg.n_layer ? m->cfg.n_layer : 1;
    memset(s->conv, 0, sizeof(float) * (size_t)NL * s->B * (m->K > 1 ? m->K - 1 : 1) * m->E);
    memset(s->ssm, 0, sizeof(float) * (size_t)NL * s->B * m->E * m->N);
}
void mamba_state_free(mamba_state *s) {
    free(s->conv);
    free(s->ssm);
    free(s->tmp);
    memset(s, 0, sizeof *s);
}

void mamba_backbone_step(mamba_backbone *m, mamba_state *s, float *out, const float *x) {
    const mk_params *p = m->p;
    const int B = s->B, D = m->D, E = m->E, N = m->N, R = m->R, K = m->K, XD = R + 2 * N;
    float *h = s->tmp, *r = h + (size_t)B * D, *br = r + (size_t)B * D, *mean = br + (size_t)B * D,
          *rstd = mean + B, *xi = rstd + B, *zi = xi + (size_t)B * E, *co = zi + (size_t)B * E,
          *xc = co + (size_t)B * E, *dl = xc + (size_t)B * E, *y = dl + (size_t)B * E, *dbc = y + (size_t)B * E,
          *Bm = dbc + (size_t)B * XD, *Cm = Bm + (size_t)B * N, *A = Cm + (size_t)B * N;
    memcpy(h, x, sizeof(float) * (size_t)B * D);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        const mamba_layer_idx *Li = &m->layer[l];
        norm_fwd(m, r, mean, rstd, h, Li->norm_w, Li->norm_b, B);
        const float *Win = mk_param(p, Li->in_proj);
        linear_forward(xi, r, Win, NULL, B, D, E);
        linear_forward(zi, r, Win + (size_t)E * D, NULL, B, D, E);
        float *cs = s->conv + (size_t)l * B * (K > 1 ? K - 1 : 1) * E;
        /* conv over one step per batch entry: treat each as its own sequence of length 1 */
        conv1d_forward(co, K > 1 ? cs : NULL, xi, K > 1 ? cs : NULL, mk_param(p, Li->conv_w[0]),
                       mk_param(p, Li->conv_b[0]), B, 1, E, K);
        silu_forward(xc, co, (size_t)B * E);
        if (Li->x_proj[0] >= 0) {
            linear_forward(dbc, xc, mk_param(p, Li->x_proj[0]), NULL, B, E, XD);
            for (int b = 0; b < B; b++) {
                memcpy(Bm + (size_t)b * N, dbc + (size_t)b * XD + R, sizeof(float) * N);
                memcpy(Cm + (size_t)b * N, dbc + (size_t)b * XD + R + N, sizeof(float) * N);
            }
            /* dt_in is the first R columns of each dbc row: a strided GEMM input */
            for (int b = 0; b < B; b++) linear_forward(dl + (size_t)b * E, dbc + (size_t)b * XD, mk_param(p, Li->dt_w[0]), NULL, 1, R, E);
        } else {
            for (int b = 0; b < B; b++) {
                memcpy(Bm + (size_t)b * N, mk_param(p, Li->Bc[0]), sizeof(float) * N);
                memcpy(Cm + (size_t)b * N, mk_param(p, Li->Cc[0]), sizeof(float) * N);
            }
            memset(dl, 0, sizeof(float) * (size_t)B * E);
        }
        make_A(A, mk_param(p, Li->A_log[0]), (size_t)E * N);
        ssm_scan_step(y, s->ssm + (size_t)l * B * E * N, xc, dl, A, Bm, Cm, mk_param(p, Li->Dp[0]), zi,
                      mk_param(p, Li->dt_b[0]), B, E, N, 1);
        linear_forward(br, y, mk_param(p, Li->out_proj), NULL, B, E, D);
        vec_acc(h, br, (size_t)B * D);
    }
    if (m->normf_w >= 0) norm_fwd(m, out, mean, rstd, h, m->normf_w, m->normf_b, B);
    else memcpy(out, h, sizeof(float) * (size_t)B * D);
}

/* ---------------------------------------------------------------- orders */

void mk_order_identity(int *o, int L) {
    for (int t = 0; t < L; t++) o[t] = t;
}
void mk_order_reverse(int *o, int L) {
    for (int t = 0; t < L; t++) o[t] = L - 1 - t;
}
void mk_order_invert(int *inv, const int *o, int L) {
    for (int t = 0; t < L; t++) inv[o[t]] = t;
}
int mk_order_is_perm(const int *o, int L) {
    char *seen = mk_calloc(L ? L : 1, 1);
    int ok = 1;
    for (int t = 0; t < L && ok; t++) {
        if (o[t] < 0 || o[t] >= L || seen[o[t]]) ok = 0;
        else seen[o[t]] = 1;
    }
    free(seen);
    return ok;
}
