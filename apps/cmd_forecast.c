/* cmd_forecast.c — `mambakit forecast` (fit on a CSV's own history, write the
 * next H steps), `mambakit train forecast` (fit and save a model) and
 * `mambakit bench ts` (the literature's long-horizon protocol). */
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/cli.h"
#include "core/backend.h"
#include "core/ckpt.h"
#include "core/util.h"
#include "timeseries/ts.h"

#define MAX_TARGETS 256

/* The GEMMs and elementwise loops here are small (hundreds of rows), so
 * threads mostly wait on each other; on a crowded machine spinning OpenMP and
 * OpenBLAS threads cost far more than they give (a test fit took 68 s with 2
 * threads vs 10 s with 1 at load 10 on 2 cores). Default: 1 thread; --threads N. */
void openblas_set_num_threads(int num_threads); /* OpenBLAS, linked into everything */
static void ts_threads(long n) {
    openblas_set_num_threads(1);
#ifdef _OPENMP
    omp_set_num_threads(n > 0 ? (int)n : 1);
#endif
}

/* The S-Mamba size used by `forecast` and `train forecast`: small enough to
 * fit ETTh1-sized data (17k rows x 7 columns) in well under a minute on 2
 * cores; the paper's layer (two independent Mamba modules), which fits the
 * same budget (docs/TIMESERIES.md). */
static void fc_smamba_default(ts_smamba_cfg *c) {
    memset(c, 0, sizeof *c);
    c->D = 128, c->n_layer = 2, c->d_ff = 128, c->d_state = 2, c->d_conv = 2, c->expand = 1, c->dropout = 0;
    c->block = TS_BLOCK_PAPER;
}

typedef struct {
    const char *csv, *out, *plot, *save, *model, *device;
    int dev; /* parsed --device */
    const char *targets[MAX_TARGETS];
    int n_targets;
    long horizon, lookback, epochs, threads;
    int horizon_set, json, quiet;
    int gpu_backbone_only; /* --gpu-step backbone */
    unsigned long long seed;
    double budget, lr;
    ts_smamba_cfg sm;
} fc_opts;

static int model_kind(const char *s) {
    if (!strcmp(s, "smamba") || !strcmp(s, "s-mamba")) return TS_MODEL_SMAMBA;
    if (!strcmp(s, "dlinear")) return TS_MODEL_DLINEAR;
    if (!strcmp(s, "snaive") || !strcmp(s, "seasonal-naive")) return TS_MODEL_SNAIVE;
    if (!strcmp(s, "naive") || !strcmp(s, "last")) return TS_MODEL_NAIVE;
    if (!strcmp(s, "ensemble")) return TS_MODEL_ENSEMBLE;
    if (!strcmp(s, "auto")) return -1;
    return -2; /* a file */
}

static void fc_help(const fc_opts *o, int train) {
    printf("usage: mambakit %s DATA.csv [options]\n", train ? "train forecast" : "forecast");
    if (train)
        printf("  Fits a forecaster on the CSV (train/validation split by time, early stopping)\n"
               "  and saves it for `mambakit forecast --model FILE`.\n");
    else
        printf("  Reads a CSV time series (header row; delimiter , ; or tab; a date/time or\n"
               "  integer index column is detected), fits a model on its own history unless\n"
               "  --model FILE is given, and writes the next H steps of every target column as\n"
               "  CSV, continuing the time column with its spacing.\n");
    printf("  --horizon H        steps to forecast (default %ld)\n"
           "  --lookback L       input window (default %ld; shortened with a warning on short series)\n"
           "  --target COL       column to forecast, repeatable (default: all numeric columns)\n"
           "  --model M          auto | smamba | dlinear | ensemble | snaive | naive | FILE.mkm\n"
           "                     (default %s): ensemble is the mean of the S-Mamba and DLinear\n"
           "                     forecasts, each fitted on its own; auto fits S-Mamba and DLinear\n"
           "                     and picks, among them, their ensemble, seasonal naive and last\n"
           "                     value, the lowest validation MSE\n"
           "  --epochs N         max training epochs, early stopping patience 3 (default %ld)\n"
           "  --time-budget S    wall-clock cap on the whole fit in seconds; training stops\n"
           "                     early (best weights kept) when it runs out (default %g; 0 = none)\n"
           "  --lr X             S-Mamba learning rate (default %g)\n"
           "  --d-model N        S-Mamba width (default %d)\n"
           "  --layers N         S-Mamba layers (default %d)\n"
           "  --block B          S-Mamba layer: shared (one in/out projection for both directions,\n"
           "                     RMSNorm before it) or paper (two independent Mamba modules, the\n"
           "                     S-Mamba paper's layer) (default %s)\n"
           "  --seed N           random seed (default %llu)\n"
           "  --threads N        OpenMP threads (default %ld; the work is too fine-grained to gain much)\n"
           "  --device D         cpu | cuda: where S-Mamba runs: its forecasts and validation wholly on\n"
           "                     the GPU, its training step as --gpu-step says (default cpu; cuda falls\n"
           "                     back to the CPU with a notice when there is no GPU)\n"
           "  --gpu-step S       full | backbone: with cuda, every op of S-Mamba's training step on the\n"
           "                     GPU (parameters resident; copied back for validation and saving), or\n"
           "                     only the Mamba layers there with per-call copies (default full)\n",
           o->horizon, o->lookback, o->model, o->epochs, o->budget, o->lr, o->sm.D, o->sm.n_layer,
           ts_block_name(o->sm.block), o->seed,
           o->threads);
    if (train)
        printf("  -o FILE            where to save the model (required)\n");
    else
        printf("  -o FILE            write the forecast here (atomically; default stdout)\n"
               "  --plot FILE.png    history tail + forecast, one panel per target\n"
               "  --save-model FILE  save the fitted model\n"
               "  --json             print the forecast as JSON\n");
    printf("  -q, --quiet        no progress line or warnings\n"
           "  -h, --help         this help\n");
}

