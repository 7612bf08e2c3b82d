/* test_mil.c — pathology MIL: bag file parsing and its errors, binary round
 * trip, the interleave order, finite-difference gradients of every MIL layer
 * (embedding, attention, gated attention, mean/max pooling, classifier, and
 * the SR-Mamba backbone under them), AUC against a brute-force count, and a
 * real-data check: MambaMIL cross-validated on Musk1 must beat chance clearly. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include <unistd.h>

#include "core/ops.h"
#include "pathology/mil_bags.h"
#include "pathology/mil_model.h"
#include "tests/test.h"

/* Parse text; expect failure whose message contains want. */
static void expect_error(const char *name, const char *text, int flags, const char *want) {
    mil_bags b;
    int rc = mil_bags_parse_csv(&b, text, strlen(text), "t.csv", flags);
    const char *msg = rc ? mk_last_error() : "(parsed without error)";
    test_report(rc != 0 && strstr(msg, want) != NULL, name, "%s", msg);
    if (!rc) mil_bags_free(&b);
}

static void test_parse(void) {
    expect_error("csv_missing_label", "bag_id,label,f1,f2\nb1,0,1,2\nb1,,1,2\n", 0, "line 3: missing label");
    expect_error("csv_feature_count", "b1,0,1,2,3\nb1,0,1,2\n", 0, "line 2: 2 features, expected 3");
    expect_error("csv_feature_count_more", "b1,0,1,2\nb2,1,1,2,3\n", 0, "line 2: 3 features, expected 2");
    expect_error("csv_label_not_01", "b1,0,1\nb2,2,1\n", 0, "line 2: label 2 is not 0 or 1");
    expect_error("csv_label_text", "b1,0,1\nb2,yes,1\n", 0, "line 2: label 'yes' is not a number");
    expect_error("csv_nan", "b1,0,1,2\nb1,0,nan,2\n", 0, "line 2: feature 1 is NaN");
    expect_error("csv_inf", "b1,0,1,2\nb1,0,1,-inf\n", 0, "line 2: feature 2 is infinite");
    expect_error("csv_empty_feature", "b1,0,1,,2\n", 0, "line 1: feature 2 is empty");
    expect_error("csv_bad_number", "b1,0,1,2x\n", 0, "line 1: feature 2 is not a number");
    expect_error("csv_no_bags", "bag_id,label,f1\n", 0, "no bags");
    expect_error("csv_empty_file", "", 0, "no bags");
    expect_error("csv_no_features", "b1,0\n", 0, "line 1: no features");
    expect_error("csv_label_conflict", "b1,0,1\nb2,1,1\nb1,1,2\n", 0, "line 3: bag 'b1' has label 1 here but 0 on line 1");
    expect_error("csv_unlabeled_train", "b1,?,1\n", 0, "line 1: missing label");

    /* a good file: header, CRLF, blank line, non-contiguous bag rows */
    const char *good = "bag_id,label,f1,f2\r\nA,1,1.5,2\r\nB,0,3,4\r\n\r\nA,1,5,6e-1\r\n";
    mil_bags b;
    int rc = mil_bags_parse_csv(&b, good, strlen(good), "g.csv", 0);
    int ok = rc == 0 && b.n_bags == 2 && b.F == 2 && b.n_inst == 3 && !strcmp(b.name[0], "A") &&
             mil_bag_len(&b, 0) == 2 && mil_bag_len(&b, 1) == 1 && b.label[0] == 1 && b.label[1] == 0 &&
             b.x[0] == 1.5f && b.x[2] == 5.f && fabsf(b.x[3] - 0.6f) < 1e-7f && b.x[4] == 3.f;
    test_report(ok, "csv_parse_good", "bags %d F %d inst %ld", rc ? -1 : b.n_bags, rc ? -1 : b.F, rc ? -1L : b.n_inst);
    if (!rc) {
        /* binary round trip */
        char path[64];
        snprintf(path, sizeof path, "/tmp/test_mil_%d.bin", (int)getpid());
        mil_bags c;
        int r2 = mil_bags_save_bin(&b, path) || mil_bags_load(&c, path, 0);
        ok = !r2 && c.n_bags == b.n_bags && c.F == b.F && c.n_inst == b.n_inst &&
             !memcmp(c.x, b.x, sizeof(float) * b.n_inst * b.F) && !memcmp(c.label, b.label, sizeof(int) * b.n_bags) &&
             !strcmp(c.name[0], "A");
        test_report(ok, "bin_roundtrip", "%s", r2 ? mk_last_error() : "");
        if (!r2) mil_bags_free(&c);
        /* corruptions: truncated file, bad version, empty bag */
        FILE *f = fopen(path, "r+b");
        unsigned char buf[4096];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        struct {
            const char *name;
            size_t off;
            unsigned char val;
            size_t len;
            const char *want;
        } cases[] = {{"bin_truncated", 28, 0, n - 4, "needs"},
                     {"bin_bad_version", 8, 7, n, "unsupported bag file version 7"},
                     {"bin_empty_bag", 32, 0, n, "is empty"},
                     {"bin_bad_label", 40, 5, n, "label 5 is not 0 or 1"},
                     {"bin_nan", 32 + 2 * 80 + 4 + 3, 0x7f, n, "not finite"}};
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            unsigned char t[4096];
            memcpy(t, buf, n);
            t[cases[k].off] = cases[k].val;
            if (!strcmp(cases[k].name, "bin_nan")) t[cases[k].off - 1] = 0xc0; /* 0x7fc00000 = NaN */
            if (!strcmp(cases[k].name, "bin_empty_bag")) memset(t + 32, 0, 8);
            f = fopen(path, "wb");
            fwrite(t, 1, cases[k].len, f);
            fclose(f);
            mil_bags d;
            int r3 = mil_bags_load(&d, path, 0);
            test_report(r3 != 0 && strstr(mk_last_error(), cases[k].want) != NULL, cases[k].name, "%s",
                        r3 ? mk_last_error() : "(loaded)");
            if (!r3) mil_bags_free(&d);
        }
        unlink(path);
        mil_bags_free(&b);
    }
}

