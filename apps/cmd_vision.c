/* cmd_vision.c — `mambakit classify`, `train vision`, `eval vision`, `bench vision`.
 *
 * The model and its front end live in vision/; Fashion-MNIST loading in
 * datasets/fmnist.c. This file is option parsing, the training loop and output. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "apps/cli.h"
#include "core/backend.h"
#include "core/ckpt.h"
#include "core/ops.h"
#include "core/optim.h"
#include "core/util.h"
#include "datasets/fmnist.h"
#include "vision/image.h"
#include "vision/model.h"
#include "vision/occlusion.h"

#define DEFAULT_MODEL "vision.mkm"

void openblas_set_num_threads(int n); /* OpenBLAS (cblas.h's macros clash with core headers) */

/* ------------------------------------------------------------ shared bits */

/* Resolve --model (or the shipped default) into path. 0 or 1 after printing. */
static int find_model(const char *opt, char *path, size_t n) {
    if (opt) {
        snprintf(path, n, "%s", opt);
        return 0;
    }
    if (!mk_find_model(DEFAULT_MODEL, path, n)) {
        fprintf(stderr, "mambakit: no vision model found (tried %s); pass --model FILE or train one with "
                        "'mambakit train vision'\n", path);
        return 1;
    }
    return 0;
}

/* Put the model's backbone on the device asked for; on failure say so and
 * stay on the CPU (the CPU path is complete). */
static void use_device(vision_model *m, int dev) {
    mamba_backbone *bb = &m->bb;
    mamba_backbones_use_device(&bb, 1, dev);
}

static int opt_val(int argc, char **argv, int *i, const char **val) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "mambakit: %s needs a value\n", argv[*i]);
        return -1;
    }
    *val = argv[++*i];
    return 0;
}

/* Copy one Fashion-MNIST item into a normalised float image, with an
 * optional shift (dy, dx: content moves by that many pixels, zero fill) and
 * horizontal flip. Zero is the background of the set. */
static void fm_item(float *dst, const fmnist_set *s, int idx, int dy, int dx, int flip, float mean, float std) {
    const int H = s->rows, W = s->cols;
    const uint8_t *src = s->images + (size_t)idx * H * W;
    const float bg = (0.f - mean) / std, sc = 1.f / (255.f * std), off = -mean / std;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int sy = y - dy, sx = x - dx;
            if (flip) sx = W - 1 - sx;
            dst[(size_t)y * W + x] = (sy >= 0 && sy < H && sx >= 0 && sx < W) ? src[(size_t)sy * W + sx] * sc + off : bg;
        }
}

/* Random erasing (ref: Zhong et al. 2017, "Random Erasing Data Augmentation"): with
 * probability p, one rectangle of 2-40 % of the image with aspect ratio in [0.3, 3.3]
 * (log-uniform) is filled with uniform random pixel values (0..255, normalised). Up to 10
 * draws for a rectangle that fits; none fits: the image is left as it is. Occlusion that
 * the shift and flip do not give: the model must use more than one part of the garment. */
static void fm_erase(float *dst, int H, int W, float p, float mean, float std, mk_rng *r) {
    if (p <= 0 || mk_rng_uniform(r) >= p) return;
    for (int t = 0; t < 10; t++) {
        float area = (0.02f + 0.38f * mk_rng_uniform(r)) * H * W;
        float ar = expf(logf(0.3f) + (logf(3.3f) - logf(0.3f)) * mk_rng_uniform(r));
        int h = (int)lrintf(sqrtf(area * ar)), w = (int)lrintf(sqrtf(area / ar));
        if (h < 1 || w < 1 || h > H || w > W) continue;
        int y0 = mk_rng_int(r, H - h + 1), x0 = mk_rng_int(r, W - w + 1);
        for (int y = y0; y < y0 + h; y++)
            for (int x = x0; x < x0 + w; x++) dst[(size_t)y * W + x] = (mk_rng_uniform(r) - mean) / std;
        return;
    }
}

/* The training set's seeded split: a shuffle of 0..n-1 whose last `val` entries are the
 * held-out validation images (train vision and eval vision --split val share it). */
static int *split_perm(int n, long seed) {
    int *perm = mk_malloc(sizeof(int) * n);
    mk_order_identity(perm, n);
    mk_rng r;
    mk_rng_seed(&r, 0x5eed0000u + (uint64_t)seed);
    mk_rng_shuffle(&r, perm, n);
    return perm;
}

/* Class probabilities (B, K) of B prepared images (img: B*H*W*C, HWC, with room for B more).
 * tta: averaged with those of their mirror images, which are written into img's second half
 * (for models trained with random flips, which is what makes the two views agree); prob then
 * needs 2*B*K floats. The CLI's one place for test-time augmentation. */
static void predict(vision_model *m, vision_acts *a, float *img, int B, int tta, float *prob) {
    const vision_cfg *c = &m->cfg;
    const int K = c->n_class, W = c->img_w, C = c->img_c;
    const size_t per = (size_t)c->img_h * W * C, n = (size_t)B * K;
    vision_forward(m, a, img, B, 0, NULL);
    softmax_rows(prob, a->logits, B, K);
    if (!tta) return;
    float *mir = img + (size_t)B * per;
    for (size_t r = 0; r < (size_t)B * c->img_h; r++) /* each row's pixels reversed, channels kept in order */
        for (int x = 0; x < W; x++)
            memcpy(mir + (r * W + x) * C, img + (r * W + (W - 1 - x)) * C, sizeof(float) * C);
    vision_forward(m, a, mir, B, 0, NULL);
    softmax_rows(prob + n, a->logits, B, K);
    for (size_t i = 0; i < n; i++) prob[i] = 0.5f * (prob[i] + prob[n + i]);
}

/* Accuracy of m over items idx[0..n) of s; confusion (K*K, true-major) may be NULL;
 * tta: see predict(). */
static double evaluate(vision_model *m, vision_acts *a, const fmnist_set *s, const int *idx, int n, int bs,
                       long *confusion, int show_progress, int tta) {
    const vision_cfg *c = &m->cfg;
    const int K = c->n_class, HW = s->rows * s->cols;
    float *img = mk_malloc(sizeof(float) * 2 * (size_t)bs * HW), *prob = mk_malloc(sizeof(float) * 2 * (size_t)bs * K);
    long hit = 0;
    mk_progress pr;
    if (show_progress) mk_progress_start(&pr, "eval", n);
    for (int i0 = 0; i0 < n; i0 += bs) {
        int B = n - i0 < bs ? n - i0 : bs;
        for (int b = 0; b < B; b++) {
            int id = idx ? idx[i0 + b] : i0 + b;
            fm_item(img + (size_t)b * HW, s, id, 0, 0, 0, c->mean[0], c->std[0]);
        }
        predict(m, a, img, B, tta, prob);
        for (int b = 0; b < B; b++) {
            const float *z = prob + (size_t)b * K;
            int am = 0;
            for (int k = 1; k < K; k++)
                if (z[k] > z[am]) am = k;
            int y = s->labels[idx ? idx[i0 + b] : i0 + b];
            hit += am == y;
            if (confusion) confusion[(size_t)y * K + am]++;
        }
        if (show_progress) mk_progress_update(&pr, i0 + B, "img", NULL);
    }
    if (show_progress) mk_progress_end(&pr);
    free(img);
    free(prob);
    return n ? (double)hit / n : 0;
}

/* ---------------------------------------------------------------- classify */

