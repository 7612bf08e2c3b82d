/* params.h — every trainable tensor of a model in one allocation.
 *
 * A model first *declares* its tensors (name, shape, weight-decay flag) into an
 * mk_params table, then calls mk_params_alloc once: one buffer for values, one
 * for gradients, and (for training) one each for the AdamW moments. Tensors are
 * then addressed as views: mk_param(p, idx) / mk_grad(p, idx). Saving, loading,
 * zeroing and the optimiser are each one loop over the table.
 *
 * Declare everything before alloc; after alloc the table is frozen. */
#ifndef MK_PARAMS_H
#define MK_PARAMS_H

#include <stddef.h>
#include "util.h"

#define MK_NAME_MAX 64
#define MK_MAX_DIMS 4

typedef struct {
    char name[MK_NAME_MAX];
    int ndim;
    int shape[MK_MAX_DIMS];
    size_t offset; /* in floats, into data/grad */
    size_t numel;
    int decay; /* 1: AdamW weight decay applies (matrices); 0: norms, biases, A_log, D */
} mk_tensor;

typedef struct {
    mk_tensor *t;
    int n, cap;
    size_t total; /* floats */
    float *data, *grad;
    float *m, *v; /* AdamW moments, NULL until mk_params_alloc_optim */
    long step;    /* optimiser step count, saved in checkpoints */
} mk_params;

void mk_params_init(mk_params *p);
/* Declare a tensor; returns its index. Shape dims after ndim (up to 4). */
int mk_params_add(mk_params *p, const char *name, int decay, int ndim, ...);
/* Allocate data + grad (zeroed). Returns 0. */
int mk_params_alloc(mk_params *p);
/* Allocate AdamW moments (zeroed). */
void mk_params_alloc_optim(mk_params *p);
void mk_params_free(mk_params *p);
void mk_params_zero_grad(mk_params *p);
int mk_params_find(const mk_params *p, const char *name); /* -1 if absent */

static inline float *mk_param(const mk_params *p, int i) { return p->data + p->t[i].offset; }
static inline float *mk_grad(const mk_params *p, int i) { return p->grad + p->t[i].offset; }

/* Initialisers (deterministic given rng). */
void mk_init_uniform(float *w, size_t n, float lo, float hi, mk_rng *rng);
void mk_init_normal(float *w, size_t n, float std, mk_rng *rng);
void mk_init_const(float *w, size_t n, float v);
/* PyTorch nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
void mk_init_linear(float *W, float *b, int O, int I, mk_rng *rng);

#endif