/* 0 ok, 1 help printed, 2 usage error */
static int fc_parse(fc_opts *o, int argc, char **argv, int train) {
    memset(o, 0, sizeof *o);
    o->threads = 1;
    o->horizon = 24, o->lookback = 96, o->epochs = 10, o->seed = 1, o->budget = 45, o->lr = 5e-4;
    o->model = train ? "smamba" : "auto";
    fc_smamba_default(&o->sm);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x;
        double f;
        if (cli_is_help(a)) {
            fc_help(o, train);
            return 1;
        } else if (!strcmp(a, "--horizon")) {
            if (cli_int(a, v, 1, 100000, &o->horizon)) return 2;
            o->horizon_set = 1, i++;
        } else if (!strcmp(a, "--lookback")) {
            if (cli_int(a, v, 2, 100000, &o->lookback)) return 2;
            i++;
        } else if (!strcmp(a, "--epochs")) {
            if (cli_int(a, v, 1, 1000, &o->epochs)) return 2;
            i++;
        } else if (!strcmp(a, "--threads")) {
            if (cli_int(a, v, 1, 256, &o->threads)) return 2;
            i++;
        } else if (!strcmp(a, "--device")) {
            if (!v) return fprintf(stderr, "mambakit: --device needs a value\n"), 2;
            o->device = v, i++;
        } else if (!strcmp(a, "--gpu-step")) {
            if (!v || (strcmp(v, "full") && strcmp(v, "backbone")))
                return fprintf(stderr, "mambakit: %s: --gpu-step: '%s' is not full or backbone\n",
                               train ? "train forecast" : "forecast", v ? v : ""),
                       2;
            o->gpu_backbone_only = !strcmp(v, "backbone"), i++;
        } else if (!strcmp(a, "--d-model")) {
            if (cli_int(a, v, 2, 4096, &x)) return 2;
            o->sm.D = o->sm.d_ff = (int)x, i++;
        } else if (!strcmp(a, "--layers")) {
            if (cli_int(a, v, 1, 16, &x)) return 2;
            o->sm.n_layer = (int)x, i++;
        } else if (!strcmp(a, "--block")) {
            if (!v || ts_block_parse(v) < 0)
                return fprintf(stderr, "mambakit: --block needs shared or paper, got '%s'\n", v ? v : ""), 2;
            o->sm.block = ts_block_parse(v), i++;
        } else if (!strcmp(a, "--seed")) {
            if (cli_int(a, v, 0, 1L << 62, &x)) return 2;
            o->seed = (unsigned long long)x, i++;
        } else if (!strcmp(a, "--time-budget")) {
            if (cli_float(a, v, 0, 1e7, &o->budget)) return 2;
            i++;
        } else if (!strcmp(a, "--lr")) {
            if (cli_float(a, v, 1e-7, 1, &f)) return 2;
            o->lr = f, i++;
        } else if (!strcmp(a, "--target")) {
            if (!v) return fprintf(stderr, "mambakit: --target needs a value\n"), 2;
            if (o->n_targets == MAX_TARGETS) return fprintf(stderr, "mambakit: too many --target options\n"), 2;
            o->targets[o->n_targets++] = v, i++;
        } else if (!strcmp(a, "--model")) {
            if (!v) return fprintf(stderr, "mambakit: --model needs a value\n"), 2;
            o->model = v, i++;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!v) return fprintf(stderr, "mambakit: %s needs a value\n", a), 2;
            o->out = v, i++;
        } else if (!train && !strcmp(a, "--plot")) {
            if (!v) return fprintf(stderr, "mambakit: --plot needs a value\n"), 2;
            o->plot = v, i++;
        } else if (!train && !strcmp(a, "--save-model")) {
            if (!v) return fprintf(stderr, "mambakit: --save-model needs a value\n"), 2;
            o->save = v, i++;
        } else if (!train && !strcmp(a, "--json")) {
            o->json = 1;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o->quiet = 1;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mambakit: %s: unknown option '%s' (see --help)\n", train ? "train forecast" : "forecast",
                    a);
            return 2;
        } else if (!o->csv) {
            o->csv = a;
        } else {
            fprintf(stderr, "mambakit: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!o->csv) {
        fprintf(stderr, "mambakit: %s: missing DATA.csv (see --help)\n", train ? "train forecast" : "forecast");
        return 2;
    }
    if (train && !o->out) {
        fprintf(stderr, "mambakit: train forecast: -o MODEL.mkm is required\n");
        return 2;
    }
    if (train && model_kind(o->model) == -2) {
        fprintf(stderr, "mambakit: train forecast: --model must be auto, smamba, dlinear, ensemble, snaive or naive\n");
        return 2;
    }
    if ((o->dev = mk_device_parse(o->device ? o->device : "cpu")) < 0) {
        fprintf(stderr, "mambakit: %s\n", mk_last_error());
        return 2;
    }
    return 0;
}

/* ------------------------------------------------------------ save/load */

static int fc_save(const char *path, const ts_model *m, const ts_table *t, const ts_series *s, char freq,
                   double val_mse) {
    mk_config cfg;
    mk_config_init(&cfg, "forecast");
    if (m->C * 3 + 20 > MK_CKPT_MAX_CONFIG) {
        mk_error("%s: %d columns are too many to save (max %d)", path, m->C, (MK_CKPT_MAX_CONFIG - 20) / 3);
        return -1;
    }
    mk_config_set(&cfg, "model", "%s", ts_model_name(m->kind));
    mk_config_set_int(&cfg, "lookback", m->L);
    mk_config_set_int(&cfg, "horizon", m->H);
    mk_config_set_int(&cfg, "columns", m->C);
    mk_config_set_int(&cfg, "covariates", m->F);
    mk_config_set(&cfg, "freq", "%c", freq);
    mk_config_set_int(&cfg, "period", m->period);
    mk_config_set_int(&cfg, "d_model", m->sm.D);
    mk_config_set_int(&cfg, "n_layer", m->sm.n_layer);
    mk_config_set_int(&cfg, "d_ff", m->sm.d_ff);
    mk_config_set_int(&cfg, "d_state", m->sm.d_state);
    mk_config_set_int(&cfg, "d_conv", m->sm.d_conv);
    mk_config_set_int(&cfg, "expand", m->sm.expand);
    mk_config_set_float(&cfg, "dropout", m->sm.dropout);
    mk_config_set(&cfg, "block", "%s", ts_block_name(m->sm.block));
    mk_config_set_float(&cfg, "val_mse", val_mse);
    char key[MK_CKPT_KEY];
    for (int c = 0; c < m->C; c++) {
        snprintf(key, sizeof key, "col.%d", c);
        mk_config_set(&cfg, key, "%s", t->names[c]);
        snprintf(key, sizeof key, "mean.%d", c);
        mk_config_set(&cfg, key, "%.9g", s->mean[c]);
        snprintf(key, sizeof key, "std.%d", c);
        mk_config_set(&cfg, key, "%.9g", s->std[c]);
    }
    return mk_ckpt_save(path, &cfg, &m->p, 0);
}