typedef struct {
    char **v;
    int n, cap;
} strlist;
static void sl_push(strlist *l, const char *s) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = mk_realloc(l->v, sizeof(char *) * l->cap);
    }
    l->v[l->n++] = strdup(s);
}
static void sl_free(strlist *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Expand a directory into its image files (sorted, not recursive). Returns
 * the number added, or -1 if it cannot be read. */
static int expand_dir(strlist *out, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    strlist tmp = {0};
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (!vision_is_image_name(e->d_name)) continue;
        char p[8192];
        size_t dl = strlen(dir);
        snprintf(p, sizeof p, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", e->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) sl_push(&tmp, p);
    }
    closedir(d);
    if (tmp.n > 1) qsort(tmp.v, tmp.n, sizeof(char *), cmp_str);
    for (int i = 0; i < tmp.n; i++) sl_push(out, tmp.v[i]);
    int n = tmp.n;
    sl_free(&tmp);
    return n;
}

static void classify_help(void) {
    printf("usage: mambakit classify [options] IMAGE|DIR...\n\n"
           "Classify images (PNG, JPEG, BMP, GIF, TGA, PSD, HDR, PNM; any size, grey or colour).\n"
           "Each image is converted to the model's channels, resized to its input size and\n"
           "normalised with the statistics stored in the model. Directories are expanded to the\n"
           "image files they hold (not recursively). One line per file on stdout; a file that\n"
           "cannot be read gets one line on stderr and the others are still classified.\n\n"
           "options:\n"
           "  --model FILE     model file (default: models/%s, found next to the binary or via\n"
           "                   $MAMBAKIT_MODELS)\n"
           "  --top K          labels to print per image (default 3; 0 = all classes)\n"
           "  --json           one JSON object per line: {\"file\", \"fit\", \"top\": [{\"label\", \"prob\"}...]}\n"
           "                   (fit: \"photo\" or \"stretch\", what was done to the picture)\n"
           "  --fit F          how a picture meets the model's input: auto (default), photo or\n"
           "                   stretch. stretch resizes the whole picture (aspect ratio not kept).\n"
           "                   photo does what Fashion-MNIST did to its product photos: trims the\n"
           "                   background, fits the object with its aspect ratio kept, and inverts\n"
           "                   a light background for a model trained on dark ones (dark garment\n"
           "                   on white -> light on black). auto: photo for a picture whose border\n"
           "                   is light (for the shipped model), stretch otherwise\n"
           "  --tta            average over the image and its mirror image (for models trained\n"
           "                   with random flips, as the shipped one; twice the work, +0.3 points\n"
           "                   on the Fashion-MNIST test set)\n"
           "  --occlusion DIR  for each image write DIR/NAME.occlusion.png (DIR is made if missing):\n"
           "                   the input as the model saw it beside an occlusion map, where each\n"
           "                   pixel shows how much the top class's probability drops when a\n"
           "                   square around it is hidden behind the picture's background (red:\n"
           "                   drops, blue: rises). A seventh of the input's side per square, 169\n"
           "                   forward passes on a 28x28 model; with --json the object gets\n"
           "                   \"occlusion\" (the file) and \"occlusion_max\" (the largest drop); two\n"
           "                   inputs of one name get NAME-2...; with --tta the map is of the plain\n"
           "                   view's probability of the top class\n"
           "  --device D       cpu | cuda (default cpu; cuda falls back to the CPU with a notice)\n"
           "  -h, --help       this help\n\n"
           "exit status: 0 all files classified, 1 some file failed or no model, 2 bad usage\n",
           DEFAULT_MODEL);
}

int cmd_classify(int argc, char **argv) {
    const char *model_opt = NULL, *device = "cpu", *occ_dir = NULL;
    long top = 3;
    int json = 0, tta = 0, fit = VISION_FIT_AUTO;
    strlist inputs = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_is_help(a)) {
            classify_help();
            sl_free(&inputs);
            return 0;
        } else if (!strcmp(a, "--model")) {
            if (opt_val(argc, argv, &i, &v)) goto usage;
            model_opt = v;
        } else if (!strcmp(a, "--top")) {
            if (opt_val(argc, argv, &i, &v) || cli_int("--top", v, 0, VISION_MAX_CLASS, &top)) goto usage;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--tta")) {
            tta = 1;
        } else if (!strcmp(a, "--fit")) {
            if (opt_val(argc, argv, &i, &v)) goto usage;
            if (!strcmp(v, "auto")) fit = VISION_FIT_AUTO;
            else if (!strcmp(v, "photo")) fit = VISION_FIT_PHOTO;
            else if (!strcmp(v, "stretch")) fit = VISION_FIT_STRETCH;
            else {
                fprintf(stderr, "mambakit: classify: --fit must be auto, photo or stretch, not '%s'\n", v);
                goto usage;
            }
        } else if (!strcmp(a, "--device")) {
            if (opt_val(argc, argv, &i, &v)) goto usage;
            device = v;
        } else if (!strcmp(a, "--occlusion")) {
            if (opt_val(argc, argv, &i, &v)) goto usage;
            occ_dir = v;
        } else if (!strcmp(a, "--")) {
            for (i++; i < argc; i++) sl_push(&inputs, argv[i]);
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mambakit: classify: unknown option '%s' (see mambakit classify --help)\n", a);
            goto usage;
        } else {
            sl_push(&inputs, a);
        }
    }
    if (!inputs.n) {
        fprintf(stderr, "mambakit: classify: no input images (see mambakit classify --help)\n");
        goto usage;
    }
    int dev = mk_device_parse(device);
    if (dev < 0) {
        fprintf(stderr, "mambakit: %s\n", mk_last_error());
        goto usage;
    }
    if (occ_dir) {
        struct stat st;
        if (stat(occ_dir, &st) != 0 && mkdir(occ_dir, 0777) != 0) {
            fprintf(stderr, "mambakit: classify: --occlusion %s: cannot make the directory: %s\n", occ_dir,
                    strerror(errno));
            goto usage;
        }
        if (stat(occ_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "mambakit: classify: --occlusion %s: not a directory\n", occ_dir);
            goto usage;
        }
    }
    char mpath[4096];
    if (find_model(model_opt, mpath, sizeof mpath)) {
        sl_free(&inputs);
        return 1;
    }
    vision_model m;
    if (vision_model_load(&m, mpath, 0, NULL)) {
        sl_free(&inputs);
        return cli_fail();
    }
    use_device(&m, dev);
    /* One image at a time is too little work to share: on a busy machine the
     * threads' barriers cost more than the math (4.5 ms on one thread vs
     * 230 ms on two, measured on the shared 2-core box). OMP_NUM_THREADS wins. */
    if (!getenv("OMP_NUM_THREADS")) {
#ifdef _OPENMP
        omp_set_num_threads(1);
#endif
        openblas_set_num_threads(1);
    }
    const vision_cfg *c = &m.cfg;
    const int K = c->n_class;
    if (top == 0 || top > K) top = K;

    /* expand directories; a directory with no images is itself an error, kept
     * in place in the list (an entry starting with '\1' is a message) so the
     * report follows the order of the arguments */
    strlist files = {0};
    int failed = 0;
    for (int i = 0; i < inputs.n; i++) {
        struct stat st;
        if (stat(inputs.v[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            int n = expand_dir(&files, inputs.v[i]);
            char msg[4200];
            if (n <= 0) {
                if (n < 0) snprintf(msg, sizeof msg, "\1%s: cannot read directory: %s", inputs.v[i], strerror(errno));
                else snprintf(msg, sizeof msg, "\1%s: directory has no image files", inputs.v[i]);
                sl_push(&files, msg);
            }
        } else {
            sl_push(&files, inputs.v[i]);
        }
    }
    sl_free(&inputs);

    vision_acts acts;
    vision_acts_init(&acts);
    const size_t per = (size_t)c->img_h * c->img_w * c->img_c;
    float *img = mk_malloc(sizeof(float) * 2 * per); /* the image and its mirror */
    float *prob = mk_malloc(sizeof(float) * 2 * K);
    int *rank = mk_malloc(sizeof(int) * K);
    float *occ = occ_dir ? mk_malloc(sizeof(float) * c->img_h * c->img_w) : NULL;
    int n_occ = 0;
    strlist occ_done = {0}; /* the maps' names so far */
    for (int i = 0; i < files.n; i++) {
        if (files.v[i][0] == '\1') {
            fprintf(stderr, "mambakit: %s\n", files.v[i] + 1);
            failed++;
            continue;
        }
        int photo = 0;
        if (vision_prepare_file(&m, files.v[i], fit, img, &photo)) {
            fprintf(stderr, "mambakit: %s\n", mk_last_error());
            failed++;
            continue;
        }
        predict(&m, &acts, img, 1, tta, prob);
        for (int k = 0; k < K; k++) rank[k] = k;
        for (int k = 0; k < K; k++) /* selection sort: K is small */
            for (int j = k + 1; j < K; j++)
                if (prob[rank[j]] > prob[rank[k]]) {
                    int t = rank[k];
                    rank[k] = rank[j];
                    rank[j] = t;
                }
        char occ_path[4200] = "";
        float occ_max = 0;
        if (occ_dir) {
            const char *base = strrchr(files.v[i], '/');
            base = base ? base + 1 : files.v[i];
            const char *dot = strrchr(base, '.');
            int len = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
            snprintf(occ_path, sizeof occ_path, "%s/%.*s.occlusion.png", occ_dir, len, base);
            /* two inputs of one name (from two directories) get NAME-2, NAME-3, ... */
            for (int dup = 2, again = 1; again; dup++) {
                again = 0;
                for (int j = 0; j < occ_done.n && !again; j++) again = !strcmp(occ_done.v[j], occ_path);
                if (again) snprintf(occ_path, sizeof occ_path, "%s/%.*s-%d.occlusion.png", occ_dir, len, base, dup);
            }
            sl_push(&occ_done, occ_path);
            float fill[4];
            int win, stride;
            vision_border_fill(c, img, fill);
            vision_occlusion_grid(c->img_h, c->img_w, &win, &stride);
            if (vision_occlusion(&m, &acts, img, rank[0], win, stride, fill, occ, NULL) ||
                vision_occlusion_png(occ_path, &m, img, occ)) {
                fprintf(stderr, "mambakit: %s\n", mk_last_error());
                failed++;
                occ_path[0] = 0;
            } else {
                n_occ++;
                for (int p = 0; p < c->img_h * c->img_w; p++) occ_max = fmaxf(occ_max, occ[p]);
            }
        }
        if (json) {
            printf("{\"file\": ");
            cli_json_str(stdout, files.v[i]);
            printf(", \"fit\": \"%s\", \"top\": [", photo ? "photo" : "stretch");
            for (int k = 0; k < top; k++) {
                printf("%s{\"label\": ", k ? ", " : "");
                cli_json_str(stdout, c->classes[rank[k]]);
                printf(", \"index\": %d, \"prob\": %.4f}", rank[k], prob[rank[k]]);
            }
            printf("]");
            if (occ_path[0]) {
                printf(", \"occlusion\": ");
                cli_json_str(stdout, occ_path);
                printf(", \"occlusion_max\": %.4f", occ_max);
            }
            printf("}\n");
        } else {
            printf("%s:", files.v[i]);
            for (int k = 0; k < top; k++) printf("%s %s %.2f", k ? "," : "", c->classes[rank[k]], prob[rank[k]]);
            printf("\n");
        }
        fflush(stdout);
    }
    if (occ_dir && !json) fprintf(stderr, "mambakit: %d occlusion map%s in %s\n", n_occ, n_occ == 1 ? "" : "s", occ_dir);
    free(img);
    free(prob);
    free(rank);
    free(occ);
    sl_free(&occ_done);
    vision_acts_free(&acts);
    vision_model_free(&m);
    sl_free(&files);
    return failed ? 1 : 0;
usage:
    sl_free(&inputs);
    return 2;
}

/* ------------------------------------------------------------------ train */

#define MAX_TEACHERS 8

typedef struct {
    const char *data_dir, *out, *ckpt, *resume, *init, *device;
    long epochs, batch, d_model, layers, d_state, expand, patch, kernel, val, limit, seed, shift, threads_unused;
    long ckpt_every, stem, total_steps, steps, data_seed;
    double budget;
    double lr, wd, warmup, smooth, drop_path, shuffle_p, time_limit, min_lr, erase;
    double kd_alpha, kd_temp;
    const char *teacher; /* comma-separated model files, or NULL */
    char teacher_buf[4096];
    int order, head, flip, out_given, kd_given;
    int gpu_backbone_only; /* --gpu-step backbone */
    int json;              /* --json: the final summary as JSON (output only, not recorded) */
    const char *like;      /* --like MODEL */
    int steps_from_like;   /* o->steps is the --like run's length, which --epochs replaces */
} train_opts;

static void train_defaults(train_opts *o) {
    memset(o, 0, sizeof *o);
    o->out = "models/vision.mkm";
    o->device = "cpu";
    o->epochs = 20;
    o->batch = 64;
    o->d_model = 64;
    o->layers = 4;
    o->d_state = 16;
    o->expand = 2;
    o->patch = 4;
    o->kernel = 4;
    o->stem = 0;
    o->val = 5000;
    o->limit = 0;
    o->seed = 1;
    o->data_seed = -1;
    o->shift = 2;
    o->ckpt_every = 300;
    o->lr = 2e-3;
    o->wd = 0.05;
    o->warmup = 1;
    o->smooth = 0.1;
    o->drop_path = 0.05;
    o->shuffle_p = 0;
    o->time_limit = 0;
    o->min_lr = 0.01;
    o->order = VISION_ORDER_BIDIR;
    o->head = VISION_HEAD_CLS;
    o->flip = 1;
    o->kd_alpha = 0.5;
    o->kd_temp = 2;
}

static void train_help(void) {
    train_opts d;
    train_defaults(&d);
    printf("usage: mambakit train vision [options]\n\n"
           "Train the image classifier on Fashion-MNIST (gzip IDX from the Debian package\n"
           "dataset-fashion-mnist, found on the data search path). The last --val images of a\n"
           "seeded shuffle of the training set are held out for validation; the model with the\n"
           "best validation accuracy is written to --out; a checkpoint with optimiser state is\n"
           "written to --ckpt every --ckpt-every steps and at each epoch end (resume with --resume).\n\n"
           "data:\n"
           "  --data-dir DIR     directory holding fashion-mnist/ (default: search path)\n"
           "  --val N            validation images held out of the 60000 (default %ld)\n"
           "  --limit N          train on the first N of the remaining images (default all)\n"
           "  --shift PX         random shift augmentation, +-PX pixels (default %ld)\n"
           "  --flip 0|1         random horizontal flips (default %d)\n"
           "  --erase P          random erasing: with probability P a random 2-40%% rectangle of\n"
           "                     the image is filled with noise (default 0)\n"
           "model:\n"
           "  --order O          scan orders: row | bidir | cross | atrous (default %s)\n"
           "  --head H           cls | mean (default %s)\n"
           "  --d-model D        width (default %ld)\n"
           "  --layers N         Mamba layers (default %ld)\n"
           "  --d-state N        SSM state size (default %ld)\n"
           "  --expand E         inner width factor (default %ld)\n"
           "  --patch S          patch stride in pixels (default %ld)\n"
           "  --kernel K         patch window (>= stride, overlapping if larger; default %ld)\n"
           "  --stem S           conv stem channels before the patch embedding (4x4 stride 2 +\n"
           "                     GELU; patch/kernel then apply to its 14x14 output); 0 = none (default %ld)\n"
           "  --drop-path P      max stochastic depth (default %g)\n"
           "  --shuffle P        stochastic layer-wise token shuffle, max probability (default %g)\n"
           "optimisation:\n"
           "  --epochs N         (default %ld)\n"
           "  --steps N          instead of --epochs: total optimiser steps (default: from --epochs)\n"
           "  --budget MIN       instead of --epochs: size the run (cosine schedule included) to\n"
           "                     about MIN minutes from the speed of its first steps (default: off)\n"
           "  --batch B          (default %ld)\n"
           "  --lr X             peak AdamW learning rate (default %g)\n"
           "  --min-lr F         final lr as a fraction of the peak (default %g)\n"
           "  --wd X             weight decay (default %g)\n"
           "  --warmup E         warmup epochs (default %g)\n"
           "  --smooth X         label smoothing (default %g)\n"
           "  --seed N           initialisation and validation split (default %ld)\n"
           "  --data-seed N      order, augmentation and drop-path of the training batches (default:\n"
           "                     --seed); give each fine-tune cycle its own to see new samples\n"
           "  --device D         cpu | cuda: where the model trains (default cpu)\n"
           "  --gpu-step S       full | backbone: with cuda, the whole step on the GPU (parameters\n"
           "                     resident there), or the backbone alone with the patch embedding,\n"
           "                     head and AdamW on the CPU (default full)\n"
           "distillation:\n"
           "  --teacher A[,B..]  train towards these models' averaged softened predictions on the same\n"
           "                     augmented batches as well as the labels (up to %d models; default none)\n"
           "  --kd-alpha A       weight of the teacher term: (1-A) x label loss + A x T^2 KL (default %g)\n"
           "  --kd-temp T        softmax temperature of both sides of the teacher term (default %g)\n"
           "files:\n"
           "  --out FILE         best model, without optimiser state (default %s;\n"
           "                     with --resume X.ckpt: X; a checkpoint named otherwise needs --out)\n"
           "  --ckpt FILE        training checkpoint (default OUT.ckpt)\n"
           "  --ckpt-every N     steps between checkpoints (default %ld)\n"
           "  --resume FILE      continue from a checkpoint (its model and training options win)\n"
           "  --init FILE        start from a model's weights (fine-tune: new optimiser and schedule;\n"
           "                     the model options above are then taken from FILE)\n"
           "  --like FILE        train a new model the way FILE was trained: its architecture and the\n"
           "                     training options it records (steps, lr, augmentation, seeds, ...),\n"
           "                     fresh weights; options given beside it win; needs --out. `--like\n"
           "                     models/vision.mkm --device cuda --out mine.mkm` retrains the shipped model\n"
           "  --time-limit MIN   stop after MIN minutes, checkpoint saved (default: none)\n"
           "  --json             end with one JSON object (model, parameters, steps, best epoch, validation\n"
           "                     and test accuracy, minutes) instead of the bare test accuracy on stdout\n"
           "  -h, --help         this help\n",
           d.val, d.shift, d.flip, vision_order_name(d.order), d.head == VISION_HEAD_CLS ? "cls" : "mean", d.d_model,
           d.layers, d.d_state, d.expand, d.patch, d.kernel, d.stem, d.drop_path, d.shuffle_p, d.epochs, d.batch, d.lr,
           d.min_lr, d.wd, d.warmup, d.smooth, d.seed, MAX_TEACHERS, d.kd_alpha, d.kd_temp, d.out, d.ckpt_every);
}

static int parse_train(train_opts *o, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (cli_is_help(a)) {
            train_help();
            return 1;
        }
        struct {
            const char *name;
            long *ip;
            double *dp;
            long lo, hi;
            double dlo, dhi;
        } nums[] = {
            {"--epochs", &o->epochs, 0, 1, 100000, 0, 0},      {"--batch", &o->batch, 0, 1, 4096, 0, 0},
            {"--d-model", &o->d_model, 0, 4, 1024, 0, 0},     {"--layers", &o->layers, 0, 1, 64, 0, 0},
            {"--d-state", &o->d_state, 0, 1, 64, 0, 0},       {"--expand", &o->expand, 0, 1, 8, 0, 0},
            {"--patch", &o->patch, 0, 1, 28, 0, 0},           {"--kernel", &o->kernel, 0, 1, 28, 0, 0},
            {"--val", &o->val, 0, 0, 30000, 0, 0},            {"--limit", &o->limit, 0, 0, 60000, 0, 0},
            {"--seed", &o->seed, 0, 0, 1L << 40, 0, 0},       {"--shift", &o->shift, 0, 0, 8, 0, 0},
            {"--data-seed", &o->data_seed, 0, 0, 1L << 40, 0, 0},
            {"--ckpt-every", &o->ckpt_every, 0, 1, 1L << 30, 0, 0},
            {"--stem", &o->stem, 0, 0, 256, 0, 0},            {"--steps", &o->steps, 0, 1, 1L << 40, 0, 0},            {"--budget", 0, &o->budget, 0, 0, 0, 1e6},
            {"--lr", 0, &o->lr, 0, 0, 1e-7, 1},               {"--wd", 0, &o->wd, 0, 0, 0, 10},
            {"--warmup", 0, &o->warmup, 0, 0, 0, 1000},       {"--smooth", 0, &o->smooth, 0, 0, 0, 0.9},
            {"--drop-path", 0, &o->drop_path, 0, 0, 0, 0.9},  {"--shuffle", 0, &o->shuffle_p, 0, 0, 0, 1},
            {"--time-limit", 0, &o->time_limit, 0, 0, 0, 1e6}, {"--min-lr", 0, &o->min_lr, 0, 0, 0, 1},
            {"--erase", 0, &o->erase, 0, 0, 0, 1},
            {"--kd-alpha", 0, &o->kd_alpha, 0, 0, 0, 1},      {"--kd-temp", 0, &o->kd_temp, 0, 0, 0.05, 100},
        };
        int done = 0;
        for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++)
            if (!strcmp(a, nums[k].name)) {
                if (opt_val(argc, argv, &i, &v)) return -1;
                if (nums[k].ip ? cli_int(a, v, nums[k].lo, nums[k].hi, nums[k].ip)
                               : cli_float(a, v, nums[k].dlo, nums[k].dhi, nums[k].dp))
                    return -1;
                done = 1;
                o->kd_given |= !strncmp(a, "--kd-", 5);
                if (o->steps_from_like && (!strcmp(a, "--epochs") || !strcmp(a, "--steps"))) {
                    if (!strcmp(a, "--epochs")) o->steps = 0;
                    o->steps_from_like = 0;
                }
            }
        if (done) continue;
        if (!strcmp(a, "--json")) {
            o->json = 1;
            continue;
        }
        if (!strcmp(a, "--device")) {
            if (opt_val(argc, argv, &i, &v)) return -1;
            o->device = v;
            continue;
        }
        if (!strcmp(a, "--gpu-step")) {
            if (opt_val(argc, argv, &i, &v)) return -1;
            if (strcmp(v, "full") && strcmp(v, "backbone")) {
                fprintf(stderr, "mambakit: train vision: --gpu-step: '%s' is not full or backbone\n", v);
                return -1;
            }
            o->gpu_backbone_only = !strcmp(v, "backbone");
            continue;
        }
        if (!strcmp(a, "--teacher")) {
            if (opt_val(argc, argv, &i, &v)) return -1;
            o->teacher = v;
            continue;
        }
        if (!strcmp(a, "--like")) { /* applied before the other options (cmd_train_vision) */
            if (opt_val(argc, argv, &i, &v)) return -1;
            o->like = v;
            continue;
        }
        if (!strcmp(a, "--data-dir") || !strcmp(a, "--out") || !strcmp(a, "--ckpt") || !strcmp(a, "--resume") || !strcmp(a, "--init") ||
            !strcmp(a, "--order") || !strcmp(a, "--head") || !strcmp(a, "--flip")) {
            if (opt_val(argc, argv, &i, &v)) return -1;
            if (!strcmp(a, "--data-dir")) o->data_dir = v;
            else if (!strcmp(a, "--out")) o->out = v, o->out_given = 1;
            else if (!strcmp(a, "--ckpt")) o->ckpt = v;
            else if (!strcmp(a, "--resume")) o->resume = v;
            else if (!strcmp(a, "--init")) o->init = v;
            else if (!strcmp(a, "--order")) {
                if ((o->order = vision_order_parse(v)) < 0) {
                    fprintf(stderr, "mambakit: --order: '%s' is not row, bidir, cross or atrous\n", v);
                    return -1;
                }
            } else if (!strcmp(a, "--head")) {
                if (strcmp(v, "cls") && strcmp(v, "mean")) {
                    fprintf(stderr, "mambakit: --head: '%s' is not cls or mean\n", v);
                    return -1;
                }
                o->head = !strcmp(v, "cls") ? VISION_HEAD_CLS : VISION_HEAD_MEAN;
            } else {
                long f;
                if (cli_int("--flip", v, 0, 1, &f)) return -1;
                o->flip = (int)f;
            }
            continue;
        }
        fprintf(stderr, "mambakit: train vision: unknown option '%s' (see mambakit train vision --help)\n", a);
        return -1;
    }
    return 0;
}

