/* mil_bags.c — bag files (CSV and binary, formats in mil_bags.h), synthetic
 * long bags and Fashion-MNIST bags. */
#include "pathology/mil_bags.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

static const char BAG_MAGIC[8] = {'M', 'K', 'M', 'I', 'L', 'B', 'A', 'G'};
#define BAG_VERSION 1
#define BAG_HDR 32
#define BAG_ENTRY (16 + MIL_NAME_MAX)

void mil_bags_free(mil_bags *b) {
    free(b->start);
    free(b->label);
    free(b->name);
    free(b->x);
    memset(b, 0, sizeof *b);
}

void mil_bags_alloc(mil_bags *b, int n_bags, int F, const long *lens) {
    memset(b, 0, sizeof *b);
    b->n_bags = n_bags;
    b->F = F;
    b->start = mk_malloc(sizeof(long) * (n_bags + 1));
    b->label = mk_calloc(n_bags ? n_bags : 1, sizeof(int));
    b->name = mk_calloc(n_bags ? n_bags : 1, MIL_NAME_MAX);
    b->start[0] = 0;
    for (int i = 0; i < n_bags; i++) {
        b->start[i + 1] = b->start[i] + lens[i];
        snprintf(b->name[i], MIL_NAME_MAX, "%d", i + 1);
    }
    b->n_inst = b->start[n_bags];
    b->x = mk_malloc(sizeof(float) * ((size_t)b->n_inst * F + 1));
}

void mil_bags_subset(mil_bags *dst, const mil_bags *src, const int *idx, int n) {
    long *lens = mk_malloc(sizeof(long) * (n ? n : 1));
    for (int i = 0; i < n; i++) lens[i] = mil_bag_len(src, idx[i]);
    mil_bags_alloc(dst, n, src->F, lens);
    for (int i = 0; i < n; i++) {
        dst->label[i] = src->label[idx[i]];
        memcpy(dst->name[i], src->name[idx[i]], MIL_NAME_MAX);
        memcpy(dst->x + (size_t)dst->start[i] * src->F, mil_bag_x(src, idx[i]), sizeof(float) * lens[i] * src->F);
    }
    free(lens);
}

int mil_bags_positives(const mil_bags *b) {
    int n = 0;
    for (int i = 0; i < b->n_bags; i++) n += b->label[i] == 1;
    return n;
}

/* ------------------------------------------------------------------ CSV */

static uint32_t name_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

typedef struct {
    int n, cap;            /* bags */
    char (*name)[MIL_NAME_MAX];
    int *label, *line, *count;
    int *tab;              /* hash table of bag indices, -1 empty */
    int tcap;
} bag_index;

static void index_rehash(bag_index *ix) {
    free(ix->tab);
    ix->tab = mk_malloc(sizeof(int) * ix->tcap);
    for (int i = 0; i < ix->tcap; i++) ix->tab[i] = -1;
    for (int b = 0; b < ix->n; b++) {
        uint32_t h = name_hash(ix->name[b], strlen(ix->name[b])) & (ix->tcap - 1);
        while (ix->tab[h] >= 0) h = (h + 1) & (ix->tcap - 1);
        ix->tab[h] = b;
    }
}

/* Find or add the bag named s[0..n); returns its index. */
static int index_get(bag_index *ix, const char *s, size_t n, int *added) {
    uint32_t h = name_hash(s, n) & (ix->tcap - 1);
    while (ix->tab[h] >= 0) {
        const char *nm = ix->name[ix->tab[h]];
        if (strlen(nm) == n && !memcmp(nm, s, n)) {
            *added = 0;
            return ix->tab[h];
        }
        h = (h + 1) & (ix->tcap - 1);
    }
    if (ix->n == ix->cap) {
        ix->cap = ix->cap ? 2 * ix->cap : 64;
        ix->name = mk_realloc(ix->name, (size_t)MIL_NAME_MAX * ix->cap);
        ix->label = mk_realloc(ix->label, sizeof(int) * ix->cap);
        ix->line = mk_realloc(ix->line, sizeof(int) * ix->cap);
        ix->count = mk_realloc(ix->count, sizeof(int) * ix->cap);
    }
    int b = ix->n++;
    memcpy(ix->name[b], s, n);
    ix->name[b][n] = 0;
    ix->count[b] = 0;
    *added = 1;
    if (2 * ix->n > ix->tcap) {
        ix->tcap *= 2;
        index_rehash(ix);
    } else {
        ix->tab[h] = b;
    }
    return b;
}

