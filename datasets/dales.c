/* dales.c — loader for the DALES Objects subset (format in dales.h). */
#include "datasets/dales.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

const char *const dales_classes[DALES_NCLASS] = {"building", "car", "fence", "pole", "tree"};

static const char DALES_HEADER[] = "object_id,label,class_name,first_point,num_points";

void dales_free(dales_set *d) {
    free(d->id);
    free(d->label);
    free(d->first);
    free(d->count);
    free(d->xyz);
    memset(d, 0, sizeof *d);
}

/* parse a non-negative decimal integer field [s, e) */
static int parse_long(const char *s, const char *e, long lo, long hi, long *out) {
    if (s == e || e - s > 18) return -1;
    long v = 0;
    for (const char *p = s; p < e; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (*p - '0');
    }
    if (v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int dales_load(dales_set *d, const char *index_path) {
    memset(d, 0, sizeof *d);
    size_t len = 0;
    char *txt = mk_read_file(index_path, 64u << 20, &len);
    if (!txt) {
        mk_error("%s: cannot read", index_path);
        return -1;
    }
    if (strlen(txt) != len) {
        mk_error("%s: contains a NUL byte", index_path);
        free(txt);
        return -1;
    }
    int cap = 0, n = 0;
    long total = 0;
    int line = 0;
    char *p = txt;
    int ok = 0;
    while (*p) {
        char *nl = strchr(p, '\n');
        char *end = nl ? nl : p + strlen(p);
        char *next = nl ? nl + 1 : end;
        if (end > p && end[-1] == '\r') end--;
        line++;
        if (line == 1) {
            if ((size_t)(end - p) != strlen(DALES_HEADER) || memcmp(p, DALES_HEADER, end - p)) {
                mk_error("%s:1: header is not \"%s\"", index_path, DALES_HEADER);
                goto fail;
            }
            p = next;
            continue;
        }
        if (end == p) { /* blank line: only allowed at the very end */
            p = next;
            while (*p == '\n' || *p == '\r') p++;
            if (*p) {
                mk_error("%s:%d: blank line inside the table", index_path, line);
                goto fail;
            }
            break;
        }
        const char *f[6];
        const char *fe[5];
        int nf = 0;
        f[0] = p;
        for (char *q = p; q <= end; q++) {
            if (q == end || *q == ',') {
                if (nf >= 5) { nf = 6; break; }
                fe[nf++] = q;
                f[nf] = q + 1;
            }
        }
        if (nf != 5) {
            mk_error("%s:%d: expected 5 comma-separated fields", index_path, line);
            goto fail;
        }
        long id, lab, first, cnt;
        if (parse_long(f[0], fe[0], 0, 99999999, &id)) {
            mk_error("%s:%d: object_id is not a non-negative integer", index_path, line);
            goto fail;
        }
        if (parse_long(f[1], fe[1], 0, DALES_NCLASS - 1, &lab)) {
            mk_error("%s:%d: label is not an integer in 0..%d", index_path, line, DALES_NCLASS - 1);
            goto fail;
        }
        size_t cl = (size_t)(fe[2] - f[2]);
        if (cl != strlen(dales_classes[lab]) || memcmp(f[2], dales_classes[lab], cl)) {
            mk_error("%s:%d: class_name does not match label %ld (%s)", index_path, line, lab, dales_classes[lab]);
            goto fail;
        }
        if (parse_long(f[3], fe[3], 0, DALES_MAX_POINTS, &first)) {
            mk_error("%s:%d: first_point is not a non-negative integer", index_path, line);
            goto fail;
        }
        if (parse_long(f[4], fe[4], 1, 100000000, &cnt)) {
            mk_error("%s:%d: num_points is not a positive integer", index_path, line);
            goto fail;
        }
        if (first != total) {
            mk_error("%s:%d: first_point %ld, expected %ld (objects must be contiguous)", index_path, line, first, total);
            goto fail;
        }
        if (n > 0 && id <= d->id[n - 1]) {
            mk_error("%s:%d: object_id %ld is not increasing", index_path, line, id);
            goto fail;
        }
        if (total + cnt > DALES_MAX_POINTS) {
            mk_error("%s:%d: more than %ld points in total", index_path, line, DALES_MAX_POINTS);
            goto fail;
        }
        if (n >= DALES_MAX_OBJECTS) {
            mk_error("%s:%d: more than %d objects", index_path, line, DALES_MAX_OBJECTS);
            goto fail;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 512;
            d->id = mk_realloc(d->id, cap * sizeof *d->id);
            d->label = mk_realloc(d->label, cap * sizeof *d->label);
            d->first = mk_realloc(d->first, cap * sizeof *d->first);
            d->count = mk_realloc(d->count, cap * sizeof *d->count);
        }
        d->id[n] = (int)id;
        d->label[n] = (int)lab;
        d->first[n] = first;
        d->count[n] = (int)cnt;
        n++;
        total += cnt;
        p = next;
    }
    if (line == 0) {
        mk_error("%s: empty file", index_path);
        goto fail;
    }
    if (n == 0) {
        mk_error("%s: no objects", index_path);
        goto fail;
    }
    d->n = n;
    d->n_points = total;
    ok = 1;
fail:
    free(txt);
    if (!ok) {
        dales_free(d);
        return -1;
    }
    /* the binary next to the index */
    char bin[4096];
    const char *slash = strrchr(index_path, '/');
    int dl = slash ? (int)(slash - index_path + 1) : 0;
    if (snprintf(bin, sizeof bin, "%.*spoints_xyz_f32le.bin", dl, index_path) >= (int)sizeof bin) {
        mk_error("%s: path too long", index_path);
        dales_free(d);
        return -1;
    }
    FILE *f = fopen(bin, "rb");
    if (!f) {
        mk_error("%s: cannot open: %s", bin, strerror(errno));
        dales_free(d);
        return -1;
    }
    long flen = -1;
    if (fseek(f, 0, SEEK_END) == 0) flen = ftell(f);
    size_t want;
    if (!mk_mul_ok((size_t)total, 12, &want) || flen < 0 || (size_t)flen != want) {
        mk_error("%s: %ld bytes, but %s lists %ld points (%ld bytes)", bin, flen, index_path, total, total * 12);
        fclose(f);
        dales_free(d);
        return -1;
    }
    rewind(f);
    d->xyz = mk_malloc(want);
    if (fread(d->xyz, 1, want, f) != want) {
        mk_error("%s: read error", bin);
        fclose(f);
        dales_free(d);
        return -1;
    }
    fclose(f);
    /* the file is little-endian; swap on a big-endian host */
    const unsigned one = 1;
    if (*(const unsigned char *)&one == 0) {
        unsigned char *b = (unsigned char *)d->xyz;
        for (size_t i = 0; i < want; i += 4) {
            unsigned char t = b[i];
            b[i] = b[i + 3], b[i + 3] = t;
            t = b[i + 1], b[i + 1] = b[i + 2], b[i + 2] = t;
        }
    }
    for (long i = 0; i < 3 * total; i++)
        if (!isfinite(d->xyz[i])) {
            mk_error("%s: point %ld has a non-finite coordinate", bin, i / 3);
            dales_free(d);
            return -1;
        }
    return 0;
}

int dales_load_default(dales_set *d, const char *data_dir) {
    char path[4096];
    if (!mk_find_data(data_dir, "dales_objects/index.csv", path, sizeof path)) {
        mk_error("DALES objects not found (dales_objects/index.csv); tried: %s", path);
        memset(d, 0, sizeof *d);
        return -1;
    }
    return dales_load(d, path);
}
