/* ts.h — time-series forecasting: CSV tables, time features, splits and
 * windows, RevIN, the S-Mamba forecaster, honest baselines (last value,
 * seasonal naive, DLinear), metrics and a PNG plot.
 *
 * Dimension letters used throughout timeseries/:
 *   B batch (windows), L lookback, H horizon, C variates (numeric columns),
 *   F time-feature covariates, T = C + F tokens, D model width, Fd FFN width.
 * A window's input is (L, C) row-major (time-major, like the CSV), its target
 * (H, C). Everything the models see is on the standardised scale (per-column
 * z-score fitted on the training rows), as in the literature's protocol. */
#ifndef MK_TS_H
#define MK_TS_H

#include <stddef.h>
#include <stdint.h>

#include "core/backend.h" /* mk_ts_frontend (CUDA-free) */
#include "core/mamba.h"
#include "core/params.h"

/* ------------------------------------------------------------------ table */

enum { TS_TIME_NONE = 0, TS_TIME_DATE = 1, TS_TIME_INDEX = 2 };

typedef struct {
    int n_rows, n_cols;  /* numeric columns kept */
    float *x;            /* (n_rows, n_cols) */
    char **names;        /* n_cols column names */
    int *row_line;       /* (n_rows) 1-based line number of each data row */
    int time_kind;       /* TS_TIME_* */
    char *time_name;     /* header of the time column, NULL if none */
    double *t;           /* (n_rows) seconds since 1970 (dates) or the index value */
    /* how the time column was written, to continue it in the same style */
    char date_sep;       /* '-' or '/' */
    int date_parts;      /* 3: Y-M-D, 2: Y-M (monthly) */
    int has_clock;       /* a time of day was present */
    int has_seconds;     /* ... with seconds */
    int t_sep;           /* 'T' or ' ' between date and time */
    int n_filled;        /* NA cells filled by interpolation */
    int n_skipped;       /* non-numeric columns skipped */
    int n_unordered;     /* rows whose time does not increase (warned) */
    char delim;          /* detected delimiter */
} ts_table;

/* Parse CSV text (header row; delimiter , ; or tab detected from the header;
 * RFC 4180 quotes; CRLF or LF; UTF-8 BOM). A date/time column (ISO 8601 dates
 * and datetimes, also Y/M/D) or a leading strictly increasing integer column
 * becomes the time axis. Empty/NA/NaN/null cells are filled by linear
 * interpolation (warning with the count); columns with other non-numeric text
 * are skipped (warning). Errors (ragged row, no numeric column, no data rows)
 * return -1 with "name: line N: ..." in mk_error. */
int ts_csv_parse(ts_table *t, const char *text, size_t len, const char *name);
int ts_csv_read(ts_table *t, const char *path);
void ts_table_free(ts_table *t);
/* Keep only the named columns (in the given order). -1 + mk_error if absent. */
int ts_table_select(ts_table *t, const char *const *names, int n, const char *file);

/* Parse an ISO-8601-ish date/datetime: YYYY-MM-DD[( |T)HH:MM[:SS[.fff]]][Z],
 * also with '/' and unpadded fields. Returns 1 and seconds since 1970. */
typedef struct {
    char date_sep;
    int date_parts, has_clock, has_seconds, t_sep;
} ts_time_style;
int ts_parse_datetime(const char *s, double *out, ts_time_style *st);
void ts_civil_from_days(long z, int *y, int *m, int *d);
long ts_days_from_civil(int y, int m, int d);

/* ------------------------------------------------------- spacing, features */

enum { TS_STEP_SECONDS = 0, TS_STEP_MONTHS = 1 };
typedef struct {
    int kind;        /* TS_STEP_SECONDS or TS_STEP_MONTHS */
    double seconds;  /* step for SECONDS (or the index step) */
    int months;      /* step for MONTHS (12 = yearly) */
    char freq;       /* 't' minutes, 'h' hourly, 'd' daily, 'w' weekly, 'm' monthly, 'y', '?' */
    int season;      /* natural period in steps (24 hourly, 7 daily...), 0 if unknown */
} ts_spacing;

