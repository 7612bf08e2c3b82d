/* ckpt.c — checkpoint save/load (format in ckpt.h). Every count and size is
 * checked against the file length before anything is allocated or read. */
#include "ckpt.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char MAGIC[8] = {'M', 'A', 'M', 'B', 'A', 'K', 'I', 'T'};
#define HDR_BYTES 64
#define CFG_BYTES (MK_CKPT_KEY + MK_CKPT_VAL)
#define TEN_BYTES (MK_NAME_MAX + 4 + 16 + 8 + 8)
#define MAX_TENSORS 100000

void mk_config_init(mk_config *c, const char *task) {
    memset(c, 0, sizeof *c);
    snprintf(c->task, sizeof c->task, "%s", task ? task : "");
}
void mk_config_set(mk_config *c, const char *key, const char *fmt, ...) {
    MK_ASSERT(strlen(key) < MK_CKPT_KEY);
    int i;
    for (i = 0; i < c->n; i++)
        if (!strcmp(c->key[i], key)) break;
    if (i == c->n) {
        MK_ASSERT(c->n < MK_CKPT_MAX_CONFIG);
        c->n++;
        snprintf(c->key[i], MK_CKPT_KEY, "%s", key);
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->val[i], MK_CKPT_VAL, fmt, ap);
    va_end(ap);
}
void mk_config_set_int(mk_config *c, const char *key, long v) { mk_config_set(c, key, "%ld", v); }
void mk_config_set_float(mk_config *c, const char *key, double v) { mk_config_set(c, key, "%.9g", v); }
const char *mk_config_get(const mk_config *c, const char *key) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->key[i], key)) return c->val[i];
    return NULL;
}
int mk_config_get_int(const mk_config *c, const char *key, long *out) {
    const char *v = mk_config_get(c, key);
    char *end;
    if (!v) {
        mk_error("model config has no '%s'", key);
        return -1;
    }
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end) {
        mk_error("model config '%s' is not an integer: '%s'", key, v);
        return -1;
    }
    *out = x;
    return 0;
}
int mk_config_get_float(const mk_config *c, const char *key, double *out) {
    const char *v = mk_config_get(c, key);
    char *end;
    if (!v) {
        mk_error("model config has no '%s'", key);
        return -1;
    }
    double x = strtod(v, &end);
    if (end == v || *end) {
        mk_error("model config '%s' is not a number: '%s'", key, v);
        return -1;
    }
    *out = x;
    return 0;
}

static void put_u32(unsigned char *b, uint32_t v) {
    for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *b, uint64_t v) {
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *b) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)b[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const unsigned char *b) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)b[i] << (8 * i);
    return v;
}

int mk_ckpt_save(const char *path, const mk_config *cfg, const mk_params *p, int with_optim) {
    with_optim = with_optim && p->m && p->v;
    mk_atomic_file af;
    if (mk_atomic_open(&af, path, "wb")) return -1;
    unsigned char hdr[HDR_BYTES] = {0};
    memcpy(hdr, MAGIC, 8);
    put_u32(hdr + 8, MK_CKPT_VERSION);
    put_u32(hdr + 12, with_optim ? 1u : 0u);
    snprintf((char *)hdr + 16, 32, "%s", cfg->task);
    put_u32(hdr + 48, (uint32_t)cfg->n);
    put_u32(hdr + 52, (uint32_t)p->n);
    put_u64(hdr + 56, (uint64_t)p->step);
    fwrite(hdr, 1, HDR_BYTES, af.f);
    for (int i = 0; i < cfg->n; i++) {
        char rec[CFG_BYTES] = {0};
        memcpy(rec, cfg->key[i], MK_CKPT_KEY);
        memcpy(rec + MK_CKPT_KEY, cfg->val[i], MK_CKPT_VAL);
        fwrite(rec, 1, CFG_BYTES, af.f);
    }
    for (int i = 0; i < p->n; i++) {
        unsigned char rec[TEN_BYTES] = {0};
        const mk_tensor *t = &p->t[i];
        memcpy(rec, t->name, MK_NAME_MAX);
        put_u32(rec + MK_NAME_MAX, (uint32_t)t->ndim);
        for (int k = 0; k < 4; k++) put_u32(rec + MK_NAME_MAX + 4 + 4 * k, k < t->ndim ? (uint32_t)t->shape[k] : 0);
        put_u64(rec + MK_NAME_MAX + 20, t->numel);
        put_u64(rec + MK_NAME_MAX + 28, t->offset);
        fwrite(rec, 1, TEN_BYTES, af.f);
    }
    /* x86-64 is little-endian, so the float buffers are written as they are */
    if (p->total) fwrite(p->data, sizeof(float), p->total, af.f); /* an empty table has data == NULL */
    if (with_optim && p->total) {
        fwrite(p->m, sizeof(float), p->total, af.f);
        fwrite(p->v, sizeof(float), p->total, af.f);
    }
    return mk_atomic_commit(&af);
}