static void index_free(bag_index *ix) {
    free(ix->name);
    free(ix->label);
    free(ix->line);
    free(ix->count);
    free(ix->tab);
}

static const char *skip_blank(const char *p, const char *e) {
    while (p < e && (*p == ' ' || *p == '\t')) p++;
    return p;
}

/* One field [p, end of field): returns pointer to its end (',' or eol). */
static const char *field_end(const char *p, const char *eol) {
    while (p < eol && *p != ',') p++;
    return p;
}

int mil_bags_parse_csv(mil_bags *b, const char *text, size_t len, const char *path, int flags) {
    memset(b, 0, sizeof *b);
    bag_index ix = {0};
    ix.tcap = 1024;
    index_rehash(&ix);
    int *row_bag = NULL;
    float *x = NULL;
    size_t nrows = 0, rcap = 0, xcap = 0;
    int F = -1, F_line = 0, lineno = 0, seen_data = 0;
    const char *p = text, *end = text + len;
    char fld[64];
    while (p < end) {
        const char *eol = memchr(p, '\n', end - p);
        if (!eol) eol = end;
        const char *next = eol < end ? eol + 1 : end;
        lineno++;
        const char *le = eol;
        if (le > p && le[-1] == '\r') le--;
        const char *q = skip_blank(p, le);
        if (q == le) { /* blank line */
            p = next;
            continue;
        }
        /* bag id */
        const char *f0 = q, *f0e = field_end(q, le);
        if (f0e == le) {
            mk_error("%s: line %d: expected 'bag_id,label,features...', found one field", path, lineno);
            goto fail;
        }
        while (f0e > f0 && (f0e[-1] == ' ' || f0e[-1] == '\t')) f0e--;
        /* label */
        const char *l0 = skip_blank(field_end(q, le) + 1, le), *l0e = field_end(l0, le);
        const char *after_label = l0e;
        while (l0e > l0 && (l0e[-1] == ' ' || l0e[-1] == '\t')) l0e--;
        size_t ll = (size_t)(l0e - l0);
        int label;
        if (ll == 0 || (ll == 1 && *l0 == '?')) {
            if (!(flags & MIL_LOAD_UNLABELED)) {
                mk_error("%s: line %d: missing label", path, lineno);
                goto fail;
            }
            label = -1;
        } else {
            char *e;
            snprintf(fld, sizeof fld, "%.*s", (int)(ll < 63 ? ll : 63), l0);
            double v = strtod(fld, &e);
            if (e == fld || *e || ll > 63) {
                if (!seen_data && F < 0) { /* header line: count its fields */
                    int nf = 1;
                    for (const char *c = q; c < le; c++) nf += *c == ',';
                    F = nf - 2;
                    F_line = lineno;
                    if (F < 1) {
                        mk_error("%s: line %d: header has no feature columns", path, lineno);
                        goto fail;
                    }
                    p = next;
                    continue;
                }
                mk_error("%s: line %d: label '%s' is not a number", path, lineno, fld);
                goto fail;
            }
            if (v != 0 && v != 1) {
                mk_error("%s: line %d: label %s is not 0 or 1", path, lineno, fld);
                goto fail;
            }
            label = (int)v;
        }
        seen_data = 1;
        if ((size_t)(f0e - f0) >= MIL_NAME_MAX) {
            mk_error("%s: line %d: bag id longer than %d characters", path, lineno, MIL_NAME_MAX - 1);
            goto fail;
        }
        if (f0e == f0) {
            mk_error("%s: line %d: empty bag id", path, lineno);
            goto fail;
        }
        /* features */
        int nf = 0;
        if (after_label == le) {
            mk_error("%s: line %d: no features", path, lineno);
            goto fail;
        }
        if (nrows == rcap) {
            rcap = rcap ? 2 * rcap : 1024;
            row_bag = mk_realloc(row_bag, sizeof(int) * rcap);
        }
        if (F > 0 && (size_t)F * (nrows + 1) > xcap) {
            xcap = xcap ? 2 * xcap : (size_t)F * 1024;
            x = mk_realloc(x, sizeof(float) * xcap);
        }
        const char *c = after_label;
        while (c < le) { /* c points at a ',' */
            const char *s = skip_blank(c + 1, le), *fe = field_end(s, le);
            nf++;
            if (F > 0 && nf > F) {
                int tot = nf;
                for (const char *d = fe; d < le; d++) tot += *d == ',';
                mk_error("%s: line %d: %d features, expected %d (as on line %d)", path, lineno, tot, F, F_line);
                goto fail;
            }
            if (s == fe) {
                mk_error("%s: line %d: feature %d is empty", path, lineno, nf);
                goto fail;
            }
            char *e;
            float v = strtof(s, &e);
            const char *t = skip_blank(e, le);
            if (e == s || (t != fe && !(t == le && fe == le))) {
                mk_error("%s: line %d: feature %d is not a number: '%.*s'", path, lineno, nf,
                         (int)(fe - s < 40 ? fe - s : 40), s);
                goto fail;
            }
            if (!isfinite(v)) {
                mk_error("%s: line %d: feature %d is %s", path, lineno, nf, isnan(v) ? "NaN" : "infinite");
                goto fail;
            }
            if (F < 0) x = mk_realloc(x, sizeof(float) * (size_t)nf); /* first row: width not known yet */
            x[(F > 0 ? (size_t)F * nrows : 0) + nf - 1] = v;
            c = fe;
        }
        if (F < 0) {
            if (nf > MIL_MAX_FEATURES) {
                mk_error("%s: line %d: %d features (limit %d)", path, lineno, nf, MIL_MAX_FEATURES);
                goto fail;
            }
            F = nf;
            F_line = lineno;
            xcap = (size_t)nf;
        } else if (nf != F) {
            mk_error("%s: line %d: %d features, expected %d (as on line %d)", path, lineno, nf, F, F_line);
            goto fail;
        }
        int added, bi = index_get(&ix, f0, (size_t)(f0e - f0), &added);
        if (added) {
            ix.label[bi] = label;
            ix.line[bi] = lineno;
        } else if (ix.label[bi] != label) {
            mk_error("%s: line %d: bag '%s' has label %d here but %d on line %d", path, lineno, ix.name[bi], label,
                     ix.label[bi], ix.line[bi]);
            goto fail;
        }
        if (ix.count[bi] == INT32_MAX) {
            mk_error("%s: line %d: bag '%s' is too long", path, lineno, ix.name[bi]);
            goto fail;
        }
        ix.count[bi]++;
        row_bag[nrows++] = bi;
        p = next;
    }
    if (nrows == 0) {
        mk_error("%s: no bags (no data rows)", path);
        goto fail;
    }
    {
        long *lens = mk_malloc(sizeof(long) * ix.n);
        for (int i = 0; i < ix.n; i++) lens[i] = ix.count[i];
        mil_bags_alloc(b, ix.n, F, lens);
        free(lens);
        long *cur = mk_malloc(sizeof(long) * ix.n);
        for (int i = 0; i < ix.n; i++) {
            cur[i] = b->start[i];
            b->label[i] = ix.label[i];
            memcpy(b->name[i], ix.name[i], MIL_NAME_MAX);
        }
        for (size_t r = 0; r < nrows; r++)
            memcpy(b->x + (size_t)(cur[row_bag[r]]++) * F, x + r * F, sizeof(float) * F);
        free(cur);
    }
    free(row_bag);
    free(x);
    index_free(&ix);
    return 0;
fail:
    free(row_bag);
    free(x);
    index_free(&ix);
    mil_bags_free(b);
    return -1;
}

