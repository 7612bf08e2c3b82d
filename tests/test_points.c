/* test_points.c — DALES loader validation, the point-cloud model's gradients
 * (finite differences through the whole network) and a short real-data run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ops.h"
#include "core/util.h"
#include "datasets/dales.h"
#include "tests/test.h"
#include "vision/points.h"

static char tmpdir[256];

static void write_file(const char *name, const void *data, size_t n) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

/* one bad case: index text + number of points in the binary (+ a NaN at nan_at >= 0) */
static void loader_case(const char *name, const char *index, int npts, int nan_at, const char *expect) {
    write_file("index.csv", index, strlen(index));
    float *xyz = calloc((size_t)npts * 3 + 1, sizeof(float));
    if (nan_at >= 0) xyz[nan_at] = NAN;
    write_file("points_xyz_f32le.bin", xyz, (size_t)npts * 12);
    free(xyz);
    char p[512];
    snprintf(p, sizeof p, "%s/index.csv", tmpdir);
    dales_set d;
    int r = dales_load(&d, p);
    const char *e = mk_last_error();
    if (expect)
        test_report(r != 0 && strstr(e, expect) != NULL, name, "error: %s", r ? e : "(loaded)");
    else {
        test_report(r == 0 && d.n == 2 && d.n_points == npts, name, "n %d points %ld %s", d.n, d.n_points, r ? e : "");
        if (r == 0) dales_free(&d);
    }
}

static void test_loader(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mk_test_points_%d", (int)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", tmpdir);
    if (system(cmd)) return;
    const char *hdr = "object_id,label,class_name,first_point,num_points\n";
    char buf[1024];
    snprintf(buf, sizeof buf, "%s000,0,building,0,3\n101,1,car,3,2\n", hdr);
    loader_case("dales_load_ok", buf, 5, -1, NULL);
    loader_case("dales_size_mismatch", buf, 6, -1, "bytes");
    loader_case("dales_nan", buf, 5, 7, "non-finite");
    loader_case("dales_bad_header", "id,label\n000,0,building,0,3\n", 3, -1, "index.csv:1: header");
    snprintf(buf, sizeof buf, "%s000,0,building,0,3\n101,1,tree,3,2\n", hdr);
    loader_case("dales_class_mismatch", buf, 5, -1, "index.csv:3: class_name");
    snprintf(buf, sizeof buf, "%s000,0,building,0,3\n101,1,car,4,2\n", hdr);
    loader_case("dales_gap", buf, 6, -1, "index.csv:3: first_point");
    snprintf(buf, sizeof buf, "%s000,0,building,0,3\n101,7,car,3,2\n", hdr);
    loader_case("dales_bad_label", buf, 5, -1, "index.csv:3: label");
    snprintf(buf, sizeof buf, "%s000,0,building,0,3\n101,1,car,3\n", hdr);
    loader_case("dales_short_row", buf, 5, -1, "index.csv:3: expected 5");
    snprintf(buf, sizeof buf, "%s000,0,building,0,0\n", hdr);
    loader_case("dales_zero_points", buf, 0, -1, "index.csv:2: num_points");
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) return;
}

static float loss_of(points_model *m, points_acts *a, const points_input *in, int y) {
    points_forward(m, a, in, 0, NULL);
    float dl[POINTS_MAX_CLASS];
    return crossentropy_forward_backward(dl, NULL, NULL, a->logits, &y, 1, m->cfg.n_class, 1.f);
}

