/* cmd_points.c — `mambakit points classify|train|eval`: point cloud classification
 * with the Mamba backbone over x/y/z scan orders of patch tokens (vision/points.h),
 * trained on the DALES Objects subset (datasets/dales.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/cli.h"
#include "core/backend.h"
#include "core/ckpt.h"
#include "core/optim.h"
#include "core/util.h"
#include "datasets/dales.h"
#include "vision/points.h"

#define PTS_MAX_FILE_BYTES (1024L << 20)
#define PTS_MAX_POINTS 50000000L

/* ------------------------------------------------------------ point files */

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcasecmp(s + a - b, suf);
}

/* Read FILE: *.bin / *.f32 = float32 LE xyz triples; anything else = text "x y z"
 * per line (whitespace and/or commas; blank lines and '#' comments skipped).
 * Returns a malloc'd (n, 3) array or NULL with mk_error. */
static float *read_points(const char *path, int *n_out) {
    size_t len = 0;
    char *buf = mk_read_file(path, PTS_MAX_FILE_BYTES, &len);
    if (!buf) {
        mk_error("%s: cannot read (missing, unreadable or over 1 GiB)", path);
        return NULL;
    }
    float *xyz = NULL;
    long n = 0;
    if (ends_with(path, ".bin") || ends_with(path, ".f32")) {
        if (len == 0 || len % 12) {
            mk_error("%s: %zu bytes is not a positive multiple of 12 (float32 x,y,z triples)", path, len);
            free(buf);
            return NULL;
        }
        n = (long)(len / 12);
        if (n > PTS_MAX_POINTS) {
            mk_error("%s: %ld points (limit %ld)", path, n, PTS_MAX_POINTS);
            free(buf);
            return NULL;
        }
        xyz = mk_malloc(len);
        const unsigned char *b = (const unsigned char *)buf;
        for (long i = 0; i < 3 * n; i++) {
            uint32_t u = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 | (uint32_t)b[4 * i + 2] << 16 |
                         (uint32_t)b[4 * i + 3] << 24;
            memcpy(&xyz[i], &u, 4);
            if (!isfinite(xyz[i])) {
                mk_error("%s: point %ld has a non-finite coordinate", path, i / 3);
                free(xyz), free(buf);
                return NULL;
            }
        }
    } else {
        if (strlen(buf) != len) {
            mk_error("%s: binary data in a text point file (binary files need the .bin extension)", path);
            free(buf);
            return NULL;
        }
        long cap = 0;
        int line = 0;
        char *p = buf;
        while (*p) {
            char *nl = strchr(p, '\n');
            if (nl) *nl = 0;
            line++;
            char *s = p;
            p = nl ? nl + 1 : p + strlen(p);
            while (*s == ' ' || *s == '\t' || *s == '\r') s++;
            if (!*s || *s == '#') continue;
            float v[3];
            for (int k = 0; k < 3; k++) {
                while (*s == ' ' || *s == '\t' || *s == ',') s++;
                char *e;
                errno = 0;
                v[k] = strtof(s, &e);
                if (e == s || errno == ERANGE || !isfinite(v[k])) {
                    mk_error("%s:%d: expected 3 finite numbers x y z", path, line);
                    free(xyz), free(buf);
                    return NULL;
                }
                s = e;
            }
            while (*s == ' ' || *s == '\t' || *s == ',' || *s == '\r') s++;
            if (*s) {
                mk_error("%s:%d: more than 3 values on the line", path, line);
                free(xyz), free(buf);
                return NULL;
            }
            if (n >= PTS_MAX_POINTS) {
                mk_error("%s: more than %ld points", path, PTS_MAX_POINTS);
                free(xyz), free(buf);
                return NULL;
            }
            if (n == cap) {
                cap = cap ? 2 * cap : 1024;
                xyz = mk_realloc(xyz, sizeof(float) * 3 * cap);
            }
            memcpy(xyz + 3 * n, v, sizeof v);
            n++;
        }
        if (n == 0) {
            mk_error("%s: no points", path);
            free(buf);
            return NULL;
        }
    }
    free(buf);
    *n_out = (int)n;
    return xyz;
}

/* ------------------------------------------------------------ model files */

