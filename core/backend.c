/* backend.c — device selection and the backbone on the GPU. CUDA support is
 * compiled in when the build defines MK_HAVE_CUDA=1 (nvcc found); the
 * kernels are in core/cuda/ (C interface: core/cuda/kernels.h). This is the
 * one file outside core/cuda that knows CUDA exists.
 *
 * The GPU backbone below is core/mamba.c's forward/backward op for op, with
 * device buffers: same op order, same RNG draws (scan-order shuffles and
 * drop-path masks are drawn on the host exactly as the CPU path draws them),
 * so the CPU path is its reference. T = B*L tokens throughout. */
#include "backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "scan.h"
#include "util.h"

#if MK_HAVE_CUDA
#include "cuda/kernels.h"
int mk_cuda_probe(char *name, int len); /* core/cuda/probe.cu: device count, name of device 0 */
#endif

static int probed = 0, avail = 0;
static char devname[256] = "this build has no CUDA support";

int mk_cuda_available(void) {
    if (!probed) {
        probed = 1;
#if MK_HAVE_CUDA
        avail = mk_cuda_probe(devname, sizeof devname) > 0;
#endif
    }
    return avail;
}

const char *mk_cuda_device_name(void) {
    mk_cuda_available();
    return devname;
}

int mk_device_parse(const char *name) {
    if (!strcmp(name, "cpu")) return MK_DEV_CPU;
    if (!strcmp(name, "cuda") || !strcmp(name, "gpu")) {
        if (mk_cuda_available()) return MK_DEV_CUDA;
        fprintf(stderr, "mambakit: --device cuda: no CUDA device available (%s); running on the CPU\n", devname);
        return MK_DEV_CPU;
    }
    mk_error("--device: unknown device '%s' (cpu or cuda)", name);
    return -1;
}

int mamba_backbones_use_device(mamba_backbone *const *bbs, int n, int dev) {
    static int said; /* a cross-validation builds one model per fold: one notice is enough */
    if (dev != MK_DEV_CUDA) return MK_DEV_CPU;
    for (int k = 0; k < n; k++) {
        if (mamba_backbone_set_device(bbs[k], MK_DEV_CUDA) == 0) continue;
        if (!said++) fprintf(stderr, "mambakit: --device cuda: %s; running on the CPU\n", mk_last_error());
        for (int j = 0; j < k; j++) mamba_backbone_set_device(bbs[j], MK_DEV_CPU);
        return MK_DEV_CPU;
    }
    return MK_DEV_CUDA;
}

/* The scan kernels take d_state 4, 8, 16, 32 or 64 (mkc_scan_supported). Any other N up to 64
 * (S-Mamba's default is 2) scans padded to the next of those, with zero columns in B and C and
 * zero rows in A: a padded state starts at 0, takes in B = 0 and is read with C = 0, so it
 * stays 0 and changes neither the output nor any real gradient. Returns that size, or 0 above
 * 64. */
static int scan_np(int N) {
    for (int s = 4; s <= 64; s *= 2)
        if (N >= 1 && N <= s) return s;
    return 0;
}

/* The declared shapes the CUDA path supports; must agree with the launchers
 * in core/cuda/scan.cu (mkc_scan_supported) and core/cuda/ops.cu (conv K <= 8). */
int mamba_backbone_cuda_supported(const mamba_backbone *m, char *why, int len) {
    int N = m->N;
    if (m->cfg.norm != MK_NORM_RMS && m->cfg.norm != MK_NORM_LN && m->cfg.norm != MK_NORM_NONE) {
        snprintf(why, len, "norm %d (the CUDA layers take RMSNorm, LayerNorm or none)", m->cfg.norm);
        return 0;
    }
    if (!scan_np(N)) {
        snprintf(why, len, "d_state %d (the CUDA scan takes 1 to 64)", N);
        return 0;
    }
    if (m->K > 8) {
        snprintf(why, len, "d_conv %d (the CUDA conv takes up to 8)", m->K);
        return 0;
    }
    return 1;
}

#if !MK_HAVE_CUDA

int mamba_backbone_set_device(mamba_backbone *m, int device) {
    if (device == MK_DEV_CPU) {
        m->device = MK_DEV_CPU;
        return 0;
    }
    mk_error("this build has no CUDA support");
    return -1;
}
void mamba_backbone_release_device(mamba_backbone *m) { m->dev = NULL; }
int mk_cuda_backbone_forward(mamba_backbone *m, mamba_acts *a, float *out, const float *x, int B, int L,
                             const int *const *orders, const int *ps, int per_sample, int training, mk_rng *rng) {
    if (m->device == MK_DEV_CUDA) {
        fprintf(stderr, "mambakit: this build has no CUDA support; running on the CPU\n");
        m->device = MK_DEV_CPU;
    }
    return -1;
}
int mk_cuda_backbone_backward(mamba_backbone *m, mamba_acts *a, float *dx, const float *dout) { return -1; }
float mamba_backbone_cuda_train_step(mamba_backbone *m, mamba_acts *a, const float *x, const float *target, int B,
                                     int L, const int *const *orders, const mk_adamw_cfg *c, mk_rng *rng) {
    mk_error("this build has no CUDA support");
    return NAN;
}
int mamba_backbone_cuda_sync_host(mamba_backbone *m) { return 0; }
int mk_cuda_cls_train_step(mamba_backbone *m, mamba_acts *a, const mk_cls_frontend *f, const float *img, const int *y,
                           const float *tprob, int B, const int *const *orders, const mk_adamw_cfg *c, mk_rng *rng,
                           float *loss, int *correct) {
    mk_error("this build has no CUDA support");
    return -1;
}
int mk_cuda_cls_forward(mamba_backbone *m, mamba_acts *a, const mk_cls_frontend *f, const float *img, int B,
                        const int *const *orders, float *feat, float *logits) {
    return -1;
}
int mk_cuda_enh_train_step(mamba_backbone *m, mamba_acts *a, const mk_enh_frontend *f, const float *feat, const float *c,
                           const float *cc, const float *cosd, int B, int L, const int *const *orders,
                           const mk_adamw_cfg *cfg, mk_rng *rng, const mk_enh_waveform *wf, mk_enh_host_term term,
                           void *ctx, float *hmask, float *hdz, float *loss) {
    mk_error("this build has no CUDA support");
    return -1;
}
int mk_cuda_enh_forward(mamba_backbone *m, mamba_acts *a, const mk_enh_frontend *f, const float *feat, int B, int L,
                        const int *const *orders, float *mask) {
    mk_error("this build has no CUDA support");
    return -1;
}
int mk_cuda_pts_train_step(mamba_backbone *m, mamba_acts *a, const mk_pts_frontend *f, const float *rel,
                           const float *ctr, const int *order, const int *y, int n, const mk_adamw_cfg *c, mk_rng *rng,
                           float *loss, int *correct) {
    mk_error("this build has no CUDA support");
    return -1;
}
int mk_cuda_pts_forward(mamba_backbone *m, mamba_acts *a, const mk_pts_frontend *f, const float *rel,
                        const float *ctr, const int *order, int n, float *feat, float *logits) {
    mk_error("this build has no CUDA support");
    return -1;
}
int mk_cuda_ts_train_step(mamba_backbone *bbs, mamba_acts *acts, int n_bb, const mk_ts_frontend *f, const float *tok,
                          const float *rmean, const float *rstd, const float *target, const float *masks, int B,
                          const mk_adamw_cfg *c, float *loss) {
    mk_error("this build has no CUDA support");
    return -1;
}
int mk_cuda_ts_forward(mamba_backbone *bbs, mamba_acts *acts, int n_bb, const mk_ts_frontend *f, const float *tok,
                       const float *rmean, const float *rstd, int B, float *pred) {
    mk_error("this build has no CUDA support");
    return -1;
}
int mk_cuda_mil_train_step(mamba_backbone *m, mamba_acts *a, const mk_mil_frontend *f, const float *x, int L, int y,
                           const float *dmask, int batch, int begin, int update, const mk_adamw_cfg *c, mk_rng *rng,
                           float *logit, float *aux_logit) {
    mk_error("this build has no CUDA support");
    return -1;
}
int mk_cuda_mil_forward(mamba_backbone *m, mamba_acts *a, const mk_mil_frontend *f, const float *x, int L,
                        float *logit, float *aux_logit, float *att) {
    mk_error("this build has no CUDA support");
    return -1;
}
int mk_cuda_bench_scan(int B, int L, int E, int N, int reps, double res[6]) {
    mk_error("this build has no CUDA support");
    return -1;
}

#else /* MK_HAVE_CUDA */

/* Device state of one backbone: a mirror of the whole parameter table
 * (values, grads, AdamW moments), the activations of the last forward and
 * the backward scratch, each one allocation. A model of several backbones in one table (the
 * S-Mamba forecaster) keeps ONE device table: its other backbones borrow backbone 0's (owner
 * set; P, G, decay point into the owner's and are not freed here; Mo, Vo and resident are read
 * from the owner), each keeping its own activations. */
typedef struct cuda_bb {
    struct cuda_bb *owner; /* NULL: this state owns its table */
    int ts_drawn;          /* the forecaster step's orders are in orders_d (bb_prepare's draws clear it) */
    size_t total;
    float *P, *G, *Mo, *Vo; /* (total) each; Mo/Vo allocated on the first train step */
    float *decay;           /* (total) 0/1 per element, for AdamW */
    int resident;           /* 1: device params are newer than the host's */
    int B, L, fwd_ok;
    float *acts;
    size_t acts_n;
    int *orders_d;   /* (NL, G, L); per-sample orders (NL, G, B L), rows of the whole batch */
    float *dpm_d;    /* (NL, B) */
    int ps;          /* orders_d holds per-sample orders (mamba_backbone_forward_ps's) */
    int *orders_h;   /* host copies */
    float *dpm_h;
    size_t orders_n, dpm_n;
    float *io;       /* (T, D) x/out/dout/dx staging */
    float *tgt;      /* (T, D) */
    float *fe;       /* a classifier's front-end and head activations (mk_cuda_cls_train_step) */
    size_t fe_n;
    int *yd;         /* (B) labels; a point step's labels, then its argmax indices */
    int yd_n;
} cuda_bb;

/* The state that holds c's parameter table: the owner for a borrower, else c */
static cuda_bb *tab_of(cuda_bb *c) { return c->owner ? c->owner : c; }

typedef struct {
    float *xg, *convo, *xc, *dbc, *dtin, *Bm, *Cm, *delta, *zg;
} dir_d;
typedef struct {
    float *h, *normed, *mean, *rstd, *xin, *zin, *y;
    dir_d dir[MK_MAX_DIR];
} layer_d;

/* The activation layout counts tokens in Tp = T rounded up to a multiple of 4, so that every
 * sub-buffer starts 16-byte aligned whatever B * L is: the scan kernels copy their inputs 16
 * bytes at a time (an odd T once put B and C 8 bytes off, and the register kernel's 16-byte
 * loads failed: "misaligned address", on enhance's input of 2 s of speech). */
static size_t pad4(size_t T) { return (T + 3) & ~(size_t)3; }
/* Sub-buffers of n[k] floats each, 16-byte aligned, carved one after another from base (NULL:
 * only the total is wanted, and the pointers are NULL); returns the floats they take */
static size_t carve(float *base, const size_t *n, float **const *dst, size_t k) {
    size_t at = 0;
    for (size_t i = 0; i < k; i++) {
        *dst[i] = base ? base + at : NULL;
        at += pad4(n[i]);
    }
    return at;
}
static size_t dir_floats(const mamba_backbone *m, size_t T) {
    T = pad4(T);
    return T * (5 * (size_t)m->E + (m->R + 2 * m->N) + m->R + 2 * (size_t)scan_np(m->N));
}
static size_t layer_floats(const mamba_backbone *m, size_t T) {
    return pad4(T) * (2 * (size_t)m->D + 2 + 3 * (size_t)m->E) + m->G * dir_floats(m, T);
}
/* scratch: the larger of forward (yg (T,E), branch (T,D), A and its unpadded copy (E,Np))
 * and backward (dres, dnormed (T,D); 9 x (T,E); ddbc (T,XD); dBm, dCm (T,Np); A, dA and their
 * unpadded copies (E,Np)); Np = scan_np(N) */
static size_t scratch_floats(const mamba_backbone *m, size_t T) {
    T = pad4(T);
    const size_t Np = (size_t)scan_np(m->N);
    return T * (2 * (size_t)m->D + 9 * (size_t)m->E + (m->R + 2 * m->N) + 2 * Np) + 4 * (size_t)m->E * Np +
           T * (size_t)m->E;
}
static layer_d get_layer_d(const mamba_backbone *m, const cuda_bb *c, int l) {
    size_t T = pad4((size_t)c->B * c->L);
    layer_d la;
    float *p = c->acts + (size_t)l * layer_floats(m, T);
    la.h = p, p += T * m->D;
    la.normed = p, p += T * m->D;
    la.mean = p, p += T;
    la.rstd = p, p += T;
    la.xin = p, p += T * m->E;
    la.zin = p, p += T * m->E;
    la.y = p, p += T * m->E;
    for (int g = 0; g < m->G; g++) {
        dir_d *d = &la.dir[g];
        d->xg = p, p += T * m->E;
        d->convo = p, p += T * m->E;
        d->xc = p, p += T * m->E;
        d->delta = p, p += T * m->E;
        d->zg = p, p += T * m->E;
        d->dbc = p, p += T * (m->R + 2 * m->N);
        d->dtin = p, p += T * m->R;
        d->Bm = p, p += T * scan_np(m->N); /* (T, Np): zero-padded for the scan, see scan_np */
        d->Cm = p, p += T * scan_np(m->N);
    }
    return la;
}
static float *final_d(const mamba_backbone *m, const cuda_bb *c) {
    return c->acts + (size_t)m->cfg.n_layer * layer_floats(m, (size_t)c->B * c->L);
}
static float *scratch_d(const mamba_backbone *m, const cuda_bb *c) {
    size_t T = pad4((size_t)c->B * c->L);
    return final_d(m, c) + T * (m->D + 2);
}

static void bb_free(cuda_bb *c) {
    if (!c) return;
    if (!c->owner) { /* a borrower's table is its owner's */
        mkc_free(c->P);
        mkc_free(c->G);
        mkc_free(c->Mo);
        mkc_free(c->Vo);
        mkc_free(c->decay);
    }
    mkc_free(c->acts);
    mkc_free(c->orders_d);
    mkc_free(c->dpm_d);
    mkc_free(c->io);
    mkc_free(c->tgt);
    mkc_free(c->fe);
    mkc_free(c->yd);
    free(c->orders_h);
    free(c->dpm_h);
    free(c);
}