/* --------------------------------------------------------------- binary */

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

int mil_bags_save_bin(const mil_bags *b, const char *path) {
    mk_atomic_file af;
    if (mk_atomic_open(&af, path, "wb")) return -1;
    unsigned char h[BAG_HDR] = {0};
    memcpy(h, BAG_MAGIC, 8);
    put_u32(h + 8, BAG_VERSION);
    put_u32(h + 12, (uint32_t)b->F);
    put_u64(h + 16, (uint64_t)b->n_bags);
    put_u64(h + 24, (uint64_t)b->n_inst);
    int ok = fwrite(h, 1, BAG_HDR, af.f) == BAG_HDR;
    for (int i = 0; i < b->n_bags && ok; i++) {
        unsigned char e[BAG_ENTRY] = {0};
        put_u64(e, (uint64_t)mil_bag_len(b, i));
        put_u32(e + 8, (uint32_t)b->label[i]);
        memcpy(e + 16, b->name[i], MIL_NAME_MAX);
        ok = fwrite(e, 1, BAG_ENTRY, af.f) == BAG_ENTRY;
    }
    /* float32 little-endian: the host order on every platform we build for */
    if (ok) ok = fwrite(b->x, sizeof(float), (size_t)b->n_inst * b->F, af.f) == (size_t)b->n_inst * b->F;
    if (!ok) {
        mk_atomic_abort(&af);
        mk_error("%s: write error", path);
        return -1;
    }
    return mk_atomic_commit(&af);
}

