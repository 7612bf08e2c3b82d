/* test_ts_model.c — forecasting models against independent math: baselines
 * and DLinear by hand, RevIN round trip, S-Mamba and DLinear gradients by
 * finite differences, and a short end-to-end fit on real ETTh1 data. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#ifdef _OPENMP
#include <omp.h>
#endif
#include "tests/test.h"
#include "timeseries/ts.h"

static void test_baselines(void) {
    /* B=1, L=5, C=2: x[l] = (l+1, 10*(l+1)) */
    float x[10], p[14];
    for (int l = 0; l < 5; l++) x[l * 2] = (float)(l + 1), x[l * 2 + 1] = 10.f * (l + 1);
    ts_naive_forward(p, x, 1, 5, 3, 2);
    int ok = 1;
    for (int h = 0; h < 3; h++) ok &= p[h * 2] == 5 && p[h * 2 + 1] == 50;
    test_report(ok, "naive_last_value", "p = %g %g", p[0], p[1]);
    /* period 2: x[L-2], x[L-1], x[L-2], ... = 4, 5, 4, 5, 4, 5, 4 */
    ts_snaive_forward(p, x, 1, 5, 7, 2, 2);
    const float e[7] = {4, 5, 4, 5, 4, 5, 4};
    ok = 1;
    for (int h = 0; h < 7; h++) ok &= p[h * 2] == e[h] && p[h * 2 + 1] == 10 * e[h];
    test_report(ok, "seasonal_naive", "p = %g %g %g", p[0], p[2], p[4]);
}