static void test_order(void) {
    /* L=7, R=3: padded 9 = 0 3 6 | 1 4 7 | 2 5 8 -> drop 7, 8 */
    int o[7], want[7] = {0, 3, 6, 1, 4, 2, 5};
    mil_order_interleave(o, 7, 3);
    test_report(!memcmp(o, want, sizeof o), "interleave_order", "%d %d %d %d %d %d %d", o[0], o[1], o[2], o[3], o[4],
                o[5], o[6]);
    int ok = 1;
    for (int L = 1; L < 60 && ok; L++)
        for (int R = 1; R < 13 && ok; R++) {
            int *p = malloc(sizeof(int) * L);
            mil_order_interleave(p, L, R);
            ok = mk_order_is_perm(p, L);
            free(p);
        }
    test_report(ok, "interleave_is_perm", "L 1..59, R 1..12");
}

/* Gradient check: loss = BCE(logit, y=1) for one bag, + aux x BCE(aux_logit, 1) with an
 * auxiliary exit that does not mix into the prediction (training's loss). */
static int aux_loss(const mil_model *m) { return m->has_bb && m->c.aux > 0 && !m->c.aux_mix; }
static double bag_loss(mil_model *m, const float *x, int L) {
    mil_forward(m, x, L, 0);
    double l = mk_softplusf(m->logit) - m->logit;
    if (aux_loss(m)) l += m->c.aux * (mk_softplusf(m->aux_logit) - m->aux_logit);
    return l;
}

/* The embedding's ReLU and max pooling are not differentiable everywhere: a central
 * difference whose step crosses a kink measures neither side's slope. After the base
 * forward, remember every ReLU input's sign and max pooling's winners; an entry whose
 * perturbed forwards change any of them is skipped (and counted), not compared. */
typedef struct {
    unsigned char *sign;
    int *amax;
    size_t n;
    int D, L;
    int *base;
} kinks;
static void kinks_take(kinks *k, const mil_model *m, int L) {
    k->n = (size_t)L * m->c.D, k->D = m->c.D, k->L = L;
    k->base = malloc(sizeof(int) * L);
    if (m->c.order == MIL_ORDER_SCORE) memcpy(k->base, m->base, sizeof(int) * L);
    k->sign = malloc(k->n);
    k->amax = malloc(sizeof(int) * k->D);
    for (size_t i = 0; i < k->n; i++) k->sign[i] = m->e_pre[i] > 0;
    if (m->c.type == MIL_MAX) memcpy(k->amax, m->amax, sizeof(int) * k->D);
}
static int kinks_crossed(const kinks *k, const mil_model *m) {
    for (size_t i = 0; i < k->n; i++)
        if ((m->e_pre[i] > 0) != k->sign[i]) return 1;
    /* the score order is piecewise constant: a step that reorders the bag jumps */
    if (m->c.order == MIL_ORDER_SCORE && memcmp(k->base, m->base, sizeof(int) * k->L)) return 1;
    return m->c.type == MIL_MAX && memcmp(k->amax, m->amax, sizeof(int) * k->D);
}