int mil_bags_save_csv(const mil_bags *b, const char *path) {
    mk_atomic_file af;
    if (mk_atomic_open(&af, path, "w")) return -1;
    fprintf(af.f, "bag_id,label");
    for (int j = 0; j < b->F; j++) fprintf(af.f, ",f%d", j + 1);
    fputc('\n', af.f);
    for (int i = 0; i < b->n_bags; i++)
        for (long r = b->start[i]; r < b->start[i + 1]; r++) {
            if (b->label[i] < 0) fprintf(af.f, "%s,?", b->name[i]);
            else fprintf(af.f, "%s,%d", b->name[i], b->label[i]);
            const float *v = b->x + (size_t)r * b->F;
            for (int j = 0; j < b->F; j++) fprintf(af.f, ",%.9g", v[j]);
            fputc('\n', af.f);
        }
    if (ferror(af.f)) {
        mk_atomic_abort(&af);
        mk_error("%s: write error", path);
        return -1;
    }
    return mk_atomic_commit(&af);
}

static int load_bin(mil_bags *b, FILE *f, const char *path, uint64_t fsize, int flags) {
    unsigned char h[BAG_HDR];
    memset(b, 0, sizeof *b);
    if (fsize < BAG_HDR || fread(h, 1, BAG_HDR, f) != BAG_HDR) {
        mk_error("%s: truncated header", path);
        return -1;
    }
    uint32_t ver = get_u32(h + 8), F = get_u32(h + 12);
    uint64_t nb = get_u64(h + 16), ni = get_u64(h + 24);
    if (ver != BAG_VERSION) {
        mk_error("%s: unsupported bag file version %u (this build reads version %d)", path, ver, BAG_VERSION);
        return -1;
    }
    if (F < 1 || F > MIL_MAX_FEATURES) {
        mk_error("%s: header: %u features per instance (must be 1..%d)", path, F, MIL_MAX_FEATURES);
        return -1;
    }
    if (nb < 1 || nb > (uint64_t)MIL_MAX_BAGS) {
        mk_error("%s: header: %llu bags (must be 1..%ld)", path, (unsigned long long)nb, MIL_MAX_BAGS);
        return -1;
    }
    size_t data_floats, data_bytes;
    if (ni > (uint64_t)INT64_MAX / 8 || !mk_mul_ok((size_t)ni, F, &data_floats) ||
        !mk_mul_ok(data_floats, 4, &data_bytes) || data_bytes > (size_t)INT64_MAX / 2) {
        mk_error("%s: header: %llu instances x %u features is too large", path, (unsigned long long)ni, F);
        return -1;
    }
    uint64_t want = BAG_HDR + (uint64_t)BAG_ENTRY * nb + data_bytes;
    if (want != fsize) {
        mk_error("%s: file is %llu bytes but its header (%llu bags, %llu instances x %u features) needs %llu", path,
                 (unsigned long long)fsize, (unsigned long long)nb, (unsigned long long)ni, F,
                 (unsigned long long)want);
        return -1;
    }
    long *lens = mk_malloc(sizeof(long) * nb);
    int *labels = mk_malloc(sizeof(int) * nb);
    char (*names)[MIL_NAME_MAX] = mk_malloc((size_t)MIL_NAME_MAX * nb);
    uint64_t sum = 0;
    for (uint64_t i = 0; i < nb; i++) {
        unsigned char e[BAG_ENTRY];
        if (fread(e, 1, BAG_ENTRY, f) != BAG_ENTRY) {
            mk_error("%s: read error in bag table", path);
            goto fail;
        }
        uint64_t c = get_u64(e);
        int32_t lab = (int32_t)get_u32(e + 8);
        memcpy(names[i], e + 16, MIL_NAME_MAX);
        names[i][MIL_NAME_MAX - 1] = 0;
        if (c == 0) {
            mk_error("%s: bag %llu ('%s') is empty", path, (unsigned long long)i + 1, names[i]);
            goto fail;
        }
        if (c > ni - sum || c > INT32_MAX) {
            mk_error("%s: bag %llu ('%s'): %llu instances exceed the header's total %llu", path,
                     (unsigned long long)i + 1, names[i], (unsigned long long)c, (unsigned long long)ni);
            goto fail;
        }
        if (!(lab == 0 || lab == 1 || (lab == -1 && (flags & MIL_LOAD_UNLABELED)))) {
            mk_error("%s: bag %llu ('%s'): label %d is not 0 or 1", path, (unsigned long long)i + 1, names[i], lab);
            goto fail;
        }
        sum += c;
        lens[i] = (long)c;
        labels[i] = lab;
    }
    if (sum != ni) {
        mk_error("%s: bag sizes sum to %llu but the header says %llu instances", path, (unsigned long long)sum,
                 (unsigned long long)ni);
        goto fail;
    }
    mil_bags_alloc(b, (int)nb, (int)F, lens);
    for (uint64_t i = 0; i < nb; i++) {
        b->label[i] = labels[i];
        memcpy(b->name[i], names[i], MIL_NAME_MAX);
    }
    if (fread(b->x, sizeof(float), data_floats, f) != data_floats) {
        mk_error("%s: read error in instance data", path);
        goto fail;
    }
    for (int i = 0; i < b->n_bags; i++)
        for (long r = b->start[i]; r < b->start[i + 1]; r++)
            for (uint32_t j = 0; j < F; j++)
                if (!isfinite(b->x[(size_t)r * F + j])) {
                    mk_error("%s: bag %d ('%s') instance %ld feature %u is not finite", path, i + 1, b->name[i],
                             r - b->start[i] + 1, j + 1);
                    goto fail;
                }
    free(lens);
    free(labels);
    free(names);
    return 0;
fail:
    free(lens);
    free(labels);
    free(names);
    mil_bags_free(b);
    return -1;
}