static void test_dlinear_hand(void) {
    /* moving average k=3 of 1..5 with edge replication: [4/3, 2, 3, 4, 14/3] */
    float s[5] = {1, 2, 3, 4, 5}, t[5];
    double acc1;
    ts_moving_avg(t, s, 5, 1, 3, &acc1);
    const double et[5] = {4.0 / 3, 2, 3, 4, 14.0 / 3};
    int ok = 1;
    for (int i = 0; i < 5; i++) ok &= fabs(t[i] - et[i]) < 1e-6;
    test_report(ok, "moving_avg_replicate", "%g %g %g %g %g", t[0], t[1], t[2], t[3], t[4]);

    /* The running sum against a direct double sum over the clamped window, on random
     * series: odd and even k, k longer than the series, one column and many, and
     * values spread over six decades so a drifting sum would show. */
    {
        mk_rng rng;
        mk_rng_seed(&rng, 7);
        const int cases[][3] = {{96, 25, 1}, {96, 25, 7}, {7, 25, 1}, {1, 5, 3}, {200, 1, 1}, {50, 4, 3}, {720, 101, 2}, {96, 25, 672}};
        double worst = 0;
        int exact = 1;
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            const int n = cases[ci][0], k = cases[ci][1], st = cases[ci][2], pad = (k - 1) / 2;
            float *xs = malloc(sizeof(float) * (size_t)n * st), *tr = malloc(sizeof(float) * (size_t)n * st);
            double *acc = malloc(sizeof(double) * st);
            for (int i = 0; i < n * st; i++)
                xs[i] = (mk_rng_uniform(&rng) - 0.5f) * powf(10.f, 3.f * mk_rng_uniform(&rng) - 2.f);
            ts_moving_avg(tr, xs, n, st, k, acc);
            for (int c = 0; c < st; c++)
                for (int i = 0; i < n; i++) {
                    double ref = 0, mag = 0;
                    for (int j = i - pad; j < i - pad + k; j++) {
                        double v = xs[(size_t)(j < 0 ? 0 : j >= n ? n - 1 : j) * st + c];
                        ref += v, mag += fabs(v);
                    }
                    ref /= k, mag /= k;
                    double e = fabs(tr[(size_t)i * st + c] - ref) / (mag + 1e-30);
                    if (e > worst) worst = e;
                    exact &= tr[(size_t)i * st + c] == (float)ref;
                }
            free(xs), free(tr), free(acc);
        }
        test_report(worst < 1e-7 && exact, "moving_avg_running_sum", "worst %.2e of the window's magnitude, %s",
                    worst, exact ? "every value the direct sum's" : "some values differ from the direct sum");
    }

    /* DLinear L=5, H=2, C=1, k=3 with chosen weights, against the formula by hand */
    mk_params p;
    mk_params_init(&p);
    ts_dlinear m;
    ts_dlinear_declare(&m, &p, 5, 2, 1, 3);
    mk_params_alloc(&p);
    float *ws = mk_param(&p, m.ws), *bs = mk_param(&p, m.bs), *wt = mk_param(&p, m.wt), *bt = mk_param(&p, m.bt);
    for (int i = 0; i < 10; i++) ws[i] = 0.1f * (i + 1), wt[i] = -0.05f * i;
    bs[0] = 1, bs[1] = 2, bt[0] = 0.5f, bt[1] = -1;
    float x[5] = {1, 2, 3, 4, 5}, pred[2];
    ts_dlinear_forward(&m, pred, x, 1);
    ok = 1;
    double got[2];
    for (int h = 0; h < 2; h++) {
        double v = bs[h] + bt[h];
        for (int l = 0; l < 5; l++) v += ws[h * 5 + l] * (x[l] - et[l]) + wt[h * 5 + l] * et[l];
        got[h] = v;
        ok &= fabs(pred[h] - v) < 1e-5;
    }
    test_report(ok, "dlinear_forward_hand", "pred %g %g, hand %g %g", pred[0], pred[1], got[0], got[1]);
    ts_dlinear_free(&m);

    /* Several windows of several variates with random weights, against the formula in
     * double per (window, variate): catches a layout that mixes windows and variates,
     * which a gradient check of the same forward cannot. */
    {
        const int B = 3, L = 9, H = 5, C = 4, k = 5, pad = 2;
        mk_params p2;
        mk_params_init(&p2);
        ts_dlinear d;
        ts_dlinear_declare(&d, &p2, L, H, C, k);
        mk_params_alloc(&p2);
        mk_rng r;
        mk_rng_seed(&r, 3);
        for (size_t i = 0; i < p2.total; i++) p2.data[i] = mk_rng_normal(&r);
        float xb[3 * 9 * 4], pb[3 * 5 * 4];
        for (int i = 0; i < B * L * C; i++) xb[i] = 2 * mk_rng_normal(&r) + (float)(i % 7);
        ts_dlinear_forward(&d, pb, xb, B);
        const float *Ws = mk_param(&p2, d.ws), *Bs = mk_param(&p2, d.bs), *Wt = mk_param(&p2, d.wt),
                    *Bt = mk_param(&p2, d.bt);
        double worst = 0;
        for (int b = 0; b < B; b++)
            for (int c = 0; c < C; c++) {
                double tr[9];
                for (int l = 0; l < L; l++) {
                    double s = 0;
                    for (int j = l - pad; j <= l + pad; j++) s += xb[((size_t)b * L + (j < 0 ? 0 : j >= L ? L - 1 : j)) * C + c];
                    tr[l] = s / k;
                }
                for (int h = 0; h < H; h++) {
                    double v = (double)Bs[h] + Bt[h];
                    for (int l = 0; l < L; l++)
                        v += Ws[h * L + l] * (xb[((size_t)b * L + l) * C + c] - tr[l]) + Wt[h * L + l] * tr[l];
                    double e = fabs(pb[((size_t)b * H + h) * C + c] - v) / (1 + fabs(v));
                    if (e > worst) worst = e;
                }
            }
        test_report(worst < 1e-5, "dlinear_forward_batch", "3 windows x 4 variates: worst error %.2e", worst);
        ts_dlinear_free(&d);
        mk_params_free(&p2);
    }
    mk_params_free(&p);
}