void mamba_backbone_release_device(mamba_backbone *m) {
    bb_free((cuda_bb *)m->dev);
    m->dev = NULL;
}

/* Create the device mirror; 0 or -1 with mk_error. */
static int bb_attach(mamba_backbone *m) {
    if (m->dev) return 0;
    char why[160];
    if (!mk_cuda_available() || mkc_init() != 0) {
        mk_error("no CUDA device available (%s)", mk_cuda_device_name());
        return -1;
    }
    if (!mamba_backbone_cuda_supported(m, why, sizeof why)) {
        mk_error("the CUDA backend does not support %s", why);
        return -1;
    }
    cuda_bb *c = mk_calloc(1, sizeof *c);
    const mk_params *p = m->p;
    c->total = p->total;
    c->P = mkc_malloc(sizeof(float) * c->total);
    c->G = mkc_malloc(sizeof(float) * c->total);
    c->decay = mkc_malloc(sizeof(float) * c->total);
    if (!c->P || !c->G || !c->decay) {
        mk_error("CUDA: out of device memory for %zu parameters", c->total);
        bb_free(c);
        return -1;
    }
    float *dec = mk_malloc(sizeof(float) * (c->total ? c->total : 1));
    for (int k = 0; k < p->n; k++)
        for (size_t i = 0; i < p->t[k].numel; i++) dec[p->t[k].offset + i] = p->t[k].decay ? 1.f : 0.f;
    int rc = mkc_upload(c->decay, dec, sizeof(float) * c->total);
    free(dec);
    if (rc) {
        mk_error("CUDA: %s", mkc_last_error());
        bb_free(c);
        return -1;
    }
    m->dev = c;
    return 0;
}

int mamba_backbone_set_device(mamba_backbone *m, int device) {
    if (device == MK_DEV_CPU) {
        if (m->dev) {
            /* a borrower's table stays with its owner, which copies it back */
            const cuda_bb *c = (const cuda_bb *)m->dev;
            if (!c->owner && c->resident && mamba_backbone_cuda_sync_host(m)) return -1;
            mamba_backbone_release_device(m);
        }
        m->device = MK_DEV_CPU;
        return 0;
    }
    if (bb_attach(m)) return -1;
    m->device = MK_DEV_CUDA;
    return 0;
}

static int draws_reserve(const mamba_backbone *m, cuda_bb *c, int B, int L);
/* Grow activations for (B, L). */
static int bb_ensure(const mamba_backbone *m, cuda_bb *c, int B, int L) {
    size_t T = (size_t)B * L;
    size_t need = (size_t)m->cfg.n_layer * layer_floats(m, T) + pad4(T) * (m->D + 2) + scratch_floats(m, T);
    if (need > c->acts_n) {
        mkc_free(c->acts);
        mkc_free(c->io);
        mkc_free(c->tgt);
        c->acts = mkc_malloc(sizeof(float) * need);
        /* padded as `need` is: a later (B, L) whose padded size fits reuses these buffers
         * without reallocating, so they must hold pad4(T) rows, not this call's T */
        c->io = mkc_malloc(sizeof(float) * pad4(T) * m->D);
        c->tgt = mkc_malloc(sizeof(float) * pad4(T) * m->D);
        if (!c->acts || !c->io || !c->tgt) {
            mkc_free(c->acts);
            c->acts = NULL;
            c->acts_n = 0;
            mk_error("CUDA: out of device memory for activations (B %d, L %d)", B, L);
            return -1;
        }
        c->acts_n = need;
    }
    if (draws_reserve(m, c, B, L)) return -1;
    c->B = B;
    c->L = L;
    return 0;
}

/* Room for the random draws of a pass over (B, L): orders (NL, G, B L), enough for per-sample
 * ones, and drop-path masks (NL, B), on the device and the host; 0 or -1 with mk_error */
static int draws_reserve(const mamba_backbone *m, cuda_bb *c, int B, int L) {
    const size_t nl = (size_t)(m->cfg.n_layer ? m->cfg.n_layer : 1);
    size_t no = nl * m->G * B * L;
    size_t nd = nl * B;
    if (no > c->orders_n) {
        mkc_free(c->orders_d);
        c->orders_d = mkc_malloc(sizeof(int) * no);
        c->orders_h = mk_realloc(c->orders_h, sizeof(int) * no);
        c->orders_n = no;
    }
    if (nd > c->dpm_n) {
        mkc_free(c->dpm_d);
        c->dpm_d = mkc_malloc(sizeof(float) * nd);
        c->dpm_h = mk_realloc(c->dpm_h, sizeof(float) * nd);
        c->dpm_n = nd;
    }
    if (!c->orders_d || !c->dpm_d) {
        c->orders_n = c->dpm_n = 0; /* so that the next call tries again */
        mk_error("CUDA: out of device memory");
        return -1;
    }
    return 0;
}

#define DP(i) (c->P + p->t[(i)].offset)
#define DG(i) (c->G + p->t[(i)].offset)

static void norm_fwd_d(const mamba_backbone *m, const cuda_bb *c, float *out, float *mean, float *rstd,
                       const float *inp, int wi, int bi, int T) {
    const mk_params *p = m->p;
    if (m->cfg.norm == MK_NORM_NONE) { /* the mixer reads the residual stream itself (mamba.c) */
        if (out != inp) mkc_copy(out, inp, sizeof(float) * (size_t)T * m->D);
    } else if (m->cfg.norm == MK_NORM_LN)
        mkc_layernorm_forward(out, mean, rstd, inp, DP(wi), DP(bi), T, m->D, m->cfg.eps);
    else
        mkc_rmsnorm_forward(out, rstd, inp, DP(wi), T, m->D, m->cfg.eps);
}
static void norm_bwd_d(const mamba_backbone *m, const cuda_bb *c, float *dinp, const float *dout, const float *inp,
                       const float *mean, const float *rstd, int wi, int bi, int T) {
    const mk_params *p = m->p;
    if (m->cfg.norm == MK_NORM_NONE)
        mkc_vec_acc(dinp, dout, (size_t)T * m->D);
    else if (m->cfg.norm == MK_NORM_LN)
        mkc_layernorm_backward(dinp, DG(wi), DG(bi), dout, inp, DP(wi), mean, rstd, T, m->D);
    else
        mkc_rmsnorm_backward(dinp, DG(wi), dout, inp, DP(wi), rstd, T, m->D);
}

/* One pass's orders and drop-path masks into the host copies, by mamba.c's own draws (same RNG
 * calls in the same order); bb_ensure made room */
static void draw_orders_host(mamba_backbone *m, cuda_bb *c, int B, int L, const int *const *orders, const int *ps,
                             int per_sample, int training, mk_rng *rng) {
    mamba_backbone_draw(m, B, L, orders, ps, per_sample, training, rng, c->orders_h, c->dpm_h);
    c->ps = per_sample;
    c->ts_drawn = 0;
}

/* One pass's draws, uploaded */
static int draw_orders(mamba_backbone *m, cuda_bb *c, int B, int L, const int *const *orders, const int *ps,
                       int per_sample, int training, mk_rng *rng) {
    const int G = m->G, NL = m->cfg.n_layer;
    draw_orders_host(m, c, B, L, orders, ps, per_sample, training, rng);
    if (NL == 0) return 0;
    const size_t OL = per_sample ? (size_t)B * L : (size_t)L;
    if (mkc_upload(c->orders_d, c->orders_h, sizeof(int) * (size_t)NL * G * OL) ||
        mkc_upload(c->dpm_d, c->dpm_h, sizeof(float) * (size_t)NL * B))
        return -1;
    return 0;
}

/* Forward on device buffers: x_d (T, D) in, out_d (T, D) out. */
static void bb_forward_dev(mamba_backbone *m, cuda_bb *c, float *out_d, const float *x_d) {
    const mk_params *p = m->p;
    const int B = c->B, L = c->L, D = m->D, E = m->E, N = m->N, R = m->R, K = m->K, G = m->G, NL = m->cfg.n_layer;
    const int T = B * L, XD = R + 2 * N, Np = scan_np(N), padN = Np != N;
    const int OB = c->ps ? 1 : B, OL = c->ps ? T : L; /* per-sample orders: rows of the whole batch */
    const size_t Tp = pad4((size_t)T); /* layout stride (pad4) */
    float *yg = scratch_d(m, c), *branch = yg + Tp * E, *A = branch + Tp * D, *Ac = A + (size_t)E * Np;
    const float merge = m->cfg.merge == MK_MERGE_MEAN ? 1.f / G : 1.f;

    float *h = NL > 0 ? get_layer_d(m, c, 0).h : final_d(m, c);
    mkc_copy(h, x_d, sizeof(float) * (size_t)T * D);
    for (int l = 0; l < NL; l++) {
        const mamba_layer_idx *Li = &m->layer[l];
        layer_d la = get_layer_d(m, c, l);
        const int *eff = c->orders_d + (size_t)l * G * OL;
        norm_fwd_d(m, c, la.normed, la.mean, la.rstd, la.h, Li->norm_w, Li->norm_b, T);
        const float *Win = DP(Li->in_proj);
        mkc_linear_forward(la.xin, la.normed, Win, NULL, T, D, E);
        mkc_linear_forward(la.zin, la.normed, Win + (size_t)E * D, NULL, T, D, E);
        mkc_memset0(la.y, sizeof(float) * (size_t)T * E);
        for (int g = 0; g < G; g++) {
            dir_d *d = &la.dir[g];
            const int *o = eff + (size_t)g * OL;
            mkc_gather_rows(d->xg, la.xin, o, OB, OL, E);
            mkc_gather_rows(d->zg, la.zin, o, OB, OL, E);
            mkc_conv1d_forward(d->convo, d->xg, DP(Li->conv_w[g]), DP(Li->conv_b[g]), B, L, E, K);
            mkc_silu_forward(d->xc, d->convo, (size_t)T * E);
            if (Li->x_proj[g] >= 0) {
                mkc_linear_forward(d->dbc, d->xc, DP(Li->x_proj[g]), NULL, T, E, XD);
                mkc_split_cols(d->dtin, d->dbc, T, XD, 0, R);
                if (padN) { /* Bm, Cm adjacent in the layout: one clear for both */
                    mkc_memset0(d->Bm, sizeof(float) * 2 * Tp * Np);
                    mkc_copy_cols(d->Bm, Np, d->dbc + R, XD, T, N);
                    mkc_copy_cols(d->Cm, Np, d->dbc + R + N, XD, T, N);
                } else {
                    mkc_split_cols(d->Bm, d->dbc, T, XD, R, N);
                    mkc_split_cols(d->Cm, d->dbc, T, XD, R + N, N);
                }
                mkc_linear_forward(d->delta, d->dtin, DP(Li->dt_w[g]), NULL, T, R, E);
            } else {
                const float *bc = DP(Li->Bc[g]), *cc = DP(Li->Cc[g]);
                if (padN) { /* the padded rows, in Ac until A needs it */
                    mkc_memset0(Ac, sizeof(float) * 2 * Np);
                    mkc_copy(Ac, bc, sizeof(float) * N);
                    mkc_copy(Ac + Np, cc, sizeof(float) * N);
                    bc = Ac, cc = Ac + Np;
                }
                mkc_broadcast_row(d->Bm, bc, T, Np);
                mkc_broadcast_row(d->Cm, cc, T, Np);
                mkc_memset0(d->delta, sizeof(float) * (size_t)T * E);
            }
            if (padN) {
                mkc_neg_exp(Ac, DP(Li->A_log[g]), (size_t)E * N);
                mkc_memset0(A, sizeof(float) * (size_t)E * Np);
                mkc_copy_cols(A, Np, Ac, N, E, N);
            } else
                mkc_neg_exp(A, DP(Li->A_log[g]), (size_t)E * N);
            mkc_scan_forward(yg, NULL, d->xc, d->delta, A, d->Bm, d->Cm, DP(Li->Dp[g]), d->zg, DP(Li->dt_b[g]), NULL,
                             B, L, E, Np, 1);
            mkc_scatter_add_rows(la.y, yg, o, OB, OL, E, merge);
        }
        mkc_linear_forward(branch, la.y, DP(Li->out_proj), NULL, T, E, D);
        float *hn = l + 1 < NL ? get_layer_d(m, c, l + 1).h : final_d(m, c);
        mkc_residual(hn, la.h, branch, c->dpm_d + (size_t)l * B, B, (size_t)L * D);
    }
    float *hL = final_d(m, c);
    float *meanf = hL + pad4((size_t)T) * D, *rstdf = meanf + pad4((size_t)T);
    if (m->normf_w >= 0) norm_fwd_d(m, c, out_d, meanf, rstdf, hL, m->normf_w, m->normf_b, T);
    else mkc_copy(out_d, hL, sizeof(float) * (size_t)T * D);
}

/* Backward on device buffers: dout_d (T, D) in; dres (first T*D floats of the
 * scratch) holds d(input) at the end. Grads += into c->G. */