/* the summed loss of n objects through one batched forward */
typedef struct {
    points_model *m;
    points_acts *a;
    const points_input *in;
    const int *y;
    int n;
} batch_ctx;
/* which side of its kink every ReLU and neighbour max sits on, as one checksum */
static uint64_t kinks_of(const points_acts *a) {
    uint64_t hsh = 1469598103934665603ull;
    const size_t nt = (size_t)a->n * a->L, nh = nt * a->K * a->H;
    for (size_t i = 0; i < nt * a->D; i++) hsh = (hsh ^ (uint64_t)a->amax[i]) * 1099511628211ull;
    for (size_t i = 0; i < nh; i++) hsh = (hsh ^ (uint64_t)(a->h1[i] > 0)) * 1099511628211ull;
    return hsh;
}
static float loss_batch(const batch_ctx *b) {
    points_forward_batch(b->m, b->a, b->in, b->n, 0, NULL);
    float dl[POINTS_MAX_CLASS], s = 0;
    const int C = b->m->cfg.n_class;
    for (int i = 0; i < b->n; i++) s += crossentropy_forward_backward(dl, NULL, NULL, b->a->logits + i * C, &b->y[i], 1, C, 1.f);
    return s;
}

/* Three objects of their own scan orders as one batch: the logits of each as its own forward
 * gives them, and the batch's backward against central differences of the summed loss */

static void test_batch(points_model *m, const points_cfg *c, const float *xyz, int npt) {
    enum { NB = 3 };
    points_input in[NB];
    const int y[NB] = {2, 0, 1}, C = c->n_class;
    for (int i = 0; i < NB; i++) {
        points_input_alloc(&in[i], c);
        points_prepare(c, &in[i], xyz, npt, 21 + i, 1); /* other rotations: other orders */
    }
    int orders_differ = memcmp(in[0].order, in[1].order, sizeof(int) * c->mc.n_dir * c->ntok) != 0;
    points_acts a, a1;
    points_acts_init(&a, c), points_acts_init(&a1, c);
    points_forward_batch(m, &a, in, NB, 0, NULL);
    double e = 0, mx = 0;
    for (int i = 0; i < NB; i++) {
        points_forward(m, &a1, &in[i], 0, NULL);
        for (int k = 0; k < C; k++) {
            e = fmax(e, fabs(a.logits[i * C + k] - a1.logits[k]));
            mx = fmax(mx, fabs(a1.logits[k]));
        }
    }
    test_report(orders_differ && e <= 1e-5 * fmax(mx, 1), "points_batch_forward",
                "%d objects of their own orders in one pass: logits within %.1e of one pass each (max %.2f)", NB, e, mx);
    mk_params_zero_grad(&m->p);
    points_forward_batch(m, &a, in, NB, 0, NULL);
    float dl[NB * POINTS_MAX_CLASS];
    for (int i = 0; i < NB; i++) crossentropy_forward_backward(dl + i * C, NULL, NULL, a.logits + i * C, &y[i], 1, C, 1.f);
    points_backward_batch(m, &a, dl);
    /* the same gradients as each object's own backward, summed */
    float *gb = malloc(sizeof(float) * m->p.total);
    memcpy(gb, m->p.grad, sizeof(float) * m->p.total);
    mk_params_zero_grad(&m->p);
    for (int i = 0; i < NB; i++) {
        points_forward(m, &a1, &in[i], 0, NULL);
        crossentropy_forward_backward(dl, NULL, NULL, a1.logits, &y[i], 1, C, 1.f);
        points_backward(m, &a1, dl);
    }
    double eg = 0, gm = 0;
    for (size_t i = 0; i < m->p.total; i++) eg = fmax(eg, fabs(gb[i] - m->p.grad[i])), gm = fmax(gm, fabs(gb[i]));
    test_report(eg <= 1e-5 * fmax(gm, 1), "points_batch_grads_sum", "batch gradients within %.1e of the per-object sums (max %.2f)",
                eg, gm);
    memcpy(m->p.grad, gb, sizeof(float) * m->p.total);
    free(gb);
    batch_ctx bc = {m, &a1, in, y, NB};
    points_forward_batch(m, &a1, in, NB, 0, NULL);
    const uint64_t base = kinks_of(&a1);
    double worst = 0;
    char wname[80] = "";
    int checked = 0, skipped = 0;
    for (int ti = 0; ti < m->p.n; ti++) {
        mk_tensor *T = &m->p.t[ti];
        if (strstr(T->name, "A_log")) continue;
        int ns = T->numel < 4 ? (int)T->numel : 4;
        double num = 0, den = 0;
        for (int s2 = 0; s2 < ns; s2++) {
            size_t j = (size_t)s2 * T->numel / ns;
            float *w = m->p.data + T->offset + j;
            float orig = *w, h = 1e-2f * fmaxf(1.f, fabsf(orig));
            *w = orig + h;
            double lp = loss_batch(&bc);
            int kinked = kinks_of(&a1) != base;
            *w = orig - h;
            double lm = loss_batch(&bc);
            kinked |= kinks_of(&a1) != base;
            *w = orig;
            if (kinked) { /* a step across a ReLU or a neighbour max: no derivative there */
                skipped++;
                continue;
            }
            double fd = (lp - lm) / (2 * h), an = m->p.grad[T->offset + j];
            num += (fd - an) * (fd - an);
            den += fd * fd + an * an;
            checked++;
        }
        double rel = sqrt(num) / fmax(sqrt(den), 1e-3);
        if (rel > worst) worst = rel, snprintf(wname, sizeof wname, "%s", T->name);
    }
    test_report(worst < 0.05 && skipped * 4 < checked, "points_batch_grad_fd",
                "%d objects, %d entries (%d steps across a kink skipped), worst tensor rel err %.2e (%s)", NB, checked,
                skipped, worst, wname);
    points_acts_free(&a), points_acts_free(&a1);
    for (int i = 0; i < NB; i++) points_input_free(&in[i]);
}