static void test_revin(void) {
    const int B = 2, L = 7, C = 3;
    float x[42], xn[42], y[42], mean[6], sd[6];
    mk_rng r;
    mk_rng_seed(&r, 5);
    for (int i = 0; i < 42; i++) x[i] = 3.f + 2.f * mk_rng_normal(&r);
    ts_revin_norm(xn, mean, sd, x, B, L, C);
    ts_revin_denorm(y, xn, mean, sd, B, L, C);
    double md = 0, mu_max = 0, var_err = 0;
    for (int i = 0; i < 42; i++) md = fmax(md, fabs(y[i] - x[i]));
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            double s = 0, v = 0;
            for (int l = 0; l < L; l++) s += xn[(b * L + l) * C + c];
            for (int l = 0; l < L; l++) v += xn[(b * L + l) * C + c] * xn[(b * L + l) * C + c];
            mu_max = fmax(mu_max, fabs(s / L));
            var_err = fmax(var_err, fabs(v / L - 1));
        }
    test_report(md < 1e-5 && mu_max < 1e-5 && var_err < 1e-3, "revin_round_trip",
                "max |denorm(norm(x)) - x| %.2g, |mean| %.2g, |var-1| %.2g", md, mu_max, var_err);
}

/* loss = sum(pred * w) in double, so d loss / d pred = w. With dropout on,
 * every call replays the same masks (the rng state is restored). */
static mk_rng probe_rng;
static double probe_loss(ts_model *m, const float *x, const float *mark, const float *w, float *pred, int B) {
    if (m->kind == TS_MODEL_SMAMBA) m->smamba.rng = probe_rng;
    ts_model_predict(m, pred, x, mark, B);
    double s = 0;
    for (int i = 0; i < B * m->H * m->C; i++) s += (double)pred[i] * w[i];
    return s;
}

/* Central differences on a sample of every tensor's entries. */
static void grad_check(ts_model *m, const char *name, int B, int per_tensor) {
    const int L = m->L, H = m->H, C = m->C, F = m->F;
    mk_rng r;
    mk_rng_seed(&r, 11);
    float *x = malloc(sizeof(float) * B * L * C), *mark = F ? malloc(sizeof(float) * B * L * F) : NULL;
    float *w = malloc(sizeof(float) * B * H * C), *pred = malloc(sizeof(float) * B * H * C);
    for (int i = 0; i < B * L * C; i++) x[i] = mk_rng_normal(&r);
    for (int i = 0; i < B * L * F; i++) mark[i] = mk_rng_uniform(&r) - 0.5f;
    for (int i = 0; i < B * H * C; i++) w[i] = mk_rng_normal(&r);
    mk_params_zero_grad(&m->p);
    probe_loss(m, x, mark, w, pred, B);
    if (m->kind == TS_MODEL_SMAMBA) ts_smamba_backward(&m->smamba, w);
    else ts_dlinear_backward(&m->dlinear, w);
    float *g = malloc(sizeof(float) * m->p.total);
    memcpy(g, m->p.grad, sizeof(float) * m->p.total);
    double worst = 0;
    int checked = 0, bad = 0;
    const char *worst_name = "";
    for (int k = 0; k < m->p.n; k++) {
        const mk_tensor *t = &m->p.t[k];
        for (int s = 0; s < per_tensor && s < (int)t->numel; s++) {
            size_t i = t->offset + (s == 0 ? 0 : (size_t)mk_rng_int(&r, (int)t->numel));
            float w0 = m->p.data[i], eps = 1e-2f * fmaxf(1.f, fabsf(w0));
            m->p.data[i] = w0 + eps;
            double lp = probe_loss(m, x, mark, w, pred, B);
            m->p.data[i] = w0 - eps;
            double lm = probe_loss(m, x, mark, w, pred, B);
            m->p.data[i] = w0;
            double num = (lp - lm) / (2.0 * eps), ana = g[i];
            double err = fabs(num - ana) / (fabs(num) + fabs(ana) + 1e-2);
            checked++;
            if (err > 3e-2) bad++;
            if (err > worst) worst = err, worst_name = t->name;
        }
    }
    test_report(bad == 0 && checked > 0, name, "%d entries of %d tensors, worst rel err %.3g (%s)", checked, m->p.n,
                worst, worst_name);
    free(x), free(mark), free(w), free(pred), free(g);
}