static void gradcheck_full(const char *name, int type, int gated, int L, int stride, int res_gate, int order, float aux,
                           int aux_mix, int attend_e) {
    mil_cfg c;
    mil_cfg_default(&c, type, 5);
    c.D = 8, c.H = 6, c.n_layer = 2, c.stride = stride, c.d_state = 4, c.gated = gated, c.res_gate = res_gate;
    c.order = order, c.aux = aux, c.aux_mix = aux_mix, c.attend_e = attend_e;
    mil_model m;
    if (mil_model_create(&m, &c, 42)) {
        test_report(0, name, "%s", mk_last_error());
        return;
    }
    mk_rng r;
    mk_rng_seed(&r, 7);
    float *x = malloc(sizeof(float) * L * c.F);
    for (int i = 0; i < L * c.F; i++) x[i] = mk_rng_normal(&r);
    /* non-trivial scaler */
    for (int j = 0; j < c.F; j++) {
        mk_param(&m.p, m.fmean)[j] = 0.1f * j;
        mk_param(&m.p, m.fstd)[j] = 1.f + 0.2f * j;
    }
    /* a non-zero residual gate (it starts at 0), so the backbone's gradients are checked too */
    if (m.gamma >= 0)
        for (int d = 0; d < c.D; d++) mk_param(&m.p, m.gamma)[d] = 0.3f + 0.1f * d;
    mk_params_zero_grad(&m.p);
    float pr = mil_forward(&m, x, L, 0);
    kinks kk;
    kinks_take(&kk, &m, L);
    /* the mixed prediction sigmoid((l_h + l_e) / 2): each exit gets half of d loss / d logit */
    if (m.c.aux_mix) mil_backward(&m, 0.5f * (pr - 1.f), 0.5f * (pr - 1.f));
    else mil_backward(&m, pr - 1.f, aux_loss(&m) ? m.c.aux * (mk_sigmoidf(m.aux_logit) - 1.f) : 0.f);
    double worst = 0;
    const char *worst_t = "";
    int checked = 0, skipped = 0;
    for (int t = 0; t < m.p.n; t++) {
        if (t == m.fmean || t == m.fstd) continue;
        mk_tensor *T = &m.p.t[t];
        float *w = mk_param(&m.p, t), *g = mk_grad(&m.p, t);
        double maxd = 0, maxg = 1e-2; /* floor: float roundoff of an O(1) loss */
        int stride = T->numel > 24 ? (int)(T->numel / 24) : 1;
        for (size_t i = 0; i < T->numel; i += stride) {
            float old = w[i];
            const float h = 5e-3f * fmaxf(1.f, fabsf(old));
            w[i] = old + h;
            double lp = bag_loss(&m, x, L);
            int crossed = kinks_crossed(&kk, &m);
            w[i] = old - h;
            double lm = bag_loss(&m, x, L);
            crossed |= kinks_crossed(&kk, &m);
            w[i] = old;
            if (crossed) {
                skipped++;
                continue;
            }
            double fd = (lp - lm) / (2 * h);
            double d = fabs(fd - g[i]);
            if (d > maxd) maxd = d;
            if (fabs(fd) > maxg) maxg = fabs(fd);
            checked++;
        }
        double rel = maxd / maxg;
        if (rel > worst) worst = rel, worst_t = T->name;
    }
    test_report(worst < 1e-2 && skipped * 10 < checked, name,
                "%d entries compared (%d skipped: the step crosses a kink: ReLU, max, or a reordering), worst normalised error %.2e (%s)", checked,
                skipped, worst, worst_t);
    free(kk.sign);
    free(kk.amax);
    free(kk.base);
    free(x);
    mil_model_free(&m);
}

static void gradcheck_aux(const char *name, int type, int gated, int L, int stride, int res_gate, int order, float aux,
                          int aux_mix) {
    gradcheck_full(name, type, gated, L, stride, res_gate, order, aux, aux_mix, 0);
}

static void gradcheck_cfg(const char *name, int type, int gated, int L, int stride, int res_gate, int order) {
    gradcheck_aux(name, type, gated, L, stride, res_gate, order, 0.f, 0);
}

static void gradcheck(const char *name, int type, int gated, int L, int stride) {
    gradcheck_cfg(name, type, gated, L, stride, 0, MIL_ORDER_NATURAL);
}

static void test_auc(void) {
    mk_rng r;
    mk_rng_seed(&r, 3);
    enum { N = 57 };
    float s[N];
    int y[N];
    for (int i = 0; i < N; i++) {
        y[i] = mk_rng_uniform(&r) < 0.4f;
        s[i] = (float)mk_rng_int(&r, 8) + (y[i] ? 2.f : 0.f); /* many ties */
    }
    double pairs = 0, wins = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            if (y[i] == 1 && y[j] == 0) {
                pairs++;
                wins += s[i] > s[j] ? 1 : s[i] == s[j] ? 0.5 : 0;
            }
    double a = mil_auc(s, y, N);
    test_report(fabs(a - wins / pairs) < 1e-12, "auc_vs_pairs", "%.6f vs %.6f", a, wins / pairs);
}