static float *bb_backward_dev(mamba_backbone *m, cuda_bb *c, const float *dout_d) {
    const mk_params *p = m->p;
    const int B = c->B, L = c->L, D = m->D, E = m->E, N = m->N, R = m->R, K = m->K, G = m->G, NL = m->cfg.n_layer;
    const int T = B * L, XD = R + 2 * N, Np = scan_np(N), padN = Np != N;
    const size_t TE = (size_t)T * E, Tp = pad4((size_t)T), TEp = Tp * E; /* counts; layout strides */
    const int OB = c->ps ? 1 : B, OL = c->ps ? T : L; /* as the forward gathered */
    const float merge = m->cfg.merge == MK_MERGE_MEAN ? 1.f / G : 1.f;
    float *s = scratch_d(m, c);
    float *dres = s;
    s += Tp * D;
    float *dnormed = s;
    s += Tp * D;
    float *dxin = s, *dzin = s + TEp, *dy = s + 2 * TEp, *dyg = s + 3 * TEp, *dxc = s + 4 * TEp,
          *dconvo = s + 5 * TEp, *ddelta = s + 6 * TEp, *dzg = s + 7 * TEp, *dxg = s + 8 * TEp;
    s += 9 * TEp;
    float *ddbc = s;
    s += Tp * XD;
    float *dBm = s, *dCm = s + Tp * Np;
    s += 2 * Tp * Np;
    const size_t ENp = (size_t)E * Np;
    float *A = s, *dA = s + ENp, *Ac = dA + ENp, *dAc = Ac + ENp; /* Ac, dAc: unpadded (E, N) */

    float *hL = final_d(m, c);
    float *meanf = hL + pad4((size_t)T) * D, *rstdf = meanf + pad4((size_t)T);
    mkc_memset0(dres, sizeof(float) * (size_t)T * D);
    if (m->normf_w >= 0) norm_bwd_d(m, c, dres, dout_d, hL, meanf, rstdf, m->normf_w, m->normf_b, T);
    else mkc_copy(dres, dout_d, sizeof(float) * (size_t)T * D);

    for (int l = NL - 1; l >= 0; l--) {
        const mamba_layer_idx *Li = &m->layer[l];
        layer_d la = get_layer_d(m, c, l);
        const int *eff = c->orders_d + (size_t)l * G * OL;
        float *dbranch = dnormed;
        mkc_rowscale(dbranch, dres, c->dpm_d + (size_t)l * B, B, (size_t)L * D);
        mkc_memset0(dy, sizeof(float) * TE);
        mkc_linear_backward(dy, DG(Li->out_proj), NULL, dbranch, la.y, DP(Li->out_proj), T, E, D);
        mkc_memset0(dxin, sizeof(float) * 2 * TEp); /* dxin and dzin */
        for (int g = 0; g < G; g++) {
            dir_d *d = &la.dir[g];
            const int *o = eff + (size_t)g * OL;
            mkc_gather_rows(dyg, dy, o, OB, OL, E);
            if (merge != 1.f) mkc_vec_scale(dyg, merge, TE);
            mkc_memset0(dxc, sizeof(float) * TE);
            mkc_memset0(ddelta, sizeof(float) * TE);
            mkc_memset0(dzg, sizeof(float) * TE);
            mkc_memset0(dBm, sizeof(float) * 2 * Tp * Np); /* dBm and dCm */
            mkc_memset0(dA, sizeof(float) * ENp);
            if (padN) {
                mkc_neg_exp(Ac, DP(Li->A_log[g]), (size_t)E * N);
                mkc_memset0(A, sizeof(float) * ENp);
                mkc_copy_cols(A, Np, Ac, N, E, N);
            } else
                mkc_neg_exp(A, DP(Li->A_log[g]), (size_t)E * N);
            mkc_scan_backward(dxc, ddelta, dA, dBm, dCm, DG(Li->Dp[g]), dzg, DG(Li->dt_b[g]), NULL, dyg, NULL, d->xc,
                              d->delta, A, d->Bm, d->Cm, DP(Li->Dp[g]), d->zg, DP(Li->dt_b[g]), NULL, B, L, E, Np, 1);
            /* A = -exp(A_log): dA_log += dA * A (the padded states' dA dropped) */
            if (padN) {
                mkc_copy_cols(dAc, N, dA, Np, E, N);
                mkc_mul_acc(DG(Li->A_log[g]), dAc, Ac, (size_t)E * N);
            } else
                mkc_mul_acc(DG(Li->A_log[g]), dA, A, (size_t)E * N);
            if (Li->x_proj[g] >= 0) {
                float *ddtin = dconvo; /* (T, R) temp */
                mkc_memset0(ddtin, sizeof(float) * (size_t)T * R);
                mkc_linear_backward(ddtin, DG(Li->dt_w[g]), NULL, ddelta, d->dtin, DP(Li->dt_w[g]), T, R, E);
                mkc_merge_cols(ddbc, ddtin, T, XD, 0, R);
                if (padN) {
                    mkc_copy_cols(ddbc + R, XD, dBm, Np, T, N);
                    mkc_copy_cols(ddbc + R + N, XD, dCm, Np, T, N);
                } else {
                    mkc_merge_cols(ddbc, dBm, T, XD, R, N);
                    mkc_merge_cols(ddbc, dCm, T, XD, R + N, N);
                }
                mkc_linear_backward(dxc, DG(Li->x_proj[g]), NULL, ddbc, d->xc, DP(Li->x_proj[g]), T, E, XD);
            } else if (padN) { /* column sums of the padded (T, Np) into dAc, then the real N */
                mkc_memset0(dAc, sizeof(float) * 2 * Np);
                mkc_colsum(dAc, dBm, T, Np);
                mkc_colsum(dAc + Np, dCm, T, Np);
                mkc_vec_acc(DG(Li->Bc[g]), dAc, N);
                mkc_vec_acc(DG(Li->Cc[g]), dAc + Np, N);
            } else {
                mkc_colsum(DG(Li->Bc[g]), dBm, T, N);
                mkc_colsum(DG(Li->Cc[g]), dCm, T, N);
            }
            mkc_memset0(dconvo, sizeof(float) * TE);
            mkc_silu_backward(dconvo, dxc, d->convo, TE);
            mkc_memset0(dxg, sizeof(float) * TE);
            mkc_conv1d_backward(dxg, DG(Li->conv_w[g]), DG(Li->conv_b[g]), dconvo, d->xg, DP(Li->conv_w[g]), B, L, E,
                                K);
            mkc_scatter_add_rows(dxin, dxg, o, OB, OL, E, 1.f);
            mkc_scatter_add_rows(dzin, dzg, o, OB, OL, E, 1.f);
        }
        const float *Win = DP(Li->in_proj);
        float *gWin = DG(Li->in_proj);
        mkc_memset0(dnormed, sizeof(float) * (size_t)T * D);
        mkc_linear_backward(dnormed, gWin, NULL, dxin, la.normed, Win, T, D, E);
        mkc_linear_backward(dnormed, gWin + (size_t)E * D, NULL, dzin, la.normed, Win + (size_t)E * D, T, D, E);
        norm_bwd_d(m, c, dres, dnormed, la.h, la.mean, la.rstd, Li->norm_w, Li->norm_b, T);
    }
    return dres;
}

/* Lazily attach when a caller set m->device = MK_DEV_CUDA directly. */
static cuda_bb *bb_get(mamba_backbone *m) {
    if (m->dev) return (cuda_bb *)m->dev;
    if (bb_attach(m)) {
        fprintf(stderr, "mambakit: %s; running on the CPU\n", mk_last_error());
        m->device = MK_DEV_CPU;
        return NULL;
    }
    return (cuda_bb *)m->dev;
}

static int bb_prepare(mamba_backbone *m, cuda_bb *c, mamba_acts *a, int B, int L, const int *const *orders,
                      const int *ps, int per_sample, int training, mk_rng *rng) {
    if (training) MK_ASSERT(rng || (m->cfg.drop_path <= 0 && m->cfg.shuffle_p <= 0));
    if (bb_ensure(m, c, B, L)) return -1;
    if (!tab_of(c)->resident && mkc_upload(c->P, m->p->data, sizeof(float) * c->total)) return -1;
    if (draw_orders(m, c, B, L, orders, ps, per_sample, training, rng)) return -1;
    a->per_sample = per_sample;
    a->B = B;
    a->L = L;
    a->training = training;
    return 0;
}

int mk_cuda_backbone_forward(mamba_backbone *m, mamba_acts *a, float *out, const float *x, int B, int L,
                             const int *const *orders, const int *ps, int per_sample, int training, mk_rng *rng) {
    if (m->device != MK_DEV_CUDA) return -1;
    cuda_bb *c = bb_get(m);
    if (!c) return -1;
    c->fwd_ok = 0;
    size_t TD = (size_t)B * L * m->D;
    if (bb_prepare(m, c, a, B, L, orders, ps, per_sample, training, rng) ||
        mkc_upload(c->io, x, sizeof(float) * TD))
        goto fail;
    bb_forward_dev(m, c, c->io, c->io);
    if (mkc_download(out, c->io, sizeof(float) * TD) || mkc_sync()) goto fail;
    c->fwd_ok = 1;
    return 0;
fail:
    /* a device failure mid-step is not recoverable: the caller's buffers are
     * undefined. Report and stop, as for a broken invariant. */
    fprintf(stderr, "mambakit: CUDA backbone forward failed: %s\n", mkc_last_error());
    abort();
}

int mk_cuda_backbone_backward(mamba_backbone *m, mamba_acts *a, float *dx, const float *dout) {
    if (m->device != MK_DEV_CUDA || !m->dev) return -1;
    cuda_bb *c = (cuda_bb *)m->dev;
    MK_ASSERT(c->fwd_ok && c->B == a->B && c->L == a->L);
    const mk_params *p = m->p;
    size_t TD = (size_t)c->B * c->L * m->D;
    /* the host's gradients go up and the device adds onto them in place, as the CPU's ops add
     * into m->p->grad: a caller that accumulates over several backward calls (the point
     * classifier, one object at a time) gets the CPU's sums, not sums of per-call partials */
    if (mkc_upload(c->io, dout, sizeof(float) * TD) || mkc_upload(c->G, p->grad, sizeof(float) * c->total))
        goto fail;
    float *dres = bb_backward_dev(m, c, c->io);
    if (mkc_sync() || mkc_download(p->grad, c->G, sizeof(float) * c->total)) goto fail;
    if (dx) {
        float *hx = mk_malloc(sizeof(float) * (TD ? TD : 1));
        if (mkc_download(hx, dres, sizeof(float) * TD)) {
            free(hx);
            goto fail;
        }
        vec_acc(dx, hx, TD);
        free(hx);
    }
    return 0;
fail:
    fprintf(stderr, "mambakit: CUDA backbone backward failed: %s\n", mkc_last_error());
    abort();
}

/* AdamW moments on the device, from the host's if it has any; 0 or -1 with mk_error */
static int bb_moments(const mamba_backbone *m, cuda_bb *c) {
    if (c->Mo) return 0;
    const mk_params *p = m->p;
    c->Mo = mkc_malloc(sizeof(float) * c->total);
    c->Vo = mkc_malloc(sizeof(float) * c->total);
    if (!c->Mo || !c->Vo) {
        mkc_free(c->Mo);
        mkc_free(c->Vo);
        c->Mo = c->Vo = NULL;
        mk_error("CUDA: out of device memory for AdamW moments");
        return -1;
    }
    /* continue from the host's moments if it has any */
    if (p->m && p->v) {
        if (mkc_upload(c->Mo, p->m, sizeof(float) * c->total) || mkc_upload(c->Vo, p->v, sizeof(float) * c->total)) {
            mk_error("CUDA: %s", mkc_last_error());
            return -1;
        }
    } else {
        mkc_memset0(c->Mo, sizeof(float) * c->total);
        mkc_memset0(c->Vo, sizeof(float) * c->total);
    }
    return 0;
}

/* Global-norm clip + AdamW over the whole table on the device (mk_adamw_step's math: a
 * non-finite norm skips the update, weights, moments and step unchanged) */
static void bb_adamw(mamba_backbone *m, cuda_bb *c, const mk_adamw_cfg *cfg) {
    mk_params *p = m->p;
    double ss = mkc_sumsq(c->G, c->total);
    float norm = (float)sqrt(ss);
    if (!isfinite(norm)) return;
    float gscale = 1.f;
    if (cfg->clip > 0 && norm > cfg->clip) gscale = cfg->clip / (norm + 1e-6f);
    float lr = mk_lr_at(cfg, p->step);
    long t = p->step + 1;
    float bc1 = 1.f - powf(cfg->beta1, (float)t), bc2 = 1.f - powf(cfg->beta2, (float)t);
    mkc_adamw(c->P, c->G, c->Mo, c->Vo, c->decay, c->total, lr, cfg->beta1, cfg->beta2, cfg->eps,
              cfg->weight_decay, gscale, bc1, bc2);
    p->step++;
}

float mamba_backbone_cuda_train_step(mamba_backbone *m, mamba_acts *a, const float *x, const float *target, int B,
                                     int L, const int *const *orders, const mk_adamw_cfg *cfg, mk_rng *rng) {
    if (m->device != MK_DEV_CUDA && mamba_backbone_set_device(m, MK_DEV_CUDA)) return NAN;
    cuda_bb *c = bb_get(m);
    if (!c) return NAN;
    size_t TD = (size_t)B * L * m->D;
    if (bb_moments(m, c)) return NAN;
    if (bb_prepare(m, c, a, B, L, orders, NULL, 0, 1, rng)) return NAN;
    c->resident = 1;
    if (mkc_upload(c->io, x, sizeof(float) * TD) || mkc_upload(c->tgt, target, sizeof(float) * TD)) return NAN;
    bb_forward_dev(m, c, c->io, c->io);
    /* dout = d mean((out - target)^2) / d out, written over the target */
    float loss = mkc_mse_forward_backward(c->tgt, c->io, c->tgt, TD, 1.f);
    mkc_memset0(c->G, sizeof(float) * c->total);
    c->fwd_ok = 1;
    bb_backward_dev(m, c, c->tgt);
    bb_adamw(m, c, cfg);
    if (mkc_sync()) {
        mk_error("CUDA train step: %s", mkc_last_error());
        return NAN;
    }
    return loss;
}

/* The end of a classifier step: its n per-sample losses and hits (0/1 as floats) come down;
 * the mean loss (the per-sample float losses summed in double, as the CPU loops do) and the
 * hit count; 0, or -1 with mk_error naming the step ("CUDA <what> step: ...") */
static int step_results(const float *loss_d, const float *hit_d, int n, const char *what, float *loss_out,
                        int *correct) {
    float *h = mk_malloc(sizeof(float) * 2 * (size_t)n);
    int rc = mkc_download(h, loss_d, sizeof(float) * n) || mkc_download(h + n, hit_d, sizeof(float) * n) || mkc_sync();
    double loss = 0;
    int hits = 0;
    for (int i = 0; i < n; i++) loss += h[i], hits += h[n + i] > 0.5f;
    free(h);
    if (rc) {
        mk_error("CUDA %s step: %s", what, mkc_last_error());
        return -1;
    }
    if (loss_out) *loss_out = (float)(loss / n);
    if (correct) *correct = hits;
    return 0;
}

/* Device buffers of a classifier step, carved from one allocation (each start a multiple of
 * 4 floats); with base NULL only the size is computed. Returns the floats needed. */