static void test_gradients(void) {
    ts_smamba_cfg c = {0};
    c.D = 8, c.n_layer = 2, c.d_ff = 12, c.d_state = 2, c.d_conv = 2, c.expand = 1;
    ts_model m;
    if (ts_model_create(&m, TS_MODEL_SMAMBA, &c, 8, 4, 3, 2, 0, 7)) {
        test_report(0, "smamba_grad_fd", "%s", mk_last_error());
        return;
    }
    /* move every parameter off its init (LN weights 1, biases 0) so no gradient is trivially symmetric */
    mk_rng r;
    mk_rng_seed(&r, 2);
    for (size_t i = 0; i < m.p.total; i++) m.p.data[i] += 0.05f * mk_rng_normal(&r);
    mk_rng_seed(&probe_rng, 9);
    grad_check(&m, "smamba_grad_fd", 2, 4);
    ts_model_free(&m);
    /* the same with dropout masks (training mode) */
    c.dropout = 0.3f;
    if (ts_model_create(&m, TS_MODEL_SMAMBA, &c, 8, 4, 3, 2, 0, 7) == 0) {
        for (size_t i = 0; i < m.p.total; i++) m.p.data[i] += 0.05f * mk_rng_normal(&r);
        m.smamba.training = 1;
        grad_check(&m, "smamba_dropout_grad_fd", 2, 4);
        ts_model_free(&m);
    }
    /* the paper's block: two independent Mamba modules (forward, reverse), no norm before them */
    c.dropout = 0;
    c.block = TS_BLOCK_PAPER;
    if (ts_model_create(&m, TS_MODEL_SMAMBA, &c, 8, 4, 3, 2, 0, 7)) {
        test_report(0, "smamba_paper_grad_fd", "%s", mk_last_error());
    } else {
        /* structure: per layer mamba_f + mamba_r, each with its own in/out projection
         * (2E x D, D x E), no norm tensor inside either */
        int nf = 0, nr = 0, nnorm = 0, nin = 0;
        for (int k = 0; k < m.p.n; k++) {
            const char *nm = m.p.t[k].name;
            nf += strstr(nm, ".mamba_f.") != NULL, nr += strstr(nm, ".mamba_r.") != NULL;
            nnorm += strstr(nm, "mamba") && strstr(nm, "norm");
            nin += strstr(nm, "in_proj") || strstr(nm, "out_proj");
        }
        test_report(m.smamba.n_bb == 4 && nf == nr && nf > 0 && nnorm == 0 && nin == 8, "smamba_paper_structure",
                    "%d backbones, %d/%d tensors in mamba_f/mamba_r, %d norm tensors in them, %d in/out projections",
                    m.smamba.n_bb, nf, nr, nnorm, nin);
        for (size_t i = 0; i < m.p.total; i++) m.p.data[i] += 0.05f * mk_rng_normal(&r);
        grad_check(&m, "smamba_paper_grad_fd", 2, 4);
        ts_model_free(&m);
    }
    c.dropout = 0.3f;
    if (ts_model_create(&m, TS_MODEL_SMAMBA, &c, 8, 4, 3, 2, 0, 7) == 0) {
        for (size_t i = 0; i < m.p.total; i++) m.p.data[i] += 0.05f * mk_rng_normal(&r);
        m.smamba.training = 1;
        grad_check(&m, "smamba_paper_dropout_grad_fd", 2, 4);
        ts_model_free(&m);
    }
    /* an invalid config is refused with a message, nothing leaked (ASan checks at exit) */
    c.block = 7;
    int rc = ts_model_create(&m, TS_MODEL_SMAMBA, &c, 8, 4, 3, 2, 0, 7);
    test_report(rc == -1 && strstr(mk_last_error(), "block"), "smamba_bad_block_refused", "rc %d: %s", rc,
                mk_last_error());
    c.block = TS_BLOCK_PAPER, c.d_state = 0;
    rc = ts_model_create(&m, TS_MODEL_SMAMBA, &c, 8, 4, 3, 2, 0, 7);
    test_report(rc == -1 && strstr(mk_last_error(), "d_state"), "smamba_bad_backbone_refused", "rc %d: %s", rc,
                mk_last_error());
    if (ts_model_create(&m, TS_MODEL_DLINEAR, NULL, 30, 5, 2, 0, 0, 7) == 0) {
        grad_check(&m, "dlinear_grad_fd", 3, 6);
        ts_model_free(&m);
    }
}