/* training options that a checkpoint carries, so --resume continues the same run */
static void opts_to_config(const train_opts *o, mk_config *c) {
    mk_config_set_int(c, "train_epochs", o->epochs);
    mk_config_set_int(c, "train_total", o->total_steps);
    mk_config_set_int(c, "train_batch", o->batch);
    mk_config_set_int(c, "train_val", o->val);
    mk_config_set_int(c, "train_limit", o->limit);
    mk_config_set_int(c, "train_seed", o->seed);
    mk_config_set_int(c, "train_data_seed", o->data_seed);
    mk_config_set_int(c, "train_shift", o->shift);
    mk_config_set_int(c, "train_flip", o->flip);
    mk_config_set_float(c, "train_lr", o->lr);
    mk_config_set_float(c, "train_min_lr", o->min_lr);
    mk_config_set_float(c, "train_wd", o->wd);
    mk_config_set_float(c, "train_warmup", o->warmup);
    mk_config_set_float(c, "train_smooth", o->smooth);
    mk_config_set_float(c, "train_erase", o->erase);
    if (o->teacher) {
        mk_config_set(c, "train_teacher", "%s", o->teacher);
        mk_config_set_float(c, "train_kd_alpha", o->kd_alpha);
        mk_config_set_float(c, "train_kd_temp", o->kd_temp);
    }
}
static int opts_from_config(train_opts *o, const mk_config *c) {
    long *ip[] = {&o->epochs, &o->batch, &o->val, &o->limit, &o->seed, &o->shift};
    const char *ik[] = {"train_epochs", "train_batch", "train_val", "train_limit", "train_seed", "train_shift"};
    for (int i = 0; i < 6; i++)
        if (mk_config_get_int(c, ik[i], ip[i])) return -1;
    long f;
    if (mk_config_get_int(c, "train_total", &o->total_steps)) return -1;
    if (mk_config_get_int(c, "train_flip", &f)) return -1;
    o->flip = (int)f;
    /* checkpoints written before --data-seed existed used --seed for the batches too */
    if (!mk_config_get(c, "train_data_seed") || mk_config_get_int(c, "train_data_seed", &o->data_seed))
        o->data_seed = o->seed;
    double *dp[] = {&o->lr, &o->min_lr, &o->wd, &o->warmup, &o->smooth};
    const char *dk[] = {"train_lr", "train_min_lr", "train_wd", "train_warmup", "train_smooth"};
    for (int i = 0; i < 5; i++)
        if (mk_config_get_float(c, dk[i], dp[i])) return -1;
    o->erase = 0; /* absent in checkpoints written before --erase existed */
    if (mk_config_get(c, "train_erase") && (mk_config_get_float(c, "train_erase", &o->erase) || !(o->erase >= 0 && o->erase <= 1))) {
        mk_error("train_erase in the checkpoint is not a probability");
        return -1;
    }
    o->teacher = NULL; /* a resumed distillation run reloads its teachers */
    if (mk_config_get(c, "train_teacher")) {
        snprintf(o->teacher_buf, sizeof o->teacher_buf, "%s", mk_config_get(c, "train_teacher"));
        o->teacher = o->teacher_buf;
        if (mk_config_get_float(c, "train_kd_alpha", &o->kd_alpha) || mk_config_get_float(c, "train_kd_temp", &o->kd_temp) ||
            !(o->kd_alpha >= 0 && o->kd_alpha <= 1) || !(o->kd_temp >= 0.05 && o->kd_temp <= 100)) {
            mk_error("train_kd_alpha / train_kd_temp in the checkpoint are missing or out of range");
            return -1;
        }
    }
    if (o->batch < 1 || o->epochs < 1 || o->val < 0 || o->val > 30000 || o->limit < 0) {
        mk_error("training options in the checkpoint are out of range");
        return -1;
    }
    return 0;
}