typedef struct {
    mk_config cfg;
    int kind, L, H, C, F, period;
    char freq;
    ts_smamba_cfg sm;
} fc_saved;

static int cfg_int(const mk_config *c, const char *k, int lo, int hi, int *out) {
    long v;
    if (mk_config_get_int(c, k, &v)) return -1;
    if (v < lo || v > hi) {
        mk_error("config '%s' = %ld is out of range", k, v);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int fc_read_saved(const char *path, fc_saved *s) {
    memset(s, 0, sizeof *s);
    if (mk_ckpt_read_config(path, "forecast", &s->cfg)) return -1;
    const char *mn = mk_config_get(&s->cfg, "model"), *fq = mk_config_get(&s->cfg, "freq");
    s->kind = mn ? model_kind(mn) : -2;
    if (s->kind < 0 || !fq) {
        mk_error("%s: not a forecast model (model '%s')", path, mn ? mn : "?");
        return -1;
    }
    s->freq = fq[0];
    if (cfg_int(&s->cfg, "lookback", 1, 100000, &s->L) || cfg_int(&s->cfg, "horizon", 1, 100000, &s->H) ||
        cfg_int(&s->cfg, "columns", 1, 100000, &s->C) || cfg_int(&s->cfg, "covariates", 0, 16, &s->F) ||
        cfg_int(&s->cfg, "period", 0, 100000, &s->period) || cfg_int(&s->cfg, "d_model", 0, 4096, &s->sm.D) ||
        cfg_int(&s->cfg, "n_layer", 0, 16, &s->sm.n_layer) || cfg_int(&s->cfg, "d_ff", 0, 16384, &s->sm.d_ff) ||
        cfg_int(&s->cfg, "d_state", 0, 64, &s->sm.d_state) || cfg_int(&s->cfg, "d_conv", 0, 8, &s->sm.d_conv) ||
        cfg_int(&s->cfg, "expand", 0, 8, &s->sm.expand)) {
        char e[1024];
        snprintf(e, sizeof e, "%s", mk_last_error());
        mk_error("%s: %s", path, e);
        return -1;
    }
    const char *bl = mk_config_get(&s->cfg, "block"); /* absent in files written before the option: shared */
    s->sm.block = bl ? ts_block_parse(bl) : TS_BLOCK_SHARED;
    if (s->sm.block < 0) {
        mk_error("%s: config 'block' = '%s' is not shared or paper", path, bl);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------- fitting */

typedef struct {
    ts_table tb;
    ts_spacing sp;
    ts_series se;
    ts_model m;
    int L, H, have_model;
    double val_mse;
    char freq;
} fc_state;

static void fc_free(fc_state *st) {
    if (st->have_model) ts_model_free(&st->m);
    ts_series_free(&st->se);
    ts_table_free(&st->tb);
}

static int fc_period(const fc_state *st, int L, const ts_series *se, int n_train) {
    if (st->sp.season >= 2 && st->sp.season <= L) return st->sp.season;
    return ts_autocorr_period(se->x, n_train, se->C, L);
}

/* Fit the requested model (or pick by validation MSE) on the table. */
static int fc_fit(fc_state *st, const fc_opts *o) {
    const int n = st->tb.n_rows;
    int H = (int)o->horizon, L = (int)o->lookback;
    int v = n / 5 > H ? n / 5 : H; /* validation target rows */
    if (n - v - L - H + 1 < 1) {
        v = H;
        int Lmax = n - v - H;
        if (Lmax < 2) {
            mk_error("%s: line %d: only %d data row%s; horizon %d needs at least %d (2 x horizon + 2)", o->csv,
                     st->tb.row_line[n - 1], n, n == 1 ? "" : "s", H, 2 * H + 2);
            return -1;
        }
        if (Lmax < L) {
            mk_warn("%s: only %d rows: lookback shortened from %d to %d", o->csv, n, L, Lmax);
            L = Lmax;
        }
    }
    st->L = L, st->H = H;
    ts_split tr = {0, n - v}, va = {n - v - L, n};
    ts_series_build(&st->se, &st->tb, n - v, st->freq);
    int C = st->se.C, F = st->se.F;
    int kind = model_kind(o->model);
    int period = fc_period(st, L, &st->se, n - v);
    ts_train_cfg tc = {(int)o->epochs, 32, 3, (float)o->lr, 0, o->seed, !o->quiet, NULL, o->budget, 1};
    int nvw = ts_split_windows(&va, L, H);
    if (nvw > 1024) tc.val_stride = nvw / 1024; /* early stopping on ~1000 validation windows */
    int cand[4], nc = 0;
    if (kind == TS_MODEL_ENSEMBLE) {
        cand[nc++] = TS_MODEL_DLINEAR;
        cand[nc++] = TS_MODEL_SMAMBA;
    } else if (kind >= 0) {
        cand[nc++] = kind;
    } else {
        cand[nc++] = TS_MODEL_NAIVE;
        if (period >= 2) cand[nc++] = TS_MODEL_SNAIVE;
        cand[nc++] = TS_MODEL_DLINEAR;
        cand[nc++] = TS_MODEL_SMAMBA;
    }
    if (kind == TS_MODEL_SNAIVE && period < 2) {
        mk_error("%s: no seasonal period found (spacing unknown, no autocorrelation peak within lookback %d)", o->csv,
                 L);
        return -1;
    }
    /* every candidate is kept until the choice: the ensemble is built from the fitted members */
    ts_model fit[5];
    double vm[5];
    int n_fit = 0, i_dl = -1, i_sm = -1;
    double t_start = mk_time();
    for (int k = 0; k < nc; k++) {
        ts_model *m = &fit[n_fit];
        if (ts_model_create(m, cand[k], &o->sm, L, H, C, F, period, o->seed)) goto fail;
        n_fit++;
        /* on a GPU the whole S-Mamba step stays on the device (ts_model_fit): say so */
        m->gpu_backbone_only = o->gpu_backbone_only;
        if (ts_model_use_device(m, o->dev) == MK_DEV_CUDA && cand[k] == TS_MODEL_SMAMBA)
            fprintf(stderr, "mambakit: S-Mamba: %s\n",
                    o->gpu_backbone_only ? "Mamba layers on the GPU; embedding, norms, FFN, head, loss and AdamW on "
                                           "the CPU (--gpu-step backbone)"
                                         : "every op of the training step on the GPU (parameters resident; copied "
                                           "back for validation and saving)");
        tc.lr = cand[k] == TS_MODEL_DLINEAR ? 5e-3f : (float)o->lr;
        tc.label = cand[k] == TS_MODEL_DLINEAR ? "fit DLinear" : "fit S-Mamba";
        tc.max_train_windows = cand[k] == TS_MODEL_SMAMBA ? 4096 : 0;
        /* --time-budget covers the whole fit: S-Mamba (fitted last) gets what is left */
        double left = o->budget - (mk_time() - t_start);
        tc.time_budget = o->budget <= 0 ? 0 : left > 5 ? left : 5;
        vm[n_fit - 1] = ts_model_fit(m, &st->se, &tr, &va, &tc);
        if (cand[k] == TS_MODEL_DLINEAR) i_dl = n_fit - 1;
        if (cand[k] == TS_MODEL_SMAMBA) i_sm = n_fit - 1;
        if (!o->quiet && nc > 1)
            fprintf(stderr, "mambakit: %-8s validation MSE %.4f\n", ts_model_name(cand[k]), vm[n_fit - 1]);
    }
    if (i_dl >= 0 && i_sm >= 0) {
        if (ts_model_ensemble(&fit[n_fit], &fit[i_sm], &fit[i_dl])) goto fail;
        n_fit++;
        ts_model_use_device(&fit[n_fit - 1], o->dev);
        vm[n_fit - 1] = ts_model_fit(&fit[n_fit - 1], &st->se, &tr, &va, &tc); /* scores it on va */
        if (!o->quiet)
            fprintf(stderr, "mambakit: %-8s validation MSE %.4f\n", "ensemble", vm[n_fit - 1]);
    }
    int pick = kind == TS_MODEL_ENSEMBLE ? n_fit - 1 : 0;
    if (kind < 0)
        for (int k = 1; k < n_fit; k++)
            if (vm[k] < vm[pick]) pick = k;
    st->m = fit[pick];
    ts_model_relink(&st->m);
    st->have_model = 1;
    st->val_mse = vm[pick];
    for (int k = 0; k < n_fit; k++)
        if (k != pick) ts_model_free(&fit[k]);
    if (!o->quiet)
        fprintf(stderr, "mambakit: model %s, validation MSE %.4f (standardised)\n", ts_model_name(st->m.kind),
                st->val_mse);
    return 0;
fail:
    for (int k = 0; k < n_fit; k++) ts_model_free(&fit[k]);
    return -1;
}

static int fc_load(fc_state *st, const fc_opts *o) {
    fc_saved sv;
    if (fc_read_saved(o->model, &sv)) return -1;
    if (sv.C != st->tb.n_cols) {
        mk_error("%s: the model forecasts %d columns, %s has %d (use --target)", o->model, sv.C, o->csv,
                 st->tb.n_cols);
        return -1;
    }
    char key[MK_CKPT_KEY];
    for (int c = 0; c < sv.C; c++) {
        snprintf(key, sizeof key, "col.%d", c);
        const char *nm = mk_config_get(&sv.cfg, key);
        if (nm && strcmp(nm, st->tb.names[c]))
            mk_warn("%s: column %d is '%s' in the model, '%s' in %s", o->model, c + 1, nm, st->tb.names[c], o->csv);
    }
    if (o->horizon_set && o->horizon != sv.H) {
        mk_error("%s: the model forecasts %d steps, --horizon asks for %ld", o->model, sv.H, o->horizon);
        return -1;
    }
    if (st->tb.n_rows < sv.L) {
        mk_error("%s: line %d: only %d data rows, the model needs a lookback of %d", o->csv,
                 st->tb.row_line[st->tb.n_rows - 1], st->tb.n_rows, sv.L);
        return -1;
    }
    int F = st->tb.time_kind == TS_TIME_DATE ? ts_time_nfeat(sv.freq) : 0;
    if (F != sv.F) {
        mk_error("%s: the model was fitted with %d time features, %s gives %d", o->model, sv.F, o->csv, F);
        return -1;
    }
    st->freq = sv.freq;
    ts_series_build(&st->se, &st->tb, st->tb.n_rows, sv.freq);
    for (int c = 0; c < sv.C; c++) { /* the model's scaler, re-applied */
        double mu, sd;
        snprintf(key, sizeof key, "mean.%d", c);
        if (mk_config_get_float(&sv.cfg, key, &mu)) return -1;
        snprintf(key, sizeof key, "std.%d", c);
        if (mk_config_get_float(&sv.cfg, key, &sd) || !(sd > 0)) return -1;
        /* The file holds the float scaler as 9 significant digits: round back to
         * that float before use, exactly as ts_series_build uses its float scaler
         * (the decimal's own double value differs in the low bits, which moved the
         * standardised inputs by one ulp and the reloaded forecast in its last digit). */
        st->se.mean[c] = (float)mu, st->se.std[c] = (float)sd;
        mu = st->se.mean[c], sd = st->se.std[c];
        for (int r = 0; r < st->tb.n_rows; r++)
            st->se.x[(size_t)r * sv.C + c] = (float)((st->tb.x[(size_t)r * sv.C + c] - mu) / sd);
    }
    if (ts_model_create_matching(&st->m, sv.kind, &sv.sm, sv.L, sv.H, sv.C, sv.F, sv.period, o->model)) return -1;
    st->have_model = 1;
    if (mk_ckpt_load(o->model, "forecast", &sv.cfg, &st->m.p, 0)) return -1;
    ts_model_use_device(&st->m, o->dev);
    st->L = sv.L, st->H = sv.H;
    double vm;
    st->val_mse = mk_config_get_float(&sv.cfg, "val_mse", &vm) ? NAN : vm;
    return 0;
}

static int fc_prepare(fc_state *st, const fc_opts *o) {
    memset(st, 0, sizeof *st);
    if (ts_csv_read(&st->tb, o->csv)) return -1;
    if (o->n_targets && ts_table_select(&st->tb, o->targets, o->n_targets, o->csv)) return -1;
    ts_detect_spacing(&st->tb, &st->sp);
    st->freq = st->sp.freq;
    return 0;
}

/* ------------------------------------------------------------- commands */

static int fc_write(const fc_state *st, const fc_opts *o, const float *y) {
    const ts_table *t = &st->tb;
    const int H = st->H, C = t->n_cols;
    mk_atomic_file af;
    FILE *f = stdout;
    if (o->out) {
        if (mk_atomic_open(&af, o->out, "w")) return -1;
        f = af.f;
    }
    char tb[64];
    double tl = t->time_kind ? t->t[t->n_rows - 1] : 0;
    if (o->json) {
        fprintf(f, "{\"model\": \"%s\", \"horizon\": %d, \"lookback\": %d, \"validation_mse\": ",
                ts_model_name(st->m.kind), H, st->L);
        if (isfinite(st->val_mse)) fprintf(f, "%.6g", st->val_mse);
        else fprintf(f, "null");
        fprintf(f, ", \"columns\": [");
        for (int c = 0; c < C; c++) {
            fprintf(f, "%s\"", c ? ", " : "");
            for (const char *p = t->names[c]; *p; p++) {
                if (*p == '"' || *p == '\\') fputc('\\', f);
                if ((unsigned char)*p >= 0x20) fputc(*p, f);
            }
            fputc('"', f);
        }
        fprintf(f, "],\n \"time\": ");
        if (t->time_kind) {
            fprintf(f, "[");
            for (int h = 0; h < H; h++) {
                ts_format_time(t, ts_advance(&st->sp, tl, h + 1), tb, sizeof tb);
                fprintf(f, "%s\"%s\"", h ? ", " : "", tb);
            }
            fprintf(f, "]");
        } else {
            fprintf(f, "null");
        }
        fprintf(f, ",\n \"forecast\": [");
        for (int h = 0; h < H; h++) {
            fprintf(f, "%s[", h ? ",\n  " : "");
            /* 9 significant digits: every float round-trips exactly */
            for (int c = 0; c < C; c++) fprintf(f, "%s%.9g", c ? ", " : "", y[(size_t)h * C + c]);
            fprintf(f, "]");
        }
        fprintf(f, "]}\n");
    } else {
        char d = t->delim ? t->delim : ',';
        int first = 1;
        if (t->time_kind) fprintf(f, "%s", t->time_name), first = 0;
        for (int c = 0; c < C; c++) {
            const char *nm = t->names[c];
            int q = strchr(nm, d) || strchr(nm, '"') || strchr(nm, '\n');
            if (!first) fputc(d, f);
            first = 0;
            if (q) {
                fputc('"', f);
                for (const char *p = nm; *p; p++) {
                    if (*p == '"') fputc('"', f);
                    fputc(*p, f);
                }
                fputc('"', f);
            } else {
                fputs(nm, f);
            }
        }
        fputc('\n', f);
        for (int h = 0; h < H; h++) {
            first = 1;
            if (t->time_kind) {
                ts_format_time(t, ts_advance(&st->sp, tl, h + 1), tb, sizeof tb);
                fputs(tb, f);
                first = 0;
            }
            for (int c = 0; c < C; c++) {
                if (!first) fputc(d, f);
                first = 0;
                fprintf(f, "%.7g", y[(size_t)h * C + c]);
            }
            fputc('\n', f);
        }
    }
    if (o->out) {
        if (ferror(f)) {
            mk_atomic_abort(&af);
            mk_error("%s: write failed", o->out);
            return -1;
        }
        return mk_atomic_commit(&af);
    }
    fflush(stdout);
    return 0;
}

int cmd_forecast(int argc, char **argv) {
    fc_opts o;
    int r = fc_parse(&o, argc, argv, 0);
    if (r) return r == 1 ? 0 : 2;
    ts_threads(o.threads);
    int q0 = mk_quiet;
    if (o.quiet) mk_quiet = 1;
    fc_state st;
    int rc = 1;
    float *x = NULL, *mark = NULL, *y = NULL;
    if (fc_prepare(&st, &o)) goto done;
    if (model_kind(o.model) == -2) {
        if (fc_load(&st, &o)) goto done;
    } else if (fc_fit(&st, &o)) {
        goto done;
    }
    const int L = st.L, H = st.H, C = st.se.C, F = st.se.F, n = st.tb.n_rows;
    x = mk_malloc(sizeof(float) * (size_t)L * C);
    y = mk_malloc(sizeof(float) * (size_t)H * C);
    mark = F ? mk_malloc(sizeof(float) * (size_t)L * F) : NULL;
    ts_split last = {n - L, n};
    ts_window(&st.se, &last, 0, L, 0, x, NULL, mark);
    ts_model_predict(&st.m, y, x, mark, 1);
    for (int h = 0; h < H; h++)
        for (int c = 0; c < C; c++) y[(size_t)h * C + c] = y[(size_t)h * C + c] * st.se.std[c] + st.se.mean[c];
    if (o.save && fc_save(o.save, &st.m, &st.tb, &st.se, st.freq, st.val_mse)) goto done;
    if (o.plot) {
        int nh = 2 * H > L ? 2 * H : L;
        if (nh > n) nh = n;
        const char **nm = (const char **)st.tb.names;
        if (ts_plot_png(o.plot, st.tb.x + (size_t)(n - nh) * C, nh, y, H, C, nm)) goto done;
    }
    if (fc_write(&st, &o, y)) goto done;
    rc = 0;
done:
    if (rc) fprintf(stderr, "mambakit: %s\n", mk_last_error());
    free(x), free(y), free(mark);
    fc_free(&st);
    mk_quiet = q0;
    return rc;
}

int cmd_train_forecast(int argc, char **argv) {
    fc_opts o;
    int r = fc_parse(&o, argc, argv, 1);
    if (r) return r == 1 ? 0 : 2;
    ts_threads(o.threads);
    int q0 = mk_quiet;
    if (o.quiet) mk_quiet = 1;
    fc_state st;
    int rc = 1;
    if (fc_prepare(&st, &o) || fc_fit(&st, &o)) goto done;
    if (fc_save(o.out, &st.m, &st.tb, &st.se, st.freq, st.val_mse)) goto done;
    printf("saved %s model to %s: lookback %d, horizon %d, %d columns, validation MSE %.4f\n",
           ts_model_name(st.m.kind), o.out, st.L, st.H, st.se.C, st.val_mse);
    rc = 0;
done:
    if (rc) fprintf(stderr, "mambakit: %s\n", mk_last_error());
    fc_free(&st);
    mk_quiet = q0;
    return rc;
}

/* ------------------------------------------------------------ benchmark */

typedef struct {
    const char *name, *rel;
    int ett;       /* 1 hourly ETT, 4 15-minute ETT, 0 custom 7:1:2 */
    int lookback;
    int horizons[4];
    double pub_smamba[2]; /* published average MSE/MAE, 0 if not listed */
} bench_set;

static const bench_set BENCH_SETS[] = {
    {"ETTh1", "ETT/ETTh1.csv", 1, 96, {96, 192, 336, 720}, {0.455, 0.448}},
    {"ETTh2", "ETT/ETTh2.csv", 1, 96, {96, 192, 336, 720}, {0, 0}},
    {"ETTm1", "ETT/ETTm1.csv", 4, 96, {96, 192, 336, 720}, {0, 0}},
    {"ETTm2", "ETT/ETTm2.csv", 4, 96, {96, 192, 336, 720}, {0, 0}},
    {"Weather", "weather/weather.csv", 0, 96, {96, 192, 336, 720}, {0, 0}},
    {"Exchange", "exchange_rate/exchange_rate.csv", 0, 96, {96, 192, 336, 720}, {0, 0}},
    {"ILI", "illness/national_illness.csv", 0, 36, {24, 36, 48, 60}, {0, 0}},
};
#define N_BENCH_SETS ((int)(sizeof BENCH_SETS / sizeof *BENCH_SETS))

/* Literature borders: Informer's Dataset_ETT_hour/minute (12/4/4 months) and
 * Autoformer's Dataset_Custom (7:1:2), val/test starting L rows early. */
static void bench_splits(const bench_set *b, int n, int L, ts_split sp[3], int *n_fit) {
    if (b->ett) {
        int m = 30 * 24 * b->ett;
        sp[0] = (ts_split){0, 12 * m};
        sp[1] = (ts_split){12 * m - L, 16 * m};
        sp[2] = (ts_split){16 * m - L, 20 * m};
        *n_fit = 12 * m;
    } else {
        int ntr = (int)(n * 0.7), nte = (int)(n * 0.2), nva = n - ntr - nte;
        sp[0] = (ts_split){0, ntr};
        sp[1] = (ts_split){ntr - L, ntr + nva};
        sp[2] = (ts_split){n - nte - L, n};
        *n_fit = ntr;
    }
}

static int in_list(const char *list, const char *name) {
    if (!list) return 1;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        if (k == n && !strncasecmp(p, name, n)) return 1;
        p += k + (e ? 1 : 0);
    }
    return 0;
}

/* The models of one horizon that were created (live[k]) */
static void free_live(ts_model *mods, const int *live, int n) {
    for (int k = 0; k < n; k++)
        if (live[k]) ts_model_free(&mods[k]);
}

int cmd_bench_ts(int argc, char **argv) {
    const char *sets = NULL, *hz = NULL, *models = "smamba,dlinear,snaive,naive,ensemble", *data_dir = NULL;
    long epochs = 10, max_win = 0, threads = 1;
    double lr = 5e-4, budget = 0, lrs[4] = {0};
    int n_lr = 1;
    int json = 0;
    unsigned long long seed = 1;
    ts_smamba_cfg sm;
    memset(&sm, 0, sizeof sm);
    sm.D = 128, sm.n_layer = 2, sm.d_ff = 128, sm.d_state = 2, sm.d_conv = 2, sm.expand = 1, sm.dropout = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x;
        if (cli_is_help(a)) {
            printf("usage: mambakit bench ts [options]\n"
                   "  Long-horizon forecasting on the literature's protocol: ETT splits 12/4/4 months,\n"
                   "  others 7:1:2, lookback 96 (ILI 36), horizons 96/192/336/720 (ILI 24/36/48/60),\n"
                   "  MSE/MAE on standardised test data, every test window (stride 1). Our S-Mamba,\n"
                   "  DLinear, seasonal naive and last value are trained/evaluated in the same run.\n"
                   "  --datasets LIST     comma list of ETTh1,ETTh2,ETTm1,ETTm2,Weather,Exchange,ILI\n"
                   "                      (default: all found in the data path)\n"
                   "  --horizons LIST     comma list of horizons (default: the data set's four)\n"
                   "  --models LIST       smamba,dlinear,snaive,naive,ensemble (default all); ensemble is\n"
                   "                      the mean of the S-Mamba and DLinear forecasts (needs both)\n"
                   "  --epochs N          max epochs, early stopping patience 3 (default %ld)\n"
                   "  --lr X[,X,X,X]      S-Mamba learning rate, or one per horizon of the data set's\n"
                   "                      four (the paper scripts' style) (default %g; DLinear uses 5e-3)\n"
                   "  --block B           S-Mamba layer: shared (one in/out projection for both\n"
                   "                      directions, RMSNorm before it) or paper (two independent Mamba\n"
                   "                      modules, the S-Mamba paper's layer) (default %s)\n"
                   "  --d-model N         S-Mamba width D = FFN width (default %d)\n"
                   "  --layers N          S-Mamba layers (default %d)\n"
                   "  --d-state N         S-Mamba state size (default %d)\n"
                   "  --dropout P         S-Mamba dropout while training (default %g)\n"
                   "  --max-train N       training windows per epoch, random subset (default 0 = all)\n"
                   "  --time-budget S     per-model training time cap in seconds (default 0 = none)\n"
                   "  --seed N            random seed (default %llu)\n"
                   "  --threads N         OpenMP threads (default %ld)\n"
                   "  --data-dir DIR      where the data sets are (default: the data search path)\n"
                   "  --json              one JSON object per result line\n",
                   epochs, lr, ts_block_name(sm.block), sm.D, sm.n_layer, sm.d_state, sm.dropout, seed, threads);
            return 0;
        } else if (!strcmp(a, "--datasets")) {
            if (!v) return fprintf(stderr, "mambakit: --datasets needs a value\n"), 2;
            sets = v, i++;
        } else if (!strcmp(a, "--horizons")) {
            if (!v) return fprintf(stderr, "mambakit: --horizons needs a value\n"), 2;
            hz = v, i++;
        } else if (!strcmp(a, "--models")) {
            if (!v) return fprintf(stderr, "mambakit: --models needs a value\n"), 2;
            models = v, i++;
        } else if (!strcmp(a, "--data-dir")) {
            if (!v) return fprintf(stderr, "mambakit: --data-dir needs a value\n"), 2;
            data_dir = v, i++;
        } else if (!strcmp(a, "--epochs")) {
            if (cli_int(a, v, 1, 1000, &epochs)) return 2;
            i++;
        } else if (!strcmp(a, "--threads")) {
            if (cli_int(a, v, 1, 256, &threads)) return 2;
            i++;
        } else if (!strcmp(a, "--max-train")) {
            if (cli_int(a, v, 0, 100000000, &max_win)) return 2;
            i++;
        } else if (!strcmp(a, "--d-model")) {
            if (cli_int(a, v, 2, 4096, &x)) return 2;
            sm.D = sm.d_ff = (int)x, i++;
        } else if (!strcmp(a, "--layers")) {
            if (cli_int(a, v, 1, 16, &x)) return 2;
            sm.n_layer = (int)x, i++;
        } else if (!strcmp(a, "--d-state")) {
            if (cli_int(a, v, 1, 64, &x)) return 2;
            sm.d_state = (int)x, i++;
        } else if (!strcmp(a, "--dropout")) {
            double dp;
            if (cli_float(a, v, 0, 0.9, &dp)) return 2;
            sm.dropout = (float)dp, i++;
        } else if (!strcmp(a, "--lr")) {
            if (!v) return fprintf(stderr, "mambakit: --lr needs a value\n"), 2;
            n_lr = 0;
            for (const char *q = v; n_lr < 5;) {
                char *e;
                double f = strtod(q, &e);
                if (e == q || !(f >= 1e-7 && f <= 1) || (*e && *e != ',') || n_lr == 4)
                    return fprintf(stderr, "mambakit: --lr: '%s' is not one or four learning rates in [1e-07, 1]\n", v), 2;
                lrs[n_lr++] = f;
                if (!*e) break;
                q = e + 1;
            }
            if (n_lr != 1 && n_lr != 4)
                return fprintf(stderr, "mambakit: --lr: '%s' is not one or four learning rates in [1e-07, 1]\n", v), 2;
            lr = lrs[0], i++;
        } else if (!strcmp(a, "--block")) {
            if (!v || ts_block_parse(v) < 0)
                return fprintf(stderr, "mambakit: --block needs shared or paper, got '%s'\n", v ? v : ""), 2;
            sm.block = ts_block_parse(v), i++;
        } else if (!strcmp(a, "--time-budget")) {
            if (cli_float(a, v, 0, 1e7, &budget)) return 2;
            i++;
        } else if (!strcmp(a, "--seed")) {
            if (cli_int(a, v, 0, 1L << 62, &x)) return 2;
            seed = (unsigned long long)x, i++;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else {
            fprintf(stderr, "mambakit: bench ts: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
    ts_threads(threads);
    int kinds[4] = {TS_MODEL_SMAMBA, TS_MODEL_DLINEAR, TS_MODEL_SNAIVE, TS_MODEL_NAIVE}, any = 0;
    const int ens = in_list(models, "ensemble");
    if (ens && !(in_list(models, "smamba") && in_list(models, "dlinear"))) {
        fprintf(stderr, "mambakit: bench ts: --models ensemble needs smamba and dlinear in the list too\n");
        return 2;
    }
    if (!json)
        printf("# bench ts: %d threads, S-Mamba block=%s D=%d layers=%d d_state=%d dropout=%g lr=%g%s epochs<=%ld "
               "seed=%llu\n",
               mk_num_threads(), ts_block_name(sm.block), sm.D, sm.n_layer, sm.d_state, sm.dropout, lr,
               n_lr == 4 ? " (per horizon, see lines)" : "", epochs, seed);
    for (int d = 0; d < N_BENCH_SETS; d++) {
        const bench_set *b = &BENCH_SETS[d];
        if (!in_list(sets, b->name)) continue;
        char path[4096];
        if (!mk_find_data(data_dir, b->rel, path, sizeof path)) {
            if (sets) {
                fprintf(stderr, "mambakit: bench ts: %s not found (tried %s)\n", b->rel, path);
                return 1;
            }
            if (!json) printf("# %s: skipped, %s not found\n", b->name, b->rel);
            continue;
        }
        ts_table tb;
        int q0 = mk_quiet;
        mk_quiet = 1;
        int bad = ts_csv_read(&tb, path);
        mk_quiet = q0;
        if (bad) return cli_fail();
        ts_spacing spc;
        ts_detect_spacing(&tb, &spc);
        const int L = b->lookback;
        ts_split sp[3];
        int n_fit;
        bench_splits(b, tb.n_rows, L, sp, &n_fit);
        if (sp[2].end > tb.n_rows) {
            ts_table_free(&tb);
            mk_error("%s: %d rows, the protocol needs %d", path, tb.n_rows, sp[2].end);
            return cli_fail();
        }
        ts_series se;
        ts_series_build(&se, &tb, n_fit, spc.freq);
        int period = spc.season >= 2 && spc.season <= L ? spc.season : ts_autocorr_period(se.x, n_fit, se.C, L);
        double sum[5][2] = {{0}};
        int nh = 0;
        for (int hi = 0; hi < 4; hi++) {
            int H = b->horizons[hi];
            char hs[16];
            snprintf(hs, sizeof hs, "%d", H);
            if (hz && !in_list(hz, hs)) continue;
            nh++;
            ts_model mods[4];
            int live[4] = {0};
            for (int k = 0; k < 4; k++) {
                if (!in_list(models, ts_model_name(kinds[k]))) continue;
                if (kinds[k] == TS_MODEL_SNAIVE && period < 2) continue;
                ts_model *m = &mods[k];
                if (ts_model_create(m, kinds[k], &sm, L, H, se.C, se.F, period, seed)) {
                    free_live(mods, live, 4);
                    ts_series_free(&se);
                    ts_table_free(&tb);
                    return cli_fail();
                }
                char label[64];
                snprintf(label, sizeof label, "%s H=%d %s", b->name, H, ts_model_name(kinds[k]));
                const double lr_h = n_lr == 4 ? lrs[hi] : lr;
                char lr_note[32];
                snprintf(lr_note, sizeof lr_note, ", lr %g", lr_h);
                ts_train_cfg tc = {(int)epochs, 32, 3, kinds[k] == TS_MODEL_DLINEAR ? 5e-3f : (float)lr_h,
                                   (int)max_win, seed, 1, label, budget, 1};
                double t0 = mk_time();
                double vm = ts_model_fit(m, &se, &sp[0], &sp[1], &tc);
                double mse, mae;
                ts_model_eval(m, &se, &sp[2], &mse, &mae);
                double secs = mk_time() - t0;
                sum[k][0] += mse, sum[k][1] += mae;
                if (json)
                    printf("{\"dataset\": \"%s\", \"horizon\": %d, \"model\": \"%s\", \"mse\": %.6f, \"mae\": %.6f, "
                           "\"val_mse\": %.6f, \"test_windows\": %d, \"seconds\": %.1f, \"lr\": %g}\n",
                           b->name, H, ts_model_name(kinds[k]), mse, mae, vm, ts_split_windows(&sp[2], L, H), secs,
                           kinds[k] == TS_MODEL_SMAMBA || kinds[k] == TS_MODEL_DLINEAR ? tc.lr : 0.0);
                else
                    printf("%-8s H=%-4d %-8s test MSE %.4f  MAE %.4f   (val MSE %.4f, %d test windows, %.0f s%s)\n",
                           b->name, H, ts_model_name(kinds[k]), mse, mae, vm, ts_split_windows(&sp[2], L, H), secs,
                           kinds[k] == TS_MODEL_SMAMBA ? lr_note : "");
                fflush(stdout);
                live[k] = 1;
                any = 1;
            }
            if (ens && live[0] && live[1]) {
                /* equal weights: nothing is fitted to the validation (or test) months */
                ts_model en;
                double mse, mae;
                if (ts_model_ensemble(&en, &mods[0], &mods[1])) {
                    free_live(mods, live, 4);
                    ts_series_free(&se);
                    ts_table_free(&tb);
                    return cli_fail();
                }
                ts_model_eval(&en, &se, &sp[2], &mse, &mae);
                ts_model_free(&en);
                sum[4][0] += mse, sum[4][1] += mae;
                if (json)
                    printf("{\"dataset\": \"%s\", \"horizon\": %d, \"model\": \"ensemble\", \"members\": "
                           "\"smamba+dlinear\", \"mse\": %.6f, \"mae\": %.6f, \"test_windows\": %d}\n",
                           b->name, H, mse, mae, ts_split_windows(&sp[2], L, H));
                else
                    printf("%-8s H=%-4d %-8s test MSE %.4f  MAE %.4f   (mean of the S-Mamba and DLinear forecasts)\n",
                           b->name, H, "ensemble", mse, mae);
                fflush(stdout);
            }
            free_live(mods, live, 4);
        }
        if (nh && !json) {
            for (int k = 0; k < 4; k++) {
                if (!in_list(models, ts_model_name(kinds[k])) || (kinds[k] == TS_MODEL_SNAIVE && period < 2)) continue;
                printf("%-8s avg over %d horizon%s  %-8s MSE %.4f  MAE %.4f\n", b->name, nh, nh == 1 ? "" : "s",
                       ts_model_name(kinds[k]), sum[k][0] / nh, sum[k][1] / nh);
            }
            if (ens)
                printf("%-8s avg over %d horizon%s  %-8s MSE %.4f  MAE %.4f\n", b->name, nh, nh == 1 ? "" : "s",
                       "ensemble", sum[4][0] / nh, sum[4][1] / nh);
            if (b->pub_smamba[0] > 0 && nh == 4)
                printf("%-8s published avg: S-Mamba %.3f/%.3f  iTransformer 0.454/0.447  PatchTST 0.469/0.454  "
                       "DLinear 0.456/0.452\n",
                       b->name, b->pub_smamba[0], b->pub_smamba[1]);
        }
        ts_series_free(&se);
        ts_table_free(&tb);
    }
    if (!any) {
        fprintf(stderr, "mambakit: bench ts: no data set found (use --data-dir)\n");
        return 1;
    }
    return 0;
}