/* Reads and validates header + config + table. On success *tab (n_tensors
 * records) must be freed by the caller; *data_start, *flags, *total set. */
static int read_meta(FILE *f, const char *path, long long fsize, const char *expect_task, mk_config *cfg,
                     unsigned char **tab, uint32_t *ntens, uint64_t *step, uint32_t *flags,
                     long long *data_start, uint64_t *total) {
    unsigned char hdr[HDR_BYTES];
    *tab = NULL;
    if (fsize < HDR_BYTES || fread(hdr, 1, HDR_BYTES, f) != HDR_BYTES) {
        mk_error("%s: not a mambakit model (file too short: %lld bytes)", path, fsize);
        return -1;
    }
    if (memcmp(hdr, MAGIC, 8)) {
        mk_error("%s: not a mambakit model (bad magic)", path);
        return -1;
    }
    uint32_t ver = get_u32(hdr + 8);
    if (ver != MK_CKPT_VERSION) {
        mk_error("%s: unsupported model file version %u (this build reads version %d)", path, ver, MK_CKPT_VERSION);
        return -1;
    }
    *flags = get_u32(hdr + 12);
    if (*flags & ~1u) {
        mk_error("%s: unknown flags 0x%x in model header", path, *flags);
        return -1;
    }
    char task[33] = {0};
    memcpy(task, hdr + 16, 32);
    if (memchr(hdr + 16, 0, 32) == NULL) {
        mk_error("%s: corrupted header (task name not terminated)", path);
        return -1;
    }
    if (expect_task && strcmp(task, expect_task)) {
        mk_error("%s: model is for task '%s', expected '%s'", path, task, expect_task);
        return -1;
    }
    uint32_t ncfg = get_u32(hdr + 48);
    *ntens = get_u32(hdr + 52);
    *step = get_u64(hdr + 56);
    if (ncfg > MK_CKPT_MAX_CONFIG) {
        mk_error("%s: corrupted header (%u config entries, limit %d)", path, ncfg, MK_CKPT_MAX_CONFIG);
        return -1;
    }
    if (*ntens == 0 || *ntens > MAX_TENSORS) {
        mk_error("%s: corrupted header (%u tensors)", path, *ntens);
        return -1;
    }
    long long meta = HDR_BYTES + (long long)ncfg * CFG_BYTES + (long long)*ntens * TEN_BYTES;
    if (meta > fsize) {
        mk_error("%s: truncated (header promises %lld bytes of tables, file has %lld)", path, meta, fsize);
        return -1;
    }
    mk_config_init(cfg, task);
    for (uint32_t i = 0; i < ncfg; i++) {
        char rec[CFG_BYTES];
        if (fread(rec, 1, CFG_BYTES, f) != CFG_BYTES) goto trunc;
        if (!memchr(rec, 0, MK_CKPT_KEY) || !memchr(rec + MK_CKPT_KEY, 0, MK_CKPT_VAL)) {
            mk_error("%s: corrupted config entry %u", path, i);
            return -1;
        }
        memcpy(cfg->key[i], rec, MK_CKPT_KEY);
        memcpy(cfg->val[i], rec + MK_CKPT_KEY, MK_CKPT_VAL);
    }
    cfg->n = (int)ncfg;
    *tab = mk_malloc((size_t)*ntens * TEN_BYTES);
    if (fread(*tab, 1, (size_t)*ntens * TEN_BYTES, f) != (size_t)*ntens * TEN_BYTES) goto trunc;
    /* tensors must tile [0, total) in order, with consistent shapes */
    uint64_t off = 0;
    for (uint32_t i = 0; i < *ntens; i++) {
        const unsigned char *r = *tab + (size_t)i * TEN_BYTES;
        /* the name is printed in the errors below: it must end inside its field and be
         * printable text (a flipped byte could be a newline or a terminal escape) */
        const unsigned char *nul = memchr(r, 0, MK_NAME_MAX), *c = r;
        while (nul && c < nul && *c >= 0x20 && *c < 0x7f) c++;
        if (!nul || c != nul || nul == r) {
            mk_error("%s: corrupted tensor table (entry %u name)", path, i);
            goto fail;
        }
        uint32_t nd = get_u32(r + MK_NAME_MAX);
        uint64_t numel = get_u64(r + MK_NAME_MAX + 20), o = get_u64(r + MK_NAME_MAX + 28), prod = 1;
        if (nd < 1 || nd > 4) {
            mk_error("%s: corrupted tensor table (%s has %u dims)", path, (const char *)r, nd);
            goto fail;
        }
        for (uint32_t k = 0; k < nd; k++) {
            uint32_t s = get_u32(r + MK_NAME_MAX + 4 + 4 * k);
            if (s == 0 || s > (1u << 30) || prod > (1ull << 40) / s) {
                mk_error("%s: corrupted tensor table (%s has dimension %u)", path, (const char *)r, s);
                goto fail;
            }
            prod *= s;
        }
        if (prod != numel || o != off) {
            mk_error("%s: corrupted tensor table (%s size/offset inconsistent)", path, (const char *)r);
            goto fail;
        }
        off += numel;
    }
    *total = off;
    *data_start = meta;
    long long need = meta + (long long)off * 4 * ((*flags & 1) ? 3 : 1);
    if (need != fsize) {
        mk_error("%s: %s (expected %lld bytes, file has %lld)", path, need > fsize ? "truncated" : "has trailing bytes",
                 need, fsize);
        goto fail;
    }
    return 0;
trunc:
    mk_error("%s: truncated while reading tables", path);
fail:
    free(*tab);
    *tab = NULL;
    return -1;
}