/* --like MODEL: the architecture and the training options a model file records become the
   defaults, so the options given beside it still win. The run starts from fresh weights drawn
   with the recorded seed: given nothing else, it replays the recorded run. */
static int apply_like(train_opts *o, const char *path) {
    vision_model t;
    mk_config *c = mk_calloc(1, sizeof *c);
    int rc = -1;
    if (vision_model_load(&t, path, 0, c)) goto out;
    const vision_cfg *vc = &t.cfg;
    o->d_model = vc->mc.d_model, o->layers = vc->mc.n_layer, o->d_state = vc->mc.d_state;
    o->expand = vc->mc.expand, o->drop_path = vc->mc.drop_path, o->shuffle_p = vc->mc.shuffle_p;
    o->patch = vc->patch, o->kernel = vc->kernel, o->stem = vc->stem, o->order = vc->order, o->head = vc->head;
    if (!mk_config_get(c, "train_total")) {
        mk_error("%s: --like: the file records no training options (written by average, or before they were kept)", path);
    } else if (opts_from_config(o, c)) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", mk_last_error());
        mk_error("%s: --like: %s", path, msg);
    } else {
        /* the recorded run's length, as --steps (an explicit --epochs / --steps / --budget wins) */
        o->steps = o->total_steps > 0 ? o->total_steps : 0;
        o->steps_from_like = o->steps > 0;
        o->total_steps = 0;
        rc = 0;
    }
    vision_model_free(&t);
