/* test_optim.c — AdamW (core/optim.h) against a hand-written double
 * reference (Loshchilov & Hutter 2019, decoupled decay, bias-corrected
 * moments), decay only on decay=1 tensors, the warmup + cosine schedule,
 * global-norm clipping, a poisoned (non-finite) gradient, determinism, and
 * the decay flags the Mamba backbone declares. */
#include <string.h>

#include "core/mamba.h"
#include "core/optim.h"
#include "core/params.h"
#include "tests/ref.h"
#include "tests/test.h"

static mk_rng rng;

static void make_table(mk_params *p) {
    mk_params_init(p);
    mk_params_add(p, "proj.weight", 1, 2, 5, 4);
    mk_params_add(p, "proj.bias", 0, 1, 4);
    mk_params_add(p, "A_log", 0, 2, 3, 2);
    mk_params_add(p, "head.weight", 1, 1, 7);
    mk_params_alloc(p);
}

/* double AdamW state mirroring a table */
typedef struct {
    double *w, *m, *v;
    long step;
} ref_adam;

static void ref_adam_step(ref_adam *r, const mk_params *p, const double *g, double lr, double b1, double b2, double eps,
                          double wd) {
    long t = ++r->step;
    for (int k = 0; k < p->n; k++) {
        const mk_tensor *tt = &p->t[k];
        for (size_t i = tt->offset; i < tt->offset + tt->numel; i++) {
            r->m[i] = b1 * r->m[i] + (1 - b1) * g[i];
            r->v[i] = b2 * r->v[i] + (1 - b2) * g[i] * g[i];
            double mh = r->m[i] / (1 - pow(b1, t)), vh = r->v[i] / (1 - pow(b2, t));
            /* decoupled decay: w <- w - lr*wd*w, then the Adam step (same old w) */
            double w0 = r->w[i];
            r->w[i] = w0 - lr * wd * (tt->decay ? w0 : 0.0) - lr * mh / (sqrt(vh) + eps);
        }
    }
}

/* max |a - ref| / max |ref - base| : error relative to the size of the updates */
static double update_err(const float *a, const double *ref, const double *base, size_t n) {
    double md = 0, mu = 1e-12;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - ref[i]), u = fabs(ref[i] - base[i]);
        if (d > md || d != d) md = d != d ? INFINITY : d;
        if (u > mu) mu = u;
    }
    return md / mu;
}

static void test_steps(void) {
    mk_params p;
    make_table(&p);
    ref_fill(p.data, p.total, 0, 1, &rng);
    mk_adamw_cfg c = mk_adamw_defaults(1e-2f, 0);
    c.weight_decay = 0.1f;
    c.clip = 0;
    c.warmup = 0;
    c.total = 0; /* constant lr */
    ref_adam r = {ref_dup(p.data, p.total), ref_alloc(p.total), ref_alloc(p.total), 0};
    double *w0 = ref_dup(p.data, p.total), *g = ref_alloc(p.total);
    test_report(p.m == NULL, "adamw_lazy_moments_before", "no moments before the first step");
    double worst = 0, worst_m = 0, worst_v = 0;
    for (int s = 0; s < 5; s++) {
        ref_fill(p.grad, p.total, 0, 1, &rng);
        for (size_t i = 0; i < p.total; i++) g[i] = p.grad[i];
        double *before = ref_dup(p.data, p.total);
        mk_adamw_step(&p, &c);
        ref_adam_step(&r, &p, g, c.lr, c.beta1, c.beta2, c.eps, c.weight_decay);
        double e = update_err(p.data, r.w, before, p.total);
        double em = test_rel_err(p.m, r.m, p.total, 1e-12), ev = test_rel_err(p.v, r.v, p.total, 1e-12);
        worst = e > worst ? e : worst, worst_m = em > worst_m ? em : worst_m, worst_v = ev > worst_v ? ev : worst_v;
        /* float state must track the double one: resync to measure per-step error */
        for (size_t i = 0; i < p.total; i++) r.w[i] = p.data[i], r.m[i] = p.m[i], r.v[i] = p.v[i];
        free(before);
    }
    test_report(worst < 1e-4 && worst_m < 1e-6 && worst_v < 1e-6 && p.step == 5, "adamw_steps_vs_double",
                "5 steps: update rel err %.2e, m %.2e, v %.2e, step %ld", worst, worst_m, worst_v, p.step);

    /* zero gradient: only decoupled decay acts, and only on decay=1 tensors */
    mk_params_zero_grad(&p);
    double *b = ref_dup(p.data, p.total);
    for (size_t i = 0; i < p.total; i++) p.m[i] = p.v[i] = 0.f;
    mk_adamw_step(&p, &c);
    int bad = 0;
    double md = 0;
    for (int k = 0; k < p.n; k++) {
        const mk_tensor *tt = &p.t[k];
        for (size_t i = tt->offset; i < tt->offset + tt->numel; i++) {
            double want = tt->decay ? b[i] * (1 - (double)c.lr * c.weight_decay) : b[i];
            double d = fabs(p.data[i] - want);
            md = d > md ? d : md;
            if (!tt->decay && p.data[i] != (float)b[i]) bad++;
            if (d > 1e-6 * (fabs(want) + 1e-3)) bad++;
        }
    }
    test_report(bad == 0, "adamw_decay_only_decay_tensors",
                "zero grad: w *= 1 - lr*wd on decay=1 tensors, others bit-unchanged (max diff %.1e, %d bad)", md, bad);
    free(b), free(r.w), free(r.m), free(r.v), free(w0), free(g);
    mk_params_free(&p);
}