int mil_bags_load(mil_bags *b, const char *path, int flags) {
    memset(b, 0, sizeof *b);
    FILE *f = fopen(path, "rb");
    if (!f) {
        mk_error("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        mk_error("%s: not a regular file", path);
        return -1;
    }
    char magic[8] = {0};
    size_t got = fread(magic, 1, 8, f);
    if (got == 8 && !memcmp(magic, BAG_MAGIC, 8)) {
        rewind(f);
        int rc = load_bin(b, f, path, (uint64_t)st.st_size, flags);
        fclose(f);
        return rc;
    }
    fclose(f);
    size_t len;
    char *text = mk_read_file(path, (size_t)1 << 34, &len);
    if (!text) return -1;
    if (memchr(text, 0, len)) {
        free(text);
        mk_error("%s: not a bag file (binary data without the MKMILBAG magic)", path);
        return -1;
    }
    int rc = mil_bags_parse_csv(b, text, len, path, flags);
    free(text);
    return rc;
}

/* ------------------------------------------------------------ synthetic */

void mil_bags_synth(mil_bags *b, int n_bags, long len, int F, int n_key, unsigned long seed) {
    long *lens = mk_malloc(sizeof(long) * n_bags);
    for (int i = 0; i < n_bags; i++) lens[i] = len;
    mil_bags_alloc(b, n_bags, F, lens);
    free(lens);
    mk_rng rng;
    mk_rng_seed(&rng, seed);
    for (int i = 0; i < n_bags; i++) {
        b->label[i] = i % 2;
        float *x = b->x + (size_t)b->start[i] * F;
        for (size_t k = 0; k < (size_t)len * F; k++) x[k] = mk_rng_normal(&rng);
        if (b->label[i])
            for (int k = 0; k < n_key; k++) {
                long r = (long)(mk_rng_uniform(&rng) * len);
                if (r >= len) r = len - 1;
                for (int j = 0; j < F && j < 4; j++) x[(size_t)r * F + j] += 2.f;
            }
    }
}

/* --------------------------------------------------------- image bags */

/* Bag sizes round(N(mean, sd)), at least 1: the first draws of both bag builders. */
static long *draw_bag_lengths(mk_rng *rng, int n_bags, double mean_len, double sd_len) {
    long *lens = mk_malloc(sizeof(long) * n_bags);
    for (int i = 0; i < n_bags; i++) {
        long l = lround(mean_len + sd_len * mk_rng_normal(rng));
        lens[i] = l < 1 ? 1 : l;
    }
    return lens;
}

int mil_bags_from_images(mil_bags *b, const unsigned char *images, const unsigned char *labels, int n_images,
                         int n_bags, double mean_len, double sd_len, int target, unsigned long seed) {
    mk_rng rng;
    mk_rng_seed(&rng, seed);
    long *lens = draw_bag_lengths(&rng, n_bags, mean_len, sd_len);
    const int P = 784;
    mil_bags_alloc(b, n_bags, P, lens);
    free(lens);
    int pos = 0;
    for (int i = 0; i < n_bags; i++) {
        int y = 0;
        for (long r = b->start[i]; r < b->start[i + 1]; r++) {
            int k = mk_rng_int(&rng, n_images);
            y |= labels[k] == target;
            for (int j = 0; j < P; j++) b->x[(size_t)r * P + j] = images[(size_t)k * P + j] / 255.f;
        }
        b->label[i] = y;
        pos += y;
    }
    return pos;
}

int *mil_bags_from_pool(mil_bags *b, const float *pool, int F, const unsigned char *labels, int n_images,
                        int n_bags, double mean_len, double sd_len, int target, unsigned long seed) {
    /* the same random draws as mil_bags_from_images, so equal seeds give the same bags */
    mk_rng rng;
    mk_rng_seed(&rng, seed);
    long *lens = draw_bag_lengths(&rng, n_bags, mean_len, sd_len);
    if (!pool) F = 1;
    mil_bags_alloc(b, n_bags, F, lens);
    free(lens);
    int *src = mk_malloc(sizeof(int) * (b->n_inst ? b->n_inst : 1));
    for (int i = 0; i < n_bags; i++) {
        int y = 0;
        for (long r = b->start[i]; r < b->start[i + 1]; r++) {
            int k = mk_rng_int(&rng, n_images);
            y |= labels[k] == target;
            src[r] = k;
            if (pool) memcpy(b->x + (size_t)r * F, pool + (size_t)k * F, sizeof(float) * F);
            else b->x[r] = (float)k;
        }
        b->label[i] = y;
    }
    return src;
}

static int gz_read_all(const char *path, unsigned char **out, size_t *n) {
    gzFile g = gzopen(path, "rb");
    if (!g) {
        mk_error("%s: cannot open", path);
        return -1;
    }
    size_t cap = 1 << 20, len = 0;
    unsigned char *buf = mk_malloc(cap);
    for (;;) {
        if (len == cap) {
            if (cap >= ((size_t)1 << 31)) {
                gzclose(g);
                free(buf);
                mk_error("%s: too large", path);
                return -1;
            }
            cap *= 2;
            buf = mk_realloc(buf, cap);
        }
        int r = gzread(g, buf + len, (unsigned)(cap - len));
        if (r < 0) {
            gzclose(g);
            free(buf);
            mk_error("%s: gzip read error", path);
            return -1;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    gzclose(g);
    *out = buf;
    *n = len;
    return 0;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int mil_read_idx_images(const char *img_path, const char *lab_path, unsigned char **images, unsigned char **labels,
                        int *n, int *pixels) {
    unsigned char *im = NULL, *lb = NULL;
    size_t ni, nl;
    if (gz_read_all(img_path, &im, &ni)) return -1;
    if (gz_read_all(lab_path, &lb, &nl)) {
        free(im);
        return -1;
    }
    if (ni < 16 || be32(im) != 0x803) {
        mk_error("%s: not an IDX3 image file", img_path);
        goto fail;
    }
    if (nl < 8 || be32(lb) != 0x801) {
        mk_error("%s: not an IDX1 label file", lab_path);
        goto fail;
    }
    uint32_t cnt = be32(im + 4), rows = be32(im + 8), cols = be32(im + 12);
    if (cnt != be32(lb + 4) || rows * (uint64_t)cols != 784 || ni != 16 + (uint64_t)cnt * 784 || nl != 8 + cnt) {
        mk_error("%s: unexpected IDX sizes (%u images of %ux%u, %u labels)", img_path, cnt, rows, cols, be32(lb + 4));
        goto fail;
    }
    memmove(im, im + 16, (size_t)cnt * 784);
    memmove(lb, lb + 8, cnt);
    *images = im;
    *labels = lb;
    *n = (int)cnt;
    *pixels = 784;
    return 0;
fail:
    free(im);
    free(lb);
    return -1;
}