/* Common random numbers: MambaMIL (residual gate at 0) and ABMIL built with the same seed
 * start from the same embedding / attention / classifier weights, draw the same dropout
 * masks, give the same probability, and take the same first optimiser step on them; only
 * the gate moves off zero. The benchmark's MambaMIL-vs-ABMIL difference is then the
 * sequence branch's doing, not a different draw of the shared weights. */
static void test_paired(void) {
    mil_cfg cm, ca;
    mil_cfg_default(&cm, MIL_MAMBA, 6);
    mil_cfg_default(&ca, MIL_ABMIL, 6);
    cm.D = ca.D = 8, cm.H = ca.H = 6, cm.d_state = 4, cm.stride = 3;
    cm.dropout = ca.dropout = 0.25f;
    mil_model a, m;
    if (mil_model_create(&m, &cm, 5) || mil_model_create(&a, &ca, 5)) {
        test_report(0, "paired_with_abmil", "%s", mk_last_error());
        return;
    }
    const int shared[][2] = {{m.emb_w, a.emb_w}, {m.emb_b, a.emb_b}, {m.att_V, a.att_V}, {m.att_Vb, a.att_Vb},
                             {m.att_w, a.att_w}, {m.cls_w, a.cls_w}, {m.cls_b, a.cls_b}};
    const int ns = (int)(sizeof shared / sizeof shared[0]);
    int same_init = 1;
    for (int k = 0; k < ns; k++)
        same_init &= !memcmp(mk_param(&m.p, shared[k][0]), mk_param(&a.p, shared[k][1]),
                             sizeof(float) * m.p.t[shared[k][0]].numel);
    mk_rng r;
    mk_rng_seed(&r, 11);
    enum { L = 9 };
    float x[L * 6];
    for (int i = 0; i < L * 6; i++) x[i] = mk_rng_normal(&r);
    mk_adamw_cfg oc = mk_adamw_defaults(1e-2f, 10);
    oc.clip = 0;
    mk_params_alloc_optim(&m.p);
    mk_params_alloc_optim(&a.p);
    mk_params_zero_grad(&m.p);
    mk_params_zero_grad(&a.p);
    float pm = mil_forward(&m, x, L, 1), pa = mil_forward(&a, x, L, 1); /* training: dropout on */
    mil_backward(&m, pm - 1.f, 0.f);
    mil_backward(&a, pa - 1.f, 0.f);
    mk_adamw_step(&m.p, &oc);
    mk_adamw_step(&a.p, &oc);
    double dmax = 0;
    for (int k = 0; k < ns; k++) {
        const float *wm = mk_param(&m.p, shared[k][0]), *wa = mk_param(&a.p, shared[k][1]);
        for (size_t i = 0; i < m.p.t[shared[k][0]].numel; i++) dmax = fmax(dmax, fabs((double)wm[i] - wa[i]));
    }
    double gmax = 0;
    for (int d = 0; d < cm.D; d++) gmax = fmax(gmax, fabs(mk_param(&m.p, m.gamma)[d]));
    test_report(same_init && pm == pa && dmax == 0 && gmax > 1e-4, "paired_with_abmil",
                "same init %d, p %.7f vs %.7f, shared weights after one step differ by %.2e, gate moved to %.2e",
                same_init, pm, pa, dmax, gmax);
    mil_model_free(&m);
    mil_model_free(&a);
}

/* --shuffle-instances: ABMIL pools a set, so training it on shuffled instance orders may
 * change its predictions only by float summation order (one epoch: over more, Adam blows
 * rounding up in coordinates whose gradient is near zero); MambaMIL scans the order, so its
 * training must see the shuffles (its predictions move). Catches a shuffle that scrambles
 * rows within an instance (ABMIL would move too) or never happens (MambaMIL would not). */
/* 16 small bags of 4 features, the positives with one shifted instance (mechanics tests only) */
static int toy_bags(mil_bags *bags, const char *name) {
    char *csv = malloc(1 << 16);
    size_t k = 0;
    mk_rng r;
    mk_rng_seed(&r, 21);
    for (int b = 0; b < 16; b++) {
        int L = 3 + mk_rng_int(&r, 6), pos = b % 2;
        for (int i = 0; i < L; i++) {
            float f0 = mk_rng_normal(&r) + (pos && i == L / 2 ? 3.f : 0.f);
            k += (size_t)snprintf(csv + k, 128, "b%d,%d,%.4f,%.4f,%.4f,%.4f\n", b, pos, f0, mk_rng_normal(&r),
                                  mk_rng_normal(&r), mk_rng_normal(&r));
        }
    }
    int rc = mil_bags_parse_csv(bags, csv, k, "s.csv", 0);
    if (rc) test_report(0, name, "%s", mk_last_error());
    free(csv);
    return rc;
}