/* Short S-Mamba fit on the real ETTh1 training months: validation MSE must
 * beat the last-value baseline clearly, forecasts finite, right shape. */
static void test_etth1(void) {
    char path[4096];
    if (!test_find_data("etth1_smamba_short_fit", "ETT/ETTh1.csv", path, sizeof path)) return;
    ts_table t;
    if (ts_csv_read(&t, path)) {
        test_report(0, "etth1_smamba_short_fit", "%s", mk_last_error());
        return;
    }
    ts_spacing sp;
    ts_detect_spacing(&t, &sp);
    const int L = 96, H = 24;
    ts_series s;
    ts_series_build(&s, &t, 8640, sp.freq);
    ts_split tr = {0, 8640}, va = {8640 - L, 8640 + 720}; /* one month of validation */
    ts_smamba_cfg c = {0};
    c.D = 32, c.n_layer = 1, c.d_ff = 32, c.d_state = 2, c.d_conv = 2, c.expand = 1;
    ts_model sm, nv, sn;
    ts_model_create(&sm, TS_MODEL_SMAMBA, &c, L, H, s.C, s.F, 0, 1);
    ts_model_create(&nv, TS_MODEL_NAIVE, NULL, L, H, s.C, s.F, 0, 1);
    ts_model_create(&sn, TS_MODEL_SNAIVE, NULL, L, H, s.C, s.F, sp.season, 1);
    ts_train_cfg tc = {6, 32, 3, 2e-3f, 2048, 1, 0, "test", 0, 1};
    double t0 = mk_time();
    double v_sm = ts_model_fit(&sm, &s, &tr, &va, &tc);
    double v_nv, v_sn, mae;
    ts_model_eval(&nv, &s, &va, &v_nv, &mae);
    ts_model_eval(&sn, &s, &va, &v_sn, &mae);
    float x[96 * 7], mk[96 * 4], y[24 * 7];
    ts_split last = {t.n_rows - L, t.n_rows};
    ts_window(&s, &last, 0, L, 0, x, NULL, mk);
    ts_model_predict(&sm, y, x, mk, 1);
    int finite = 1;
    for (int i = 0; i < H * s.C; i++) finite &= isfinite(y[i]) && fabsf(y[i]) < 20;
    test_report(s.F == 4 && finite && v_sm < 0.8 * v_nv && v_sm < v_sn, "etth1_smamba_short_fit",
                "val MSE S-Mamba %.4f vs last value %.4f (need < 0.8x) and seasonal naive %.4f, %d x %d finite "
                "forecast, %.1f s",
                v_sm, v_nv, v_sn, H, s.C, mk_time() - t0);
    ts_model_free(&sn);
    ts_model_free(&sm);
    ts_model_free(&nv);
    ts_series_free(&s);
    ts_table_free(&t);
}

/* The ensemble model (ts_model_ensemble) against its two members: its forecast is their mean,
 * recomputed in double here, and its test MSE/MAE the same mean scored window by window. */