typedef struct {
    float *img, *cols1, *pre1, *act1, *dact1, *cols, *dcols, *tmp, *x, *out, *feat, *logits, *dlogits, *dfeat, *dout,
        *loss, *hit, *tprob;
} cls_bufs;
static size_t cls_layout(const mk_cls_frontend *f, int D, int B, float *base, cls_bufs *o) {
    const size_t S1 = (size_t)f->in_h * f->in_w, P = (size_t)f->gh * f->gw, L = P + 1;
    const size_t F = (size_t)f->in_c * f->kernel * f->kernel, st = f->stem ? 1 : 0, Bz = (size_t)B;
    const size_t n[] = {Bz * f->img_h * f->img_w * f->img_c, /* img */
                        st * Bz * S1 * f->img_c * 16,        /* cols1 */
                        st * Bz * S1 * f->stem,              /* pre1 */
                        st * Bz * S1 * f->stem,              /* act1 */
                        st * Bz * S1 * f->stem,              /* dact1 */
                        Bz * P * F,                          /* cols */
                        st * Bz * P * F,                     /* dcols */
                        Bz * P * D,                          /* tmp */
                        Bz * L * D,                          /* x */
                        Bz * L * D,                          /* out */
                        Bz * D,                              /* feat */
                        Bz * f->n_class,                     /* logits */
                        Bz * f->n_class,                     /* dlogits */
                        Bz * D,                              /* dfeat */
                        Bz * L * D,                          /* dout */
                        Bz,                                  /* loss */
                        Bz,                                  /* hit */
                        Bz * f->n_class};                    /* tprob */
    float **dst[] = {&o->img, &o->cols1, &o->pre1, &o->act1, &o->dact1, &o->cols, &o->dcols, &o->tmp, &o->x,
                     &o->out, &o->feat, &o->logits, &o->dlogits, &o->dfeat, &o->dout, &o->loss, &o->hit, &o->tprob};
    return carve(base, n, dst, sizeof n / sizeof *n);
}

/* The front end's device buffer (c->fe, shared by the classifier and frame-model steps) grown to
 * need floats; 0, or -1 when the device is out of memory (the caller says for what) */
static int fe_reserve(cuda_bb *c, size_t need) {
    if (need > c->fe_n) {
        mkc_free(c->fe);
        c->fe = mkc_malloc(sizeof(float) * need);
        c->fe_n = c->fe ? need : 0;
    }
    return c->fe ? 0 : -1;
}

/* The classifier's device buffers for a batch of B (grown on demand); 0 or -1 with mk_error */
static int cls_bufs_get(const mamba_backbone *m, cuda_bb *c, const mk_cls_frontend *f, int B, cls_bufs *o) {
    if (B < 1 || f->patch_w < 0 || f->pos < 0 || f->cls < 0 || f->head_w < 0 || (f->stem && f->stem_w < 0)) {
        mk_error("CUDA classifier: incomplete front end");
        return -1;
    }
    const int fe_ok = !fe_reserve(c, cls_layout(f, m->D, B, NULL, o));
    if (B > c->yd_n) {
        mkc_free(c->yd);
        c->yd = mkc_malloc(sizeof(int) * B);
        c->yd_n = c->yd ? B : 0;
    }
    if (!fe_ok || !c->yd) {
        mk_error("CUDA: out of device memory for the classifier's activations (batch %d)", B);
        return -1;
    }
    cls_layout(f, m->D, B, c->fe, o);
    return 0;
}

/* vision_forward op for op on the device, from o->img to o->logits (c prepared for B) */
static void cls_forward_dev(mamba_backbone *m, cuda_bb *c, const mk_cls_frontend *f, const cls_bufs *o, int B) {
    const mk_params *p = m->p;
    const int D = m->D, P = f->gh * f->gw, L = P + 1, F = f->in_c * f->kernel * f->kernel, S1 = f->in_h * f->in_w;
    const float *map = o->img;
    if (f->stem) {
        mkc_im2col(o->cols1, o->img, B, f->img_h, f->img_w, f->img_c, 4, 2, f->in_h, f->in_w);
        mkc_linear_forward(o->pre1, o->cols1, DP(f->stem_w), DP(f->stem_b), B * S1, f->img_c * 16, f->stem);
        mkc_gelu_forward(o->act1, o->pre1, (size_t)B * S1 * f->stem);
        map = o->act1;
    }
    mkc_im2col(o->cols, map, B, f->in_h, f->in_w, f->in_c, f->kernel, f->patch, f->gh, f->gw);
    mkc_linear_forward(o->tmp, o->cols, DP(f->patch_w), DP(f->patch_b), B * P, F, D);
    mkc_tokens(o->x, o->tmp, DP(f->pos), DP(f->cls), B, P, D);
    bb_forward_dev(m, c, o->out, o->x);
    mkc_split_cols(o->feat, o->out, B, L * D, P * D, D); /* the class token's row */
    mkc_linear_forward(o->logits, o->feat, DP(f->head_w), DP(f->head_b), B, D, f->n_class);
}

int mk_cuda_cls_forward(mamba_backbone *m, mamba_acts *a, const mk_cls_frontend *f, const float *img, int B,
                        const int *const *orders, float *feat, float *logits) {
    if (m->device != MK_DEV_CUDA) return -1;
    cuda_bb *c = bb_get(m);
    if (!c) return -1;
    cls_bufs o;
    const int L = f->gh * f->gw + 1;
    if (cls_bufs_get(m, c, f, B, &o)) return -1;
    c->fwd_ok = 0; /* this forward keeps nothing for a backward */
    if (bb_prepare(m, c, a, B, L, orders, NULL, 0, 0, NULL) ||
        mkc_upload(o.img, img, sizeof(float) * (size_t)B * f->img_h * f->img_w * f->img_c)) {
        mk_error("CUDA: %s", mkc_last_error());
        return -1;
    }
    cls_forward_dev(m, c, f, &o, B);
    if ((feat && mkc_download(feat, o.feat, sizeof(float) * (size_t)B * m->D)) ||
        (logits && mkc_download(logits, o.logits, sizeof(float) * (size_t)B * f->n_class)) || mkc_sync()) {
        mk_error("CUDA classifier forward: %s", mkc_last_error());
        return -1;
    }
    return 0;
}

int mk_cuda_cls_train_step(mamba_backbone *m, mamba_acts *a, const mk_cls_frontend *f, const float *img, const int *y,
                           const float *tprob, int B, const int *const *orders, const mk_adamw_cfg *cfg, mk_rng *rng,
                           float *loss_out, int *correct) {
    if (m->device != MK_DEV_CUDA && mamba_backbone_set_device(m, MK_DEV_CUDA)) return -1;
    cuda_bb *c = bb_get(m);
    if (!c) return -1;
    const mk_params *p = m->p;
    const int D = m->D, P = f->gh * f->gw, L = P + 1, K = f->n_class, F = f->in_c * f->kernel * f->kernel;
    const int S1 = f->in_h * f->in_w;
    cls_bufs o;
    if (cls_bufs_get(m, c, f, B, &o) || bb_moments(m, c)) return -1;
    /* the same draws as vision_forward: orders and drop-path masks, in mamba.c's order */
    if (bb_prepare(m, c, a, B, L, orders, NULL, 0, 1, rng)) return -1;
    c->resident = 1;
    if (mkc_upload(o.img, img, sizeof(float) * (size_t)B * f->img_h * f->img_w * f->img_c) ||
        mkc_upload(c->yd, y, sizeof(int) * B) || (tprob && mkc_upload(o.tprob, tprob, sizeof(float) * (size_t)B * K))) {
        mk_error("CUDA: %s", mkc_last_error());
        return -1;
    }
    cls_forward_dev(m, c, f, &o, B);
    mkc_xent_smooth(o.dlogits, o.loss, o.hit, o.logits, c->yd, B, K, f->smooth, tprob ? o.tprob : NULL, f->kd_alpha,
                    f->kd_temp);

    /* backward: vision_backward op for op */
    mkc_memset0(c->G, sizeof(float) * c->total);
    mkc_memset0(o.dfeat, sizeof(float) * (size_t)B * D);
    mkc_linear_backward(o.dfeat, DG(f->head_w), DG(f->head_b), o.dlogits, o.feat, DP(f->head_w), B, D, K);
    mkc_memset0(o.dout, sizeof(float) * (size_t)B * L * D);
    mkc_merge_cols(o.dout, o.dfeat, B, L * D, P * D, D);
    c->fwd_ok = 1;
    const float *dx = bb_backward_dev(m, c, o.dout); /* d tokens (B, L, D), in the backbone's scratch */
    mkc_colsum(DG(f->pos), dx, B, L * D);
    mkc_split_cols(o.dfeat, dx, B, L * D, P * D, D);
    mkc_colsum(DG(f->cls), o.dfeat, B, D);
    mkc_split_cols(o.tmp, dx, B, L * D, 0, P * D); /* d patch embedding outputs (B * P, D) */
    if (f->stem) mkc_memset0(o.dcols, sizeof(float) * (size_t)B * P * F);
    mkc_linear_backward(f->stem ? o.dcols : NULL, DG(f->patch_w), DG(f->patch_b), o.tmp, o.cols, DP(f->patch_w), B * P,
                        F, D);
    if (f->stem) {
        const size_t n1 = (size_t)B * S1 * f->stem;
        mkc_memset0(o.dact1, sizeof(float) * n1);
        mkc_col2im_add(o.dact1, o.dcols, B, f->in_h, f->in_w, f->in_c, f->kernel, f->patch, f->gh, f->gw);
        float *dpre1 = o.act1; /* the GELU output is not needed any more */
        mkc_memset0(dpre1, sizeof(float) * n1);
        mkc_gelu_backward(dpre1, o.dact1, o.pre1, n1);
        mkc_linear_backward(NULL, DG(f->stem_w), DG(f->stem_b), dpre1, o.cols1, DP(f->stem_w), B * S1, f->img_c * 16,
                            f->stem);
    }
    bb_adamw(m, c, cfg);
    return step_results(o.loss, o.hit, B, "classifier", loss_out, correct);
}

/* 1 if tensor i of p exists and holds n floats */
static int numel_is(const mk_params *p, int i, size_t n) { return i >= 0 && i < p->n && p->t[i].numel == n; }

/* Device buffers of a frame model's step, carved from one allocation like cls_layout's */
typedef struct {
    float *feat, *c, *cc, *cosd, *h0, *h, *z, *mask, *dz, *prod, *dh, *loss;
    float *xre, *xim, *ref, *basis, *wsum, *neg, *work; /* the waveform term's (empty without) */
} enh_bufs;
static size_t enh_layout(int F, int D, int B, int L, const mk_enh_waveform *wf, float *base, enh_bufs *o) {
    const size_t M = (size_t)B * L, MF = M * F, MD = M * D, on = wf ? 1 : 0, N = wf ? wf->n_fft : 0;
    const size_t n[] = {MF, MF, MF, MF, MD, MD, MF, MF, MF, MF, MD, M,
                        on * MF, on * MF, on * B * (wf ? wf->n : 0), N * 2 * F, wf ? wf->hop : 0, on * B,
                        wf ? mkc_sisdr_work_floats(B, L, F, wf->n_fft, wf->n) : 0};
    float **dst[] = {&o->feat, &o->c,     &o->cc,    &o->cosd,  &o->h0,    &o->h,    &o->z,
                     &o->mask, &o->dz,    &o->prod,  &o->dh,    &o->loss,  &o->xre,  &o->xim,
                     &o->ref,  &o->basis, &o->wsum, &o->neg,  &o->work};
    return carve(base, n, dst, sizeof n / sizeof *n);
}

/* audio/model.c's net_forward op for op on the device, o->feat (M, F) to o->mask (M, F), h0, h
 * and z kept for the step's backward. Shared by the step and the inference forward so that the
 * two cannot drift apart. */
static void enh_forward_dev(mamba_backbone *m, cuda_bb *c, const mk_enh_frontend *f, const enh_bufs *o, int M) {
    const mk_params *p = m->p;
    const int D = m->D, F = f->F;
    mkc_linear_forward(o->h0, o->feat, DP(f->w_in), DP(f->b_in), M, F, D);
    bb_forward_dev(m, c, o->h, o->h0);
    mkc_linear_forward(o->z, o->h, DP(f->w_out), DP(f->b_out), M, D, F);
    mkc_mask_forward(o->mask, o->z, o->feat, f->skip_u >= 0 ? DP(f->skip_u) : NULL, M, F, f->beta);
}

int mk_cuda_enh_forward(mamba_backbone *m, mamba_acts *a, const mk_enh_frontend *f, const float *feat, int B, int L,
                        const int *const *orders, float *mask) {
    if (m->device != MK_DEV_CUDA) {
        mk_error("CUDA frame model forward: the backbone is not on the GPU");
        return -1;
    }
    /* checked against the table, so that a wrong index cannot make the device read past a tensor */
    const mk_params *p = m->p;
    const size_t Fs = f->F, Ds = m->D;
    if (B < 1 || L < 1 || f->F < 1 || !numel_is(p, f->w_in, Ds * Fs) || !numel_is(p, f->b_in, Ds) ||
        !numel_is(p, f->w_out, Fs * Ds) || !numel_is(p, f->b_out, Fs) ||
        (f->skip_u >= 0 && !numel_is(p, f->skip_u, Fs))) {
        mk_error("CUDA frame model forward: front end incomplete or not the model's shapes");
        return -1;
    }
    cuda_bb *c = bb_get(m);
    if (!c) return -1;
    const int M = B * L;
    const size_t MF = (size_t)M * f->F;
    enh_bufs o; /* the step's layout: its loss buffers idle here, a few frames' worth next to the backbone's */
    if (fe_reserve(c, enh_layout(f->F, m->D, B, L, NULL, NULL, &o))) {
        mk_error("CUDA: out of device memory for the frame model's activations (%d frames)", M);
        return -1;
    }
    enh_layout(f->F, m->D, B, L, NULL, c->fe, &o);
    c->fwd_ok = 0; /* this forward keeps nothing for a backward */
    /* bb_prepare uploads the host's table unless a training step left the newer one on the device;
     * inference never marks the device copy the newer: the host's table stays the truth */
    if (bb_prepare(m, c, a, B, L, orders, NULL, 0, 0, NULL) || mkc_upload(o.feat, feat, sizeof(float) * MF)) {
        mk_error("CUDA: %s", mkc_last_error());
        return -1;
    }
    enh_forward_dev(m, c, f, &o, M);
    if (mkc_download(mask, o.mask, sizeof(float) * MF) || mkc_sync()) {
        mk_error("CUDA frame model forward: %s", mkc_last_error());
        return -1;
    }
    return 0;
}