out:
    free(c);
    return rc;
}

int cmd_train_vision(int argc, char **argv) {
    train_opts o;
    train_defaults(&o);
    /* --like first: its options are the defaults the rest of the command line overrides */
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) break;
        if (!strcmp(argv[i], "--like") && i + 1 < argc) {
            if (apply_like(&o, argv[i + 1])) {
                fprintf(stderr, "mambakit: %s\n", mk_last_error());
                return 1;
            }
            break;
        }
    }
    int pr = parse_train(&o, argc, argv);
    if (pr) return pr > 0 ? 0 : 2;
    int dev = mk_device_parse(o.device);
    if (dev < 0) {
        fprintf(stderr, "mambakit: %s\n", mk_last_error());
        return 2;
    }
    if (o.like && !o.out_given) { /* the default --out is the shipped model, often the one copied */
        fprintf(stderr, "mambakit: train vision: --like needs --out (the new model's file)\n");
        return 2;
    }
    if (o.kd_given && !o.teacher && !o.resume) {
        fprintf(stderr, "mambakit: train vision: --kd-alpha / --kd-temp need --teacher\n");
        return 2;
    }
    char ckpt_path[4096], out_buf[4096];
    if (o.resume && !o.out_given &&
        !(o.out = cli_resume_out("train vision", "--out", "best model", o.resume, out_buf, sizeof out_buf)))
        return 2;
    int rc = 1;
    fmnist_set tr = {0}, te = {0};
    vision_model m, teach[MAX_TEACHERS];
    vision_acts tacts[MAX_TEACHERS];
    int have_model = 0, n_teach = 0;
    float *timg = NULL, *tprob = NULL, *tsm = NULL;
    mk_config *cf = mk_calloc(1, sizeof *cf);
    vision_acts acts;
    vision_acts_init(&acts);
    int *perm = NULL, *order = NULL, *y = NULL;
    float *img = NULL, *dlog = NULL;
    double best_val = -1;
    long best_epoch = -1;

    if (o.resume) {
        if (vision_model_load(&m, o.resume, 1, cf)) goto fail;
        have_model = 1;
        if (opts_from_config(&o, cf)) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", mk_last_error());
            mk_error("%s: %s", o.resume, msg);
            goto fail;
        }
        double bv;
        if (mk_config_get(cf, "best_val") && !mk_config_get_float(cf, "best_val", &bv)) best_val = bv;
        long be;
        if (mk_config_get(cf, "best_epoch") && !mk_config_get_int(cf, "best_epoch", &be)) best_epoch = be;
    }
    else if (o.init) {
        /* fine-tune: weights (and architecture, normalisation) from a model, fresh optimiser and schedule */
        if (vision_model_load(&m, o.init, 0, NULL)) goto fail;
        have_model = 1;
        mk_params_alloc_optim(&m.p);
        m.p.step = 0;
    }
    snprintf(ckpt_path, sizeof ckpt_path, "%s", o.ckpt ? o.ckpt : o.resume ? o.resume : "");
    if (!ckpt_path[0]) snprintf(ckpt_path, sizeof ckpt_path, "%s.ckpt", o.out);

    if (fmnist_load_split(&tr, o.data_dir, "train")) goto fail;
    if (fmnist_load_split(&te, o.data_dir, "test")) goto fail;
    const int H = tr.rows, W = tr.cols, HW = H * W;
    if (o.val >= tr.n) {
        mk_error("--val %ld leaves no training images (the set has %d)", o.val, tr.n);
        goto fail;
    }
    /* seeded split: the last `val` of a shuffle are held out */
    perm = split_perm(tr.n, o.seed);
    const int n_val = (int)o.val;
    int n_train = tr.n - n_val;
    if (o.limit > 0 && o.limit < n_train) n_train = (int)o.limit;
    const int *val_idx = perm + (tr.n - n_val);

    if (!have_model) {
        vision_cfg vc;
        memset(&vc, 0, sizeof vc);
        vc.img_h = H, vc.img_w = W, vc.img_c = 1;
        vc.patch = (int)o.patch, vc.kernel = (int)o.kernel, vc.stem = (int)o.stem;
        vc.n_class = 10;
        vc.order = o.order, vc.head = o.head;
        /* normalisation statistics of the training images */
        double s1 = 0, s2 = 0;
        for (int i = 0; i < n_train; i++) {
            const uint8_t *p = tr.images + (size_t)perm[i] * HW;
            for (int j = 0; j < HW; j++) {
                double v = p[j] / 255.0;
                s1 += v;
                s2 += v * v;
            }
        }
        double cnt = (double)n_train * HW, mu = s1 / cnt;
        vc.mean[0] = (float)mu;
        vc.std[0] = (float)sqrt(s2 / cnt - mu * mu);
        for (int k = 0; k < 10; k++) snprintf(vc.classes[k], sizeof vc.classes[k], "%s", fmnist_classes[k]);
        mamba_cfg_default(&vc.mc, (int)o.d_model, (int)o.layers);
        vc.mc.d_state = (int)o.d_state;
        vc.mc.expand = (int)o.expand;
        vc.mc.drop_path = (float)o.drop_path;
        vc.mc.shuffle_p = (float)o.shuffle_p;
        if (vision_model_create(&m, &vc)) goto fail;
        have_model = 1;
        mk_rng init_rng;
        mk_rng_seed(&init_rng, (uint64_t)o.seed);
        vision_model_init(&m, &init_rng);
        mk_params_alloc_optim(&m.p);
    }
    if (m.cfg.img_h != H || m.cfg.img_w != W || m.cfg.img_c != 1 || m.cfg.n_class != 10) {
        mk_error("%s: model input %dx%dx%d / %d classes does not match Fashion-MNIST", o.resume ? o.resume : o.init,
                 m.cfg.img_h, m.cfg.img_w, m.cfg.img_c, m.cfg.n_class);
        goto fail;
    }
    use_device(&m, dev);
    if (o.teacher) {
        /* the teachers see the student's augmented batch, renormalised with their own statistics */
        char list[4096], *save = NULL;
        snprintf(list, sizeof list, "%s", o.teacher);
        for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (n_teach == MAX_TEACHERS) {
                mk_error("--teacher: at most %d models", MAX_TEACHERS);
                goto fail;
            }
            vision_model *t = &teach[n_teach];
            if (vision_model_load(t, tok, 0, NULL)) goto fail;
            vision_acts_init(&tacts[n_teach++]);
            const vision_cfg *tc = &t->cfg;
            if (tc->img_h != H || tc->img_w != W || tc->img_c != 1 || tc->n_class != 10) {
                mk_error("%s: teacher input %dx%dx%d / %d classes does not match Fashion-MNIST", tok, tc->img_h, tc->img_w,
                         tc->img_c, tc->n_class);
                goto fail;
            }
            use_device(t, dev);
        }
        if (!n_teach) {
            mk_error("--teacher: no model file named");
            goto fail;
        }
    }
    if (o.data_seed < 0) o.data_seed = o.seed;
    const int B = (int)o.batch;
    const long spe = (n_train + B - 1) / B; /* steps per epoch, last batch partial */
    if (!o.resume) o.total_steps = o.steps > 0 ? o.steps : spe * o.epochs;
    if (!o.resume && o.steps > 0) o.epochs = (o.steps + spe - 1) / spe;
    long total = o.total_steps;
    const int sizing = !o.resume && o.budget > 0; /* total fixed after the first steps */
    mk_adamw_cfg oc = mk_adamw_defaults((float)o.lr, total);
    oc.weight_decay = (float)o.wd;
    oc.warmup = (long)(o.warmup * spe);
    oc.clip = 1.0f;
    oc.min_lr_frac = (float)o.min_lr;

    vision_cfg_to_config(&m.cfg, cf);
    opts_to_config(&o, cf);
    fprintf(stderr,
            "train vision: %d train / %d val images, %zu parameters, order %s (%d dirs), d_model %d, %d layers, "
            "%d tokens, batch %d, %ld epochs (%ld steps), %d threads\n",
            n_train, n_val, vision_model_num_params(&m), vision_order_name(m.cfg.order), m.G, m.cfg.mc.d_model,
            m.cfg.mc.n_layer, m.cfg.L, B, o.epochs, total, mk_num_threads());
    if (n_teach)
        fprintf(stderr, "train vision: distilling from %d teacher(s) (%s), alpha %g, temperature %g\n", n_teach,
                o.teacher, o.kd_alpha, o.kd_temp);
    if (m.p.step >= total) fprintf(stderr, "train vision: checkpoint already at step %ld of %ld\n", m.p.step, total);

    /* on a GPU the whole step (front end, loss, AdamW; the teachers' forwards too) stays on
     * the device where the backend covers the model: the class-token head */
    mk_cls_frontend fe;
    const int on_gpu = dev == MK_DEV_CUDA && m.bb.device == MK_DEV_CUDA;
    const int resident = on_gpu && !o.gpu_backbone_only && !vision_model_frontend(&m, (float)o.smooth, &fe);
    fe.kd_alpha = (float)o.kd_alpha, fe.kd_temp = (float)o.kd_temp;
    if (on_gpu)
        fprintf(stderr, "train vision: %s\n",
                resident ? "every op of the training step on the GPU (parameters resident; copied back for validation and checkpoints)"
                : o.gpu_backbone_only ? "backbone on the GPU; patch embedding, head and AdamW on the CPU (--gpu-step backbone)"
                                      : "backbone on the GPU; patch embedding, head and AdamW on the CPU (mean head)");
    order = mk_malloc(sizeof(int) * n_train);
    y = mk_malloc(sizeof(int) * B);
    img = mk_malloc(sizeof(float) * (size_t)B * HW);
    dlog = mk_malloc(sizeof(float) * (size_t)B * 10);
    if (n_teach) {
        timg = mk_malloc(sizeof(float) * (size_t)B * HW);
        tprob = mk_malloc(sizeof(float) * (size_t)B * 10);
        tsm = mk_malloc(sizeof(float) * (size_t)B * 10);
    }
    mk_rng rng;
    mk_progress prog;
    const long start_step = m.p.step;
    mk_progress_start(&prog, "train", (total - start_step) * (long)B);
    double t_start = mk_time(), t_ckpt = t_start;
    double run_loss = 0, run_hit = 0, run_n = 0;
    long epoch = -1;
    int stopped = 0;
    while (m.p.step < total) {
        long step = m.p.step, e = step / spe, bi = step % spe;
        if (e != epoch) {
            epoch = e;
            for (int i = 0; i < n_train; i++) order[i] = perm[i];
            mk_rng er;
            mk_rng_seed(&er, (uint64_t)o.data_seed * 1000003u + (uint64_t)e);
            mk_rng_shuffle(&er, order, n_train);
        }
        /* per-step rng: a resumed run draws the same augmentation as an uninterrupted one */
        mk_rng_seed(&rng, ((uint64_t)o.data_seed << 32) ^ (uint64_t)step * 0x9E3779B97F4A7C15ull);
        int i0 = (int)(bi * B), nb = n_train - i0 < B ? n_train - i0 : B;
        for (int b = 0; b < nb; b++) {
            int id = order[i0 + b];
            int dy = o.shift ? mk_rng_int(&rng, 2 * (int)o.shift + 1) - (int)o.shift : 0;
            int dx = o.shift ? mk_rng_int(&rng, 2 * (int)o.shift + 1) - (int)o.shift : 0;
            int fl = o.flip ? mk_rng_int(&rng, 2) : 0;
            fm_item(img + (size_t)b * HW, &tr, id, dy, dx, fl, m.cfg.mean[0], m.cfg.std[0]);
            fm_erase(img + (size_t)b * HW, tr.rows, tr.cols, (float)o.erase, m.cfg.mean[0], m.cfg.std[0], &rng);
            y[b] = tr.labels[id];
        }
        if (n_teach) { /* the teachers' mean distribution at temperature T, without dropout or drop-path */
            memset(tprob, 0, sizeof(float) * (size_t)nb * 10);
            for (int j = 0; j < n_teach; j++) {
                const float a = m.cfg.std[0] / teach[j].cfg.std[0], c = (m.cfg.mean[0] - teach[j].cfg.mean[0]) / teach[j].cfg.std[0];
                const float *tin = img; /* a teacher trained on the same statistics takes the batch as it is */
                if (a != 1.f || c != 0.f) {
                    for (size_t k = 0; k < (size_t)nb * HW; k++) timg[k] = img[k] * a + c;
                    tin = timg;
                }
                vision_forward(&teach[j], &tacts[j], tin, nb, 0, NULL);
                for (size_t k = 0; k < (size_t)nb * 10; k++) tsm[k] = tacts[j].logits[k] / (float)o.kd_temp;
                softmax_rows(tsm, tsm, nb, 10);
                for (size_t k = 0; k < (size_t)nb * 10; k++) tprob[k] += tsm[k] / n_teach;
            }
        }
        int hit;
        float loss;
        if (resident) {
            if (mk_cuda_cls_train_step(&m.bb, &acts.ma, &fe, img, y, n_teach ? tprob : NULL, nb, m.orders, &oc, &rng,
                                       &loss, &hit))
                goto fail;
        } else {
            mk_params_zero_grad(&m.p);
            vision_forward(&m, &acts, img, nb, 1, &rng);
            loss = n_teach ? vision_xent_kd(dlog, &hit, acts.logits, tprob, y, nb, 10, (float)o.smooth, (float)o.kd_alpha,
                                            (float)o.kd_temp)
                           : vision_xent_smooth(dlog, &hit, acts.logits, y, nb, 10, (float)o.smooth);
            vision_backward(&m, &acts, dlog);
            mk_adamw_step(&m.p, &oc);
        }
        if (!isfinite(loss)) {
            mk_error("training diverged at step %ld (loss %g); lower --lr", step, loss);
            goto fail;
        }
        run_loss = run_loss * 0.98 + loss * nb * 0.02;
        run_hit = run_hit * 0.98 + hit * 0.02;
        run_n = run_n * 0.98 + nb * 0.02;
        char extra[160];
        snprintf(extra, sizeof extra, "ep %ld/%ld  loss %.3f  acc %.1f%%  lr %.2e  ", e + 1, o.epochs,
                 run_loss / run_n, 100 * run_hit / run_n, mk_lr_at(&oc, step));
        mk_progress_update(&prog, (m.p.step - start_step) * (long)B, "img", extra);

        if (sizing && m.p.step == 30) {
            /* steps that fit the budget, keeping ~8% for the validation passes */
            double per = (mk_time() - t_start) / 30;
            total = (long)(o.budget * 60 * 0.92 / per);
            if (total < 31) total = 31;
            if (total < oc.warmup + 1) oc.warmup = total / 10;
            oc.total = total;
            o.total_steps = total;
            o.epochs = (total + spe - 1) / spe;
            opts_to_config(&o, cf);
            prog.total = (total - start_step) * (long)B;
            fprintf(stderr, "%strain vision: %.0f img/s: budget of %.1f min -> %ld steps (%.2f epochs)\n",
                    prog.tty ? "\n" : "", B / per, o.budget, total, (double)total / spe);
        }
        int epoch_end = m.p.step % spe == 0 || m.p.step == total;
        int over_time = o.time_limit > 0 && mk_time() - t_start > o.time_limit * 60;
        const int save_ckpt = epoch_end || over_time || m.p.step % o.ckpt_every == 0 || mk_time() - t_ckpt > 600;
        /* the host's copy of the weights and moments, for validation and checkpoints */
        if (resident && save_ckpt && mamba_backbone_cuda_sync_host(&m.bb)) goto fail;
        if (epoch_end) {
            double va = n_val ? evaluate(&m, &acts, &tr, val_idx, n_val, 256, NULL, 0, 0) : 0;
            int best = n_val ? va > best_val : 1;
            if (best) {
                best_val = va;
                best_epoch = e + 1;
                mk_config_set_float(cf, "val_acc", va);
                mk_config_set_int(cf, "epoch", e + 1);
                if (mk_ckpt_save(o.out, cf, &m.p, 0)) goto fail;
            }
            mk_config_set_float(cf, "best_val", best_val);
            mk_config_set_int(cf, "best_epoch", best_epoch);
            if (!mk_quiet && prog.tty) fputc('\n', stderr);
            fprintf(stderr, "epoch %ld/%ld: val acc %.2f%%%s  (%.1f min)\n", e + 1, o.epochs, 100 * va,
                    best ? ", best so far: saved" : "", (mk_time() - t_start) / 60);
        }
        if (save_ckpt) {
            if (mk_ckpt_save(ckpt_path, cf, &m.p, 1)) goto fail;
            t_ckpt = mk_time();
        }
        if (over_time && m.p.step < total) {
            char again[4096];
            const char *same = cli_out_from_ckpt(ckpt_path, again, sizeof again);
            fprintf(stderr, "\ntrain vision: time limit reached at step %ld/%ld; resume with --resume %s%s%s\n",
                    m.p.step, total, ckpt_path, same && !strcmp(same, o.out) ? "" : " --out ",
                    same && !strcmp(same, o.out) ? "" : o.out);
            stopped = 1;
            break;
        }
    }
    mk_progress_end(&prog);
    if (!stopped) {
        /* final: test accuracy of the best (saved) model, recorded in its config */
        vision_model best;
        mk_config *bc = mk_calloc(1, sizeof *bc);
        if (vision_model_load(&best, o.out, 0, bc)) {
            free(bc);
            goto fail;
        }
        use_device(&best, dev);
        double ta = evaluate(&best, &acts, &te, NULL, te.n, 256, NULL, 0, 0);
        mk_config_set_float(bc, "test_acc", ta);
        int sr = mk_ckpt_save(o.out, bc, &best.p, 0);
        fprintf(stderr, "train vision: best epoch %ld, val acc %.2f%%, test acc %.2f%%, %.1f min; model in %s\n",
                best_epoch, 100 * best_val, 100 * ta, (mk_time() - t_start) / 60, o.out);
        if (o.json) {
            printf("{\"model\": ");
            cli_json_str(stdout, o.out);
            printf(", \"params\": %zu, \"steps\": %ld, \"best_epoch\": %ld, \"val_acc\": %.4f, \"test_acc\": %.4f, "
                   "\"minutes\": %.2f}\n",
                   best.p.total, m.p.step, best_epoch, best_val, ta, (mk_time() - t_start) / 60);
        } else
            printf("%.4f\n", ta);
        vision_model_free(&best);
        free(bc);
        if (sr) goto fail;
    }
    rc = 0;