/* a small model of type (D 8, d_state 4, stride 2) trained on the toy bags with o, its
 * probabilities in p; its gate entries at exactly 0 added to *gate_zeros when given */
static void toy_fit(const mil_bags *bags, int type, const mil_train_opts *o, float *p, long *gate_zeros) {
    mil_cfg c;
    mil_cfg_default(&c, type, 4);
    c.D = 8, c.H = 8, c.d_state = 4, c.stride = 2;
    mil_model m;
    mil_model_create(&m, &c, 3);
    mil_model_fit_scaler(&m, bags);
    mil_train(&m, bags, o, NULL);
    mil_predict(&m, bags, p);
    if (gate_zeros)
        for (int d = 0; d < c.D; d++) *gate_zeros += mk_param(&m.p, m.gamma)[d] == 0.f;
    mil_model_free(&m);
}

static void test_shuffle_instances(void) {
    mil_bags bags;
    if (toy_bags(&bags, "shuffle_instances")) return;
    float p[2][2][16];
    for (int type = 0; type < 2; type++)
        for (int sh = 0; sh < 2; sh++) {
            mil_train_opts o;
            mil_train_opts_default(&o);
            o.epochs = 1, o.lr = 5e-3f, o.clip = 0, o.quiet = 1, o.shuffle_inst = sh;
            toy_fit(&bags, type ? MIL_ABMIL : MIL_MAMBA, &o, p[type][sh], NULL);
        }
    double dm = 0, da = 0;
    for (int i = 0; i < 16; i++) {
        dm = fmax(dm, fabs(p[0][0][i] - p[0][1][i]));
        da = fmax(da, fabs(p[1][0][i] - p[1][1][i]));
    }
    test_report(da < 1e-5 && dm > 1e-4, "shuffle_instances",
                "largest change of a bag probability after one epoch: ABMIL %.2e (must be < 1e-5), MambaMIL %.2e "
                "(must be > 1e-4)",
                da, dm);
    mil_bags_free(&bags);
}

/* --gate-l1: the soft threshold on values either side of it; then training. A threshold far
 * above Adam's step keeps every gate entry at exactly 0, where MambaMIL is the same seed's
 * ABMIL (common random numbers): the same probabilities, bit for bit, after two epochs. A small
 * one lets entries move, and the probabilities with them (so the comparison can fail). */
static void test_gate_l1(void) {
    float g[6] = {0.3f, -0.3f, 0.05f, -0.05f, 0.f, 0.1f};
    int z = mil_soft_threshold(g, 6, 0.1f);
    int st = z == 4 && g[0] == 0.3f - 0.1f && g[1] == -(0.3f - 0.1f) && !g[2] && !g[3] && !g[4] && !g[5];
    mil_bags bags;
    if (toy_bags(&bags, "gate_l1")) return;
    float p[3][16];
    long zeros[3] = {0, 0, 0};
    const float l1[3] = {0.f, 1e4f, 0.05f};
    for (int v = 0; v < 3; v++) {
        mil_train_opts o;
        mil_train_opts_default(&o);
        o.epochs = 2, o.lr = 5e-3f, o.clip = 0, o.quiet = 1, o.gate_l1 = l1[v];
        toy_fit(&bags, v ? MIL_MAMBA : MIL_ABMIL, &o, p[v], v ? &zeros[v] : NULL);
    }
    double dbig = 0, dsmall = 0;
    for (int i = 0; i < 16; i++) {
        dbig = fmax(dbig, fabs(p[1][i] - p[0][i]));
        dsmall = fmax(dsmall, fabs(p[2][i] - p[0][i]));
    }
    test_report(st && dbig == 0 && zeros[1] == 8 && zeros[2] < 8 && dsmall > 1e-6, "gate_l1",
                "soft threshold %s; threshold 1e4: %ld of 8 gate entries at 0, probabilities vs ABMIL differ by "
                "%.2e (must be 0); threshold 0.05: %ld at 0, differ by %.2e",
                st ? "right" : "WRONG", zeros[1], dbig, zeros[2], dsmall);
    mil_bags_free(&bags);
}

/* --order score: the scans read the bag sorted by attention score, so permuting a bag's rows
 * leaves the probability as it was (up to float summation order); the natural order must
 * move it (else this test could not fail). The sorted order is checked against an
 * independent sort of the scores recomputed here in double. The order survives a save/load. */
