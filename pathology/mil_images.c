/* mil_images.c — image-patch bags: folder layout, labels.csv, embedding with
 * the vision encoder (contract in mil_images.h). */
#include "pathology/mil_images.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "vision/image.h"
#include "vision/model.h"

int mil_is_image_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

void mil_image_list_free(mil_image_list *l) {
    if (!l) return;
    for (long i = 0; i < l->n; i++) free(l->path[i]);
    free(l->path);
    memset(l, 0, sizeof *l);
}

typedef struct {
    int n, cap;
    char **v;
} strvec;
static void sv_push(strvec *s, const char *x) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->v = mk_realloc(s->v, sizeof(char *) * s->cap);
    }
    size_t n = strlen(x) + 1;
    s->v[s->n++] = memcpy(mk_malloc(n), x, n);
}
static void sv_free(strvec *s) {
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}
static int cmp_natural(const void *a, const void *b) { return strverscmp(*(char *const *)a, *(char *const *)b); }

static void join(char *out, size_t n, const char *dir, const char *name) {
    size_t dl = strlen(dir);
    snprintf(out, n, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", name);
}

/* Entries of dir (not hidden) that are directories (want_dir) or image files,
 * sorted naturally. -1 with mk_error if dir cannot be read. */
static int list_dir(strvec *out, const char *dir, int want_dir) {
    DIR *d = opendir(dir);
    if (!d) {
        mk_error("%s: cannot open directory", dir);
        return -1;
    }
    struct dirent *e;
    char p[8192];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (!want_dir && !vision_is_image_name(e->d_name)) continue;
        join(p, sizeof p, dir, e->d_name);
        struct stat st;
        if (stat(p, &st)) continue;
        if (want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode)) sv_push(out, e->d_name);
    }
    closedir(d);
    if (out->n > 1) qsort(out->v, out->n, sizeof(char *), cmp_natural);
    return 0;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = 0;
    return s;
}

/* Parse DIR/labels.csv against the bag folder names: label[i] for bags[i].
 * Returns 0, 1 if the file is absent (labels left at -1), -1 on error. */
static int read_labels(const char *dir, const strvec *bags, int *label, int flags) {
    char path[8192];
    join(path, sizeof path, dir, MIL_LABELS_FILE);
    for (int i = 0; i < bags->n; i++) label[i] = -2; /* -2: no row yet */
    struct stat st;
    if (stat(path, &st)) {
        if (!(flags & MIL_LOAD_UNLABELED)) {
            mk_error("%s: no %s (one line 'bag,label' per bag folder, label 0 or 1)", dir, MIL_LABELS_FILE);
            return -1;
        }
        for (int i = 0; i < bags->n; i++) label[i] = -1;
        return 1;
    }
    size_t len;
    char *text = mk_read_file(path, (size_t)1 << 30, &len);
    if (!text) {
        mk_error("%s: cannot read", path);
        return -1;
    }
    int *seen_line = mk_calloc(bags->n ? bags->n : 1, sizeof(int));
    int rc = 0, lineno = 0, first = 1;
    for (char *line = text, *next; line && !rc; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        char *s = trim(line);
        if (!*s) continue;
        int is_first = first;
        first = 0;
        char *comma = strchr(s, ',');
        if (!comma) {
            mk_error("%s: line %d: expected 'bag,label'", path, lineno);
            rc = -1;
            break;
        }
        *comma = 0;
        char *name = trim(s), *lab = trim(comma + 1);
        if (strchr(lab, ',')) {
            mk_error("%s: line %d: expected 2 fields 'bag,label', got more", path, lineno);
            rc = -1;
            break;
        }
        int y;
        if (!strcmp(lab, "0")) y = 0;
        else if (!strcmp(lab, "1")) y = 1;
        else if (!strcmp(lab, "?") || !*lab) {
            if (!(flags & MIL_LOAD_UNLABELED)) {
                mk_error("%s: line %d: bag '%s' has no label (training needs 0 or 1)", path, lineno, name);
                rc = -1;
                break;
            }
            y = -1;
        } else {
            int is_bag = 0;
            for (int i = 0; i < bags->n; i++) is_bag |= !strcmp(bags->v[i], name);
            if (is_first && !is_bag) continue; /* header line, e.g. "bag,label" */
            mk_error("%s: line %d: label '%s' is not 0 or 1", path, lineno, lab);
            rc = -1;
            break;
        }
        int bi = -1;
        for (int i = 0; i < bags->n; i++)
            if (!strcmp(bags->v[i], name)) bi = i;
        if (bi < 0) {
            mk_error("%s: line %d: no bag folder '%s' in %s", path, lineno, name, dir);
            rc = -1;
        } else if (seen_line[bi]) {
            mk_error("%s: line %d: bag '%s' already has a label on line %d", path, lineno, name, seen_line[bi]);
            rc = -1;
        } else {
            seen_line[bi] = lineno;
            label[bi] = y;
        }
    }
    for (int i = 0; i < bags->n && !rc; i++)
        if (label[i] == -2) {
            mk_error("%s: bag folder '%s' has no label line", path, bags->v[i]);
            rc = -1;
        }
    free(seen_line);
    free(text);
    return rc;
}