/* The host inputs are named *_h here: `c` is the device state, as DP / DG expect */
int mk_cuda_enh_train_step(mamba_backbone *m, mamba_acts *a, const mk_enh_frontend *f, const float *feat_h,
                           const float *c_h, const float *cc_h, const float *cosd_h, int B, int L,
                           const int *const *orders, const mk_adamw_cfg *cfg, mk_rng *rng, const mk_enh_waveform *wf,
                           mk_enh_host_term term, void *ctx, float *hmask, float *hdz, float *loss_out) {
    if (B < 1 || L < 1 || f->F < 1 || f->w_in < 0 || f->b_in < 0 || f->w_out < 0 || f->b_out < 0 ||
        (term && (!hmask || !hdz)) ||
        (wf && (wf->n_fft != 2 * (f->F - 1) || wf->hop < 1 || wf->n < 1 || !wf->basis || !wf->wsum || !wf->xre ||
                !wf->xim || !wf->ref || !wf->neg_sisdr))) {
        mk_error("CUDA frame model: incomplete front end");
        return -1;
    }
    if (m->device != MK_DEV_CUDA && mamba_backbone_set_device(m, MK_DEV_CUDA)) return -1;
    cuda_bb *c = bb_get(m);
    if (!c) return -1;
    const mk_params *p = m->p;
    const int D = m->D, F = f->F, M = B * L;
    const size_t MF = (size_t)M * F;
    enh_bufs o;
    if (fe_reserve(c, enh_layout(F, D, B, L, wf, NULL, &o))) {
        mk_error("CUDA: out of device memory for the frame model's activations (%d frames)", M);
        return -1;
    }
    enh_layout(F, D, B, L, wf, c->fe, &o);
    if (bb_moments(m, c) || bb_prepare(m, c, a, B, L, orders, NULL, 0, 1, rng)) return -1;
    c->resident = 1;
    if (mkc_upload(o.feat, feat_h, sizeof(float) * MF) || mkc_upload(o.c, c_h, sizeof(float) * MF) ||
        mkc_upload(o.cc, cc_h, sizeof(float) * MF) || mkc_upload(o.cosd, cosd_h, sizeof(float) * MF)) {
        mk_error("CUDA: %s", mkc_last_error());
        return -1;
    }
    const size_t NF2 = wf ? (size_t)wf->n_fft * 2 * F : 0;
    if (wf) { /* the basis (N x 2F floats) goes up with each batch: small next to the spectra */
        if (mkc_upload(o.xre, wf->xre, sizeof(float) * MF) || mkc_upload(o.xim, wf->xim, sizeof(float) * MF) ||
            mkc_upload(o.ref, wf->ref, sizeof(float) * B * wf->n) ||
            mkc_upload(o.basis, wf->basis, sizeof(float) * NF2) || mkc_upload(o.wsum, wf->wsum, sizeof(float) * wf->hop)) {
            mk_error("CUDA: %s", mkc_last_error());
            return -1;
        }
    }
    enh_forward_dev(m, c, f, &o, M);
    mkc_mask_loss(o.dz, o.loss, o.mask, o.c, o.cc, o.cosd, M, F, f->mag_w, 1.f / (float)MF, f->beta);
    double extra = 0;
    if (wf)
        mkc_sisdr_grad(o.dz, o.neg, o.mask, o.xre, o.xim, o.ref, o.basis, o.wsum, o.work, B, L, F, wf->n_fft,
                       wf->hop, wf->n, wf->power, f->beta, wf->weight);
    else if (term) { /* a host round trip inside the step */
        if (mkc_download(hmask, o.mask, sizeof(float) * MF) || mkc_download(hdz, o.dz, sizeof(float) * MF)) {
            mk_error("CUDA frame model step: %s", mkc_last_error());
            return -1;
        }
        extra = term(ctx, hmask, hdz);
        if (mkc_upload(o.dz, hdz, sizeof(float) * MF)) {
            mk_error("CUDA: %s", mkc_last_error());
            return -1;
        }
    }
    /* backward: audio_enhancer_train_batch's op for op */
    mkc_memset0(c->G, sizeof(float) * c->total);
    if (f->skip_u >= 0) {
        mkc_memset0(o.prod, sizeof(float) * MF);
        mkc_mul_acc(o.prod, o.dz, o.feat, MF);
        mkc_colsum(DG(f->skip_u), o.prod, M, F);
    }
    mkc_memset0(o.dh, sizeof(float) * (size_t)M * D);
    mkc_linear_backward(o.dh, DG(f->w_out), DG(f->b_out), o.dz, o.h, DP(f->w_out), M, D, F);
    c->fwd_ok = 1;
    const float *dh0 = bb_backward_dev(m, c, o.dh);
    mkc_linear_backward(NULL, DG(f->w_in), DG(f->b_in), dh0, o.feat, DP(f->w_in), M, F, D);
    bb_adamw(m, c, cfg);

    float *h = mk_malloc(sizeof(float) * M);
    int rc = mkc_download(h, o.loss, sizeof(float) * M) ||
             (wf && mkc_download(wf->neg_sisdr, o.neg, sizeof(float) * B)) || mkc_sync();
    double loss = 0;
    for (int r = 0; r < M; r++) loss += h[r];
    free(h);
    if (wf && !rc) { /* as audio_enhancer_sisdr_grad's value: weight x the mean over the signals */
        double t = 0;
        for (int b = 0; b < B; b++) t += wf->neg_sisdr[b];
        extra = wf->weight * t / B;
    }
    if (rc) {
        mk_error("CUDA frame model step: %s", mkc_last_error());
        return -1;
    }
    if (loss_out) *loss_out = (float)(loss / (double)MF + extra);
    return 0;
}

/* Device buffers of a point classifier's step or forward for n objects (every activation of the
 * batch, as points_acts holds them on the host), carved from one allocation like cls_layout's */
typedef struct {
    float *rel, *ctr, *h1, *a1, *h2, *x, *out, *feat, *logits, *dlogits, *dfeat, *dout, *dh2, *da1, *dh1, *loss, *hit;
} pts_bufs;
static size_t pts_layout(const mk_pts_frontend *f, int D, int n, float *base, pts_bufs *o) {
    const size_t nz = (size_t)n, L = nz * f->L, LK = L * f->K, H = f->H, C = f->n_class;
    const size_t sz[] = {LK * 3, L * 3, LK * H, LK * H, LK * D, L * D, L * D, nz * D, nz * C, nz * C, nz * D,
                         L * D,  LK * D, LK * H, LK * H, nz,     nz};
    float **dst[] = {&o->rel, &o->ctr,    &o->h1,      &o->a1,    &o->h2,   &o->x,   &o->out,  &o->feat, &o->logits,
                     &o->dlogits, &o->dfeat, &o->dout, &o->dh2, &o->da1, &o->dh1, &o->loss, &o->hit};
    return carve(base, sz, dst, sizeof sz / sizeof *sz);
}

/* c->yd grown to n ints; 0 or -1 (out of device memory) */
static int yd_reserve(cuda_bb *c, size_t n) {
    if (n > (size_t)c->yd_n) {
        mkc_free(c->yd);
        c->yd = n <= 0x7fffffff ? mkc_malloc(sizeof(int) * n) : NULL;
        c->yd_n = c->yd ? (int)n : 0;
    }
    return c->yd ? 0 : -1;
}

/* The front end's tensors checked against the model's table, so that a wrong index cannot make
 * the device read past a tensor; 0, or -1 with mk_error */
static int pts_check(const mamba_backbone *m, const mk_pts_frontend *f, int n) {
    const mk_params *p = m->p;
    const size_t Hs = f->H, Ds = m->D, Cs = f->n_class;
    if (n < 1 || f->L < 1 || f->K < 1 || f->H < 1 || f->n_class < 1 || !numel_is(p, f->w1, Hs * 3) ||
        !numel_is(p, f->b1, Hs) || !numel_is(p, f->w2, Ds * Hs) || !numel_is(p, f->b2, Ds) ||
        !numel_is(p, f->pw, Ds * 3) || !numel_is(p, f->pb, Ds) || !numel_is(p, f->head_w, Cs * Ds) ||
        !numel_is(p, f->head_b, Cs)) {
        mk_error("CUDA point classifier: front end incomplete or not the model's shapes");
        return -1;
    }
    return 0;
}

/* Room for n objects: the front end's buffers (o), ints for ny labels followed by the batch's
 * argmax (n L, D) (*amax), and the backbone's (n, L) pass; 0, or -1 with mk_error */
static int pts_reserve(const mamba_backbone *m, cuda_bb *c, const mk_pts_frontend *f, int n, size_t ny, pts_bufs *o,
                       int **amax) {
    if (fe_reserve(c, pts_layout(f, m->D, n, NULL, o)) || yd_reserve(c, ny + (size_t)n * f->L * m->D)) {
        mk_error("CUDA: out of device memory for the point classifier's activations (%d objects)", n);
        return -1;
    }
    pts_layout(f, m->D, n, c->fe, o);
    *amax = c->yd + ny;
    return bb_ensure(m, c, n, f->L);
}

/* The batch's draws (mamba_backbone_draw's, object by object, as mamba_backbone_forward_ps makes
 * them; nothing else in a step draws), uploaded with the objects' inputs: rel (n, L, K, 3), ctr
 * (n, L, 3), order (n, G, L); 0, or -1 with mk_error */
static int pts_upload(mamba_backbone *m, cuda_bb *c, mamba_acts *a, const mk_pts_frontend *f, const pts_bufs *o,
                      const float *rel, const float *ctr, const int *order, int n, int training, mk_rng *rng) {
    const int L = f->L;
    a->B = n, a->L = L, a->training = training, a->per_sample = 1;
    if (draw_orders(m, c, n, L, NULL, order, 1, training, rng) ||
        mkc_upload(o->rel, rel, sizeof(float) * (size_t)n * L * f->K * 3) ||
        mkc_upload(o->ctr, ctr, sizeof(float) * (size_t)n * L * 3)) {
        mk_error("CUDA: %s", mkc_last_error());
        return -1;
    }
    return 0;
}

/* points_forward_batch op for op on the device for the n objects in o (their draws uploaded):
 * features into o->feat, logits into o->logits, the argmax over the neighbours (n L, D) into
 * amax. Shared by the step and the inference forward so that the two cannot drift apart. */
static void pts_forward_dev(mamba_backbone *m, cuda_bb *c, const mk_pts_frontend *f, const pts_bufs *o, int *amax,
                            int n) {
    const mk_params *p = m->p;
    const int D = m->D, L = f->L, K = f->K, H = f->H, C = f->n_class, NL_ = n * L, NLK = NL_ * K;
    mkc_linear_forward(o->h1, o->rel, DP(f->w1), DP(f->b1), NLK, 3, H);
    mkc_relu_forward(o->a1, o->h1, (size_t)NLK * H);
    mkc_linear_forward(o->h2, o->a1, DP(f->w2), DP(f->b2), NLK, H, D);
    mkc_linear_forward(o->x, o->ctr, DP(f->pw), DP(f->pb), NL_, 3, D);
    mkc_group_max(o->x, amax, o->h2, NL_, K, D);
    bb_forward_dev(m, c, o->out, o->x);
    mkc_mean_rows(o->feat, o->out, n, L, D);
    mkc_linear_forward(o->logits, o->feat, DP(f->head_w), DP(f->head_b), n, D, C);
}

int mk_cuda_pts_forward(mamba_backbone *m, mamba_acts *a, const mk_pts_frontend *f, const float *rel,
                        const float *ctr, const int *order, int n, float *feat, float *logits) {
    if (m->device != MK_DEV_CUDA || pts_check(m, f, n)) return -1;
    cuda_bb *c = bb_get(m);
    if (!c) return -1;
    pts_bufs o;
    int *amax;
    if (pts_reserve(m, c, f, n, 0, &o, &amax)) return -1;
    c->fwd_ok = 0; /* this forward keeps nothing for a backward */
    /* a training step's weights are newer than the host's and stay where they are; otherwise the
     * host's go up (inference never claims the device copy: the host's table stays the truth) */
    if (!tab_of(c)->resident && mkc_upload(c->P, m->p->data, sizeof(float) * c->total)) {
        mk_error("CUDA: %s", mkc_last_error());
        return -1;
    }
    if (pts_upload(m, c, a, f, &o, rel, ctr, order, n, 0, NULL)) return -1;
    pts_forward_dev(m, c, f, &o, amax, n);
    if ((feat && mkc_download(feat, o.feat, sizeof(float) * (size_t)n * m->D)) ||
        (logits && mkc_download(logits, o.logits, sizeof(float) * (size_t)n * f->n_class)) || mkc_sync()) {
        mk_error("CUDA point classifier forward: %s", mkc_last_error());
        return -1;
    }
    return 0;
}