fail:
    if (rc) fprintf(stderr, "mambakit: %s\n", mk_last_error());
    if (have_model) vision_model_free(&m);
    for (int j = 0; j < n_teach; j++) {
        vision_model_free(&teach[j]);
        vision_acts_free(&tacts[j]);
    }
    free(timg);
    free(tprob);
    free(tsm);
    vision_acts_free(&acts);
    fmnist_free(&tr);
    fmnist_free(&te);
    free(cf);
    free(perm);
    free(order);
    free(y);
    free(img);
    free(dlog);
    return rc;
}

/* ------------------------------------------------------------------- eval */

/* Confusion matrix as a PNG: K x K cells of `cs` pixels, white (0) to dark
 * blue (row maximum), rows = true class; a grey 1-pixel grid. */
static int confusion_png(const char *path, const long *cm, int K) {
    const int cs = 24, S = K * cs + 1;
    uint8_t *px = mk_malloc((size_t)S * S * 3);
    memset(px, 160, (size_t)S * S * 3);
    for (int t = 0; t < K; t++) {
        long row = 0;
        for (int p = 0; p < K; p++) row += cm[(size_t)t * K + p];
        for (int p = 0; p < K; p++) {
            double f = row ? (double)cm[(size_t)t * K + p] / row : 0;
            f = sqrt(f); /* make small confusions visible */
            uint8_t r = (uint8_t)(255 - f * 247), g = (uint8_t)(255 - f * 207), b = (uint8_t)(255 - f * 107);
            for (int y = 1; y < cs; y++)
                for (int x = 1; x < cs; x++) {
                    uint8_t *q = px + (((size_t)(t * cs + y)) * S + (size_t)(p * cs + x)) * 3;
                    q[0] = r, q[1] = g, q[2] = b;
                }
        }
    }
    int r = vision_png_write(path, px, S, S, 3);
    free(px);
    return r;
}