int mil_bags_load_images(mil_bags *b, mil_image_list *paths, const char *dir, const char *encoder, int flags,
                         int progress) {
    memset(b, 0, sizeof *b);
    if (paths) memset(paths, 0, sizeof *paths);
    strvec bags = {0};
    if (list_dir(&bags, dir, 1)) return -1;
    if (!bags.n) {
        mk_error("%s: no bag folders (expected one sub-folder of images per bag, and %s)", dir, MIL_LABELS_FILE);
        sv_free(&bags);
        return -1;
    }
    if (bags.n > MIL_MAX_BAGS) {
        mk_error("%s: %d bag folders, more than %ld", dir, bags.n, MIL_MAX_BAGS);
        sv_free(&bags);
        return -1;
    }
    int rc = -1, *label = mk_malloc(sizeof(int) * bags.n);
    long *lens = mk_calloc(bags.n, sizeof(long));
    strvec files = {0};
    char p[8192];
    float *img = NULL;
    vision_model vm;
    vision_acts va;
    int have_vm = 0;
    vision_acts_init(&va);
    for (int i = 0; i < bags.n; i++)
        if (strlen(bags.v[i]) >= MIL_NAME_MAX) {
            mk_error("%s: bag folder name '%s' is longer than %d bytes", dir, bags.v[i], MIL_NAME_MAX - 1);
            goto done;
        }
    if (read_labels(dir, &bags, label, flags) < 0) goto done;
    /* every instance file, bag after bag */
    for (int i = 0; i < bags.n; i++) {
        join(p, sizeof p, dir, bags.v[i]);
        strvec one = {0};
        if (list_dir(&one, p, 0)) goto done;
        if (!one.n) {
            mk_error("%s: bag '%s' is empty (no image files)", p, bags.v[i]);
            sv_free(&one);
            goto done;
        }
        if (files.n + (long)one.n > MIL_MAX_IMAGES) {
            mk_error("%s: more than %ld images", dir, MIL_MAX_IMAGES);
            sv_free(&one);
            goto done;
        }
        lens[i] = one.n;
        char q[8192 + 256];
        for (int k = 0; k < one.n; k++) {
            snprintf(q, sizeof q, "%s/%s", p, one.v[k]);
            sv_push(&files, q);
        }
        sv_free(&one);
    }
    if (vision_model_load(&vm, encoder, 0, NULL)) goto done;
    have_vm = 1;
    const vision_cfg *vc = &vm.cfg;
    const int D = vc->mc.d_model, BATCH = 32;
    const size_t npx = (size_t)vc->img_h * vc->img_w * vc->img_c;
    mil_bags_alloc(b, bags.n, D, lens);
    for (int i = 0; i < bags.n; i++) {
        b->label[i] = label[i];
        snprintf(b->name[i], MIL_NAME_MAX, "%s", bags.v[i]);
    }
    img = mk_malloc(sizeof(float) * npx * BATCH);
    mk_progress pr;
    if (progress) mk_progress_start(&pr, "embed", files.n);
    for (long s = 0; s < files.n; s += BATCH) {
        int nb = files.n - s < BATCH ? (int)(files.n - s) : BATCH;
        for (int k = 0; k < nb; k++)
            if (vision_prepare_file(&vm, files.v[s + k], VISION_FIT_STRETCH, img + npx * k, NULL)) {
                if (progress) mk_progress_end(&pr);
                mil_bags_free(b);
                goto done;
            }
        vision_forward(&vm, &va, img, nb, 0, NULL);
        memcpy(b->x + (size_t)s * D, va.feat, sizeof(float) * (size_t)nb * D);
        if (progress) mk_progress_update(&pr, s + nb, "images", NULL);
    }
    if (progress) mk_progress_end(&pr);
    for (size_t k = 0; k < (size_t)files.n * D; k++)
        if (!isfinite(b->x[k])) {
            mk_error("%s: the encoder %s gave a non-finite feature", files.v[k / D], encoder);
            mil_bags_free(b);
            goto done;
        }
    if (paths) {
        paths->n = files.n;
        paths->path = files.v; /* hand over the strings */
        files.v = NULL;
        files.n = files.cap = 0;
    }
    rc = 0;
done:
    if (have_vm) vision_model_free(&vm);
    vision_acts_free(&va);
    free(img);
    free(label);
    free(lens);
    sv_free(&files);
    sv_free(&bags);
    return rc;
}

float *mil_embed_gray28(const unsigned char *images, int n, const char *encoder, int progress, int *F) {
    vision_model vm;
    if (vision_model_load(&vm, encoder, 0, NULL)) return NULL;
    const vision_cfg *vc = &vm.cfg;
    if (vc->img_h != 28 || vc->img_w != 28 || vc->img_c != 1) {
        mk_error("%s: the encoder takes %dx%dx%d images, not 28x28 grey", encoder, vc->img_h, vc->img_w, vc->img_c);
        vision_model_free(&vm);
        return NULL;
    }
    const int D = vc->mc.d_model, BATCH = 32, P = 784;
    float *out = mk_malloc(sizeof(float) * ((size_t)n * D + 1));
    vision_acts va;
    vision_acts_init(&va);
    float *px = mk_malloc(sizeof(float) * P), *img = mk_malloc(sizeof(float) * P * BATCH);
    mk_progress pr;
    if (progress) mk_progress_start(&pr, "embed", n);
    for (int s = 0; s < n; s += BATCH) {
        int nb = n - s < BATCH ? n - s : BATCH;
        for (int k = 0; k < nb; k++) {
            for (int j = 0; j < P; j++) px[j] = images[(size_t)(s + k) * P + j] / 255.f;
            vision_normalise(&vm, img + (size_t)k * P, px);
        }
        vision_forward(&vm, &va, img, nb, 0, NULL);
        memcpy(out + (size_t)s * D, va.feat, sizeof(float) * (size_t)nb * D);
        if (progress) mk_progress_update(&pr, s + nb, "images", NULL);
    }
    if (progress) mk_progress_end(&pr);
    free(px);
    free(img);
    vision_acts_free(&va);
    vision_model_free(&vm);
    *F = D;
    return out;
}