static FILE *open_sized(const char *path, long long *fsize) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        mk_error("%s: cannot open model: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
        mk_error("%s: not a regular file", path);
        fclose(f);
        return NULL;
    }
    *fsize = st.st_size;
    return f;
}

int mk_ckpt_read_config(const char *path, const char *expect_task, mk_config *cfg) {
    long long fsize;
    FILE *f = open_sized(path, &fsize);
    if (!f) return -1;
    unsigned char *tab;
    uint32_t nt, flags;
    uint64_t step, total;
    long long ds;
    int rc = read_meta(f, path, fsize, expect_task, cfg, &tab, &nt, &step, &flags, &ds, &total);
    free(tab);
    fclose(f);
    return rc;
}

/* The file's tensor table (nt entries, total values) against p's declaration:
 * same count, names, shapes and offsets. Needs only the declaration, not
 * p's values (LOAD_CHECK runs it before the model is allocated). */
static int match_table(const char *path, const unsigned char *tab, uint32_t nt, uint64_t total, const mk_params *p) {
    if ((int)nt != p->n || total != p->total) {
        mk_error("%s: model has %u tensors / %llu values, this configuration expects %d / %zu", path, nt,
                 (unsigned long long)total, p->n, p->total);
        return -1;
    }
    for (int i = 0; i < p->n; i++) {
        const unsigned char *r = tab + (size_t)i * TEN_BYTES;
        const mk_tensor *t = &p->t[i];
        int same = !strcmp((const char *)r, t->name) && (int)get_u32(r + MK_NAME_MAX) == t->ndim &&
                   get_u64(r + MK_NAME_MAX + 28) == t->offset;
        for (int k = 0; same && k < t->ndim; k++) same = (int)get_u32(r + MK_NAME_MAX + 4 + 4 * k) == t->shape[k];
        if (!same) {
            mk_error("%s: tensor %d is '%s', expected '%s' with this shape", path, i, (const char *)r, t->name);
            return -1;
        }
    }
    return 0;
}