static int load_model(points_model *m, const char *path_opt) {
    char path[4096];
    if (path_opt)
        snprintf(path, sizeof path, "%s", path_opt);
    else if (!mk_find_model("points.mkm", path, sizeof path)) {
        mk_error("no --model given and models/points.mkm not found (tried: %s)", path);
        return -1;
    }
    return points_model_load(m, path);
}

/* ------------------------------------------------------------ classify */

static void classify_help(FILE *f) {
    fprintf(f,
            "usage: mambakit points classify FILE... [options]\n"
            "Classify point clouds (one object per file) as building, car, fence, pole or tree.\n"
            "FILE: *.bin / *.f32 = float32 little-endian x,y,z triples; otherwise text with\n"
            "      one point per line, \"x y z\" separated by spaces, tabs or commas ('#' comments).\n"
            "  --model FILE   checkpoint (default: models/points.mkm)\n"
            "  --seed N       point sampling seed (default 0)\n"
            "  --json         one JSON object per file instead of text\n"
            "  --device D     cpu | cuda: where the model runs, all of it (default cpu)\n"
            "  --help         this text\n");
}

static int points_classify(int argc, char **argv) {
    const char *model = NULL, *device = "cpu";
    int json = 0;
    long seed = 0;
    const char **files = mk_calloc(argc, sizeof(char *));
    int nf = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            classify_help(stdout);
            free(files);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--model") || !strcmp(a, "--device")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "mambakit: points classify: %s needs a value\n", a);
                free(files);
                return 2;
            }
            *(!strcmp(a, "--model") ? &model : &device) = argv[++i];
        } else if (!strcmp(a, "--seed")) {
            if (cli_int(a, i + 1 < argc ? argv[i + 1] : NULL, 0, 1L << 40, &seed)) {
                free(files);
                return 2;
            }
            i++;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mambakit: points classify: unknown option %s (see --help)\n", a);
            free(files);
            return 2;
        } else {
            files[nf++] = a;
        }
    }
    if (nf == 0) {
        fprintf(stderr, "mambakit: points classify: no input files (see --help)\n");
        free(files);
        return 2;
    }
    const int dev = mk_device_parse(device);
    if (dev < 0) {
        fprintf(stderr, "mambakit: %s\n", mk_last_error());
        free(files);
        return 2;
    }
    /* read and validate every input before loading the model or printing anything */
    float **pts = mk_calloc(nf, sizeof(float *));
    int *np = mk_calloc(nf, sizeof(int));
    int rc = 0;
    for (int i = 0; i < nf && !rc; i++)
        if (!(pts[i] = read_points(files[i], &np[i]))) rc = 1;
    points_model m;
    if (!rc && load_model(&m, model)) rc = 1;
    if (!rc) points_model_use_device(&m, dev);
    if (rc) {
        fprintf(stderr, "mambakit: %s\n", mk_last_error());
    } else {
        points_acts a;
        points_acts_init(&a, &m.cfg);
        points_input in;
        points_input_alloc(&in, &m.cfg);
        const int C = m.cfg.n_class;
        for (int i = 0; i < nf; i++) {
            float prob[POINTS_MAX_CLASS];
            points_prepare(&m.cfg, &in, pts[i], np[i], (uint64_t)seed, 0);
            int k = points_predict(&m, &a, &in, prob);
            if (json) {
                printf("{\"file\": ");
                cli_json_str(stdout, files[i]);
                printf(", \"points\": %d, \"class\": \"%s\", \"label\": %d, \"probs\": {", np[i], m.cfg.classes[k], k);
                for (int c = 0; c < C; c++) printf("%s\"%s\": %.4f", c ? ", " : "", m.cfg.classes[c], prob[c]);
                printf("}}\n");
            } else {
                printf("%s\t%s\t%.3f\t(%d points)\n", files[i], m.cfg.classes[k], prob[k], np[i]);
            }
        }
        points_input_free(&in);
        points_acts_free(&a);
        points_model_free(&m);
    }
    for (int i = 0; i < nf; i++) free(pts[i]);
    free(pts), free(np), free(files);
    return rc;
}

/* ------------------------------------------------------------ train / eval */

typedef struct {
    points_cfg c;
    long epochs, batch, seed;
    double lr, wd;
    const char *out, *data_dir, *model;
    int json;
} pts_opts;