static void test_schedule(void) {
    mk_adamw_cfg c = mk_adamw_defaults(1e-3f, 200);
    int dok = c.beta1 == 0.9f && c.beta2 == 0.999f && c.eps == 1e-8f && c.warmup == 10 && c.total == 200;
    test_report(dok, "adamw_defaults", "beta1 %g, beta2 %g, eps %g, warmup %ld of %ld", c.beta1, c.beta2, c.eps, c.warmup,
                c.total);
    c.warmup = 10, c.total = 110, c.min_lr_frac = 0.01f;
    const double lr = 1e-3, mn = lr * 0.01;
    double worst = 0;
    int mono = 1;
    float prev = 0;
    for (long s = 0; s <= 130; s++) {
        double want;
        if (s < 10) want = lr * (s + 1) / 10.0; /* linear warmup reaching lr at the last warmup step */
        else {
            double prog = (s - 10) / 100.0;
            if (prog > 1) prog = 1;
            want = mn + (lr - mn) * 0.5 * (1 + cos(M_PI * prog));
        }
        float got = mk_lr_at(&c, s);
        double e = fabs(got - want) / want;
        worst = e > worst ? e : worst;
        if (s > 0 && s < 10 && !(got > prev)) mono = 0;
        if (s > 10 && !(got <= prev)) mono = 0;
        prev = got;
    }
    float l0 = mk_lr_at(&c, 0), l9 = mk_lr_at(&c, 9), l60 = mk_lr_at(&c, 60), l110 = mk_lr_at(&c, 110),
          l999 = mk_lr_at(&c, 999);
    test_report(worst < 1e-6 && mono, "adamw_lr_schedule",
                "warmup 10 + cosine to 1%% over 100: lr(0) %.3g, lr(9) %.3g, lr(60) %.4g, lr(110) %.3g, lr(999) %.3g, rel err %.1e",
                l0, l9, l60, l110, l999, worst);
    c.warmup = 0, c.total = 0;
    test_report(mk_lr_at(&c, 0) == 1e-3f && mk_lr_at(&c, 1000) == 1e-3f, "adamw_lr_constant", "no warmup, no total: constant");
}

static void test_clip(void) {
    mk_params p;
    make_table(&p);
    ref_fill(p.data, p.total, 0, 1, &rng);
    ref_fill(p.grad, p.total, 0, 1, &rng);
    double n2 = 0;
    for (size_t i = 0; i < p.total; i++) n2 += (double)p.grad[i] * p.grad[i];
    /* scale the gradient to norm 10 */
    float s = (float)(10.0 / sqrt(n2));
    for (size_t i = 0; i < p.total; i++) p.grad[i] *= s;
    n2 = 0;
    for (size_t i = 0; i < p.total; i++) n2 += (double)p.grad[i] * p.grad[i];
    double norm = sqrt(n2);
    float gn = mk_grad_norm(&p);
    test_report(fabs(gn - norm) < 1e-6 * norm, "adamw_grad_norm", "%.7f vs double %.7f", gn, norm);
    mk_adamw_cfg c = mk_adamw_defaults(1e-2f, 0);
    c.clip = 1.f, c.warmup = 0, c.total = 0, c.weight_decay = 0.05f;
    double *g = ref_alloc(p.total);
    for (size_t i = 0; i < p.total; i++) g[i] = p.grad[i] * (1.0 / norm);
    ref_adam r = {ref_dup(p.data, p.total), ref_alloc(p.total), ref_alloc(p.total), 0};
    double *before = ref_dup(p.data, p.total);
    float ret = mk_adamw_step(&p, &c);
    ref_adam_step(&r, &p, g, c.lr, c.beta1, c.beta2, c.eps, c.weight_decay);
    double em = test_rel_err(p.m, r.m, p.total, 1e-12), ev = test_rel_err(p.v, r.v, p.total, 1e-12),
           ew = update_err(p.data, r.w, before, p.total);
    test_report(em < 1e-5 && ev < 1e-5 && ew < 1e-4 && fabs(ret - norm) < 1e-5 * norm, "adamw_clip",
                "grad norm 10 clipped to 1: m rel err %.1e, v %.1e, update %.1e, returned pre-clip norm %.4f", em, ev, ew,
                ret);
    /* below the threshold nothing is scaled */
    mk_params q;
    make_table(&q);
    for (size_t i = 0; i < q.total; i++) q.grad[i] = p.grad[i] * 0.05f; /* norm 0.5 */
    c.clip = 1.f;
    mk_adamw_step(&q, &c);
    double es = 0;
    for (size_t i = 0; i < q.total; i++) {
        double want = (1 - c.beta1) * (double)q.grad[i];
        double d = fabs(q.m[i] - want) / (fabs(want) + 1e-12);
        es = d > es ? d : es;
    }
    test_report(es < 1e-5, "adamw_no_clip_below_threshold", "norm 0.5 < clip 1: m = (1-beta1) g, rel err %.1e", es);
    free(g), free(r.w), free(r.m), free(r.v), free(before);
    mk_params_free(&p);
    mk_params_free(&q);
}