int cmd_eval_vision(int argc, char **argv) {
    const char *model_opt = NULL, *data_dir = NULL, *png = NULL, *device = "cpu";
    const char *split = "test";
    long limit = 0;
    int json = 0, tta = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_is_help(a)) {
            printf("usage: mambakit eval vision [options]\n\n"
                   "Accuracy of a vision model on the Fashion-MNIST test set (10000 images) and its\n"
                   "confusion matrix (rows: true class, columns: predicted).\n\n"
                   "options:\n"
                   "  --model FILE     model file (default: models/%s)\n"
                   "  --data-dir DIR   directory holding fashion-mnist/ (default: search path)\n"
                   "  --split S        test (default) or val: the training images the model was\n"
                   "                   selected on (the --seed and --val split recorded in it)\n"
                   "  --tta            average the prediction over the image and its mirror image\n"
                   "                   (for models trained with --flip 1; twice the work)\n"
                   "  --limit N        evaluate only the first N images of the split (default all)\n"
                   "  --png FILE       also write the confusion matrix as a PNG (default: none)\n"
                   "  --json           print accuracy and matrix as one JSON object\n"
                   "  --device D       cpu | cuda (default cpu)\n"
                   "  -h, --help       this help\n",
                   DEFAULT_MODEL);
            return 0;
        }
        if (!strcmp(a, "--json")) {
            json = 1;
            continue;
        }
        if (!strcmp(a, "--tta")) {
            tta = 1;
            continue;
        }
        if (strcmp(a, "--model") && strcmp(a, "--data-dir") && strcmp(a, "--png") && strcmp(a, "--limit") &&
            strcmp(a, "--device") && strcmp(a, "--split")) {
            fprintf(stderr, "mambakit: eval vision: unknown option '%s' (see mambakit eval vision --help)\n", a);
            return 2;
        }
        if (opt_val(argc, argv, &i, &v)) return 2;
        if (!strcmp(a, "--model")) model_opt = v;
        else if (!strcmp(a, "--data-dir")) data_dir = v;
        else if (!strcmp(a, "--png")) png = v;
        else if (!strcmp(a, "--device")) device = v;
        else if (!strcmp(a, "--split")) {
            if (strcmp(v, "test") && strcmp(v, "val")) {
                fprintf(stderr, "mambakit: eval vision: --split: '%s' is not test or val\n", v);
                return 2;
            }
            split = v;
        } else if (cli_int("--limit", v, 0, 10000000, &limit)) return 2;
    }
    int dev = mk_device_parse(device);
    if (dev < 0) {
        fprintf(stderr, "mambakit: %s\n", mk_last_error());
        return 2;
    }
    char mpath[4096];
    if (find_model(model_opt, mpath, sizeof mpath)) return 1;
    vision_model m;
    mk_config mcfg;
    if (vision_model_load(&m, mpath, 0, &mcfg)) return cli_fail();
    const int on_val = !strcmp(split, "val");
    long seed = 0, n_val = 0;
    if (on_val && (mk_config_get_int(&mcfg, "train_seed", &seed) || mk_config_get_int(&mcfg, "train_val", &n_val) ||
                   n_val <= 0)) {
        fprintf(stderr, "mambakit: %s: the model records no validation split (--split val needs one)\n", mpath);
        vision_model_free(&m);
        return 1;
    }
    use_device(&m, dev);
    fmnist_set te;
    if (fmnist_load_split(&te, data_dir, on_val ? "train" : "test")) {
        vision_model_free(&m);
        return cli_fail();
    }
    int *perm = NULL;
    const int *idx = NULL;
    if (on_val) {
        if (n_val >= te.n) {
            fprintf(stderr, "mambakit: %s: its validation split (%ld) is not smaller than the training set (%d)\n",
                    mpath, n_val, te.n);
            fmnist_free(&te);
            vision_model_free(&m);
            return 1;
        }
        perm = split_perm(te.n, seed);
        idx = perm + (te.n - n_val);
    }
    const int n_all = on_val ? (int)n_val : te.n;
    int rc = 0;
    const int K = m.cfg.n_class;
    if (m.cfg.img_h != te.rows || m.cfg.img_w != te.cols || m.cfg.img_c != 1 || K != 10) {
        fprintf(stderr, "mambakit: %s: model input %dx%dx%d / %d classes does not match Fashion-MNIST\n", mpath,
                m.cfg.img_h, m.cfg.img_w, m.cfg.img_c, K);
        free(perm);
        fmnist_free(&te);
        vision_model_free(&m);
        return 1;
    }
    int n = limit > 0 && limit < n_all ? (int)limit : n_all;
    long *cm = mk_calloc((size_t)K * K, sizeof(long));
    vision_acts acts;
    vision_acts_init(&acts);
    double t0 = mk_time();
    double acc = evaluate(&m, &acts, &te, idx, n, 256, cm, 1, tta);
    double dt = mk_time() - t0;
    if (json) {
        printf("{\"model\": ");
        cli_json_str(stdout, mpath);
        printf(", \"split\": \"%s\", \"tta\": %s", split, tta ? "true" : "false");
        printf(", \"images\": %d, \"accuracy\": %.4f, \"images_per_s\": %.1f, \"classes\": [", n, acc, n / dt);
        for (int k = 0; k < K; k++) {
            printf("%s", k ? ", " : "");
            cli_json_str(stdout, m.cfg.classes[k]);
        }
        printf("], \"confusion\": [");
        for (int t = 0; t < K; t++) {
            printf("%s[", t ? ", " : "");
            for (int p = 0; p < K; p++) printf("%s%ld", p ? ", " : "", cm[(size_t)t * K + p]);
            printf("]");
        }
        printf("]}\n");
    } else {
        printf("model %s: %s accuracy %.2f%%%s (%d images, %.0f images/s, %d threads)\n\n", mpath,
               on_val ? "validation" : "test", 100 * acc, tta ? " with mirror TTA" : "", n, n / dt, mk_num_threads());
        printf("confusion matrix (rows: true class, columns: predicted)\n%13s", "");
        for (int p = 0; p < K; p++) printf(" %5d", p);
        printf("  recall\n");
        for (int t = 0; t < K; t++) {
            long row = 0;
            for (int p = 0; p < K; p++) row += cm[(size_t)t * K + p];
            printf("%d %-11.11s", t, m.cfg.classes[t]);
            for (int p = 0; p < K; p++) printf(" %5ld", cm[(size_t)t * K + p]);
            printf("  %5.1f%%\n", row ? 100.0 * cm[(size_t)t * K + t] / row : 0.0);
        }
    }
    if (png) {
        if (confusion_png(png, cm, K)) rc = cli_fail();
        else if (!json) printf("\nconfusion matrix image: %s\n", png);
    }
    free(cm);
    free(perm);
    vision_acts_free(&acts);
    fmnist_free(&te);
    vision_model_free(&m);
    return rc;
}

