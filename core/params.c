/* params.c — the parameter table: declare, allocate once, view by index. */
#include "params.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void mk_params_init(mk_params *p) { memset(p, 0, sizeof *p); }

int mk_params_add(mk_params *p, const char *name, int decay, int ndim, ...) {
    MK_ASSERT(!p->data && ndim >= 1 && ndim <= MK_MAX_DIMS);
    MK_ASSERT(strlen(name) < MK_NAME_MAX);
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        p->t = mk_realloc(p->t, sizeof(mk_tensor) * p->cap);
    }
    mk_tensor *t = &p->t[p->n];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->decay = decay;
    va_list ap;
    va_start(ap, ndim);
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = va_arg(ap, int);
        MK_ASSERT(t->shape[i] > 0);
        t->numel *= (size_t)t->shape[i];
    }
    va_end(ap);
    t->offset = p->total;
    p->total += t->numel;
    return p->n++;
}

int mk_params_alloc(mk_params *p) {
    MK_ASSERT(!p->data);
    p->data = mk_calloc(p->total, sizeof(float));
    p->grad = mk_calloc(p->total, sizeof(float));
    return 0;
}
void mk_params_alloc_optim(mk_params *p) {
    if (!p->m) p->m = mk_calloc(p->total, sizeof(float));
    if (!p->v) p->v = mk_calloc(p->total, sizeof(float));
}
void mk_params_free(mk_params *p) {
    free(p->t);
    free(p->data);
    free(p->grad);
    free(p->m);
    free(p->v);
    memset(p, 0, sizeof *p);
}
void mk_params_zero_grad(mk_params *p) { memset(p->grad, 0, sizeof(float) * p->total); }
int mk_params_find(const mk_params *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->t[i].name, name)) return i;
    return -1;
}

void mk_init_uniform(float *w, size_t n, float lo, float hi, mk_rng *rng) {
    for (size_t i = 0; i < n; i++) w[i] = lo + (hi - lo) * mk_rng_uniform(rng);
}
void mk_init_normal(float *w, size_t n, float std, mk_rng *rng) {
    for (size_t i = 0; i < n; i++) w[i] = std * mk_rng_normal(rng);
}
void mk_init_const(float *w, size_t n, float v) {
    for (size_t i = 0; i < n; i++) w[i] = v;
}
void mk_init_linear(float *W, float *b, int O, int I, mk_rng *rng) {
    float k = 1.0f / sqrtf((float)I);
    mk_init_uniform(W, (size_t)O * I, -k, k, rng);
    if (b) mk_init_uniform(b, O, -k, k, rng);
}