static void train_help(FILE *f) {
    fprintf(f,
            "usage: mambakit points train [options]\n"
            "Train the point cloud classifier on DALES Objects (train split: object_id not ending\n"
            "in 8 or 9), then report test-split accuracy. Data: dales_objects/index.csv on the data\n"
            "search path.\n"
            "  --epochs N     passes over the training set (default 40)\n"
            "  --batch N      objects per AdamW step (default 16)\n"
            "  --lr F         peak learning rate, warmup + cosine (default 2e-3)\n"
            "  --wd F         AdamW weight decay (default 0.05)\n"
            "  --points N     points sampled per object (default 512)\n"
            "  --tokens N     patch tokens = FPS centres (default 64)\n"
            "  --knn N        neighbours per patch (default 16)\n"
            "  --hidden N     point-MLP width (default 32)\n"
            "  --d-model N    Mamba width (default 64)\n"
            "  --layers N     Mamba layers (default 2)\n"
            "  --d-state N    SSM state size (default 16)\n"
            "  --orders N     scan orders: 1 = x, 2 = x,y, 3 = x,y,z (default 3)\n"
            "  --drop-path F  stochastic depth of the deepest layer, 0..0.9 (default 0)\n"
            "  --seed N       random seed (default 1)\n"
            "  --data-dir DIR where dales_objects/ lives (default: search path)\n"
            "  --device D     cpu | cuda: where the model trains (default cpu; cuda falls back to\n"
            "                 the CPU with a notice)\n"
            "  --gpu-step S   full | backbone: with cuda, every op of the training step on the GPU\n"
            "                 (parameters and moments resident), or only the backbone's forward and\n"
            "                 backward with copies every object (default full)\n"
            "  -o FILE        output checkpoint (default points.mkm)\n"
            "  --json         print the final summary as one JSON object\n"
            "  --help         this text\n");
}

static void eval_help(FILE *f) {
    fprintf(f,
            "usage: mambakit points eval [options]\n"
            "Test-split accuracy and confusion matrix on DALES Objects (object_id ending in 8 or 9).\n"
            "  --model FILE   checkpoint (default: models/points.mkm)\n"
            "  --data-dir DIR where dales_objects/ lives (default: search path)\n"
            "  --json         JSON output\n"
            "  --device D     cpu | cuda: where the model runs, all of it (default cpu)\n"
            "  --help         this text\n");
}

/* 1 consumed, 0 not an option of ours, -1 bad value */
static int parse_train_opt(pts_opts *o, int argc, char **argv, int *i) {
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    long n;
    double x;
#define IOPT(name, lo, hi, dst)                             \
    if (!strcmp(a, name)) {                                 \
        if (cli_int(a, v, lo, hi, &n)) return -1;           \
        dst = (int)n;                                       \
        (*i)++;                                             \
        return 1;                                           \
    }
    IOPT("--epochs", 1, 100000, o->epochs)
    IOPT("--batch", 1, 4096, o->batch)
    IOPT("--points", 8, 65536, o->c.npts)
    IOPT("--tokens", 1, 4096, o->c.ntok)
    IOPT("--knn", 1, 1024, o->c.knn)
    IOPT("--hidden", 1, 1024, o->c.hidden)
    IOPT("--layers", 0, 64, o->c.mc.n_layer)
    IOPT("--d-state", 1, 64, o->c.mc.d_state)
    IOPT("--orders", 1, 3, o->c.mc.n_dir)
    IOPT("--seed", 0, 1L << 40, o->seed)
#undef IOPT
    if (!strcmp(a, "--d-model")) {
        if (cli_int(a, v, 1, 1024, &n)) return -1;
        o->c.mc.d_model = (int)n;
        o->c.mc.dt_rank = (int)((n + 15) / 16);
        (*i)++;
        return 1;
    }
    if (!strcmp(a, "--drop-path")) {
        if (cli_float(a, v, 0, 0.9, &x)) return -1;
        o->c.mc.drop_path = (float)x;
        (*i)++;
        return 1;
    }
    if (!strcmp(a, "--lr") || !strcmp(a, "--wd")) {
        if (cli_float(a, v, 0, 10, &x)) return -1;
        if (a[2] == 'l') o->lr = x;
        else o->wd = x;
        (*i)++;
        return 1;
    }
    return 0;
}