static void test_gradients(void) {
    points_cfg c;
    points_cfg_default(&c);
    c.npts = 40, c.ntok = 8, c.knn = 4, c.hidden = 6, c.n_class = 3;
    mamba_cfg_default(&c.mc, 8, 1);
    c.mc.d_state = 4;
    c.mc.n_dir = 3;
    mk_rng rng;
    mk_rng_seed(&rng, 7);
    points_model m;
    if (points_model_init(&m, &c, &rng)) {
        test_report(0, "points_grad_init", "%s", mk_last_error());
        return;
    }
    float xyz[60 * 3];
    for (int i = 0; i < 60 * 3; i++) xyz[i] = 5.f * mk_rng_uniform(&rng) + (i % 3 == 2 ? 10.f : 0.f);
    points_input in;
    points_input_alloc(&in, &c);
    points_prepare(&c, &in, xyz, 60, 11, 1);
    /* orders are permutations sorted along their axis */
    int okord = 1;
    for (int g = 0; g < 3; g++) {
        okord &= mk_order_is_perm(in.order + g * c.ntok, c.ntok);
        for (int t = 1; t < c.ntok; t++)
            okord &= in.ctr[in.order[g * c.ntok + t] * 3 + g] >= in.ctr[in.order[g * c.ntok + t - 1] * 3 + g];
    }
    test_report(okord, "points_orders", "3 orders sorted along x, y, z");
    /* determinism per seed */
    points_input in2;
    points_input_alloc(&in2, &c);
    points_prepare(&c, &in2, xyz, 60, 11, 1);
    int same = !memcmp(in.rel, in2.rel, sizeof(float) * c.ntok * c.knn * 3);
    points_prepare(&c, &in2, xyz, 60, 12, 1);
    int diff = memcmp(in.rel, in2.rel, sizeof(float) * c.ntok * c.knn * 3) != 0;
    test_report(same && diff, "points_prepare_seeded", "same seed same tokens %d, other seed differs %d", same, diff);
    /* normalisation: centres lie within radius 1.25 (unit radius x max aug scale) */
    float rmax = 0;
    for (int t = 0; t < c.ntok; t++) {
        float r = sqrtf(in.ctr[t * 3] * in.ctr[t * 3] + in.ctr[t * 3 + 1] * in.ctr[t * 3 + 1] + in.ctr[t * 3 + 2] * in.ctr[t * 3 + 2]);
        if (r > rmax) rmax = r;
    }
    test_report(rmax > 0.3f && rmax <= 1.2501f, "points_normalised", "max centre radius %.3f", rmax);

    points_acts a;
    points_acts_init(&a, &c);
    const int y = 1;
    mk_params_zero_grad(&m.p);
    points_forward(&m, &a, &in, 0, NULL);
    float dl[POINTS_MAX_CLASS];
    crossentropy_forward_backward(dl, NULL, NULL, a.logits, &y, 1, c.n_class, 1.f);
    points_backward(&m, &a, dl);
    /* central differences on every tensor (up to 6 entries each), double-checked per tensor */
    double worst = 0;
    char wname[80] = "";
    int checked = 0;
    for (int ti = 0; ti < m.p.n; ti++) {
        mk_tensor *T = &m.p.t[ti];
        if (strstr(T->name, "A_log")) continue; /* exp(A) stiff; covered by the core's own tests */
        int ns = T->numel < 6 ? (int)T->numel : 6;
        double num = 0, den = 0;
        for (int s = 0; s < ns; s++) {
            size_t j = (size_t)s * T->numel / ns;
            float *w = m.p.data + T->offset + j;
            float orig = *w, h = 1e-2f * fmaxf(1.f, fabsf(orig));
            *w = orig + h;
            double lp = loss_of(&m, &a, &in, y);
            *w = orig - h;
            double lm = loss_of(&m, &a, &in, y);
            *w = orig;
            double fd = (lp - lm) / (2 * h), an = m.p.grad[T->offset + j];
            num += (fd - an) * (fd - an);
            den += fd * fd + an * an;
            checked++;
        }
        /* float32 loss differences carry ~1e-5 noise: floor the scale at 1e-3 */
        double rel = sqrt(num) / fmax(sqrt(den), 1e-3);
        if (getenv("PTS_VERBOSE")) printf("  %-40s rel %.2e  norm %.2e\n", T->name, rel, sqrt(den));
        if (rel > worst) worst = rel, snprintf(wname, sizeof wname, "%s", T->name);
    }
    test_report(worst < 0.05, "points_grad_fd", "%d entries, worst tensor rel err %.2e (%s)", checked, worst, wname);
    test_batch(&m, &c, xyz, 60);
    points_acts_free(&a);
    points_input_free(&in);
    points_input_free(&in2);
    points_model_free(&m);
}

