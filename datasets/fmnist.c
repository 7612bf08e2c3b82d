/* fmnist.c — gzip IDX reader (format in fmnist.h). */
#include "datasets/fmnist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/util.h"

const char *const fmnist_classes[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                        "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

#define IDX_MAX_ITEMS 10000000 /* far above any MNIST-like set */
#define IDX_MAX_SIDE 4096

static int read_exact(gzFile g, void *buf, size_t n) {
    unsigned char *p = buf;
    while (n > 0) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(g, p, chunk);
        if (got <= 0) return -1;
        p += got;
        n -= (size_t)got;
    }
    return 0;
}
static uint32_t be32(const unsigned char *b) {
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

/* Read an IDX file of u8 with `ndim` dims; dims out in d[]. Returns the
 * payload (malloc'd) or NULL with mk_error. */
static uint8_t *idx_read(const char *path, int ndim, uint32_t *d) {
    gzFile g = gzopen(path, "rb");
    if (!g) {
        mk_error("%s: cannot open", path);
        return NULL;
    }
    unsigned char h[16];
    uint8_t *data = NULL;
    if (read_exact(g, h, 4 + 4 * (size_t)ndim) != 0) {
        mk_error("%s: truncated IDX header", path);
        goto fail;
    }
    uint32_t magic = be32(h);
    if (magic != (0x0800u | (uint32_t)ndim)) {
        mk_error("%s: not an IDX u8 file with %d dimension(s) (magic 0x%08x)", path, ndim, magic);
        goto fail;
    }
    size_t total = 1;
    for (int i = 0; i < ndim; i++) {
        d[i] = be32(h + 4 + 4 * i);
        uint32_t lim = i == 0 ? IDX_MAX_ITEMS : IDX_MAX_SIDE;
        if (d[i] == 0 || d[i] > lim) {
            mk_error("%s: IDX dimension %d is %u (limit %u)", path, i, d[i], lim);
            goto fail;
        }
        if (!mk_mul_ok(total, d[i], &total)) {
            mk_error("%s: IDX size overflows", path);
            goto fail;
        }
    }
    if (total > ((size_t)1 << 32)) {
        mk_error("%s: IDX payload of %zu bytes is too large", path, total);
        goto fail;
    }
    data = mk_malloc(total);
    if (read_exact(g, data, total) != 0) {
        mk_error("%s: truncated IDX data (header promises %zu bytes)", path, total);
        goto fail;
    }
    unsigned char extra;
    if (gzread(g, &extra, 1) > 0) {
        mk_error("%s: trailing bytes after IDX data", path);
        goto fail;
    }
    gzclose(g);
    return data;
fail:
    free(data);
    gzclose(g);
    return NULL;
}

int fmnist_load(fmnist_set *s, const char *images_path, const char *labels_path) {
    memset(s, 0, sizeof *s);
    uint32_t di[3], dl[1];
    uint8_t *im = idx_read(images_path, 3, di);
    if (!im) return -1;
    uint8_t *lb = idx_read(labels_path, 1, dl);
    if (!lb) {
        free(im);
        return -1;
    }
    if (di[0] != dl[0]) {
        mk_error("%s: %u labels for %u images in %s", labels_path, dl[0], di[0], images_path);
        free(im);
        free(lb);
        return -1;
    }
    for (uint32_t i = 0; i < dl[0]; i++)
        if (lb[i] > 9) {
            mk_error("%s: label %u at item %u is not in 0..9", labels_path, lb[i], i);
            free(im);
            free(lb);
            return -1;
        }
    s->n = (int)di[0];
    s->rows = (int)di[1];
    s->cols = (int)di[2];
    s->images = im;
    s->labels = lb;
    return 0;
}

int fmnist_load_split(fmnist_set *s, const char *data_dir, const char *split) {
    const char *pre = !strcmp(split, "test") ? "t10k" : "train";
    char rel[128], ip[4096], lp[4096];
    snprintf(rel, sizeof rel, "fashion-mnist/%s-images-idx3-ubyte.gz", pre);
    if (!mk_find_data(data_dir, rel, ip, sizeof ip)) {
        mk_error("Fashion-MNIST %s set not found (tried %s); install the Debian package dataset-fashion-mnist "
                 "or pass --data-dir",
                 split, ip);
        return -1;
    }
    snprintf(rel, sizeof rel, "fashion-mnist/%s-labels-idx1-ubyte.gz", pre);
    if (!mk_find_data(data_dir, rel, lp, sizeof lp)) {
        mk_error("Fashion-MNIST %s labels not found (tried %s)", split, lp);
        return -1;
    }
    return fmnist_load(s, ip, lp);
}

void fmnist_free(fmnist_set *s) {
    free(s->images);
    free(s->labels);
    memset(s, 0, sizeof *s);
}