static void test_order_score(void) {
    const int L = 23, F = 5;
    mk_rng r;
    mk_rng_seed(&r, 31);
    float *x = malloc(sizeof(float) * L * F), *xp = malloc(sizeof(float) * L * F);
    int perm[23];
    for (int i = 0; i < L * F; i++) x[i] = mk_rng_normal(&r);
    for (int i = 0; i < L; i++) perm[i] = i;
    mk_rng_shuffle(&r, perm, L);
    for (int i = 0; i < L; i++) memcpy(xp + (size_t)i * F, x + (size_t)perm[i] * F, sizeof(float) * F);
    double moved[2] = {0, 0};
    int sorted_ok = 1, reload_ok = 0;
    for (int order = 0; order < 2; order++) {
        mil_cfg c;
        mil_cfg_default(&c, MIL_MAMBA, F);
        c.D = 8, c.H = 6, c.d_state = 4, c.stride = 4, c.order = order;
        mil_model m;
        mil_model_create(&m, &c, 5);
        for (int d = 0; d < c.D; d++) mk_param(&m.p, m.gamma)[d] = 0.5f - 0.1f * d;
        float p0 = mil_forward(&m, x, L, 0);
        if (order == MIL_ORDER_SCORE) {
            /* s_i = w . tanh(V e_i + b) in double, e = relu(W x + b): base must sort it descending */
            const float *We = mk_param(&m.p, m.emb_w), *be = mk_param(&m.p, m.emb_b);
            const float *V = mk_param(&m.p, m.att_V), *bV = mk_param(&m.p, m.att_Vb), *w = mk_param(&m.p, m.att_w);
            double s[23];
            for (int i = 0; i < L; i++) {
                double e[8];
                for (int d = 0; d < c.D; d++) {
                    double v = be[d];
                    for (int j = 0; j < F; j++) v += (double)We[d * F + j] * x[i * F + j];
                    e[d] = v > 0 ? v : 0;
                }
                s[i] = 0;
                for (int k = 0; k < c.H; k++) {
                    double v = bV[k];
                    for (int d = 0; d < c.D; d++) v += (double)V[k * c.D + d] * e[d];
                    s[i] += w[k] * tanh(v);
                }
            }
            for (int i = 0; i + 1 < L; i++)
                if (s[m.base[i]] < s[m.base[i + 1]] - 1e-6) sorted_ok = 0;
            char path[] = "/tmp/mk_mil_order_XXXXXX";
            int fd = mkstemp(path);
            if (fd >= 0) {
                close(fd);
                mil_model m2;
                if (!mil_model_save(&m, path) && !mil_model_load(&m2, path)) {
                    reload_ok = m2.c.order == MIL_ORDER_SCORE && fabsf(mil_forward(&m2, x, L, 0) - p0) < 1e-7f;
                    mil_model_free(&m2);
                }
                unlink(path);
            }
        }
        float p1 = mil_forward(&m, xp, L, 0);
        moved[order] = fabs((double)p1 - p0);
        mil_model_free(&m);
    }
    /* with dropout, training reads the bag in the order prediction does (scored without the mask) */
    int train_same = 0;
    {
        mil_cfg c;
        mil_cfg_default(&c, MIL_MAMBA, F);
        c.D = 8, c.H = 6, c.d_state = 4, c.stride = 4, c.order = MIL_ORDER_SCORE, c.dropout = 0.5f;
        mil_model m;
        mil_model_create(&m, &c, 6);
        int b0[23];
        mil_forward(&m, x, L, 0);
        memcpy(b0, m.base, sizeof b0);
        mil_forward(&m, x, L, 1);
        train_same = !memcmp(b0, m.base, sizeof b0);
        mil_model_free(&m);
    }
    test_report(train_same, "order_score_train_no_mask", "the training forward (dropout 0.5) reads the prediction's order: %s",
                train_same ? "yes" : "NO");
    test_report(moved[MIL_ORDER_SCORE] < 1e-5 && moved[MIL_ORDER_NATURAL] > 1e-4 && sorted_ok && reload_ok,
                "order_score_invariant",
                "bag rows permuted: probability moves %.2e with --order score (must be < 1e-5), %.2e with natural "
                "(must be > 1e-4); scan order sorted by score: %s; kept by save/load: %s",
                moved[1], moved[0], sorted_ok ? "yes" : "NO", reload_ok ? "yes" : "NO");
    free(x);
    free(xp);
}

static void test_musk1(void) {
    char path[4096];
    if (!test_find_data("musk1_cv_mamba", "mil/musk1.csv", path, sizeof path)) return;
    mil_bags b;
    if (mil_bags_load(&b, path, 0)) {
        test_report(0, "musk1_load", "%s", mk_last_error());
        return;
    }
    test_report(b.n_bags == 92 && b.F == 166 && b.n_inst == 476 && mil_bags_positives(&b) == 47, "musk1_load",
                "%d bags, %d features, %ld instances, %d positive", b.n_bags, b.F, b.n_inst, mil_bags_positives(&b));
    mil_cfg c;
    mil_cfg_default(&c, MIL_MAMBA, b.F);
    c.D = 16, c.H = 16, c.d_state = 4;
    mil_train_opts o;
    mil_train_opts_default(&o);
    o.epochs = 10;
    o.lr = 1e-3f;
    o.quiet = 1;
    double acc[1], auc[1];
    double t0 = mk_time();
    if (mil_cross_validate(&b, &c, &o, 4, 1, acc, auc, NULL, 0)) {
        test_report(0, "musk1_cv_mamba", "%s", mk_last_error());
    } else {
        /* chance is 0.51 (47/92); published ABMIL 10-fold accuracy is 0.89 */
        test_report(acc[0] >= 0.72 && auc[0] >= 0.75, "musk1_cv_mamba",
                    "4-fold out-of-fold accuracy %.3f, AUC %.3f (need >= 0.72 / 0.75; chance 0.51), %.1f s", acc[0],
                    auc[0], mk_time() - t0);
    }
    mil_bags_free(&b);
}