int mk_cuda_pts_train_step(mamba_backbone *m, mamba_acts *a, const mk_pts_frontend *f, const float *rel,
                           const float *ctr, const int *order, const int *y, int n, const mk_adamw_cfg *cfg,
                           mk_rng *rng, float *loss_out, int *correct) {
    const mk_params *p = m->p;
    if (pts_check(m, f, n)) return -1;
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= f->n_class) {
            mk_error("CUDA point classifier: label %d of object %d is not a class (0..%d)", y[i], i, f->n_class - 1);
            return -1;
        }
    if (m->device != MK_DEV_CUDA && mamba_backbone_set_device(m, MK_DEV_CUDA)) return -1;
    cuda_bb *c = bb_get(m);
    if (!c) return -1;
    const int D = m->D, L = f->L, K = f->K, H = f->H, C = f->n_class, NL_ = n * L, NLK = NL_ * K;
    const size_t ny = pad4((size_t)n);
    pts_bufs o;
    int *yd, *amax; /* labels (n), then the batch's argmax (n L, D) */
    if (pts_reserve(m, c, f, n, ny, &o, &amax) || bb_moments(m, c)) return -1;
    yd = c->yd;
    if (!c->resident && mkc_upload(c->P, p->data, sizeof(float) * c->total)) {
        mk_error("CUDA: %s", mkc_last_error());
        return -1;
    }
    c->resident = 1;
    if (pts_upload(m, c, a, f, &o, rel, ctr, order, n, 1, rng)) return -1;
    if (mkc_upload(yd, y, sizeof(int) * n)) {
        mk_error("CUDA: %s", mkc_last_error());
        return -1;
    }
    mkc_memset0(c->G, sizeof(float) * c->total);
    pts_forward_dev(m, c, f, &o, amax, n);
    mkc_xent(o.dlogits, o.loss, o.hit, o.logits, yd, n, C, 1.f / n);
    /* backward: points_backward_batch op for op */
    mkc_memset0(o.dfeat, sizeof(float) * (size_t)n * D);
    mkc_linear_backward(o.dfeat, DG(f->head_w), DG(f->head_b), o.dlogits, o.feat, DP(f->head_w), n, D, C);
    mkc_memset0(o.dout, sizeof(float) * (size_t)NL_ * D);
    mkc_mean_rows_backward(o.dout, o.dfeat, n, L, D);
    c->fwd_ok = 1;
    const float *dx = bb_backward_dev(m, c, o.dout); /* d tokens (n L, D), in the backbone's scratch */
    mkc_linear_backward(NULL, DG(f->pw), DG(f->pb), dx, o.ctr, DP(f->pw), NL_, 3, D);
    mkc_memset0(o.dh2, sizeof(float) * (size_t)NLK * D);
    mkc_group_max_backward(o.dh2, dx, amax, NL_, K, D);
    mkc_memset0(o.da1, sizeof(float) * (size_t)NLK * H);
    mkc_linear_backward(o.da1, DG(f->w2), DG(f->b2), o.dh2, o.a1, DP(f->w2), NLK, H, D);
    mkc_memset0(o.dh1, sizeof(float) * (size_t)NLK * H);
    mkc_relu_backward(o.dh1, o.da1, o.h1, (size_t)NLK * H);
    mkc_linear_backward(NULL, DG(f->w1), DG(f->b1), o.dh1, o.rel, DP(f->w1), NLK, 3, H);
    bb_adamw(m, c, cfg);
    return step_results(o.loss, o.hit, n, "point classifier", loss_out, correct);
}

/* Device buffers of a forecaster's step (the batch's inputs, every layer's activations for the
 * backward, the backward's scratch), carved from backbone 0's front-end buffer like cls_layout's;
 * the backbones' own activations stay in each backbone's state */
typedef struct {
    float *h, *n1, *mean1, *rstd1, *a1, *g1, *r2, *out, *mean2, *rstd2;
} ts_layer_d;
typedef struct {
    float *tok, *rmean, *rstd, *tgt, *mask, *e0, *zf, *meanf, *rstdf, *zv, *hout, *pred, *d1, *d2, *d3, *dff, *dzv,
        *dhout;
    ts_layer_d ly[MK_TS_MAX_LAYER];
} ts_bufs;
/* the dropout masks in the CPU's draw order: the embedding's, then per layer the FFN
 * activation's and the FFN output's */
static size_t ts_mask_floats(const mk_ts_frontend *f, int B) {
    const size_t M = (size_t)B * (f->C + f->F);
    return f->dropout > 0 ? M * f->D + (size_t)f->n_layer * (M * f->d_ff + M * f->D) : 0;
}
static size_t ts_layout(const mk_ts_frontend *f, int B, float *base, ts_bufs *o) {
    const size_t M = (size_t)B * (f->C + f->F), MD = M * f->D, MF = M * f->d_ff, BC = (size_t)B * f->C;
    size_t at = 0;
#define CARVE(dst, n) ((dst) = base ? base + at : NULL, at += pad4(n))
    CARVE(o->tok, M * f->L);
    CARVE(o->rmean, BC);
    CARVE(o->rstd, BC);
    CARVE(o->tgt, BC * f->H);
    CARVE(o->mask, ts_mask_floats(f, B));
    CARVE(o->e0, MD);
    for (int l = 0; l < f->n_layer; l++) {
        ts_layer_d *y = &o->ly[l];
        CARVE(y->h, MD);
        CARVE(y->n1, MD);
        CARVE(y->mean1, M);
        CARVE(y->rstd1, M);
        CARVE(y->a1, MF);
        CARVE(y->g1, MF);
        CARVE(y->r2, MD);
        CARVE(y->out, MD);
        CARVE(y->mean2, M);
        CARVE(y->rstd2, M);
    }
    CARVE(o->zf, MD);
    CARVE(o->meanf, M);
    CARVE(o->rstdf, M);
    CARVE(o->zv, BC * f->D);
    CARVE(o->hout, BC * f->H);
    CARVE(o->pred, BC * f->H);
    CARVE(o->d1, MD);
    CARVE(o->d2, MD);
    CARVE(o->d3, MD);
    CARVE(o->dff, MF);
    CARVE(o->dzv, BC * f->D);
    CARVE(o->dhout, BC * f->H);
#undef CARVE
    return at;
}

/* 0 if the front end describes n_bb backbones declared in table p with the forecaster's
 * shapes; else -1 with mk_error (the step refuses before anything runs) */
static int ts_check(const mamba_backbone *bbs, int n_bb, const mk_ts_frontend *f, const float *masks, int B) {
    const size_t D = f->D, Fd = f->d_ff, L = f->L, H = f->H;
    if (B < 1 || f->L < 1 || f->H < 1 || f->C < 1 || f->F < 0 || f->D < 1 || f->d_ff < 1 || f->n_layer < 1 ||
        f->n_layer > MK_TS_MAX_LAYER || n_bb != (f->paper ? 2 : 1) * f->n_layer ||
        (f->dropout > 0) != (masks != NULL)) {
        mk_error("CUDA forecaster: front end incomplete, or %d backbones for %d layers", n_bb, f->n_layer);
        return -1;
    }
    const mk_params *p = bbs[0].p;
    for (int k = 0; k < n_bb; k++)
        if (bbs[k].p != p || bbs[k].D != f->D || bbs[k].G != (f->paper ? 1 : 2)) {
            mk_error("CUDA forecaster: backbone %d is not in the model's table or not its shape", k);
            return -1;
        }
    int ok = numel_is(p, f->emb_w, D * L) && numel_is(p, f->emb_b, D) && numel_is(p, f->lnf_w, D) &&
             numel_is(p, f->lnf_b, D) && numel_is(p, f->head_w, H * D) && numel_is(p, f->head_b, H);
    for (int l = 0; l < f->n_layer && ok; l++)
        ok = numel_is(p, f->ln1_w[l], D) && numel_is(p, f->ln1_b[l], D) && numel_is(p, f->ff1_w[l], Fd * D) &&
             numel_is(p, f->ff1_b[l], Fd) && numel_is(p, f->ff2_w[l], D * Fd) && numel_is(p, f->ff2_b[l], D) &&
             numel_is(p, f->ln2_w[l], D) && numel_is(p, f->ln2_b[l], D);
    if (!ok) {
        mk_error("CUDA forecaster: front end tensors are not the model's shapes");
        return -1;
    }
    return 0;
}

/* Backbones 1..n-1 borrow backbone 0's device table (their own copies freed, after copying
 * back any training they held); 0 or -1 with mk_error */
static int ts_share_table(mamba_backbone *bbs, int n) {
    cuda_bb *c0 = (cuda_bb *)bbs[0].dev;
    if (c0->owner) {
        mk_error("CUDA forecaster: backbone 0 borrows another's table");
        return -1;
    }
    for (int k = 1; k < n; k++) {
        cuda_bb *ck = (cuda_bb *)bbs[k].dev;
        if (ck->owner == c0) continue;
        if (ck->owner || ck->total != c0->total) {
            mk_error("CUDA forecaster: backbone %d's table is not backbone 0's", k);
            return -1;
        }
        if (ck->resident && mamba_backbone_cuda_sync_host(&bbs[k])) return -1;
        mkc_free(ck->P), mkc_free(ck->G), mkc_free(ck->Mo), mkc_free(ck->Vo), mkc_free(ck->decay);
        ck->P = c0->P, ck->G = c0->G, ck->decay = c0->decay, ck->Mo = ck->Vo = NULL;
        ck->resident = 0;
        ck->owner = c0;
    }
    return 0;
}

/* Everything before a forecaster's forward: the checks, one shared device table, the buffers
 * (carved into *o), the weights up unless resident (train: the moments too, and the table
 * marked resident), each backbone's activations and fixed scan orders for (B, T); 0 or -1 with
 * mk_error */
static int ts_prepare(mamba_backbone *bbs, mamba_acts *acts, int n_bb, const mk_ts_frontend *f, const float *masks_h,
                      int B, int train, ts_bufs *o) {
    if (n_bb < 1 || ts_check(bbs, n_bb, f, masks_h, B)) {
        if (n_bb < 1) mk_error("CUDA forecaster: no backbones");
        return -1;
    }
    for (int k = 0; k < n_bb; k++)
        if ((bbs[k].device != MK_DEV_CUDA && mamba_backbone_set_device(&bbs[k], MK_DEV_CUDA)) || !bb_get(&bbs[k]))
            return -1;
    if (ts_share_table(bbs, n_bb)) return -1;
    cuda_bb *c = (cuda_bb *)bbs[0].dev; /* the table's owner: DP / DG read its P and G */
    const mk_params *p = bbs[0].p;
    const int T = f->C + f->F;
    if (fe_reserve(c, ts_layout(f, B, NULL, o))) {
        mk_error("CUDA: out of device memory for the forecaster's activations (batch %d)", B);
        return -1;
    }
    ts_layout(f, B, c->fe, o);
    if (train && bb_moments(&bbs[0], c)) return -1;
    if (!c->resident && mkc_upload(c->P, p->data, sizeof(float) * c->total)) {
        mk_error("CUDA: %s", mkc_last_error());
        return -1;
    }
    if (train) c->resident = 1;
    /* each backbone's activations for (B, T), and its fixed scan orders as ts_smamba_forward
     * passes them (paper: identity, then the reversed order; shared: both in one backbone); no
     * random draws (the backbones run with training 0). The orders go up only when another pass
     * (a validation forward) drew over them or the batch changed. */
    int *rev = mk_malloc(sizeof(int) * T);
    mk_order_reverse(rev, T);
    const int *const both[2] = {NULL, rev}, *const ronly[1] = {rev};
    for (int k = 0; k < n_bb; k++) {
        cuda_bb *ck = (cuda_bb *)bbs[k].dev;
        const int same = ck->ts_drawn && ck->B == B && ck->L == T;
        if (bb_ensure(&bbs[k], ck, B, T) ||
            (!same && draw_orders(&bbs[k], ck, B, T, f->paper ? (k % 2 ? ronly : NULL) : both, NULL, 0, 0, NULL))) {
            free(rev);
            mk_error("CUDA: out of device memory for backbone %d (%s)", k, mkc_last_error());
            return -1;
        }
        ck->ts_drawn = 1;
        ck->fwd_ok = 0; /* nothing here is for a per-call backward */
        acts[k].B = B, acts[k].L = T, acts[k].training = 0;
    }
    free(rev);
    return 0;
}

/* ts_smamba_forward op for op on the device, from o->tok (RevIN and the tokens were the host's)
 * to o->pred (B, H, C); with dropout, the masks (in o->mask, the CPU's draw order) are applied
 * and each layer's FFN masks noted in mask_g / mask_f for the backward */
static void ts_forward_dev(mamba_backbone *bbs, const mk_ts_frontend *f, const ts_bufs *o, int B,
                           const float **mask_g, const float **mask_f) {
    const cuda_bb *c = (const cuda_bb *)bbs[0].dev;
    const mk_params *p = bbs[0].p;
    const int L = f->L, H = f->H, C = f->C, T = f->C + f->F, D = f->D, Fd = f->d_ff, NL = f->n_layer, M = B * T;
    const size_t MD = (size_t)M * D, MF = (size_t)M * Fd;
    const int drop = f->dropout > 0;
    const float *mk = o->mask + MD;
    mkc_linear_forward(o->e0, o->tok, DP(f->emb_w), DP(f->emb_b), M, L, D);
    if (drop) mkc_mul(o->e0, o->e0, o->mask, MD);
    for (int l = 0; l < NL; l++) {
        const ts_layer_d *y = &o->ly[l];
        const float *in = l ? o->ly[l - 1].out : o->e0;
        if (f->paper) { /* h = (in + Mamba_f(in)) + (in + flip(Mamba_r(flip(in)))) - in; d1 holds Mamba_r's */
            bb_forward_dev(&bbs[2 * l], (cuda_bb *)bbs[2 * l].dev, y->h, in);
            bb_forward_dev(&bbs[2 * l + 1], (cuda_bb *)bbs[2 * l + 1].dev, o->d1, in);
            mkc_bidir_merge(y->h, o->d1, in, MD);
        } else {
            bb_forward_dev(&bbs[l], (cuda_bb *)bbs[l].dev, y->h, in);
        }
        mkc_layernorm_forward(y->n1, y->mean1, y->rstd1, y->h, DP(f->ln1_w[l]), DP(f->ln1_b[l]), M, D, 1e-5f);
        mkc_linear_forward(y->a1, y->n1, DP(f->ff1_w[l]), DP(f->ff1_b[l]), M, D, Fd);
        mkc_gelu_forward(y->g1, y->a1, MF);
        if (drop) mask_g[l] = mk, mkc_mul(y->g1, y->g1, mk, MF), mk += MF;
        mkc_linear_forward(y->r2, y->g1, DP(f->ff2_w[l]), DP(f->ff2_b[l]), M, Fd, D);
        if (drop) mask_f[l] = mk, mkc_mul(y->r2, y->r2, mk, MD), mk += MD;
        mkc_vec_acc(y->r2, y->n1, MD);
        mkc_layernorm_forward(y->out, y->mean2, y->rstd2, y->r2, DP(f->ln2_w[l]), DP(f->ln2_b[l]), M, D, 1e-5f);
    }
    mkc_layernorm_forward(o->zf, o->meanf, o->rstdf, o->ly[NL - 1].out, DP(f->lnf_w), DP(f->lnf_b), M, D, 1e-5f);
    mkc_copy_cols(o->zv, C * D, o->zf, T * D, B, C * D); /* the variate rows of each window */
    mkc_linear_forward(o->hout, o->zv, DP(f->head_w), DP(f->head_b), B * C, D, H);
    mkc_ts_denorm(o->pred, o->hout, o->rmean, o->rstd, B, C, H);
}

