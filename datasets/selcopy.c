/* selcopy.c — selective-copying task generator, model, training loop. */
#include "datasets/selcopy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ckpt.h"
#include "core/ops.h"
#include "core/optim.h"

void selcopy_defaults(selcopy_opts *o) {
    memset(o, 0, sizeof *o);
    o->vocab = 8;
    o->n_data = 8;
    o->body_len = 48;
    o->d_model = 32;
    o->n_layer = 2;
    o->d_state = 16;
    o->selective = 1;
    o->batch = 32;
    o->steps = 1200;
    o->lr = 4e-3f;
    o->seed = 1;
    o->eval_batches = 8;
}

void selcopy_batch(int *tokens, int *targets, int B, const selcopy_opts *o, mk_rng *r) {
    const int L = o->body_len + o->n_data;
    int *pos = mk_malloc(sizeof(int) * o->body_len);
    for (int b = 0; b < B; b++) {
        int *tk = tokens + (size_t)b * L, *tg = targets + (size_t)b * L;
        for (int t = 0; t < L; t++) tk[t] = 0, tg[t] = -1;
        /* choose n_data distinct positions, keep them in increasing order */
        for (int t = 0; t < o->body_len; t++) pos[t] = t;
        mk_rng_shuffle(r, pos, o->body_len);
        char *mark = mk_calloc(o->body_len, 1);
        for (int i = 0; i < o->n_data; i++) mark[pos[i]] = 1;
        int k = 0;
        for (int t = 0; t < o->body_len; t++)
            if (mark[t]) {
                int v = 1 + mk_rng_int(r, o->vocab);
                tk[t] = v;
                tg[o->body_len + k] = v;
                k++;
            }
        for (int i = 0; i < o->n_data; i++) tk[o->body_len + i] = o->vocab + 1;
        free(mark);
    }
    free(pos);
}

int selcopy_run(const selcopy_opts *o, selcopy_result *res, const char *save_path) {
    const int V = o->vocab + 2, D = o->d_model, L = o->body_len + o->n_data, B = o->batch;
    const int T = B * L;
    mk_params p;
    mk_params_init(&p);
    int emb = mk_params_add(&p, "embedding.weight", 1, 2, V, D);
    mamba_cfg c;
    mamba_cfg_default(&c, D, o->n_layer);
    c.d_state = o->d_state;
    c.selective = o->selective;
    mamba_backbone m;
    if (mamba_backbone_declare(&m, &p, "backbone.", &c)) return -1;
    int hw = mk_params_add(&p, "head.weight", 1, 2, V, D);
    int hb = mk_params_add(&p, "head.bias", 0, 1, V);
    mk_params_alloc(&p);
    mk_rng rng;
    mk_rng_seed(&rng, o->seed);
    mk_init_normal(mk_param(&p, emb), (size_t)V * D, 1.0f, &rng);
    mamba_backbone_init(&m, &rng);
    mk_init_linear(mk_param(&p, hw), mk_param(&p, hb), V, D, &rng);
    res->params = (long)p.total;

    int *tok = mk_malloc(sizeof(int) * T), *tgt = mk_malloc(sizeof(int) * T);
    float *x = mk_malloc(sizeof(float) * T * D), *h = mk_malloc(sizeof(float) * T * D);
    float *dh = mk_malloc(sizeof(float) * T * D), *dx = mk_malloc(sizeof(float) * T * D);
    float *logits = mk_malloc(sizeof(float) * T * V), *dlog = mk_malloc(sizeof(float) * T * V);
    mamba_acts acts;
    mamba_acts_init(&acts);
    mk_adamw_cfg oc = mk_adamw_defaults(o->lr, o->steps);
    oc.weight_decay = 0.1f;
    mk_progress prog;
    if (o->verbose) mk_progress_start(&prog, o->selective ? "selcopy (selective)" : "selcopy (LTI)", o->steps);
    double t0 = mk_time();
    float loss = 0, ema = -1;
    for (int s = 0; s < o->steps; s++) {
        selcopy_batch(tok, tgt, B, o, &rng);
        const float *E = mk_param(&p, emb);
        for (int t = 0; t < T; t++) memcpy(x + (size_t)t * D, E + (size_t)tok[t] * D, sizeof(float) * D);
        mamba_backbone_forward(&m, &acts, h, x, B, L, NULL, 1, &rng);
        linear_forward(logits, h, mk_param(&p, hw), mk_param(&p, hb), T, D, V);
        int hits;
        loss = crossentropy_forward_backward(dlog, NULL, &hits, logits, tgt, T, V, 1.f);
        mk_params_zero_grad(&p);
        memset(dh, 0, sizeof(float) * T * D);
        linear_backward(dh, mk_grad(&p, hw), mk_grad(&p, hb), dlog, h, mk_param(&p, hw), T, D, V);
        memset(dx, 0, sizeof(float) * T * D);
        mamba_backbone_backward(&m, &acts, dx, dh);
        float *gE = mk_grad(&p, emb);
        for (int t = 0; t < T; t++) vec_acc(gE + (size_t)tok[t] * D, dx + (size_t)t * D, D);
        mk_adamw_step(&p, &oc);
        ema = ema < 0 ? loss : 0.98f * ema + 0.02f * loss;
        if (o->verbose) {
            char extra[64];
            snprintf(extra, sizeof extra, "loss %.3f  acc %.1f%%", ema, 100.0 * hits / (B * o->n_data));
            mk_progress_update(&prog, s + 1, "steps", extra);
        }
    }
    if (o->verbose) mk_progress_end(&prog);
    /* evaluate on fresh sequences */
    long hit = 0, total = 0;
    for (int e = 0; e < o->eval_batches; e++) {
        selcopy_batch(tok, tgt, B, o, &rng);
        const float *E = mk_param(&p, emb);
        for (int t = 0; t < T; t++) memcpy(x + (size_t)t * D, E + (size_t)tok[t] * D, sizeof(float) * D);
        mamba_backbone_forward(&m, &acts, h, x, B, L, NULL, 0, NULL);
        linear_forward(logits, h, mk_param(&p, hw), mk_param(&p, hb), T, D, V);
        int hits;
        crossentropy_forward_backward(NULL, NULL, &hits, logits, tgt, T, V, 1.f);
        hit += hits;
        total += (long)B * o->n_data;
    }
    res->accuracy = (float)hit / (float)total;
    res->final_loss = ema;
    res->seconds = mk_time() - t0;
    int rc = 0;
    if (save_path) {
        mk_config cfg;
        mk_config_init(&cfg, "selcopy");
        mk_config_set_int(&cfg, "vocab", o->vocab);
        mk_config_set_int(&cfg, "n_data", o->n_data);
        mk_config_set_int(&cfg, "body_len", o->body_len);
        mk_config_set_int(&cfg, "d_model", D);
        mk_config_set_int(&cfg, "n_layer", o->n_layer);
        mk_config_set_int(&cfg, "d_state", o->d_state);
        mk_config_set_int(&cfg, "selective", o->selective);
        mk_config_set_float(&cfg, "accuracy", res->accuracy);
        rc = mk_ckpt_save(save_path, &cfg, &p, 0);
    }
    mamba_acts_free(&acts);
    mamba_backbone_free(&m);
    mk_params_free(&p);
    free(tok), free(tgt), free(x), free(h), free(dh), free(dx), free(logits), free(dlog);
    return rc;
}