/* Median spacing of the time column (dates: calendar-aware for months/years). */
void ts_detect_spacing(const ts_table *t, ts_spacing *s);
/* t_next = t_last advanced by k steps. */
double ts_advance(const ts_spacing *s, double t_last, int k);
/* Format a time value in the table's style into buf. */
void ts_format_time(const ts_table *t, double v, char *buf, size_t n);

/* Number of Autoformer "timeF" features for a frequency, and the features of
 * one timestamp in [-0.5, 0.5] (minute, hour, weekday, day of month, day of
 * year, month, week of year as the frequency needs). */
int ts_time_nfeat(char freq);
void ts_time_features(float *out, double t, char freq);

/* Seasonal period by autocorrelation of the first column's training part
 * (2 <= P <= maxp); 0 if no clear peak. */
int ts_autocorr_period(const float *x, int n, int stride, int maxp);

/* ------------------------------------------------------ splits, windows */

/* A standardised series with its covariates, and one split's window range. */
typedef struct {
    int n, C, F;
    float *x;    /* (n, C) standardised */
    float *mark; /* (n, F) time features, NULL when F == 0 */
    float *mean, *std; /* (C) scaler fitted on the training rows */
} ts_series;

typedef struct {
    int start, end; /* rows [start, end) hold the split incl. its lookback lead-in */
} ts_split;

static inline int ts_split_windows(const ts_split *s, int L, int H) {
    int n = s->end - s->start - L - H + 1;
    return n > 0 ? n : 0;
}

/* Build the standardised series from a table (scaler fitted on rows [0, n_fit)). */
void ts_series_build(ts_series *s, const ts_table *t, int n_fit, char freq);
void ts_series_free(ts_series *s);
/* Copy window w of split sp: x (L, C), y (H, C) (y may be NULL), mark (L, F). */
void ts_window(const ts_series *s, const ts_split *sp, int w, int L, int H, float *x, float *y, float *mark);

/* ------------------------------------------------------------- RevIN */

/* Per-window, per-variate normalisation (non-affine RevIN as in iTransformer /
 * S-Mamba): mean and std = sqrt(var + 1e-5) over L. x, xn (B, L, C). */
void ts_revin_norm(float *xn, float *mean, float *std, const float *x, int B, int L, int C);
/* y (B, H, C) = yn * std + mean */
void ts_revin_denorm(float *y, const float *yn, const float *mean, const float *std, int B, int H, int C);

/* ------------------------------------------------------------- models */

/* TS_MODEL_ENSEMBLE: the mean of an S-Mamba and a DLinear forecast, each member fitted on its
 * own (equal weights: nothing is fitted to the validation split); one model file holds both. */
enum { TS_MODEL_NAIVE = 0, TS_MODEL_SNAIVE = 1, TS_MODEL_DLINEAR = 2, TS_MODEL_SMAMBA = 3, TS_MODEL_ENSEMBLE = 4 };
const char *ts_model_name(int kind);

/* The bidirectional Mamba block of an encoder layer (stored in model files as
 * "block"; files without it are TS_BLOCK_SHARED):
 *   TS_BLOCK_SHARED: h = e + BiMamba(RMSNorm(e)): one core layer, G = 2
 *                    directions sharing in_proj/out_proj (Vim "v2" shape);
 *   TS_BLOCK_PAPER:  h = e + Mamba_f(e) + flip(Mamba_r(flip(e))): two complete,
 *                    independent Mamba modules (own in/out projections, G = 1
 *                    each, no norm before them), exactly the S-Mamba paper's layer. */
enum { TS_BLOCK_SHARED = 0, TS_BLOCK_PAPER = 1 };

typedef struct {
    int L, H, C, F;
    int D, n_layer, d_ff, d_state, d_conv, expand;
    float dropout; /* after the embedding, the FFN activation and the FFN output (training only) */
    int block;     /* TS_BLOCK_SHARED (0) or TS_BLOCK_PAPER */
} ts_smamba_cfg;
const char *ts_block_name(int block);
int ts_block_parse(const char *s); /* "shared"/"paper" -> TS_BLOCK_*, -1 otherwise */