/* The auxiliary exit: a model file keeps aux / aux_mix and gives the same prediction back;
 * with aux_mix the prediction is sigmoid of the mean of the two exits' logits (checked
 * against the same weights run without the mix); aux_mix without aux is refused. */
static void test_aux(void) {
    mil_cfg c;
    mil_cfg_default(&c, MIL_MAMBA, 4);
    c.D = 8, c.H = 6, c.d_state = 4, c.stride = 3, c.order = MIL_ORDER_SCORE, c.aux = 0.5f, c.aux_mix = 1;
    mil_model m, m2;
    if (mil_model_create(&m, &c, 9)) {
        test_report(0, "aux_mix", "%s", mk_last_error());
        return;
    }
    for (int d = 0; d < c.D; d++) mk_param(&m.p, m.gamma)[d] = 0.5f - 0.1f * d;
    mk_rng r;
    mk_rng_seed(&r, 21);
    enum { L = 12 };
    float x[L * 4];
    for (int i = 0; i < L * 4; i++) x[i] = mk_rng_normal(&r);
    float pmix = mil_forward(&m, x, L, 0);
    m.c.aux_mix = 0;
    float ph = mil_forward(&m, x, L, 0);
    double lh = m.logit, le = m.aux_logit, want = 1.0 / (1.0 + exp(-(lh + le) / 2));
    m.c.aux_mix = 1;
    test_report(fabs(pmix - want) < 1e-6 && fabs(lh - le) > 1e-3 && ph != pmix, "aux_mix",
                "p %.7f, sigmoid((%.5f + %.5f) / 2) = %.7f, h's exit alone %.7f", pmix, lh, le, want, ph);
    char path[] = "/tmp/mk_test_mil_aux_XXXXXX";
    int fd = mkstemp(path);
    int ok = fd >= 0 && !mil_model_save(&m, path) && !mil_model_load(&m2, path);
    if (fd >= 0) close(fd);
    float p2 = ok ? mil_forward(&m2, x, L, 0) : -1.f;
    test_report(ok && m2.c.aux == 0.5f && m2.c.aux_mix == 1 && p2 == pmix, "aux_save_load", "aux %g mix %d, p %.7f vs %.7f",
                ok ? m2.c.aux : -1.f, ok ? m2.c.aux_mix : -1, p2, pmix);
    if (ok) mil_model_free(&m2);
    unlink(path);
    mil_model_free(&m);
    c.aux = 0;
    int refused = mil_model_create(&m, &c, 9) != 0;
    test_report(refused && strstr(mk_last_error(), "aux_mix"), "aux_mix_needs_aux", "%s", refused ? mk_last_error() : "accepted");
    if (!refused) mil_model_free(&m);
}

/* --attend e: the pooling's weights are the attention of the embedding e (checked against
 * an independent double-precision softmax of w^T tanh(V e_i + b)), they differ from the
 * weights on h, the pooled vector is sum a_i h_i, and a model file keeps the choice. */