static int need_value(const char *cmd, const char *a, int i, int argc) {
    if (i + 1 >= argc) {
        fprintf(stderr, "mambakit: points %s: %s needs a value\n", cmd, a);
        return 1;
    }
    return 0;
}

/* accuracy on the test split; conf (C*C, row = true) may be NULL */
static double evaluate(points_model *m, const dales_set *d, int *conf, int *n_test) {
    enum { CHUNK = 32 }; /* objects per points_predict_batch: one device call each on a GPU */
    points_acts a;
    points_acts_init(&a, &m->cfg);
    points_input in[CHUNK];
    for (int j = 0; j < CHUNK; j++) points_input_alloc(&in[j], &m->cfg);
    const int C = m->cfg.n_class;
    float *prob = mk_malloc(sizeof(float) * CHUNK * C);
    int obj[CHUNK], k[CHUNK], hit = 0, nt = 0;
    if (conf) memset(conf, 0, sizeof(int) * C * C);
    for (int i = 0; i < d->n;) {
        int nc = 0;
        for (; i < d->n && nc < CHUNK; i++)
            if (dales_is_test(d->id[i])) obj[nc++] = i;
        if (!nc) break;
#pragma omp parallel for schedule(dynamic)
        for (int j = 0; j < nc; j++)
            points_prepare(&m->cfg, &in[j], d->xyz + d->first[obj[j]] * 3, d->count[obj[j]], 0, 0);
        points_predict_batch(m, &a, in, nc, prob, k);
        for (int j = 0; j < nc; j++) {
            const int y = d->label[obj[j]];
            hit += k[j] == y;
            if (conf && y < C) conf[y * C + k[j]]++;
            nt++;
        }
    }
    free(prob);
    for (int j = 0; j < CHUNK; j++) points_input_free(&in[j]);
    points_acts_free(&a);
    *n_test = nt;
    return nt ? (double)hit / nt : 0;
}

static double majority_rate(const dales_set *d) {
    int cnt[DALES_NCLASS] = {0}, nt = 0, best = 0;
    for (int i = 0; i < d->n; i++)
        if (dales_is_test(d->id[i])) cnt[d->label[i]]++, nt++;
    for (int k = 0; k < DALES_NCLASS; k++)
        if (cnt[k] > best) best = cnt[k];
    return nt ? (double)best / nt : 0;
}