/* S-Mamba (Wang et al. 2024, "Is Mamba Effective for Time Series
 * Forecasting?"), built on the core backbone; see docs/TIMESERIES.md:
 *   RevIN -> tokens (C variates + F covariates, each its L-step window)
 *   -> embed Linear(L -> D)
 *   -> n_layer x [ h = e + BiMamba(RMSNorm(e)) (identity + reverse order over
 *                  the tokens, per-direction conv/x_proj/dt_proj/A/D, shared
 *                  in/out projection, sum merge) -- or, TS_BLOCK_PAPER,
 *                  h = e + Mamba_f(e) + flip(Mamba_r(flip(e))); n = LN1(h);
 *                  e = LN2(n + W2 gelu(W1 n)) ]
 *   -> LN -> head Linear(D -> H) on the C variate tokens -> de-normalise. */
typedef struct {
    ts_smamba_cfg cfg;
    mk_params *p;
    mamba_backbone *mamba; /* n_bb backbones of one layer each: per encoder layer one
                              (shared) or two, forward then reverse (paper) */
    mamba_acts *macts;
    int n_bb;
    int emb_w, emb_b;
    int *ln1_w, *ln1_b, *ff1_w, *ff1_b, *ff2_w, *ff2_b, *ln2_w, *ln2_b;
    int lnf_w, lnf_b, head_w, head_b;
    int *orders[2];   /* identity, reverse over T tokens */
    /* activations of the last forward (capacity in windows) */
    int cap_B, B;
    float *buf;
    int training; /* dropout on (set by the training harness) */
    int drop_on;  /* the last forward used dropout masks */
    mk_rng rng;   /* dropout masks */
} ts_smamba;

/* Declare into p (already initialised, not allocated). 0 or -1 + mk_error. */
int ts_smamba_declare(ts_smamba *m, mk_params *p, const ts_smamba_cfg *c);
void ts_smamba_init(ts_smamba *m, mk_rng *rng);
void ts_smamba_free(ts_smamba *m);
/* x (B, L, C) standardised, mark (B, L, F) or NULL; pred (B, H, C). */
void ts_smamba_forward(ts_smamba *m, float *pred, const float *x, const float *mark, int B);
/* dpred (B, H, C) -> parameter gradients (+=). Uses the last forward. */
void ts_smamba_backward(ts_smamba *m, const float *dpred);

/* The model's shapes and tensor indices for the GPU step (core/backend.h). */
void ts_smamba_cuda_frontend(const ts_smamba *m, mk_ts_frontend *f);
/* One training step with every op on the GPU (mk_cuda_ts_train_step): RevIN, the tokens and the
 * dropout masks are made here on the host exactly as ts_smamba_forward makes them (the same
 * m->rng draws in the same order), then the batch goes up and the step runs there. x (B, L, C),
 * mark (B, L, F) or NULL, y (B, H, C); *loss the MSE. 0, or -1 with mk_error. The weights stay
 * on the GPU until mamba_backbone_cuda_sync_host(&m->mamba[0]). */
int ts_smamba_train_step_cuda(ts_smamba *m, const float *x, const float *mark, const float *y, int B,
                              const mk_adamw_cfg *oc, float *loss);

/* DLinear (Zeng et al. 2023), shared across variates: moving average (kernel
 * k, edge-replicate padding) splits x into trend + seasonal, each mapped
 * L -> H by its own linear layer, outputs summed. */
typedef struct {
    int L, H, C, k;
    mk_params *p;
    int ws, bs, wt, bt;
    int cap, B;
    float *buf;
} ts_dlinear;
int ts_dlinear_declare(ts_dlinear *m, mk_params *p, int L, int H, int C, int kernel);
void ts_dlinear_init(ts_dlinear *m, mk_rng *rng);
void ts_dlinear_free(ts_dlinear *m);
/* Moving average along n with edge replication, kernel k, of each column of
 * x (n, cols) into trend (n, cols); acc: cols doubles of scratch. */