static void test_dales_train(void) {
    dales_set d;
    char path[4096];
    if (!test_find_data("points_dales_train", "dales_objects/index.csv", path, sizeof path)) return;
    if (dales_load(&d, path)) {
        test_report(0, "points_dales_load", "%s", mk_last_error());
        return;
    }
    int counts[5] = {0}, ntest = 0;
    for (int i = 0; i < d.n; i++)
        if (dales_is_test(d.id[i])) counts[d.label[i]]++, ntest++;
    test_report(d.n == 499 && d.n_points == 1150902 && ntest == 100, "points_dales_load", "%d objects, %ld points, %d test",
                d.n, d.n_points, ntest);
    int maj = 0;
    for (int k = 1; k < 5; k++)
        if (counts[k] > counts[maj]) maj = k;
    double maj_rate = (double)counts[maj] / ntest;

    points_cfg c;
    points_cfg_default(&c);
    c.npts = 128, c.ntok = 16, c.knn = 8, c.hidden = 16;
    mamba_cfg_default(&c.mc, 16, 1);
    c.mc.d_state = 8;
    c.mc.n_dir = 2;
    mk_rng rng;
    mk_rng_seed(&rng, 1);
    points_model m;
    points_model_init(&m, &c, &rng);
    points_acts a;
    points_acts_init(&a, &c);
    int ntr = d.n - ntest;
    int *tr = malloc(sizeof(int) * ntr), *te = malloc(sizeof(int) * ntest);
    int ni = 0, nt = 0;
    for (int i = 0; i < d.n; i++) {
        if (dales_is_test(d.id[i])) te[nt++] = i;
        else tr[ni++] = i;
    }
    const int BS = 8, EPOCHS = 6;
    points_input in[8];
    int lab[8];
    for (int b = 0; b < BS; b++) points_input_alloc(&in[b], &c);
    long steps = (long)EPOCHS * (ntr / BS);
    mk_adamw_cfg opt = mk_adamw_defaults(3e-3f, steps);
    opt.warmup = 10;
    double t0 = mk_time();
    for (int ep = 0; ep < EPOCHS; ep++) {
        mk_rng_shuffle(&rng, tr, ntr);
        for (int s = 0; s + BS <= ntr; s += BS) {
            for (int b = 0; b < BS; b++) {
                int o = tr[s + b];
                points_prepare(&c, &in[b], d.xyz + d.first[o] * 3, d.count[o], (uint64_t)ep * 100003 + o, 1);
                lab[b] = d.label[o];
            }
            points_train_batch(&m, &a, in, lab, BS, &opt, &rng, NULL);
        }
    }
    int hit = 0;
    for (int i = 0; i < ntest; i++) {
        int o = te[i];
        points_prepare(&c, &in[0], d.xyz + d.first[o] * 3, d.count[o], (uint64_t)o, 0);
        hit += points_predict(&m, &a, &in[0], NULL) == d.label[o];
    }
    double acc = (double)hit / ntest;
    test_report(acc >= maj_rate + 0.25, "points_dales_train", "test acc %.1f%% vs majority %.1f%% after %d epochs (%.1f s)",
                100 * acc, 100 * maj_rate, EPOCHS, mk_time() - t0);
    for (int b = 0; b < BS; b++) points_input_free(&in[b]);
    free(tr), free(te);
    points_acts_free(&a);
    points_model_free(&m);
    dales_free(&d);
}

