/* ckpt.h — the checkpoint file format (little-endian throughout).
 *
 *   offset 0   char[8]  magic "MAMBAKIT"
 *          8   u32      version (MK_CKPT_VERSION)
 *         12   u32      flags   (bit 0: optimiser state present)
 *         16   char[32] task name ("vision", "forecast", "enhance", "mil", "copy", ...)
 *         48   u32      n_config, u32 n_tensors, u64 step
 *         64   n_config x { char key[32]; char value[96]; }   config, as text
 *              n_tensors x { char name[64]; u32 ndim; u32 shape[4]; u64 numel; u64 offset; }
 *              float32 data, tensor i at data_start + 4*offset
 *              (if flags & 1) float32 AdamW m, then v, same layout
 *
 * Loading checks magic, version, task, every count and size against the file
 * length before reading, and that every tensor the model declares is present
 * with the same shape. Writes go to a temp file renamed into place. */
#ifndef MK_CKPT_H
#define MK_CKPT_H

#include "params.h"

#define MK_CKPT_VERSION 1
#define MK_CKPT_KEY 32
#define MK_CKPT_VAL 96
#define MK_CKPT_MAX_CONFIG 256

typedef struct {
    char task[32];
    int n;
    char key[MK_CKPT_MAX_CONFIG][MK_CKPT_KEY];
    char val[MK_CKPT_MAX_CONFIG][MK_CKPT_VAL];
} mk_config;

void mk_config_init(mk_config *c, const char *task);
void mk_config_set(mk_config *c, const char *key, const char *fmt, ...) MK_PRINTF(3, 4);
void mk_config_set_int(mk_config *c, const char *key, long v);
void mk_config_set_float(mk_config *c, const char *key, double v);
const char *mk_config_get(const mk_config *c, const char *key); /* NULL if absent */
/* Return 0 and set *out, or -1 with mk_error naming the key if absent/invalid. */
int mk_config_get_int(const mk_config *c, const char *key, long *out);
int mk_config_get_float(const mk_config *c, const char *key, double *out);

/* Save params (and optimiser moments if with_optim and allocated). 0 on success. */
int mk_ckpt_save(const char *path, const mk_config *cfg, const mk_params *p, int with_optim);

/* Read only the header + config (to learn the architecture before building
 * the model). expect_task may be NULL. 0 on success, else mk_error set. */
int mk_ckpt_read_config(const char *path, const char *expect_task, mk_config *cfg);

/* Compare a declared table (allocated or not) with the file's: same tensors,
 * names, shapes. Loaders call it after declaring a model from the file's
 * config and *before* allocating, so a config that asks for more than the file
 * holds (a corrupted or hand-edited header) is refused before any memory is
 * taken. 0, or -1 with mk_error naming the file. */
int mk_ckpt_check_table(const char *path, const char *expect_task, const mk_params *p);
/* Load tensor values into an already-declared-and-allocated params table
 * (matching by name and shape). If the file has optimiser state and p has
 * moments allocated (or want_optim), they are loaded too. 0 on success. */
int mk_ckpt_load(const char *path, const char *expect_task, mk_config *cfg, mk_params *p,
                 int want_optim);

/* Load a model file whatever it holds: declare its tensors (names and shapes
 * from the file's table, no weight-decay flags) into p, which must be freshly
 * initialised, allocate and read the values. Optimiser state is not read.
 * For tools that treat every model alike (averaging). 0 on success. */
int mk_ckpt_load_table(const char *path, const char *expect_task, mk_config *cfg, mk_params *p);

#endif