static int points_train(int argc, char **argv) {
    pts_opts o;
    memset(&o, 0, sizeof o);
    points_cfg_default(&o.c);
    o.epochs = 40, o.batch = 16, o.seed = 1, o.lr = 2e-3, o.wd = 0.05, o.out = "points.mkm";
    const char *device = "cpu";
    int gpu_backbone_only = 0, json = 0; /* --gpu-step backbone, --json */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            train_help(stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) {
            json = 1;
            continue;
        }
        int r = parse_train_opt(&o, argc, argv, &i);
        if (r < 0) return 2;
        if (r) continue;
        if (!strcmp(a, "-o") || !strcmp(a, "--out")) {
            if (need_value("train", a, i, argc)) return 2;
            o.out = argv[++i];
        } else if (!strcmp(a, "--data-dir")) {
            if (need_value("train", a, i, argc)) return 2;
            o.data_dir = argv[++i];
        } else if (!strcmp(a, "--device")) {
            if (need_value("train", a, i, argc)) return 2;
            device = argv[++i];
        } else if (!strcmp(a, "--gpu-step")) {
            if (need_value("train", a, i, argc)) return 2;
            const char *v = argv[++i];
            if (strcmp(v, "full") && strcmp(v, "backbone")) {
                fprintf(stderr, "mambakit: points train: --gpu-step: '%s' is not full or backbone\n", v);
                return 2;
            }
            gpu_backbone_only = !strcmp(v, "backbone");
        } else {
            fprintf(stderr, "mambakit: points train: unknown option %s (see --help)\n", a);
            return 2;
        }
    }
    if (o.c.knn > o.c.npts || o.c.ntok > o.c.npts) {
        fprintf(stderr, "mambakit: points train: --tokens and --knn must not exceed --points\n");
        return 2;
    }
    const int dev = mk_device_parse(device);
    if (dev < 0) {
        fprintf(stderr, "mambakit: %s\n", mk_last_error());
        return 2;
    }
    dales_set d;
    if (dales_load_default(&d, o.data_dir)) return cli_fail();
    mk_rng rng;
    mk_rng_seed(&rng, (uint64_t)o.seed);
    points_model m;
    if (points_model_init(&m, &o.c, &rng)) {
        dales_free(&d);
        return cli_fail();
    }
    /* on a GPU the whole step stays on the device: parameters and moments come back to the
     * host once, for the evaluation and the saved model */
    const int resident = points_model_use_device(&m, dev) == MK_DEV_CUDA && !gpu_backbone_only;
    if (m.bb.device == MK_DEV_CUDA)
        fprintf(stderr, "points train: %s\n",
                resident ? "every op of the training step on the GPU (parameters resident; copied back for "
                           "evaluation and saving)"
                         : "backbone on the GPU; point MLP, head and AdamW on the CPU (--gpu-step backbone)");
    int ntr = 0;
    int *tr = mk_malloc(sizeof(int) * d.n);
    for (int i = 0; i < d.n; i++)
        if (!dales_is_test(d.id[i])) tr[ntr++] = i;
    const int BS = (int)(o.batch < ntr ? o.batch : ntr);
    long steps_per_epoch = ntr / BS, total = o.epochs * steps_per_epoch;
    mk_adamw_cfg opt = mk_adamw_defaults((float)o.lr, total);
    opt.weight_decay = (float)o.wd;
    opt.warmup = steps_per_epoch < total / 10 ? steps_per_epoch : total / 10;
    points_input *in = mk_calloc(BS, sizeof(points_input));
    int *lab = mk_malloc(sizeof(int) * BS);
    for (int b = 0; b < BS; b++) points_input_alloc(&in[b], &o.c);
    points_acts a;
    points_acts_init(&a, &o.c);
    fprintf(stderr, "points: %d train objects, %zu parameters, %ld steps\n", ntr, m.p.total, total);
    mk_progress pr;
    mk_progress_start(&pr, "train", total);
    long step = 0;
    int rc = 0;
    double t0 = mk_time();
    float last_loss = 0, last_acc = 0;
    for (long ep = 0; ep < o.epochs; ep++) {
        mk_rng_shuffle(&rng, tr, ntr);
        double el = 0;
        int eh = 0, en = 0;
        for (long s = 0; s < steps_per_epoch; s++) {
#pragma omp parallel for schedule(dynamic)
            for (int b = 0; b < BS; b++) {
                int obj = tr[s * BS + b];
                points_prepare(&o.c, &in[b], d.xyz + d.first[obj] * 3, d.count[obj],
                               (uint64_t)o.seed * 1000003u + (uint64_t)ep * 100003u + (uint64_t)obj, 1);
                lab[b] = d.label[obj];
            }
            int hits = 0;
            if (resident) {
                float l;
                if (points_train_batch_cuda(&m, &a, in, lab, BS, &opt, &rng, &l, &hits)) {
                    mk_progress_end(&pr);
                    rc = cli_fail();
                    goto done;
                }
                el += l;
            } else
                el += points_train_batch(&m, &a, in, lab, BS, &opt, &rng, &hits);
            eh += hits, en += BS;
            step++;
            char extra[96];
            snprintf(extra, sizeof extra, "epoch %ld/%ld loss %.3f acc %.1f%%", ep + 1, o.epochs, el / (s + 1),
                     100.0 * eh / en);
            mk_progress_update(&pr, step, "steps", extra);
        }
        last_loss = (float)(el / steps_per_epoch), last_acc = (float)eh / en;
    }
    mk_progress_end(&pr);
    if (resident && mamba_backbone_cuda_sync_host(&m.bb)) { /* the host reads the weights from here on */
        rc = cli_fail();
        goto done;
    }
    double secs = mk_time() - t0;
    int nt = 0;
    double acc = evaluate(&m, &d, NULL, &nt);
    mk_config cfg;
    points_cfg_to_config(&o.c, &cfg);
    mk_config_set_int(&cfg, "epochs", o.epochs);
    mk_config_set_float(&cfg, "lr", o.lr);
    mk_config_set_float(&cfg, "train_seconds", secs);
    mk_config_set_float(&cfg, "test_acc", acc);
    if (mk_ckpt_save(o.out, &cfg, &m.p, 0)) rc = cli_fail();
    else if (json) {
        printf("{\"model\": ");
        cli_json_str(stdout, o.out);
        printf(", \"epochs\": %ld, \"params\": %zu, \"train_loss\": %.4f, \"train_acc\": %.4f, \"test_acc\": %.4f, "
               "\"test_objects\": %d, \"majority_rate\": %.4f, \"seconds\": %.1f}\n",
               o.epochs, m.p.total, last_loss, last_acc, acc, nt, majority_rate(&d), secs);
    } else
        printf("trained %ld epochs in %.1f s: train loss %.3f acc %.1f%%; test acc %.1f%% (%d objects, majority "
               "class %.1f%%); saved %s\n",
               o.epochs, secs, last_loss, 100 * last_acc, 100 * acc, nt, 100 * majority_rate(&d), o.out);