/* LOAD_VALUES: the file must match p's declaration, values are read into p.
 * LOAD_DECLARE: p is empty and takes its tensors from the file's own table
 * (mk_ckpt_load_table). LOAD_CHECK: only the match with p's declaration,
 * which need not be allocated (mk_ckpt_check_table); p is not written. */
enum { LOAD_VALUES, LOAD_DECLARE, LOAD_CHECK };
static int load(const char *path, const char *expect_task, mk_config *cfg, mk_params *p, int want_optim, int mode) {
    long long fsize;
    FILE *f = open_sized(path, &fsize);
    if (!f) return -1;
    unsigned char *tab = NULL;
    uint32_t nt, flags;
    uint64_t step, total;
    long long ds;
    mk_config tmpcfg;
    if (!cfg) cfg = &tmpcfg;
    if (read_meta(f, path, fsize, expect_task, cfg, &tab, &nt, &step, &flags, &ds, &total)) goto fail;
    if (mode == LOAD_DECLARE) {
        /* read_meta checked every shape (1..4 dims, 1..2^30 each) and that the
         * tensors tile the data in order, so declaring them in file order
         * reproduces the file's offsets */
        for (uint32_t i = 0; i < nt; i++) {
            const unsigned char *r = tab + (size_t)i * TEN_BYTES;
            int sh[4] = {1, 1, 1, 1}, nd = (int)get_u32(r + MK_NAME_MAX);
            for (int k = 0; k < nd; k++) sh[k] = (int)get_u32(r + MK_NAME_MAX + 4 + 4 * k);
            mk_params_add(p, (const char *)r, 0, nd, sh[0], sh[1], sh[2], sh[3]);
        }
        mk_params_alloc(p);
    }
    if (match_table(path, tab, nt, total, p)) goto fail;
    if (mode == LOAD_CHECK) goto done;
    if (fseek(f, ds, SEEK_SET) || (p->total && fread(p->data, sizeof(float), p->total, f) != p->total)) {
        mk_error("%s: truncated tensor data", path);
        goto fail;
    }
    for (size_t i = 0; i < p->total; i++)
        if (!isfinite(p->data[i])) {
            mk_error("%s: corrupted tensor data (non-finite value at %zu)", path, i);
            goto fail;
        }
    if ((flags & 1) && (want_optim || p->m) && p->total) {
        mk_params_alloc_optim(p);
        if (fread(p->m, sizeof(float), p->total, f) != p->total || fread(p->v, sizeof(float), p->total, f) != p->total) {
            mk_error("%s: truncated optimiser state", path);
            goto fail;
        }
        for (size_t i = 0; i < p->total; i++)
            if (!isfinite(p->m[i]) || !isfinite(p->v[i]) || p->v[i] < 0) {
                mk_error("%s: corrupted optimiser state (invalid moment at %zu)", path, i);
                goto fail;
            }
        p->step = (long)step;
    } else if (want_optim) {
        mk_error("%s: has no optimiser state to resume from", path);
        goto fail;
    }
done:
    free(tab);
    fclose(f);
    return 0;
fail:
    free(tab);
    fclose(f);
    return -1;
}

int mk_ckpt_load(const char *path, const char *expect_task, mk_config *cfg, mk_params *p, int want_optim) {
    return load(path, expect_task, cfg, p, want_optim, LOAD_VALUES);
}

int mk_ckpt_check_table(const char *path, const char *expect_task, const mk_params *p) {
    return load(path, expect_task, NULL, (mk_params *)p, 0, LOAD_CHECK); /* LOAD_CHECK only reads p */
}

int mk_ckpt_load_table(const char *path, const char *expect_task, mk_config *cfg, mk_params *p) {
    MK_ASSERT(p->n == 0 && !p->data);
    return load(path, expect_task, cfg, p, 0, LOAD_DECLARE);
}
