/* selcopy.h — the Mamba paper's selective-copying task and a small model for it.
 *
 * ref: Gu & Dao 2023, Sec. 3.1 / 4.1.1. A sequence of body_len tokens holds
 * n_data data tokens (drawn from 1..vocab) at random positions among noise
 * tokens (0); then n_data query tokens (vocab+1) follow, and at the i-th
 * query the model must output the i-th data token. Because the positions are
 * random, a time-invariant (LTI) model cannot know what to keep: this is the
 * task that shows what input-dependent Δ, B, C buy.
 *
 * Model: token embedding -> causal Mamba backbone (G = 1) -> linear head over
 * vocab+2 classes; cross-entropy on the query positions only. */
#ifndef MK_SELCOPY_H
#define MK_SELCOPY_H

#include "core/mamba.h"

typedef struct {
    int vocab, n_data, body_len;        /* task */
    int d_model, n_layer, d_state;      /* model */
    int selective;                      /* 0 turns selection off */
    int batch, steps;                   /* training */
    float lr;
    unsigned long long seed;
    int eval_batches;
    int verbose;                        /* progress line */
} selcopy_opts;

typedef struct {
    float accuracy;   /* token accuracy on fresh sequences */
    float final_loss;
    double seconds;
    long params;
} selcopy_result;

void selcopy_defaults(selcopy_opts *o);
/* tokens, targets (B, L) with L = body_len + n_data; targets -1 where no output is asked. */
void selcopy_batch(int *tokens, int *targets, int B, const selcopy_opts *o, mk_rng *r);
/* Trains from scratch and evaluates. 0 on success. If save_path, writes the model. */
int selcopy_run(const selcopy_opts *o, selcopy_result *res, const char *save_path);

#endif