/* The neighbour selection against a full sort by (distance, index) done here, on
 * clouds with repeated points (objects smaller than the sample are drawn with
 * replacement, so equal distances are common) and on a grid (many exact ties). */
typedef struct { float v; int i; } ref_kv;
static int ref_kv_cmp(const void *a, const void *b) {
    const ref_kv *x = a, *y = b;
    return x->v < y->v ? -1 : x->v > y->v ? 1 : (x->i > y->i) - (x->i < y->i);
}

static void test_knn(void) {
    mk_rng rng;
    mk_rng_seed(&rng, 11);
    const int cases[][2] = {{512, 16}, {512, 1}, {40, 40}, {37, 5}, {300, 32}, {64, 16}};
    int bad = 0, total = 0, ties = 0;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int P = cases[ci][0], K = cases[ci][1];
        float *pts = malloc(sizeof(float) * P * 3), *scr = malloc(sizeof(float) * K);
        int *nb = malloc(sizeof(int) * K);
        ref_kv *r = malloc(sizeof(ref_kv) * P);
        for (int rep = 0; rep < 20; rep++) {
            for (int i = 0; i < P; i++)
                for (int d = 0; d < 3; d++)
                    pts[i * 3 + d] = ci == 5 ? (float)((i >> (2 * d)) & 3) : mk_rng_uniform(&rng) * 2 - 1;
            if (ci != 5)
                for (int i = P / 2; i < P; i += 3) memcpy(pts + i * 3, pts + mk_rng_int(&rng, P / 2) * 3, 12);
            const float *q = pts + mk_rng_int(&rng, P) * 3;
            points_knn(nb, pts, P, q, K, scr);
            for (int i = 0; i < P; i++) {
                float dx = pts[i * 3] - q[0], dy = pts[i * 3 + 1] - q[1], dz = pts[i * 3 + 2] - q[2];
                r[i].v = dx * dx + dy * dy + dz * dz, r[i].i = i;
            }
            qsort(r, P, sizeof *r, ref_kv_cmp);
            for (int j = 0; j < K; j++) bad += nb[j] != r[j].i, total++;
            for (int j = 1; j < K; j++) ties += r[j].v == r[j - 1].v;
        }
        free(pts), free(scr), free(nb), free(r);
    }
    test_report(bad == 0 && ties > 100, "points_knn_vs_sort", "%d of %d neighbours differ from the sorted order (%d ties among them)",
                bad, total, ties);
}

int main(void) {
    mk_quiet = 1;
    test_knn();
    test_loader();
    test_gradients();
    test_dales_train();
    return test_exit();
}