static void test_attend_e(void) {
    mil_cfg c;
    mil_cfg_default(&c, MIL_MAMBA, 4);
    c.D = 8, c.H = 6, c.d_state = 4, c.stride = 3, c.order = MIL_ORDER_SCORE, c.attend_e = 1;
    mil_model m;
    if (mil_model_create(&m, &c, 5)) {
        test_report(0, "attend_e", "%s", mk_last_error());
        return;
    }
    for (int d = 0; d < c.D; d++) mk_param(&m.p, m.gamma)[d] = 0.5f - 0.1f * d;
    enum { L = 9 };
    mk_rng r;
    mk_rng_seed(&r, 3);
    float x[L * 4];
    for (int i = 0; i < L * 4; i++) x[i] = mk_rng_normal(&r);
    float pe = mil_forward(&m, x, L, 0);
    const float *V = mk_param(&m.p, m.att_V), *Vb = mk_param(&m.p, m.att_Vb), *w = mk_param(&m.p, m.att_w);
    double s[L], se[L], sh[L], tot = 0, toth = 0, zerr = 0, aerr = 0, hdiff = 0;
    for (int i = 0; i < L; i++) {
        double ae = 0, ah = 0;
        for (int k = 0; k < c.H; k++) {
            double te = Vb[k], th = Vb[k];
            for (int d = 0; d < c.D; d++) {
                te += (double)V[k * c.D + d] * m.e[i * c.D + d];
                th += (double)V[k * c.D + d] * m.h[i * c.D + d];
            }
            ae += w[k] * tanh(te);
            ah += w[k] * tanh(th);
        }
        s[i] = ae, sh[i] = ah;
    }
    for (int i = 0; i < L; i++) tot += (se[i] = exp(s[i])), toth += exp(sh[i]);
    for (int i = 0; i < L; i++) {
        aerr = fmax(aerr, fabs(se[i] / tot - m.a[i]));
        hdiff = fmax(hdiff, fabs(exp(sh[i]) / toth - m.a[i]));
    }
    for (int d = 0; d < c.D; d++) {
        double zd = 0;
        for (int i = 0; i < L; i++) zd += se[i] / tot * m.h[i * c.D + d];
        zerr = fmax(zerr, fabs(zd - m.z[d]));
    }
    m.c.attend_e = 0;
    float ph = mil_forward(&m, x, L, 0);
    m.c.attend_e = 1;
    test_report(aerr < 1e-6 && zerr < 1e-5 && hdiff > 1e-4 && pe != ph, "attend_e",
                "attention vs double softmax on e %.1e, pooled h %.1e; differs from attention on h by %.1e; p %.6f vs %.6f",
                aerr, zerr, hdiff, pe, ph);
    char path[] = "/tmp/mk_test_mil_att_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    mil_model m2;
    int ok = fd >= 0 && !mil_model_save(&m, path) && !mil_model_load(&m2, path);
    float p2 = ok ? mil_forward(&m2, x, L, 0) : -1.f;
    test_report(ok && m2.c.attend_e == 1 && p2 == pe, "attend_e_save_load", "attend_e %d, p %.7f vs %.7f",
                ok ? m2.c.attend_e : -1, p2, pe);
    if (ok) mil_model_free(&m2);
    unlink(path);
    mil_model_free(&m);
}

int main(void) {
    mk_quiet = 1;
    omp_set_num_threads(1); /* tiny bags: threads only add contention */
    test_parse();
    test_order();
    test_auc();
    gradcheck("grad_mamba_attention", MIL_MAMBA, 0, 7, 3);
    gradcheck("grad_mamba_gated", MIL_MAMBA, 1, 11, 3);
    gradcheck("grad_abmil", MIL_ABMIL, 0, 6, 3);
    gradcheck("grad_gated_abmil", MIL_GATED, 0, 6, 3);
    gradcheck("grad_mean", MIL_MEAN, 0, 5, 3);
    gradcheck("grad_max", MIL_MAX, 0, 5, 3);
    gradcheck("grad_mamba_len1", MIL_MAMBA, 0, 1, 3);
    gradcheck("grad_mamba_no_sr", MIL_MAMBA, 0, 9, 0);
    gradcheck_cfg("grad_mamba_res_gate", MIL_MAMBA, 0, 13, 3, 1, MIL_ORDER_NATURAL);
    gradcheck_cfg("grad_mamba_order_score", MIL_MAMBA, 0, 13, 3, 1, MIL_ORDER_SCORE);
    gradcheck_cfg("grad_mamba_order_score_gated", MIL_MAMBA, 1, 10, 4, 1, MIL_ORDER_SCORE);
    gradcheck_aux("grad_mamba_aux", MIL_MAMBA, 0, 13, 3, 1, MIL_ORDER_SCORE, 0.7f, 0);
    gradcheck_aux("grad_mamba_aux_gated_nogate", MIL_MAMBA, 1, 9, 4, 0, MIL_ORDER_NATURAL, 1.5f, 0);
    gradcheck_aux("grad_mamba_aux_mix", MIL_MAMBA, 0, 11, 3, 1, MIL_ORDER_SCORE, 1.f, 1);
    gradcheck_full("grad_mamba_attend_e", MIL_MAMBA, 0, 13, 3, 1, MIL_ORDER_SCORE, 0.f, 0, 1);
    gradcheck_full("grad_mamba_attend_e_gated_nogate", MIL_MAMBA, 1, 9, 4, 0, MIL_ORDER_NATURAL, 0.f, 0, 1);
    gradcheck_full("grad_mamba_attend_e_aux", MIL_MAMBA, 0, 11, 3, 1, MIL_ORDER_SCORE, 0.7f, 0, 1);
    test_order_score();
    test_aux();
    test_attend_e();
    test_paired();
    test_shuffle_instances();
    test_gate_l1();
    test_musk1();
    return test_exit();
}