void ts_moving_avg(float *trend, const float *x, int n, int cols, int k, double *acc);
void ts_dlinear_forward(ts_dlinear *m, float *pred, const float *x, int B);
void ts_dlinear_backward(ts_dlinear *m, const float *dpred);

/* Baselines: x (B, L, C) -> pred (B, H, C). */
void ts_naive_forward(float *pred, const float *x, int B, int L, int H, int C);
/* pred[h] = x[L - P + (h mod P)]; P must be in [1, L]. */
void ts_snaive_forward(float *pred, const float *x, int B, int L, int H, int C, int P);

/* ---------------------------------------------------- training harness */

typedef struct {
    int kind;              /* TS_MODEL_* */
    ts_smamba_cfg sm;      /* for S-Mamba (L, H, C, F set) */
    int L, H, C, F, period;
    mk_params p;
    ts_smamba smamba;   /* SMAMBA, ENSEMBLE */
    ts_dlinear dlinear; /* DLINEAR, ENSEMBLE */
    int gpu_backbone_only; /* S-Mamba with its backbones on a GPU: 0 (default) ts_model_fit runs every
                              op of the step there, weights resident; 1 the backbones only, per-call
                              copies (--gpu-step backbone) */
} ts_model;

typedef struct {
    int epochs, batch, patience;
    float lr;
    int max_train_windows; /* per epoch, 0 = all (random subset otherwise) */
    uint64_t seed;
    int verbose;           /* progress line */
    const char *label;
    double time_budget;    /* seconds, 0 = none: stop training after it */
    int val_stride;        /* validate on every k-th window (0/1 = all) */
} ts_train_cfg;

/* Create a model (params allocated and initialised). */
int ts_model_create(ts_model *m, int kind, const ts_smamba_cfg *sm, int L, int H, int C, int F, int period,
                    uint64_t seed);
/* The same, for loading: the declared tensors must equal the tensor table of
 * the model file `match` before anything is allocated (a config that asks for
 * more than the file holds is refused without taking the memory). */
int ts_model_create_matching(ts_model *m, int kind, const ts_smamba_cfg *sm, int L, int H, int C, int F, int period,
                             const char *match);
void ts_model_free(ts_model *m);
/* Run an S-Mamba model's backbones on dev (MK_DEV_CPU / MK_DEV_CUDA from mk_device_parse;
 * all or none, falling back to the CPU with a notice: the default d_state 2 and the paper
 * block's norm-free layers are outside the CUDA kernels' shapes). Other models: the CPU.
 * Returns the device. */
int ts_model_use_device(ts_model *m, int dev);
/* The ensemble of two fitted models (same L, H, C): a new model e holding copies of both. */
int ts_model_ensemble(ts_model *e, const ts_model *smamba, const ts_model *dlinear);
/* After copying a ts_model struct by value: point its layers at its own params. */
void ts_model_relink(ts_model *m);
/* Predict B windows. */
void ts_model_predict(ts_model *m, float *pred, const float *x, const float *mark, int B);
/* Learning rate of 0-based epoch ep under the reference recipe's "type1" schedule. */
float ts_type1_lr(float lr, int ep);
/* Train on tr with early stopping on va (keeps the best weights). Returns
 * the best validation MSE (or the baseline's MSE for parameter-free models and
 * for an ensemble, whose members are fitted on their own). */
double ts_model_fit(ts_model *m, const ts_series *s, const ts_split *tr, const ts_split *va, const ts_train_cfg *tc);
/* MSE and MAE over every window (stride 1) of a split, standardised scale. */
void ts_model_eval(ts_model *m, const ts_series *s, const ts_split *sp, double *mse, double *mae);

/* ------------------------------------------------------------- plot */

/* One panel per column: history (n_hist points) then forecast (n_fc points),
 * hist (n_hist, C), fc (n_fc, C) row-major. Writes a PNG atomically. */
int ts_plot_png(const char *path, const float *hist, int n_hist, const float *fc, int n_fc, int C,
                const char *const *names);

#endif