int mk_cuda_ts_forward(mamba_backbone *bbs, mamba_acts *acts, int n_bb, const mk_ts_frontend *f, const float *tok_h,
                       const float *rmean_h, const float *rstd_h, int B, float *pred) {
    mk_ts_frontend f0 = *f;
    f0.dropout = 0; /* inference: no masks, none carved */
    ts_bufs o;
    if (ts_prepare(bbs, acts, n_bb, &f0, NULL, B, 0, &o)) return -1;
    const size_t BC = (size_t)B * f0.C;
    if (mkc_upload(o.tok, tok_h, sizeof(float) * (size_t)B * (f0.C + f0.F) * f0.L) ||
        mkc_upload(o.rmean, rmean_h, sizeof(float) * BC) || mkc_upload(o.rstd, rstd_h, sizeof(float) * BC)) {
        mk_error("CUDA: %s", mkc_last_error());
        return -1;
    }
    ts_forward_dev(bbs, &f0, &o, B, NULL, NULL);
    if (mkc_download(pred, o.pred, sizeof(float) * BC * f0.H) || mkc_sync()) {
        mk_error("CUDA forecaster forward: %s", mkc_last_error());
        return -1;
    }
    return 0;
}

int mk_cuda_ts_train_step(mamba_backbone *bbs, mamba_acts *acts, int n_bb, const mk_ts_frontend *f, const float *tok_h,
                          const float *rmean_h, const float *rstd_h, const float *target_h, const float *masks_h, int B,
                          const mk_adamw_cfg *cfg, float *loss_out) {
    ts_bufs o;
    if (ts_prepare(bbs, acts, n_bb, f, masks_h, B, 1, &o)) return -1;
    cuda_bb *c = (cuda_bb *)bbs[0].dev; /* the table's owner: DP / DG read its P and G */
    const mk_params *p = bbs[0].p;
    const int L = f->L, H = f->H, C = f->C, T = f->C + f->F, D = f->D, Fd = f->d_ff, NL = f->n_layer, M = B * T;
    const size_t MD = (size_t)M * D, MF = (size_t)M * Fd, BC = (size_t)B * C, BCH = BC * H;
    const int drop = f->dropout > 0;
    if (mkc_upload(o.tok, tok_h, sizeof(float) * (size_t)M * L) || mkc_upload(o.rmean, rmean_h, sizeof(float) * BC) ||
        mkc_upload(o.rstd, rstd_h, sizeof(float) * BC) || mkc_upload(o.tgt, target_h, sizeof(float) * BCH) ||
        (drop && mkc_upload(o.mask, masks_h, sizeof(float) * ts_mask_floats(f, B)))) {
        mk_error("CUDA: %s", mkc_last_error());
        return -1;
    }
    const float *mask_g[MK_TS_MAX_LAYER], *mask_f[MK_TS_MAX_LAYER];
    ts_forward_dev(bbs, f, &o, B, mask_g, mask_f);
    /* ts_model_fit's loss: dpred = 2 (pred - y) / n, written over the target (synchronises: the
     * loss is the one number that comes down) */
    const float loss = mkc_mse_forward_backward(o.tgt, o.pred, o.tgt, BCH, 1.f);

    /* backward: ts_smamba_backward op for op */
    mkc_memset0(c->G, sizeof(float) * c->total);
    mkc_ts_denorm_backward(o.dhout, o.tgt, o.rstd, B, C, H);
    mkc_memset0(o.dzv, sizeof(float) * BC * D);
    mkc_linear_backward(o.dzv, DG(f->head_w), DG(f->head_b), o.dhout, o.zv, DP(f->head_w), B * C, D, H);
    mkc_memset0(o.d1, sizeof(float) * MD); /* covariate rows get no head gradient */
    mkc_copy_cols(o.d1, T * D, o.dzv, C * D, B, C * D);
    mkc_memset0(o.d2, sizeof(float) * MD);
    mkc_layernorm_backward(o.d2, DG(f->lnf_w), DG(f->lnf_b), o.d1, o.ly[NL - 1].out, DP(f->lnf_w), o.meanf, o.rstdf, M,
                           D);
    for (int l = NL - 1; l >= 0; l--) {
        const ts_layer_d *y = &o.ly[l];
        mkc_memset0(o.d3, sizeof(float) * MD);
        mkc_layernorm_backward(o.d3, DG(f->ln2_w[l]), DG(f->ln2_b[l]), o.d2, y->r2, DP(f->ln2_w[l]), y->mean2,
                               y->rstd2, M, D);
        mkc_copy(o.d1, o.d3, sizeof(float) * MD); /* d(n1) through the residual */
        mkc_memset0(o.dff, sizeof(float) * MF);
        if (drop) mkc_mul(o.d3, o.d3, mask_f[l], MD);
        mkc_linear_backward(o.dff, DG(f->ff2_w[l]), DG(f->ff2_b[l]), o.d3, y->g1, DP(f->ff2_w[l]), M, Fd, D);
        if (drop) mkc_mul(o.dff, o.dff, mask_g[l], MF);
        mkc_ts_gelu_grad(o.dff, y->a1, MF);
        mkc_linear_backward(o.d1, DG(f->ff1_w[l]), DG(f->ff1_b[l]), o.dff, y->n1, DP(f->ff1_w[l]), M, D, Fd);
        mkc_memset0(o.d3, sizeof(float) * MD);
        mkc_layernorm_backward(o.d3, DG(f->ln1_w[l]), DG(f->ln1_b[l]), o.d1, y->h, DP(f->ln1_w[l]), y->mean1, y->rstd1,
                               M, D);
        /* d2 = d(in): each module's d(input) added as mamba_backbone_backward adds into dx; the
         * paper block's two residuals both carried d(h): count it once */
        mkc_memset0(o.d2, sizeof(float) * MD);
        const int k0 = f->paper ? 2 * l : l;
        for (int k = k0; k < k0 + (f->paper ? 2 : 1); k++)
            mkc_vec_acc(o.d2, bb_backward_dev(&bbs[k], (cuda_bb *)bbs[k].dev, o.d3), MD);
        if (f->paper) mkc_vec_sub(o.d2, o.d3, MD);
    }
    if (drop) mkc_mul(o.d2, o.d2, o.mask, MD);
    mkc_linear_backward(NULL, DG(f->emb_w), DG(f->emb_b), o.d2, o.tok, DP(f->emb_w), M, L, D);
    bb_adamw(&bbs[0], c, cfg);
    if (mkc_sync()) {
        mk_error("CUDA forecaster step: %s", mkc_last_error());
        return -1;
    }
    if (loss_out) *loss_out = loss;
    return 0;
}

/* Device buffers of a MambaMIL step (one bag's inputs, activations and backward scratch), carved
 * from the front end's buffer like cls_layout's */
typedef struct {
    float *x, *xs, *e_pre, *e, *mask, *h, *mo, *dh, *de, *t, *g, *dt, *dg, *s, *a, *da, *z, *lg;
    float *t2, *g2, *s2, *a2, *z2, *lg2; /* the auxiliary exit's pooling of e (f->aux > 0, else empty) */
} mil_bufs;
static size_t mil_layout(const mk_mil_frontend *f, int L, float *base, mil_bufs *o) {
    const size_t LF = (size_t)L * f->F, LD = (size_t)L * f->D, LH = (size_t)L * f->H, Ls = (size_t)L;
    const size_t X = f->aux > 0; /* the auxiliary exit's buffers, or none */
    const size_t sz[] = {LF, LF, LD, LD, LD, LD, LD, LD, LD, LH, LH, LH, LH, Ls, Ls, Ls, (size_t)f->D, 2,
                         X * LH, X * LH, X * Ls, X * Ls, X * f->D, X * 2};
    float **dst[] = {&o->x,  &o->xs, &o->e_pre, &o->e,  &o->mask, &o->h, &o->mo, &o->dh, &o->de,
                     &o->t,  &o->g,  &o->dt,    &o->dg, &o->s,    &o->a, &o->da, &o->z,  &o->lg,
                     &o->t2, &o->g2, &o->s2,    &o->a2, &o->z2,   &o->lg2};
    return carve(base, sz, dst, sizeof sz / sizeof *sz);
}

/* att_logits on the device into t, g, s (the main exit's or the auxiliary exit's buffers):
 * t = tanh(V v + bV), g = sigm(U v + bU) (gated), s = w^T (t [* g]) */
static void mil_att_logits_d(const mamba_backbone *m, const cuda_bb *c, const mk_mil_frontend *f, float *t, float *g,
                             float *s, const float *v, int L) {
    const mk_params *p = m->p;
    const size_t LH = (size_t)L * f->H;
    mkc_linear_forward(t, v, DP(f->att_V), DP(f->att_Vb), L, f->D, f->H);
    mkc_tanh_forward(t, t, LH);
    if (f->att_U >= 0) {
        mkc_linear_forward(g, v, DP(f->att_U), DP(f->att_Ub), L, f->D, f->H);
        mkc_sigmoid_forward(g, g, LH);
    }
    mkc_mil_att_score(s, t, f->att_U >= 0 ? g : NULL, DP(f->att_w), L, f->H);
}

/* pool_backward on the device for one exit (the logit and its gradient in lg, the pooling's
 * activations t, g, a, z of values v pooled with attention from k): the classifier's and the
 * attention's gradients, dv += the pooling's, dk += the attention's (dk may be dv) */
static void mil_pool_backward_d(const mamba_backbone *m, const cuda_bb *c, const mk_mil_frontend *f, const mil_bufs *o,
                                const float *lg, const float *v, const float *k, const float *t, const float *g,
                                const float *a, const float *z, float *dv, float *dk, int L) {
    const mk_params *p = m->p;
    const int gated = f->att_U >= 0, D = f->D, H = f->H;
    mkc_mil_pool_backward(dv, o->da, DG(f->cls_w), DG(f->cls_b), lg, v, a, z, DP(f->cls_w), L, D);
    mkc_mil_softmax_backward(o->da, a, L);
    mkc_mil_att_score_backward(o->dt, gated ? o->dg : NULL, DG(f->att_w), o->da, t, gated ? g : NULL, DP(f->att_w), L,
                               H);
    mkc_linear_backward(dk, DG(f->att_V), DG(f->att_Vb), o->dt, k, DP(f->att_V), L, D, H);
    if (gated) mkc_linear_backward(dk, DG(f->att_U), DG(f->att_Ub), o->dg, k, DP(f->att_U), L, D, H);
}

/* the gated branch's scale for this bag (branch drop's 1 / (1 - p); 0 in the struct stands for 1) */
static float mil_bscale(const mk_mil_frontend *f) { return f->branch_scale > 0.f ? f->branch_scale : 1.f; }

/* 1 if f describes a model the MIL kernels take, its tensors the sizes the table holds, for a
 * bag of L; else 0 with mk_error naming `what` (the step or the forward) */

static int mil_front_ok(const mamba_backbone *m, const mk_mil_frontend *f, int L, const char *what) {
    const mk_params *p = m->p;
    const size_t Fs = f->F, Ds = f->D, Hs = f->H;
    const int gated = f->att_U >= 0;
    if (L < 1 || f->F < 1 || f->D != m->D || f->H < 1 || f->R < 0 || !numel_is(p, f->fmean, Fs) ||
        !numel_is(p, f->fstd, Fs) || !numel_is(p, f->emb_w, Ds * Fs) || !numel_is(p, f->emb_b, Ds) ||
        !numel_is(p, f->att_V, Hs * Ds) || !numel_is(p, f->att_Vb, Hs) || !numel_is(p, f->att_w, Hs) ||
        (gated && (!numel_is(p, f->att_U, Hs * Ds) || !numel_is(p, f->att_Ub, Hs))) ||
        !numel_is(p, f->cls_w, Ds) || !numel_is(p, f->cls_b, 1) || (f->gamma >= 0 && !numel_is(p, f->gamma, Ds)) ||
        m->G != (f->R > 0 ? 2 : 1)) {
        mk_error("CUDA MIL %s: front end incomplete or not the model's shapes", what);
        return 0;
    }
    /* the orders are built on the device from the score sort; a shuffled layer's permutation is
     * drawn on the host (draw_orders_host) and would have to follow them up */
    if (m->cfg.shuffle_p > 0 && m->cfg.n_layer > 1) {
        mk_error("CUDA MIL %s: a backbone with shuffled scan orders (shuffle_p) is not covered", what);
        return 0;
    }
    return 1;
}

/* mil_forward op for op on the device, from the bag in o->x to the logit in o->lg[0] and the
 * attention in o->a; c prepared for (1, L) with its drop-path masks up. The step and the forward
 * share it so that prediction on the GPU computes exactly what training optimised. With dropout
 * (the step) the mask is in o->mask; y and batch only scale the head's BCE gradient, which a
 * forward leaves unread. */
static void mil_forward_dev(mamba_backbone *m, cuda_bb *c, const mk_mil_frontend *f, const mil_bufs *o, int L,
                            int dropout, float y, int batch) {
    const mk_params *p = m->p;
    const int F = f->F, D = f->D, G = m->G, NL = m->cfg.n_layer;
    const size_t LD = (size_t)L * D;
    mkc_mil_standardize(o->xs, o->x, DP(f->fmean), DP(f->fstd), L, F);
    mkc_linear_forward(o->e_pre, o->xs, DP(f->emb_w), DP(f->emb_b), L, F, D);
    mkc_relu_forward(o->e, o->e_pre, LD);
    const int *base = NULL; /* the score order: sorted where it was computed, no host round trip */
    if (f->score_order) {
        mil_att_logits_d(m, c, f, o->t, o->g, o->s, o->e, L);
        mkc_mil_sort_desc(c->yd, o->s, L);
        base = c->yd;
    }
    if (dropout) mkc_mul(o->e, o->e, o->mask, LD);
    if (f->gamma >= 0 && f->branch_off) { /* branch drop: this bag skips the sequence branch */
        mkc_copy(o->h, o->e, sizeof(float) * LD);
    } else {
        if (NL > 0) mkc_mil_orders(c->orders_d, base, L, f->R, NL, G);
        bb_forward_dev(m, c, f->gamma >= 0 ? o->mo : o->h, o->e);
        if (f->gamma >= 0) mkc_mil_gate_forward(o->h, o->e, o->mo, DP(f->gamma), mil_bscale(f), L, D);
    }
    mil_att_logits_d(m, c, f, o->t, o->g, o->s, f->attend_e ? o->e : o->h, L);
    mkc_mil_softmax(o->a, o->s, L);
    mkc_mil_pool(o->z, o->a, o->h, L, D);
    mkc_mil_head(o->lg, o->z, DP(f->cls_w), DP(f->cls_b), y, batch, D);
    if (f->aux > 0) { /* the auxiliary exit: the same pooling and classifier on e alone */
        mil_att_logits_d(m, c, f, o->t2, o->g2, o->s2, o->e, L);
        mkc_mil_softmax(o->a2, o->s2, L);
        mkc_mil_pool(o->z2, o->a2, o->e, L, D);
        mkc_mil_head(o->lg2, o->z2, DP(f->cls_w), DP(f->cls_b), y, batch, D);
        mkc_vec_scale(o->lg2 + 1, f->aux, 1); /* its loss's weight: aux (sigm(l_e) - y) / batch */
    }
}