static void test_ensemble(void) {
    char csv[8192], *q = csv;
    q += sprintf(q, "a,b\n");
    mk_rng r;
    mk_rng_seed(&r, 7);
    for (int i = 0; i < 160; i++)
        q += sprintf(q, "%.5f,%.5f\n", sinf(0.3f * i) + 0.3f * mk_rng_normal(&r), 0.02f * i + mk_rng_normal(&r));
    ts_table t;
    if (ts_csv_parse(&t, csv, strlen(csv), "ens.csv")) {
        test_report(0, "ts.ensemble_mean", "%s", mk_last_error());
        return;
    }
    const int L = 12, H = 5, C = 2;
    ts_series s;
    ts_series_build(&s, &t, 100, '?');
    ts_split te = {100 - L, 160};
    ts_smamba_cfg c = {0};
    c.D = 8, c.n_layer = 1, c.d_ff = 8, c.d_state = 2, c.d_conv = 2, c.expand = 1, c.block = TS_BLOCK_PAPER;
    ts_model sm, dl, en;
    ts_model_create(&sm, TS_MODEL_SMAMBA, &c, L, H, C, s.F, 0, 5); /* random weights, not zero */
    ts_model_create(&dl, TS_MODEL_DLINEAR, NULL, L, H, C, s.F, 0, 3);
    float *b = mk_param(&dl.p, dl.dlinear.bs); /* DLinear starts as an average: move it off that */
    for (int h = 0; h < H; h++) b[h] += 0.5f * mk_rng_normal(&r);
    ts_model_ensemble(&en, &sm, &dl);
    ts_model_free(&sm); /* the ensemble holds copies: the members may go */
    ts_model_create(&sm, TS_MODEL_SMAMBA, &c, L, H, C, s.F, 0, 5);
    double mse, mae, se = 0, ae = 0, worst = 0, ms, ma, md, mda;
    ts_model_eval(&en, &s, &te, &mse, &mae);
    ts_model_eval(&sm, &s, &te, &ms, &ma);
    ts_model_eval(&dl, &s, &te, &md, &mda);
    const int nw = ts_split_windows(&te, L, H);
    float x[12 * 2], y[5 * 2], p[3][5 * 2];
    for (int w = 0; w < nw; w++) {
        ts_window(&s, &te, w, L, H, x, y, NULL);
        ts_model_predict(&sm, p[0], x, NULL, 1);
        ts_model_predict(&dl, p[1], x, NULL, 1);
        ts_model_predict(&en, p[2], x, NULL, 1);
        for (int i = 0; i < H * C; i++) {
            double m = ((double)p[0][i] + p[1][i]) / 2, d = m - y[i];
            worst = fmax(worst, fabs(p[2][i] - m));
            se += d * d, ae += fabs(d);
        }
    }
    const double n = (double)nw * H * C, rm = se / n, ra = ae / n;
    test_report(nw == 56 && worst < 1e-5 && fabs(mse - rm) < 1e-5 * rm && fabs(mae - ra) < 1e-5 * ra &&
                    mse != ms && mse != md && mse <= (ms + md) / 2,
                "ts.ensemble_mean",
                "%d windows: forecast vs mean of the members in double max |diff| %.2g; MSE %.6f vs %.6f, MAE %.6f vs "
                "%.6f; members %.4f / %.4f",
                nw, worst, mse, rm, mae, ra, ms, md);
    ts_model_free(&en), ts_model_free(&sm), ts_model_free(&dl);
    ts_series_free(&s);
    ts_table_free(&t);
}

void openblas_set_num_threads(int num_threads); /* small GEMMs: threads only spin */

/* The lr schedule against the reference procedure replayed step by step: start at lr, and
 * after each finished epoch k (1-based) set lr0 * 0.5^((k-1) // 1). */
static void test_type1(void) {
    const float lr0 = 7e-5f;
    float lr = lr0;
    int bad = 0;
    char got[160] = "", *p = got;
    for (int ep = 0; ep < 10; ep++) {
        float ours = ts_type1_lr(lr0, ep);
        bad += fabsf(ours - lr) > 1e-6f * lr0;
        if (ep < 4) p += snprintf(p, sizeof got - (size_t)(p - got), "%s%.3g", ep ? ", " : "", (double)ours);
        int k = ep + 1; /* the reference's adjust_learning_rate(optimizer, epoch + 1) after this epoch */
        lr = lr0 * powf(0.5f, (float)((k - 1) / 1));
    }
    test_report(bad == 0, "ts.type1_schedule", "epochs 1-4 at %s (the halving starts at epoch 3); %d of 10 differ",
                got, bad);
}

int main(void) {
    openblas_set_num_threads(1);
#ifdef _OPENMP
    omp_set_num_threads(1); /* deterministic and immune to a crowded machine; speed is not tested here */
#endif
    test_type1();
    test_baselines();
    test_dlinear_hand();
    test_ensemble();
    test_revin();
    test_gradients();
    test_etth1();
    return test_exit();
}