static void test_poisoned(void) {
    mk_params p;
    make_table(&p);
    ref_fill(p.data, p.total, 0, 1, &rng);
    ref_fill(p.grad, p.total, 0, 1, &rng);
    mk_adamw_cfg c = mk_adamw_defaults(1e-2f, 100);
    mk_adamw_step(&p, &c); /* one good step so the moments are non-zero */
    float *w = ref_falloc(p.total), *m = ref_falloc(p.total), *v = ref_falloc(p.total);
    memcpy(w, p.data, sizeof(float) * p.total), memcpy(m, p.m, sizeof(float) * p.total), memcpy(v, p.v, sizeof(float) * p.total);
    int ok = 1;
    for (int kind = 0; kind < 2; kind++) {
        ref_fill(p.grad, p.total, 0, 1, &rng);
        p.grad[7] = kind ? INFINITY : NAN;
        float ret = mk_adamw_step(&p, &c);
        int fin = 1;
        for (size_t i = 0; i < p.total; i++) fin &= isfinite(p.data[i]) && isfinite(p.m[i]) && isfinite(p.v[i]);
        ok &= !isfinite(ret) && fin && !memcmp(w, p.data, sizeof(float) * p.total) &&
              !memcmp(m, p.m, sizeof(float) * p.total) && !memcmp(v, p.v, sizeof(float) * p.total);
    }
    test_report(ok, "adamw_skips_nonfinite_grad", "NaN or Inf gradient: step skipped, weights and moments untouched");
    free(w), free(m), free(v);
    mk_params_free(&p);
}

static void test_determinism(void) {
    mk_params a, b;
    make_table(&a), make_table(&b);
    mk_rng r1, r2;
    mk_rng_seed(&r1, 11), mk_rng_seed(&r2, 11);
    ref_fill(a.data, a.total, 0, 1, &r1);
    ref_fill(b.data, b.total, 0, 1, &r2);
    mk_adamw_cfg c = mk_adamw_defaults(3e-3f, 20);
    for (int s = 0; s < 20; s++) {
        ref_fill(a.grad, a.total, 0, 1, &r1);
        ref_fill(b.grad, b.total, 0, 1, &r2);
        mk_adamw_step(&a, &c);
        mk_adamw_step(&b, &c);
    }
    int same = !memcmp(a.data, b.data, sizeof(float) * a.total) && !memcmp(a.m, b.m, sizeof(float) * a.total) &&
               !memcmp(a.v, b.v, sizeof(float) * a.total) && a.step == b.step;
    test_report(same, "adamw_deterministic", "same seed, 20 steps with warmup + cosine + clipping: bit-identical");
    mk_params_free(&a), mk_params_free(&b);
}

/* Norms, biases, A_log, D and the non-selective B/C vectors are not decayed;
 * weight matrices are. */
static void test_backbone_decay_flags(void) {
    int bad = 0, nd = 0, nn = 0;
    for (int sel = 0; sel < 2; sel++) {
        mamba_cfg c;
        mamba_cfg_default(&c, 8, 2);
        c.n_dir = 2, c.selective = sel, c.norm = sel ? MK_NORM_LN : MK_NORM_RMS;
        mk_params p;
        mamba_backbone m;
        mk_params_init(&p);
        mamba_backbone_declare(&m, &p, "bb.", &c);
        for (int i = 0; i < p.n; i++) {
            const char *s = p.t[i].name;
            int matrix = p.t[i].ndim == 2 && !strstr(s, "A_log");
            if (p.t[i].decay != matrix) {
                bad++;
                fprintf(stderr, "decay flag of %s is %d\n", s, p.t[i].decay);
            }
            if (p.t[i].decay) nd++;
            else nn++;
        }
        mamba_backbone_free(&m);
        mk_params_free(&p);
    }
    test_report(bad == 0, "adamw_backbone_decay_flags", "%d decayed matrices, %d exempt (norms, biases, A_log, D, B, C): %d wrong",
                nd, nn, bad);
}

int main(void) {
    mk_rng_seed(&rng, 99);
    test_steps();
    test_schedule();
    test_clip();
    test_poisoned();
    test_determinism();
    test_backbone_decay_flags();
    return test_exit();
}