/* The MIL buffers for a bag of L on c (grown on demand) and the backbone's activations; 0 or -1
 * with mk_error */
static int mil_bufs_get(const mamba_backbone *m, cuda_bb *c, const mk_mil_frontend *f, int L, mil_bufs *o) {
    if (fe_reserve(c, mil_layout(f, L, NULL, o)) || yd_reserve(c, (size_t)L)) {
        mk_error("CUDA: out of device memory for the MIL model's activations (bag of %d)", L);
        return -1;
    }
    mil_layout(f, L, c->fe, o);
    return bb_ensure(m, c, 1, L);
}

int mk_cuda_mil_forward(mamba_backbone *m, mamba_acts *a, const mk_mil_frontend *f, const float *x, int L,
                        float *logit, float *aux_logit, float *att) {
    if (m->device != MK_DEV_CUDA) return -1;
    if (!mil_front_ok(m, f, L, "forward")) return -1;
    cuda_bb *c = bb_get(m);
    if (!c) return -1;
    const mk_params *p = m->p;
    const int NL = m->cfg.n_layer;
    mil_bufs o;
    if (mil_bufs_get(m, c, f, L, &o)) return -1;
    c->fwd_ok = 0; /* this forward keeps nothing for a backward */
    /* inference: the identity orders (overwritten on the device) and drop-path masks of 1, no
     * draws, as mamba_backbone_forward makes none outside training */
    draw_orders_host(m, c, 1, L, NULL, NULL, 0, 0, NULL);
    a->B = 1, a->L = L, a->training = 0;
    if ((!tab_of(c)->resident && mkc_upload(c->P, p->data, sizeof(float) * c->total)) ||
        (NL > 0 && mkc_upload(c->dpm_d, c->dpm_h, sizeof(float) * (size_t)NL)) ||
        mkc_upload(o.x, x, sizeof(float) * (size_t)L * f->F)) {
        mk_error("CUDA: %s", mkc_last_error());
        return -1;
    }
    mil_forward_dev(m, c, f, &o, L, 0, 0.f, 1);
    float lg = NAN, lg2 = 0.f;
    if (mkc_download(&lg, o.lg, sizeof(float)) || (f->aux > 0 && mkc_download(&lg2, o.lg2, sizeof(float))) ||
        (att && mkc_download(att, o.a, sizeof(float) * (size_t)L)) || mkc_sync()) {
        mk_error("CUDA MIL forward: %s", mkc_last_error());
        return -1;
    }
    if (logit) *logit = lg;
    if (aux_logit) *aux_logit = lg2;
    return 0;
}

int mk_cuda_mil_train_step(mamba_backbone *m, mamba_acts *a, const mk_mil_frontend *f, const float *x, int L, int y,
                           const float *dmask, int batch, int begin, int update, const mk_adamw_cfg *cfg,
                           mk_rng *rng, float *logit, float *aux_logit) {
    const mk_params *p = m->p;
    if (!mil_front_ok(m, f, L, "step")) return -1;
    if (batch < 1 || (f->dropout > 0 && !dmask)) {
        mk_error("CUDA MIL step: %s", batch < 1 ? "batch below 1" : "dropout without its mask");
        return -1;
    }
    if (y != 0 && y != 1) {
        mk_error("CUDA MIL step: label %d is not 0 or 1", y);
        return -1;
    }
    if (m->device != MK_DEV_CUDA && mamba_backbone_set_device(m, MK_DEV_CUDA)) return -1;
    cuda_bb *c = bb_get(m);
    if (!c) return -1;
    const int F = f->F, D = f->D, NL = m->cfg.n_layer;
    const size_t LD = (size_t)L * D;
    mil_bufs o;
    if (mil_bufs_get(m, c, f, L, &o) || bb_moments(m, c)) return -1;
    if (!c->resident && mkc_upload(c->P, p->data, sizeof(float) * c->total)) {
        mk_error("CUDA: %s", mkc_last_error());
        return -1;
    }
    c->resident = 1;
    /* the backbone's own draws (drop-path), as mamba_backbone_forward makes them; the orders
     * drawn here are the identity and are overwritten on the device by mil_forward_dev. A bag
     * whose branch is dropped runs no backbone and so draws nothing, as on the CPU. */
    const int branch = f->gamma < 0 || !f->branch_off;
    if (branch) draw_orders_host(m, c, 1, L, NULL, NULL, 0, 1, rng);
    a->B = 1, a->L = L, a->training = 1;
    if ((branch && NL > 0 && mkc_upload(c->dpm_d, c->dpm_h, sizeof(float) * (size_t)NL)) ||
        mkc_upload(o.x, x, sizeof(float) * (size_t)L * F) ||
        (f->dropout > 0 && mkc_upload(o.mask, dmask, sizeof(float) * LD))) {
        mk_error("CUDA: %s", mkc_last_error());
        return -1;
    }
    if (begin) mkc_memset0(c->G, sizeof(float) * c->total);

    mil_forward_dev(m, c, f, &o, L, f->dropout > 0, (float)y, batch);

    /* backward: mil_backward op for op, gradients accumulating over the optimiser step's bags;
     * the attention's own gradient goes to what it read: h, or with --attend e the embedding */
    mkc_memset0(o.dh, sizeof(float) * LD);
    mkc_memset0(o.de, sizeof(float) * LD);
    mil_pool_backward_d(m, c, f, &o, o.lg, o.h, f->attend_e ? o.e : o.h, o.t, o.g, o.a, o.z, o.dh,
                        f->attend_e ? o.de : o.dh, L);
    c->fwd_ok = 1;
    const float *dres;
    if (f->gamma >= 0) {
        mkc_vec_acc(o.de, o.dh, LD);
        if (branch) {
            mkc_mil_gate_backward(o.mo, DG(f->gamma), o.dh, DP(f->gamma), mil_bscale(f), L, D);
            dres = bb_backward_dev(m, c, o.mo);
        } else {
            dres = NULL; /* the dropped branch: neither the gate nor the backbone has a gradient */
        }
    } else {
        dres = bb_backward_dev(m, c, o.dh);
    }
    if (dres) mkc_vec_acc(o.de, dres, LD);
    /* the auxiliary exit's pooling of e, after the branch's as on the CPU */
    if (f->aux > 0) mil_pool_backward_d(m, c, f, &o, o.lg2, o.e, o.e, o.t2, o.g2, o.a2, o.z2, o.de, o.de, L);
    if (f->dropout > 0) mkc_mul(o.de, o.de, o.mask, LD);
    mkc_memset0(o.dh, sizeof(float) * LD); /* relu's backward written, into a zeroed buffer */
    mkc_relu_backward(o.dh, o.de, o.e_pre, LD);
    mkc_linear_backward(NULL, DG(f->emb_w), DG(f->emb_b), o.dh, o.xs, DP(f->emb_w), L, F, D);
    if (update) bb_adamw(m, c, cfg);
    float lg = NAN, lg2 = 0.f;
    if (mkc_download(&lg, o.lg, sizeof(float)) || (f->aux > 0 && mkc_download(&lg2, o.lg2, sizeof(float))) ||
        mkc_sync()) {
        mk_error("CUDA MIL step: %s", mkc_last_error());
        return -1;
    }
    if (logit) *logit = lg;
    if (aux_logit) *aux_logit = lg2;
    return 0;
}

int mamba_backbone_cuda_sync_host(mamba_backbone *m) {
    cuda_bb *c = (cuda_bb *)m->dev;
    if (c) c = tab_of(c); /* the owner's table is the borrower's: m->p is the same */
    if (!c || !c->resident) return 0;
    mk_params *p = m->p;
    if (mkc_download(p->data, c->P, sizeof(float) * c->total)) goto fail;
    if (c->Mo) {
        mk_params_alloc_optim(p);
        if (mkc_download(p->m, c->Mo, sizeof(float) * c->total) || mkc_download(p->v, c->Vo, sizeof(float) * c->total))
            goto fail;
    }
    c->resident = 0;
    return 0;
fail:
    mk_error("CUDA: %s", mkc_last_error());
    return -1;
}

typedef struct {
    int B, L, E, N;
    float *u, *dl, *A, *Bm, *Cm, *D, *z, *db, *out, *dout, *g[8];
    uint16_t *h16[5]; /* bf16 u, delta, Bm, Cm, z */
    uint16_t *out16;
} scan_bench;
static void bench_fwd(void *p) {
    scan_bench *s = p;
    mkc_scan_forward(s->out, NULL, s->u, s->dl, s->A, s->Bm, s->Cm, s->D, s->z, s->db, NULL, s->B, s->L, s->E, s->N, 1);
}
static void bench_fwd16(void *p) {
    scan_bench *s = p;
    mkc_scan_forward_bf16(s->out16, NULL, s->h16[0], s->h16[1], s->A, s->h16[2], s->h16[3], s->D, s->h16[4], s->db,
                          NULL, s->B, s->L, s->E, s->N, 1);
}
static void bench_bwd16(void *p) {
    scan_bench *s = p;
    mkc_scan_backward_bf16(s->g[0], s->g[1], s->g[2], s->g[3], s->g[4], s->g[5], s->g[6], s->g[7], NULL, s->out16, NULL,
                           s->h16[0], s->h16[1], s->A, s->h16[2], s->h16[3], s->D, s->h16[4], s->db, NULL, s->B, s->L,
                           s->E, s->N, 1);
}
static void bench_bwd(void *p) {
    scan_bench *s = p;
    mkc_scan_backward(s->g[0], s->g[1], s->g[2], s->g[3], s->g[4], s->g[5], s->g[6], s->g[7], NULL, s->dout, NULL,
                      s->u, s->dl, s->A, s->Bm, s->Cm, s->D, s->z, s->db, NULL, s->B, s->L, s->E, s->N, 1);
}

int mk_cuda_bench_scan(int B, int L, int E, int N, int reps, double res[6]) {
    if (!mk_cuda_available() || mkc_init()) {
        mk_error("no CUDA device available (%s)", mk_cuda_device_name());
        return -1;
    }
    if (!mkc_scan_supported(N)) {
        mk_error("the CUDA scan does not take d_state %d", N);
        return -1;
    }
    scan_bench s;
    memset(&s, 0, sizeof s);
    s.B = B, s.L = L, s.E = E, s.N = N;
    size_t BLE = (size_t)B * L * E, BLN = (size_t)B * L * N, EN = (size_t)E * N;
    size_t sz[10] = {BLE, BLE, EN, BLN, BLN, (size_t)E, BLE, (size_t)E, BLE, BLE};
    float **dst[10] = {&s.u, &s.dl, &s.A, &s.Bm, &s.Cm, &s.D, &s.z, &s.db, &s.out, &s.dout};
    size_t gn[8] = {BLE, BLE, EN, BLN, BLN, (size_t)E, BLE, (size_t)E};
    float *h = mk_malloc(sizeof(float) * BLE);
    mk_rng r;
    mk_rng_seed(&r, 1);
    int rc = 0;
    for (int k = 0; k < 10 && !rc; k++) {
        for (size_t i = 0; i < sz[k]; i++) h[i] = 2.f * mk_rng_uniform(&r) - 1.f;
        if (k == 2)
            for (size_t i = 0; i < EN; i++) h[i] = -(float)(i % N + 1); /* S4D-real */
        if (k == 7)
            for (int e = 0; e < E; e++) h[e] = -4.f; /* dt ~ softplus(-4 + delta) */
        *dst[k] = mkc_malloc(sizeof(float) * sz[k]);
        rc = !*dst[k] || mkc_upload(*dst[k], h, sizeof(float) * sz[k]);
        static const int slot16[10] = {0, 1, -1, 2, 3, -1, 4, -1, -1, -1}; /* u, delta, Bm, Cm, z: their h16 slot */
        int k16 = slot16[k];
        if (k16 >= 0 && !rc) {
            uint16_t *b16 = mk_malloc(sizeof(uint16_t) * sz[k]);
            for (size_t i = 0; i < sz[k]; i++) b16[i] = mkc_bf16(h[i]);
            s.h16[k16] = mkc_malloc(sizeof(uint16_t) * sz[k]);
            rc = !s.h16[k16] || mkc_upload(s.h16[k16], b16, sizeof(uint16_t) * sz[k]);
            free(b16);
        }
    }
    if (!rc) rc = !(s.out16 = mkc_malloc(sizeof(uint16_t) * BLE));
    for (int k = 0; k < 8 && !rc; k++) {
        s.g[k] = mkc_malloc(sizeof(float) * gn[k]);
        rc = !s.g[k] || mkc_memset0(s.g[k], sizeof(float) * gn[k]);
    }
    free(h);
    if (!rc) {
        res[0] = mkc_time_us(bench_fwd, &s, reps, 1);
        res[1] = mkc_time_us(bench_bwd, &s, reps, 1);
        res[2] = mkc_copy_bandwidth();
        res[3] = mkc_time_us(bench_fwd16, &s, reps, 1);
        res[4] = mkc_time_us(bench_bwd16, &s, reps, 1); /* dout: the bf16 output buffer */
        int was = mkc_scan_set_tiled(0); /* the register kernel, for comparison in the same run */
        res[5] = mkc_time_us(bench_fwd, &s, reps, 1);
        mkc_scan_set_tiled(was);
        rc = mkc_sync();
    }
    for (int k = 0; k < 10; k++) mkc_free(*dst[k]);
    for (int k = 0; k < 5; k++) mkc_free(s.h16[k]);
    mkc_free(s.out16);
    for (int k = 0; k < 8; k++) mkc_free(s.g[k]);
    if (rc) mk_error("CUDA scan benchmark: %s", mkc_last_error());
    return rc ? -1 : 0;
}

#endif /* MK_HAVE_CUDA */