done:
    for (int b = 0; b < BS; b++) points_input_free(&in[b]);
    free(in), free(lab), free(tr);
    points_acts_free(&a);
    points_model_free(&m);
    dales_free(&d);
    return rc;
}

static int points_eval(int argc, char **argv) {
    const char *model = NULL, *data_dir = NULL, *device = "cpu";
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            eval_help(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--model") || !strcmp(a, "--data-dir") || !strcmp(a, "--device")) {
            if (need_value("eval", a, i, argc)) return 2;
            if (a[2] == 'm') model = argv[++i];
            else if (a[3] == 'a') data_dir = argv[++i];
            else device = argv[++i];
        } else {
            fprintf(stderr, "mambakit: points eval: unknown option %s (see --help)\n", a);
            return 2;
        }
    }
    const int dev = mk_device_parse(device);
    if (dev < 0) {
        fprintf(stderr, "mambakit: %s\n", mk_last_error());
        return 2;
    }
    points_model m;
    if (load_model(&m, model)) return cli_fail();
    points_model_use_device(&m, dev);
    dales_set d;
    if (dales_load_default(&d, data_dir)) {
        points_model_free(&m);
        return cli_fail();
    }
    const int C = m.cfg.n_class;
    int conf[POINTS_MAX_CLASS * POINTS_MAX_CLASS], nt = 0;
    double acc = evaluate(&m, &d, conf, &nt), maj = majority_rate(&d);
    if (json) {
        printf("{\"test_objects\": %d, \"accuracy\": %.4f, \"majority_rate\": %.4f, \"classes\": [", nt, acc, maj);
        for (int c = 0; c < C; c++) printf("%s\"%s\"", c ? ", " : "", m.cfg.classes[c]);
        printf("], \"confusion\": [");
        for (int r = 0; r < C; r++) {
            printf("%s[", r ? ", " : "");
            for (int c = 0; c < C; c++) printf("%s%d", c ? ", " : "", conf[r * C + c]);
            printf("]");
        }
        printf("]}\n");
    } else {
        printf("test accuracy %.1f%% on %d objects (majority class %.1f%%)\n", 100 * acc, nt, 100 * maj);
        printf("confusion (rows = true, columns = predicted):\n%-10s", "");
        for (int c = 0; c < C; c++) printf(" %8.8s", m.cfg.classes[c]);
        printf("\n");
        for (int r = 0; r < C; r++) {
            printf("%-10.10s", m.cfg.classes[r]);
            for (int c = 0; c < C; c++) printf(" %8d", conf[r * C + c]);
            printf("\n");
        }
    }
    dales_free(&d);
    points_model_free(&m);
    return 0;
}

int cmd_points(int argc, char **argv) {
    if (argc < 2 || cli_is_help(argv[1])) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f,
                "usage: mambakit points classify|train|eval [options]  (each takes --help)\n"
                "  classify FILE...  classify point clouds (building, car, fence, pole, tree)\n"
                "  train             train on DALES Objects, save a checkpoint\n"
                "  eval              test accuracy and confusion matrix on DALES Objects\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "classify")) return points_classify(argc - 1, argv + 1);
    if (!strcmp(argv[1], "train")) return points_train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "eval")) return points_eval(argc - 1, argv + 1);
    fprintf(stderr, "mambakit: points: unknown subcommand %s (classify, train or eval)\n", argv[1]);
    return 2;
}