/* ------------------------------------------------------------------ bench */

int cmd_bench_vision(int argc, char **argv) {
    const char *model_opt = NULL;
    long reps = 200, batch = 64;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (cli_is_help(a)) {
            printf("usage: mambakit bench vision [options]\n\n"
                   "Single-image latency and batched throughput (inference and training step) of a\n"
                   "vision model on the CPU, with random input.\n\n"
                   "options:\n"
                   "  --model FILE     model (default: models/%s)\n"
                   "  --reps N         single-image repetitions (default 200)\n"
                   "  --batch B        batch for the throughput figures (default 64)\n"
                   "  -h, --help       this help\n",
                   DEFAULT_MODEL);
            return 0;
        }
        if (strcmp(a, "--model") && strcmp(a, "--reps") && strcmp(a, "--batch")) {
            fprintf(stderr, "mambakit: bench vision: unknown option '%s'\n", a);
            return 2;
        }
        if (opt_val(argc, argv, &i, &v)) return 2;
        if (!strcmp(a, "--model")) model_opt = v;
        else if (!strcmp(a, "--reps")) {
            if (cli_int(a, v, 1, 1000000, &reps)) return 2;
        } else if (cli_int(a, v, 1, 4096, &batch))
            return 2;
    }
    char mpath[4096];
    if (find_model(model_opt, mpath, sizeof mpath)) return 1;
    vision_model m;
    if (vision_model_load(&m, mpath, 0, NULL)) return cli_fail();
    const vision_cfg *c = &m.cfg;
    const size_t per = (size_t)c->img_h * c->img_w * c->img_c;
    float *img = mk_malloc(sizeof(float) * per * batch), *dlog = mk_malloc(sizeof(float) * batch * c->n_class);
    int *y = mk_calloc(batch, sizeof(int));
    mk_rng rng;
    mk_rng_seed(&rng, 7);
    for (size_t i = 0; i < per * batch; i++) img[i] = mk_rng_normal(&rng);
    vision_acts acts;
    vision_acts_init(&acts);
    /* single image: warm up, then median of reps */
    double *t = mk_malloc(sizeof(double) * reps);
    for (int r = 0; r < 5; r++) vision_forward(&m, &acts, img, 1, 0, NULL);
    for (long r = 0; r < reps; r++) {
        double t0 = mk_time();
        vision_forward(&m, &acts, img, 1, 0, NULL);
        t[r] = mk_time() - t0;
    }
    for (long i = 1; i < reps; i++) /* insertion sort */
        for (long j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double s = t[j];
            t[j] = t[j - 1];
            t[j - 1] = s;
        }
    double med = t[reps / 2];
    double t0 = mk_time();
    int nb = 0;
    while (mk_time() - t0 < 2.0 || nb < 2) {
        vision_forward(&m, &acts, img, (int)batch, 0, NULL);
        nb++;
    }
    double inf_rate = nb * batch / (mk_time() - t0);
    mk_params_alloc_optim(&m.p);
    mk_adamw_cfg oc = mk_adamw_defaults(1e-4f, 1000);
    t0 = mk_time();
    nb = 0;
    while (mk_time() - t0 < 3.0 || nb < 2) {
        mk_params_zero_grad(&m.p);
        vision_forward(&m, &acts, img, (int)batch, 1, &rng);
        vision_xent_smooth(dlog, NULL, acts.logits, y, (int)batch, c->n_class, 0.1f);
        vision_backward(&m, &acts, dlog);
        mk_adamw_step(&m.p, &oc);
        nb++;
    }
    double tr_rate = nb * batch / (mk_time() - t0);
    printf("bench vision: %s (%zu params, %dx%d input, %d tokens, order %s, d_model %d, %d layers), %d threads\n",
           mpath, vision_model_num_params(&m), c->img_h, c->img_w, c->L, vision_order_name(c->order),
           c->mc.d_model, c->mc.n_layer, mk_num_threads());
    printf("  single image latency (median of %ld): %.2f ms\n", reps, med * 1e3);
    printf("  batched inference (B=%ld): %.0f images/s\n", batch, inf_rate);
    printf("  training step (B=%ld, fwd+bwd+AdamW): %.0f images/s\n", batch, tr_rate);
    free(t);
    free(img);
    free(dlog);
    free(y);
    vision_acts_free(&acts);
    vision_model_free(&m);
    return 0;
}
