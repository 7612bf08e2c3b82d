/* cmd_mil.c — `mambakit mil train|predict|convert|synth` and `mambakit bench mil`:
 * multiple-instance learning on bags of instance features (pathology/). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apps/cli.h"
#include "core/backend.h"
#include "core/util.h"
#include "pathology/mil_bags.h"
#include "pathology/mil_images.h"
#include "pathology/mil_model.h"
#include "vision/image.h"

/* ------------------------------------------------------- shared options */

typedef struct {
    mil_cfg c;
    mil_train_opts t;
    const char *encoder; /* vision model for image bags, NULL = shipped models/vision.mkm */
} mil_opts;

/* A bag file (CSV / binary), or a directory of image-bag folders embedded by
 * the vision encoder (imgs then receives the patch files; may be NULL).
 * expect_F > 0: refuse an encoder of another width before embedding anything. */
static int load_bags(mil_bags *b, mil_image_list *imgs, const char *in, int flags, const char *encoder,
                     int expect_F) {
    if (imgs) memset(imgs, 0, sizeof *imgs);
    if (!mil_is_image_dir(in)) return mil_bags_load(b, in, flags);
    char ep[4096];
    if (!encoder) {
        if (!mk_find_model("vision.mkm", ep, sizeof ep)) {
            mk_error("%s: image bags need a vision encoder: no --encoder and no shipped models/vision.mkm (looked in %s)",
                     in, ep);
            return -1;
        }
        encoder = ep;
    }
    mk_config vc;
    long d;
    if (expect_F > 0 && !mk_ckpt_read_config(encoder, "vision", &vc) && !mk_config_get_int(&vc, "d_model", &d) &&
        d != expect_F) {
        mk_error("%s: the encoder %s gives %ld features per instance, but the model expects %d", in, encoder, d,
                 expect_F);
        return -1;
    }
    return mil_bags_load_images(b, imgs, in, encoder, flags, !mk_quiet);
}

#define ENCODER_HELP                                                                                   \
    "  --encoder FILE      vision model embedding image bags (default: models/vision.mkm; its pooled\n" \
    "                      features before the head, 80 per patch)\n"

static void opts_default(mil_opts *o) {
    mil_cfg_default(&o->c, MIL_MAMBA, 1);
    mil_train_opts_default(&o->t);
    o->encoder = NULL;
}

static void opts_help(FILE *f, const mil_opts *o) {
    fprintf(f,
            "model and training options:\n"
            "  --model-type T      mamba | abmil | gated | mean | max (default %s)\n"
            "  --d-model D         instance embedding width (default %d)\n"
            "  --attn-hidden H     attention hidden width (default %d)\n"
            "  --layers N          SR-Mamba layers (default %d)\n"
            "  --stride R          SR interleave stride; 0 = plain Mamba without SR (default %d)\n"
            "  --d-state N         SSM state size (default %d)\n"
            "  --gated-attention   gated attention pooling for the mamba model (default off)\n"
            "  --res-gate 0|1      mamba: h = e + gamma * SR-Mamba(e), gamma learned from 0 (default %d)\n"
            "  --branch-drop P     with --res-gate: drop the SR-Mamba branch for a training bag with\n"
            "                      probability P (default %g)\n"
            "  --dropout P         dropout on instance embeddings (default %g)\n"
            "  --order O           mamba: what the scans read: natural (the bag's own order) or score\n"
            "                      (instances sorted by attention score: for bags that are sets) (default %s)\n"
            "  --aux W             mamba: train the same pooling and classifier on the embedding alone\n"
            "                      as well, loss + W x its loss (deep supervision; default %g = off)\n"
            "  --aux-mix           with --aux: predict from the mean of the two exits' logits\n"
            "  --attend e|h        mamba: compute the attention weights on the embedding e (the\n"
            "                      order-free path) or on the SR-Mamba output h; h is pooled either way\n"
            "                      (default %s)\n"
            "  --epochs N          training epochs (default %d)\n"
            "  --lr X              peak AdamW learning rate, warmup + cosine (default %g)\n"
            "  --weight-decay X    AdamW weight decay (default %g)\n"
            "  --batch N           bags per optimiser step (default %d)\n"
            "  --clip X            global gradient-norm clip, 0 = none (default %g)\n"
            "  --shuffle-instances present each training bag in a new random instance order (for\n"
            "                      bags whose order means nothing; default off)\n"
            "  --gate-l1 X         with --res-gate: after each AdamW step shrink the gate toward 0 by\n"
            "                      X x the step's lr (an entry stays at exactly 0 unless its gradient\n"
            "                      keeps its sign; the trainer's AdamW then runs on the host; default 0)\n"
            "  --seed N            random seed (default %lu)\n"
            "  --threads N         OpenMP threads (default: all)\n"
            "  --device D          cpu | cuda: where training runs (default cpu; cuda falls back to\n"
            "                      the CPU with a notice; small bags may run faster on the CPU)\n"
            "  --gpu-step S        full | backbone: with cuda, every op of the training step on the GPU\n"
            "                      (parameters, gradients and moments resident; the score order sorted\n"
            "                      there), or only the SR-Mamba backbone, per call (default full)\n" ENCODER_HELP,
            mil_type_names[o->c.type], o->c.D, o->c.H, o->c.n_layer, o->c.stride, o->c.d_state, o->c.res_gate, o->c.branch_drop,
            o->c.dropout, mil_order_names[o->c.order], o->c.aux, o->c.attend_e ? "e" : "h",
            o->t.epochs, o->t.lr, o->t.weight_decay, o->t.batch, o->t.clip, o->t.seed);
}

/* Try argv[*i] as a model/training option. Returns 1 if consumed (i advanced
 * past its value), 0 if not ours, -1 on a bad value (message printed). */
static int opts_parse(mil_opts *o, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    long n;
    double x;
#define INTOPT(name, lo, hi, dst)                                   \
    if (!strcmp(a, name)) {                                         \
        if (cli_int(a, v, lo, hi, &n)) return -1;                   \
        dst = n;                                                    \
        (*i)++;                                                     \
        return 1;                                                   \
    }
#define FLTOPT(name, lo, hi, dst)                                   \
    if (!strcmp(a, name)) {                                         \
        if (cli_float(a, v, lo, hi, &x)) return -1;                 \
        dst = (float)x;                                             \
        (*i)++;                                                     \
        return 1;                                                   \
    }
    if (!strcmp(a, "--model-type")) {
        int t = v ? mil_type_from_name(v) : -1;
        if (t < 0) {
            fprintf(stderr, "mambakit: --model-type: '%s' is not one of mamba, abmil, gated, mean, max\n",
                    v ? v : "");
            return -1;
        }
        o->c.type = t;
        (*i)++;
        return 1;
    }
    if (!strcmp(a, "--gated-attention")) {
        o->c.gated = 1;
        return 1;
    }
    if (!strcmp(a, "--aux-mix")) {
        o->c.aux_mix = 1;
        return 1;
    }
    if (!strcmp(a, "--shuffle-instances")) {
        o->t.shuffle_inst = 1;
        return 1;
    }
    if (!strcmp(a, "--order")) {
        int k = v ? mil_order_from_name(v) : -1;
        if (k < 0) {
            fprintf(stderr, "mambakit: --order: '%s' is not one of natural, score\n", v ? v : "");
            return -1;
        }
        o->c.order = k;
        (*i)++;
        return 1;
    }
    if (!strcmp(a, "--attend")) {
        if (!v || (strcmp(v, "e") && strcmp(v, "h"))) {
            fprintf(stderr, "mambakit: --attend: '%s' is not one of e, h\n", v ? v : "");
            return -1;
        }
        o->c.attend_e = !strcmp(v, "e");
        (*i)++;
        return 1;
    }
    if (!strcmp(a, "--encoder")) {
        if (!v) {
            fprintf(stderr, "mambakit: --encoder needs a value\n");
            return -1;
        }
        o->encoder = v;
        (*i)++;
        return 1;
    }
    INTOPT("--d-model", 1, 4096, o->c.D)
    INTOPT("--attn-hidden", 1, 4096, o->c.H)
    INTOPT("--layers", 0, 32, o->c.n_layer)
    INTOPT("--stride", 0, 1000000, o->c.stride)
    INTOPT("--d-state", 1, 64, o->c.d_state)
    INTOPT("--res-gate", 0, 1, o->c.res_gate)
    FLTOPT("--dropout", 0, 0.95, o->c.dropout)
    FLTOPT("--branch-drop", 0, 0.95, o->c.branch_drop)
    FLTOPT("--aux", 0, 100, o->c.aux)
    INTOPT("--epochs", 0, 100000, o->t.epochs)
    FLTOPT("--lr", 1e-7, 10, o->t.lr)
    FLTOPT("--weight-decay", 0, 10, o->t.weight_decay)
    INTOPT("--batch", 1, 100000, o->t.batch)
    FLTOPT("--clip", 0, 1e9, o->t.clip)
    FLTOPT("--gate-l1", 0, 1e6, o->t.gate_l1)
    INTOPT("--seed", 0, 1000000000L, o->t.seed)
    if (!strcmp(a, "--threads")) {
        if (cli_int(a, v, 1, 1024, &n)) return -1;
        omp_set_num_threads((int)n);
        (*i)++;
        return 1;
    }
    if (!strcmp(a, "--device")) {
        int d = v ? mk_device_parse(v) : -1;
        if (d < 0) {
            fprintf(stderr, "mambakit: %s\n", v ? mk_last_error() : "--device needs a value (cpu or cuda)");
            return -1;
        }
        o->t.device = d;
        (*i)++;
        return 1;
    }
    if (!strcmp(a, "--gpu-step")) {
        if (!v || (strcmp(v, "full") && strcmp(v, "backbone"))) {
            fprintf(stderr, "mambakit: --gpu-step: '%s' is not full or backbone\n", v ? v : "");
            return -1;
        }
        o->t.gpu_step = !strcmp(v, "full") ? MIL_GPU_FULL : MIL_GPU_BACKBONE;
        (*i)++;
        return 1;
    }
#undef INTOPT
#undef FLTOPT
    return 0;
}

static double mean_of(const double *v, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += v[i];
    return n ? s / n : NAN;
}
static double std_of(const double *v, int n) {
    if (n < 2) return 0;
    double m = mean_of(v, n), s = 0;
    for (int i = 0; i < n; i++) s += (v[i] - m) * (v[i] - m);
    return sqrt(s / (n - 1));
}

/* With two or more models, every model sees the same folds / bags and the same seeds, and
 * the shared layers start from the same draw (pathology/mil_model.c), so the per-repeat
 * difference of the first two is the comparison that matters: its mean ± std, and in how
 * many repeats the first model was at least as good. */
typedef struct {
    double acc[64], auc[64]; /* per repeat (run) */
} model_runs;
static void paired_header(int nt, const int *types, const char *unit) {
    if (nt >= 2)
        printf(" acc %s − %s, paired (%s not worse) | AUC, paired |", mil_type_names[types[0]], mil_type_names[types[1]],
               unit);
}
static void paired_rule(int nt) {
    if (nt >= 2) printf("---:|---:|");
}
static void paired_diff(const model_runs *a, const model_runs *b, int n, double *dacc, double *dauc, int *wins_acc,
                        int *wins_auc) {
    *wins_acc = *wins_auc = 0;
    for (int r = 0; r < n; r++) {
        dacc[r] = a->acc[r] - b->acc[r];
        dauc[r] = a->auc[r] - b->auc[r];
        *wins_acc += dacc[r] >= 0;
        *wins_auc += dauc[r] >= 0;
    }
}
static void paired_print(const model_runs *pr, int nt, int repeats, int json, const char *bench, const char *extra,
                         const char *key, const char *val, const int *types) {
    if (nt < 2) return;
    double da[64] = {0}, du[64] = {0};
    int wa, wu;
    paired_diff(&pr[0], &pr[1], repeats, da, du, &wa, &wu);
    if (json)
        printf("{\"bench\":\"%s_paired\",%s\"%s\":%s,\"model\":\"%s\",\"minus\":\"%s\",\"runs\":%d,"
               "\"accuracy_diff_mean\":%.6f,\"accuracy_diff_std\":%.6f,\"accuracy_not_worse\":%d,"
               "\"auc_diff_mean\":%.6f,\"auc_diff_std\":%.6f,\"auc_not_worse\":%d}\n",
               bench, extra, key, val, mil_type_names[types[0]], mil_type_names[types[1]], repeats, mean_of(da, repeats),
               std_of(da, repeats), wa, mean_of(du, repeats), std_of(du, repeats), wu);
    else {
        double ma = mean_of(da, repeats), mu = mean_of(du, repeats);
        if (fabs(ma) < 5e-4) ma = 0; /* no "-0.000" */
        if (fabs(mu) < 5e-4) mu = 0;
        printf(" %+.3f ± %.3f (%d/%d) | %+.3f ± %.3f (%d/%d) |", ma, std_of(da, repeats), wa, repeats, mu,
               std_of(du, repeats), wu, repeats);
    }
}

/* ------------------------------------------------------------------ train */

static int mil_train_main(int argc, char **argv) {
    mil_opts o;
    opts_default(&o);
    const char *in = NULL, *out = NULL;
    long folds = 0, repeats = 1;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            printf("usage: mambakit mil train BAGS (-o MODEL | --folds K [--repeats N]) [options]\n\n"
                   "Train a MIL model on every bag of BAGS (CSV 'bag_id,label,f1..fN' or binary, see docs/MIL.md;\n"
                   "or a directory of image bags: DIR/<bag>/*.png and DIR/labels.csv 'bag,label')\n"
                   "and save it, or run stratified K-fold cross-validation and print mean +- std accuracy and AUC.\n\n"
                   "  -o, --output MODEL  save the model trained on all bags\n"
                   "  --folds K           stratified K-fold cross-validation (default off)\n"
                   "  --repeats N         CV repeats with fresh random folds (default %ld)\n"
                   "  --json              CV result as one JSON object\n"
                   "  --quiet             no progress line\n\n",
                   repeats);
            opts_help(stdout, &o);
            return 0;
        }
        int r = opts_parse(&o, argc, argv, &i);
        if (r < 0) return 2;
        if (r) continue;
        if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "mambakit: %s needs a value\n", a);
                return 2;
            }
            out = argv[++i];
        } else if (!strcmp(a, "--folds")) {
            if (cli_int(a, i + 1 < argc ? argv[i + 1] : NULL, 2, 1000, &folds)) return 2;
            i++;
        } else if (!strcmp(a, "--repeats")) {
            if (cli_int(a, i + 1 < argc ? argv[i + 1] : NULL, 1, 1000, &repeats)) return 2;
            i++;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--quiet")) {
            mk_quiet = 1;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mambakit: mil train: unknown option '%s' (see --help)\n", a);
            return 2;
        } else if (!in) {
            in = a;
        } else {
            fprintf(stderr, "mambakit: mil train: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!in) {
        fprintf(stderr, "mambakit: mil train: missing BAGS file (see --help)\n");
        return 2;
    }
    if (!out && !folds) {
        fprintf(stderr, "mambakit: mil train: give -o MODEL to train and save, or --folds K to cross-validate\n");
        return 2;
    }
    mil_bags b;
    if (load_bags(&b, NULL, in, 0, o.encoder, 0)) return cli_fail();
    o.c.F = b.F;
    int rc = 0;
    if (folds) {
        double *acc = mk_malloc(sizeof(double) * repeats), *auc = mk_malloc(sizeof(double) * repeats),
               *fa = mk_malloc(sizeof(double) * repeats * folds);
        double t0 = mk_time();
        if (mil_cross_validate(&b, &o.c, &o.t, (int)folds, (int)repeats, acc, auc, fa, !mk_quiet)) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s: %s", in, mk_last_error());
            fprintf(stderr, "mambakit: %s\n", msg);
            rc = 1;
        } else if (json) {
            printf("{\"file\":");
            cli_json_str(stdout, in);
            printf(",\"model\":\"%s\",\"bags\":%d,\"folds\":%ld,\"repeats\":%ld,"
                   "\"accuracy_mean\":%.4f,\"accuracy_std\":%.4f,\"auc_mean\":%.4f,\"auc_std\":%.4f,"
                   "\"fold_accuracy_std\":%.4f,\"seconds\":%.1f}\n",
                   mil_type_names[o.c.type], b.n_bags, folds, repeats, mean_of(acc, repeats),
                   std_of(acc, repeats), mean_of(auc, repeats), std_of(auc, repeats), std_of(fa, repeats * folds),
                   mk_time() - t0);
        } else {
            printf("%s: %s, %d bags, %ld-fold stratified CV x %ld repeat%s\n", in, mil_type_names[o.c.type],
                   b.n_bags, folds, repeats, repeats > 1 ? "s" : "");
            printf("accuracy %.3f ± %.3f   AUC %.3f ± %.3f   (± = std over repeats; std over the %ld folds: %.3f)\n",
                   mean_of(acc, repeats), std_of(acc, repeats), mean_of(auc, repeats), std_of(auc, repeats),
                   repeats * folds, std_of(fa, repeats * folds));
        }
        free(acc);
        free(auc);
        free(fa);
    }
    if (!rc && out) {
        mil_model m;
        if (mil_model_create(&m, &o.c, o.t.seed)) {
            mil_bags_free(&b);
            return cli_fail();
        }
        mil_model_fit_scaler(&m, &b);
        float loss = mil_train(&m, &b, &o.t, "train");
        if (mil_model_save(&m, out)) rc = cli_fail();
        else if (!mk_quiet)
            fprintf(stderr, "mambakit: saved %s (%s, %zu parameters, final train loss %.4f)\n", out,
                    mil_type_names[o.c.type], m.p.total - 2 * (size_t)b.F, loss);
        mil_model_free(&m);
    }
    mil_bags_free(&b);
    return rc;
}

/* ---------------------------------------------------------------- predict */

static int mil_predict_main(int argc, char **argv) {
    const char *in = NULL, *model = NULL, *plot = NULL, *encoder = NULL, *device = "cpu";
    int json = 0;
    double thr = 0.5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            printf("usage: mambakit mil predict BAGS [--model FILE] [--json] [--plot FILE.png]\n\n"
                   "Bag probability and predicted label for every bag of BAGS (labels may be '?'; BAGS may be\n"
                   "a directory of image bags, DIR/<bag>/*.png with an optional DIR/labels.csv).\n\n"
                   "  --model FILE        model from 'mil train -o' (default: models/mil.mkm, a MambaMIL\n"
                   "                      model trained on Musk1: 166 features)\n"
                   "  --threshold X       probability threshold for label 1 (default %g)\n"
                   "  --json              one JSON object per bag: bag, probability, label, true_label,\n"
                   "                      instances, attention (per-instance pooling weights)\n"
                   "  --plot FILE.png     attention heat strip per bag (label, probability, instances); for\n"
                   "                      image bags a mosaic of the patches framed by their attention\n"
                   "  --threads N         OpenMP threads (default: all)\n"
                   "  --device D          cpu | cuda: where the model runs (default cpu): all of it on a GPU\n"
                   "                      for the models mil train's GPU step covers, else the backbone\n"
                   "  --quiet             no progress line or accuracy summary\n" ENCODER_HELP,
                   thr);
            return 0;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--model") || !strcmp(a, "--plot") || !strcmp(a, "--encoder") || !strcmp(a, "--device")) {
            if (!v) {
                fprintf(stderr, "mambakit: %s needs a value\n", a);
                return 2;
            }
            *(!strcmp(a, "--model") ? &model : !strcmp(a, "--plot") ? &plot : !strcmp(a, "--device") ? &device : &encoder) = v;
            i++;
        } else if (!strcmp(a, "--threshold")) {
            if (cli_float(a, v, 0, 1, &thr)) return 2;
            i++;
        } else if (!strcmp(a, "--threads")) {
            long n;
            if (cli_int(a, v, 1, 1024, &n)) return 2;
            omp_set_num_threads((int)n);
            i++;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--quiet")) {
            mk_quiet = 1;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mambakit: mil predict: unknown option '%s' (see --help)\n", a);
            return 2;
        } else if (!in) {
            in = a;
        } else {
            fprintf(stderr, "mambakit: mil predict: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!in) {
        fprintf(stderr, "mambakit: mil predict: missing BAGS file (see --help)\n");
        return 2;
    }
    int dev = mk_device_parse(device);
    if (dev < 0) {
        fprintf(stderr, "mambakit: %s\n", mk_last_error());
        return 2;
    }
    char mpath[4096];
    if (!model) {
        if (!mk_find_model("mil.mkm", mpath, sizeof mpath)) {
            fprintf(stderr, "mambakit: no --model given and no shipped models/mil.mkm (looked in %s)\n", mpath);
            return 1;
        }
        model = mpath;
    }
    mil_model m;
    if (mil_model_load(&m, model)) return cli_fail();
    mil_model_use_device(&m, dev);
    mil_bags b;
    mil_image_list imgs;
    if (load_bags(&b, &imgs, in, MIL_LOAD_UNLABELED, encoder, m.c.F)) {
        mil_model_free(&m);
        return cli_fail();
    }
    if (b.F != m.c.F) {
        fprintf(stderr, "mambakit: %s: %d features per instance, but the model %s expects %d\n", in, b.F, model,
                m.c.F);
        mil_bags_free(&b);
        mil_image_list_free(&imgs);
        mil_model_free(&m);
        return 1;
    }
    float *prob = mk_malloc(sizeof(float) * b.n_bags);
    float *attn = plot ? mk_malloc(sizeof(float) * (b.n_inst ? b.n_inst : 1)) : NULL;
    long *lens = mk_malloc(sizeof(long) * b.n_bags);
    int known = 0, correct = 0;
    for (int i = 0; i < b.n_bags; i++) {
        int L = (int)mil_bag_len(&b, i);
        lens[i] = L;
        prob[i] = mil_forward(&m, mil_bag_x(&b, i), L, 0);
        int y = prob[i] >= thr;
        if (b.label[i] >= 0) known++, correct += y == b.label[i];
        if (attn) memcpy(attn + b.start[i], m.a, sizeof(float) * L);
        if (json) {
            printf("{\"bag\":");
            cli_json_str(stdout, b.name[i]);
            printf(",\"probability\":%.6f,\"label\":%d,", prob[i], y);
            if (b.label[i] >= 0) printf("\"true_label\":%d,", b.label[i]);
            else printf("\"true_label\":null,");
            printf("\"instances\":%d,\"attention\":[", L);
            for (int k = 0; k < L; k++) printf(k ? ",%.5g" : "%.5g", m.a[k]);
            printf("]");
            if (imgs.n) { /* image bags: the patch file of each attention entry */
                printf(",\"files\":[");
                for (int k = 0; k < L; k++) {
                    const char *f = imgs.path[b.start[i] + k], *sl = strrchr(f, '/');
                    printf(k ? ",\"" : "\"");
                    for (const char *c = sl ? sl + 1 : f; *c; c++) {
                        if (*c == '"' || *c == '\\') putchar('\\');
                        if ((unsigned char)*c >= 0x20) putchar(*c);
                    }
                    putchar('"');
                }
                printf("]");
            }
            printf("}\n");
        } else {
            printf("%s\t%.4f\t%d", b.name[i], prob[i], y);
            if (b.label[i] >= 0) printf("\t(true %d)", b.label[i]);
            printf("\n");
        }
    }
    if (known && !mk_quiet) {
        double auc = mil_auc(prob, b.label, b.n_bags);
        if (known == b.n_bags && !isnan(auc))
            fprintf(stderr, "mambakit: %d bags: accuracy %.3f, AUC %.3f\n", known, (double)correct / known, auc);
        else
            fprintf(stderr, "mambakit: %d labelled bags: accuracy %.3f\n", known, (double)correct / known);
    }
    int rc = 0;
    if (plot && (imgs.n ? mil_plot_mosaic(plot, &b, &imgs, attn, prob)
                        : mil_plot_attention(plot, b.n_bags, lens, attn, prob, b.label)))
        rc = cli_fail();
    mil_image_list_free(&imgs);
    free(prob);
    free(attn);
    free(lens);
    mil_bags_free(&b);
    mil_model_free(&m);
    return rc;
}

/* ------------------------------------------------------ convert / synth */

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int mil_convert_main(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *encoder = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            printf("usage: mambakit mil convert BAGS -o OUT\n\n"
                   "Convert a bag file: OUT ending in .csv is written as CSV, anything else as the\n"
                   "binary bag format (docs/MIL.md). Validates the input like train does. BAGS may be a\n"
                   "directory of image bags: their embedded features are written (embed once, train often).\n\n"
                   "  -o, --output OUT    output file (required)\n"
                   "  --quiet             no progress or summary line\n" ENCODER_HELP);
            return 0;
        }
        if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--encoder")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "mambakit: %s needs a value\n", a);
                return 2;
            }
            *(!strcmp(a, "--encoder") ? &encoder : &out) = argv[++i];
        } else if (!strcmp(a, "--quiet")) {
            mk_quiet = 1;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mambakit: mil convert: unknown option '%s' (see --help)\n", a);
            return 2;
        } else if (!in) {
            in = a;
        } else {
            fprintf(stderr, "mambakit: mil convert: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!in || !out) {
        fprintf(stderr, "mambakit: mil convert: need BAGS and -o OUT (see --help)\n");
        return 2;
    }
    if (mk_same_file(in, out)) {
        fprintf(stderr, "mambakit: mil convert: output would overwrite the input %s\n", in);
        return 2;
    }
    mil_bags b;
    if (load_bags(&b, NULL, in, MIL_LOAD_UNLABELED, encoder, 0)) return cli_fail();
    int rc = ends_with(out, ".csv") ? mil_bags_save_csv(&b, out) : mil_bags_save_bin(&b, out);
    if (!rc && !mk_quiet)
        fprintf(stderr, "mambakit: wrote %s: %d bags, %ld instances x %d features\n", out, b.n_bags, b.n_inst, b.F);
    mil_bags_free(&b);
    return rc ? cli_fail() : 0;
}

static int mil_synth_main(int argc, char **argv) {
    const char *out = NULL;
    long bags = 4, len = 10000, F = 32, keys = 20, seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_is_help(a)) {
            printf("usage: mambakit mil synth -o OUT [options]\n\n"
                   "Write synthetic bags (binary, or CSV if OUT ends in .csv): instances ~ N(0,1)^F; every\n"
                   "second bag is positive and holds KEYS key instances shifted by +2 on 4 features.\n\n"
                   "  -o, --output OUT    output file (required)\n"
                   "  --bags N            number of bags (default %ld)\n"
                   "  --length L          instances per bag (default %ld)\n"
                   "  --features F        features per instance (default %ld)\n"
                   "  --keys K            key instances per positive bag (default %ld)\n"
                   "  --seed N            random seed (default %ld)\n",
                   bags, len, F, keys, seed);
            return 0;
        }
        long *dst = !strcmp(a, "--bags") ? &bags : !strcmp(a, "--length") ? &len : !strcmp(a, "--features") ? &F
                    : !strcmp(a, "--keys") ? &keys : !strcmp(a, "--seed") ? &seed : NULL;
        long hi = dst == &len ? 100000000L : dst == &F ? 65536 : 1000000000L;
        if (dst) {
            if (cli_int(a, v, dst == &keys || dst == &seed ? 0 : 1, hi, dst)) return 2;
            i++;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!v) {
                fprintf(stderr, "mambakit: %s needs a value\n", a);
                return 2;
            }
            out = argv[++i];
        } else {
            fprintf(stderr, "mambakit: mil synth: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (!out) {
        fprintf(stderr, "mambakit: mil synth: need -o OUT (see --help)\n");
        return 2;
    }
    size_t tot;
    if (!mk_mul_ok((size_t)bags * len, (size_t)F, &tot) || tot > ((size_t)1 << 32)) {
        fprintf(stderr, "mambakit: mil synth: %ld bags x %ld instances x %ld features is too large\n", bags, len, F);
        return 2;
    }
    mil_bags b;
    mil_bags_synth(&b, (int)bags, len, (int)F, (int)keys, (unsigned long)seed);
    int rc = ends_with(out, ".csv") ? mil_bags_save_csv(&b, out) : mil_bags_save_bin(&b, out);
    mil_bags_free(&b);
    return rc ? cli_fail() : 0;
}

/* Fashion-MNIST image bags as folders of PNG patches (the MNIST-bags protocol
 * of Ilse et al. 2018, written as files so the image-bag path can be run on
 * real images): DIR/<bag>/pNN_cK.png (28x28 grey, K its class) and DIR/labels.csv. */
static int mil_image_bags_main(int argc, char **argv) {
    const char *out = NULL, *ddir = NULL, *split = "train";
    long bags = 40, target = 9, seed = 1;
    double mean_len = 10, sd_len = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_is_help(a)) {
            printf("usage: mambakit mil image-bags -o DIR [options]\n\n"
                   "Write Fashion-MNIST bags as image-bag folders (DIR/<bag>/pNN_cK.png, 28x28 grey, K the\n"
                   "image's class, for checking attention; the model never reads names) and\n"
                   "DIR/labels.csv): bag sizes ~ round(N(LEN, SD)) >= 1, images drawn at random from the\n"
                   "chosen split, a bag is positive iff it holds an image of class TARGET.\n"
                   "DIR must not exist; it appears complete or not at all.\n\n"
                   "  -o, --output DIR    output directory (required)\n"
                   "  --bags N            number of bags (default %ld)\n"
                   "  --length LEN        mean bag size (default %g)\n"
                   "  --sd SD             bag size standard deviation (default %g)\n"
                   "  --target K          positive class 0..9 (default %ld, ankle boot)\n"
                   "  --split S           train | test images (default %s)\n"
                   "  --seed N            random seed (default %ld)\n"
                   "  --data-dir DIR      where fashion-mnist/ lives (default: search path)\n"
                   "  --quiet             no summary line\n",
                   bags, mean_len, sd_len, target, split, seed);
            return 0;
        }
        if (!strcmp(a, "--quiet")) {
            mk_quiet = 1;
        } else if (!strcmp(a, "--bags")) {
            if (cli_int(a, v, 1, 100000, &bags)) return 2;
            i++;
        } else if (!strcmp(a, "--target")) {
            if (cli_int(a, v, 0, 9, &target)) return 2;
            i++;
        } else if (!strcmp(a, "--seed")) {
            if (cli_int(a, v, 0, 1000000000L, &seed)) return 2;
            i++;
        } else if (!strcmp(a, "--length")) {
            if (cli_float(a, v, 1, 10000, &mean_len)) return 2;
            i++;
        } else if (!strcmp(a, "--sd")) {
            if (cli_float(a, v, 0, 10000, &sd_len)) return 2;
            i++;
        } else if (!strcmp(a, "--split")) {
            if (!v || (strcmp(v, "train") && strcmp(v, "test"))) {
                fprintf(stderr, "mambakit: --split: '%s' is not train or test\n", v ? v : "");
                return 2;
            }
            split = v;
            i++;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--data-dir")) {
            if (!v) {
                fprintf(stderr, "mambakit: %s needs a value\n", a);
                return 2;
            }
            *(!strcmp(a, "--data-dir") ? &ddir : &out) = v;
            i++;
        } else {
            fprintf(stderr, "mambakit: mil image-bags: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (!out) {
        fprintf(stderr, "mambakit: mil image-bags: need -o DIR (see --help)\n");
        return 2;
    }
    struct stat st;
    if (!stat(out, &st)) {
        fprintf(stderr, "mambakit: %s: already exists (give a new directory)\n", out);
        return 1;
    }
    const int test = !strcmp(split, "test");
    char ip[4096], lp[4096];
    if (!mk_find_data(ddir, test ? "fashion-mnist/t10k-images-idx3-ubyte.gz" : "fashion-mnist/train-images-idx3-ubyte.gz",
                      ip, sizeof ip) ||
        !mk_find_data(ddir, test ? "fashion-mnist/t10k-labels-idx1-ubyte.gz" : "fashion-mnist/train-labels-idx1-ubyte.gz",
                      lp, sizeof lp)) {
        fprintf(stderr, "mambakit: Fashion-MNIST not found (looked in %s)\n", ip);
        return 1;
    }
    unsigned char *im, *lb;
    int n, P;
    if (mil_read_idx_images(ip, lp, &im, &lb, &n, &P)) return cli_fail();
    if (P != 784) {
        free(im), free(lb);
        fprintf(stderr, "mambakit: %s: %d pixels per image, expected 28x28\n", ip, P);
        return 1;
    }
    mil_bags b;
    int *src = mil_bags_from_pool(&b, NULL, 1, lb, n, (int)bags, mean_len, sd_len, (int)target, (unsigned long)seed);
    char tmp[4200], p[4400];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", out, (int)getpid());
    int rc = 0;
    FILE *lf = NULL;
    if (mkdir(tmp, 0777)) {
        mk_error("%s: cannot create directory", tmp);
        rc = -1;
    }
    if (!rc) {
        snprintf(p, sizeof p, "%s/labels.csv", tmp);
        if (!(lf = fopen(p, "w"))) mk_error("%s: cannot write", p), rc = -1;
        else fprintf(lf, "bag,label\n");
    }
    const int wd = bags >= 1000 ? 4 : 3;
    for (int i = 0; i < b.n_bags && !rc; i++) {
        snprintf(p, sizeof p, "%s/bag%0*d", tmp, wd, i + 1);
        if (mkdir(p, 0777)) {
            mk_error("%s: cannot create directory", p);
            rc = -1;
            break;
        }
        fprintf(lf, "bag%0*d,%d\n", wd, i + 1, b.label[i]);
        for (long r = b.start[i]; r < b.start[i + 1] && !rc; r++) {
            char f[4500];
            snprintf(f, sizeof f, "%s/p%02ld_c%d.png", p, r - b.start[i] + 1, lb[src[r]]);
            if (vision_png_write(f, im + (size_t)src[r] * 784, 28, 28, 1)) rc = -1;
        }
    }
    if (lf && fclose(lf) && !rc) mk_error("%s/labels.csv: write failed", tmp), rc = -1;
    if (!rc && rename(tmp, out)) mk_error("%s: cannot rename %s into place", out, tmp), rc = -1;
    if (rc) { /* remove the partial directory */
        char cmd[9000];
        snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", tmp);
        if (!strchr(tmp, '\'') && system(cmd)) mk_warn("%s: could not remove", tmp);
    } else if (!mk_quiet) {
        fprintf(stderr, "mambakit: wrote %s: %d bags (%d positive), %ld images\n", out, b.n_bags,
                mil_bags_positives(&b), b.n_inst);
    }
    free(src);
    free(im), free(lb);
    mil_bags_free(&b);
    return rc ? cli_fail() : 0;
}

int cmd_mil(int argc, char **argv) {
    if (argc < 2 || cli_is_help(argv[1])) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: mambakit mil COMMAND [options]   (COMMAND --help for details)\n\n"
                   "Multiple-instance learning on bags of instance features (MambaMIL with SR-Mamba,\n"
                   "and ABMIL / gated ABMIL / mean / max pooling baselines).\n\n"
                   "  train     train and save a model, or k-fold cross-validate\n"
                   "  predict   bag probability, label and per-instance attention\n"
                   "  convert   CSV <-> binary bag files\n"
                   "  synth     write synthetic (long) bags\n"
                   "  image-bags  write Fashion-MNIST image bags (folders of PNG patches + labels.csv)\n\n"
                   "BAGS is a CSV or binary bag file, or a directory of image bags (DIR/<bag>/*.png and\n"
                   "DIR/labels.csv 'bag,label'), embedded by the vision model (docs/MIL.md).\n");
        return argc < 2 ? 2 : 0;
    }
    const char *w = argv[1];
    if (!strcmp(w, "train")) return mil_train_main(argc - 1, argv + 1);
    if (!strcmp(w, "predict")) return mil_predict_main(argc - 1, argv + 1);
    if (!strcmp(w, "convert")) return mil_convert_main(argc - 1, argv + 1);
    if (!strcmp(w, "synth")) return mil_synth_main(argc - 1, argv + 1);
    if (!strcmp(w, "image-bags")) return mil_image_bags_main(argc - 1, argv + 1);
    fprintf(stderr, "mambakit: mil: unknown command '%s' (train, predict, convert, synth, image-bags)\n", w);
    return 2;
}

/* ------------------------------------------------------------------ bench */

static const char *const BENCH_SETS[] = {"musk1", "musk2", "elephant", "fox", "tiger"};
/* ref: Ilse, Tomczak & Welling 2018, Table 1 (10-fold CV x 5, accuracy mean ± std error) */
static const double ILSE_ATT[] = {0.892, 0.858, 0.868, 0.615, 0.839};
static const double ILSE_GATED[] = {0.900, 0.863, 0.857, 0.603, 0.845};

/* One long-bag run in a child process so its peak RSS is its own. */
static void long_child(int fd, long len, int F, int D, int dstate, const mil_cfg *base) {
    mil_bags b;
    mil_bags_synth(&b, 2, len, F, 20, 5);
    mil_cfg c;
    mil_cfg_default(&c, MIL_MAMBA, F);
    c.D = D, c.H = D, c.d_state = dstate;
    c.n_layer = base->n_layer, c.stride = base->stride, c.res_gate = base->res_gate, c.order = base->order;
    mil_model m;
    mil_model_create(&m, &c, 1);
    mil_model_fit_scaler(&m, &b);
    mil_train_opts o;
    mil_train_opts_default(&o);
    o.epochs = 1;
    o.quiet = 1;
    double t0 = mk_time();
    mil_train(&m, &b, &o, NULL);
    double t1 = mk_time();
    float p[2];
    mil_predict(&m, &b, p);
    double t2 = mk_time();
    char buf[128];
    int n = snprintf(buf, sizeof buf, "%.3f %.3f\n", (t1 - t0) / 2, (t2 - t1) / 2);
    if (write(fd, buf, n) != n) _exit(1);
    mil_model_free(&m);
    mil_bags_free(&b);
}

static int bench_long(const long *lens, int nl, int json, const mil_cfg *base) {
    const int F = 32, D = 16, N = 8;
    if (!json) {
        printf("Long bags (synthetic, F=%d features, MambaMIL d_model=%d d_state=%d, %d layer(s), G=%d orders,\n"
               "residual gate %d), per bag: one training step (forward+backward+AdamW) and one prediction;\n"
               "peak RSS of the process:\n\n",
               F, D, N, base->n_layer, base->stride > 0 ? 2 : 1, base->res_gate);
        printf("| instances | train step (s) | predict (s) | peak RSS (MiB) | RSS / 1k instances (MiB) |\n");
        printf("|---:|---:|---:|---:|---:|\n");
    }
    for (int k = 0; k < nl; k++) {
        int fds[2];
        if (pipe(fds)) return 1;
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            long_child(fds[1], lens[k], F, D, N, base);
            _exit(0);
        }
        close(fds[1]);
        char buf[128] = {0};
        ssize_t got = read(fds[0], buf, sizeof buf - 1);
        close(fds[0]);
        int st;
        struct rusage ru;
        if (pid < 0 || wait4(pid, &st, 0, &ru) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) || got <= 0) {
            fprintf(stderr, "mambakit: bench mil: long-bag run of %ld instances failed\n", lens[k]);
            return 1;
        }
        double tt, tp, rss = ru.ru_maxrss / 1024.0;
        if (sscanf(buf, "%lf %lf", &tt, &tp) != 2) return 1;
        if (json)
            printf("{\"bench\":\"long\",\"instances\":%ld,\"train_step_s\":%.3f,\"predict_s\":%.3f,\"peak_rss_mib\":%.1f}\n",
                   lens[k], tt, tp, rss);
        else
            printf("| %ld | %.2f | %.2f | %.0f | %.2f |\n", lens[k], tt, tp, rss, rss * 1000.0 / lens[k]);
        fflush(stdout);
    }
    return 0;
}

/* Fashion-MNIST bags: train bags from the training images, 1000 test bags
 * from the test images, `repeats` runs with different bags and seeds. */
/* One Fashion-MNIST-bags run: train a model of `type` on tr, score it on te. */
static void fit_and_score(const mil_opts *base, int type, int F, unsigned long seed, const mil_bags *tr,
                          const mil_bags *te, double *acc, double *auc) {
    mil_opts o = *base;
    o.c.type = type;
    o.c.F = F;
    o.t.seed = seed;
    o.t.quiet = 1;
    mil_model m;
    mil_model_create(&m, &o.c, o.t.seed);
    mil_model_fit_scaler(&m, tr);
    mil_train(&m, tr, &o.t, NULL);
    float *p = mk_malloc(sizeof(float) * te->n_bags);
    mil_predict(&m, te, p);
    int ok = 0;
    for (int i = 0; i < te->n_bags; i++) ok += (p[i] >= 0.5f) == (te->label[i] == 1);
    *acc = (double)ok / te->n_bags;
    *auc = mil_auc(p, te->label, te->n_bags);
    free(p);
    mil_model_free(&m);
}

static int bench_fmnist(const mil_opts *base, const int *types, int nt, int repeats, int json, const char *ddir) {
    char ip[4096], lp[4096], tip[4096], tlp[4096];
    if (!mk_find_data(ddir, "fashion-mnist/train-images-idx3-ubyte.gz", ip, sizeof ip) ||
        !mk_find_data(ddir, "fashion-mnist/train-labels-idx1-ubyte.gz", lp, sizeof lp) ||
        !mk_find_data(ddir, "fashion-mnist/t10k-images-idx3-ubyte.gz", tip, sizeof tip) ||
        !mk_find_data(ddir, "fashion-mnist/t10k-labels-idx1-ubyte.gz", tlp, sizeof tlp)) {
        fprintf(stderr, "mambakit: bench mil: Fashion-MNIST not found (%s)\n", ip);
        return 1;
    }
    unsigned char *im, *lb, *tim, *tlb;
    int n, tn, P;
    if (mil_read_idx_images(ip, lp, &im, &lb, &n, &P)) return cli_fail();
    if (mil_read_idx_images(tip, tlp, &tim, &tlb, &tn, &P)) {
        free(im), free(lb);
        return cli_fail();
    }
    const int target = 9, sizes[] = {50, 100, 150, 200};
    if (!json) {
        printf("\nFashion-MNIST bags (bag size ~ N(10, 2), positive iff the bag holds class %d 'ankle boot';\n"
               "1000 test bags; %d runs; pixels/255 as instance features), test AUC and accuracy mean ± std:\n\n",
               target, repeats);
        printf("| train bags |");
        for (int k = 0; k < nt; k++) printf(" %s AUC | %s acc |", mil_type_names[types[k]], mil_type_names[types[k]]);
        paired_header(nt, types, "runs");
        printf("\n|---:|");
        for (int k = 0; k < nt; k++) printf("---:|---:|");
        paired_rule(nt);
        printf("\n");
    }
    for (int s = 0; s < 4; s++) {
        if (!json) printf("| %d |", sizes[s]);
        model_runs pr[MIL_NTYPES];
        for (int k = 0; k < nt; k++) {
            double *acc = pr[k].acc, *auc = pr[k].auc;
            for (int r = 0; r < repeats; r++) {
                mil_bags tr, te;
                mil_bags_from_images(&tr, im, lb, n, sizes[s], 10, 2, target, 1000 + 17 * r + s);
                mil_bags_from_images(&te, tim, tlb, tn, 1000, 10, 2, target, 5000 + r);
                fit_and_score(base, types[k], P, base->t.seed + r, &tr, &te, &acc[r], &auc[r]);
                mil_bags_free(&tr);
                mil_bags_free(&te);
            }
            if (json)
                printf("{\"bench\":\"fmnist_bags\",\"train_bags\":%d,\"model\":\"%s\",\"runs\":%d,\"auc_mean\":%.4f,"
                       "\"auc_std\":%.4f,\"accuracy_mean\":%.4f,\"accuracy_std\":%.4f}\n",
                       sizes[s], mil_type_names[types[k]], repeats, mean_of(auc, repeats), std_of(auc, repeats),
                       mean_of(acc, repeats), std_of(acc, repeats));
            else
                printf(" %.3f ± %.3f | %.3f ± %.3f |", mean_of(auc, repeats), std_of(auc, repeats),
                       mean_of(acc, repeats), std_of(acc, repeats));
            fflush(stdout);
        }
        char sz[16];
        snprintf(sz, sizeof sz, "%d", sizes[s]);
        paired_print(pr, nt, repeats, json, "fmnist_bags", "", "train_bags", sz, types);
        if (!json) printf("\n");
    }
    free(im), free(lb), free(tim), free(tlb);
    return 0;
}

/* Fashion-MNIST image bags: the same bags with raw pixels vs the vision
 * encoder's features as instances. The encoder is slow on a CPU, so bags are
 * drawn from pools of the first `pool` training and test images (both kinds of
 * features use the same pools and the same bags). */
static int bench_fmnist_vision(const mil_opts *base, const int *types, int nt, int repeats, int pool, int json,
                               const char *ddir) {
    char ip[4096], lp[4096], tip[4096], tlp[4096], ep[4096];
    if (!mk_find_data(ddir, "fashion-mnist/train-images-idx3-ubyte.gz", ip, sizeof ip) ||
        !mk_find_data(ddir, "fashion-mnist/train-labels-idx1-ubyte.gz", lp, sizeof lp) ||
        !mk_find_data(ddir, "fashion-mnist/t10k-images-idx3-ubyte.gz", tip, sizeof tip) ||
        !mk_find_data(ddir, "fashion-mnist/t10k-labels-idx1-ubyte.gz", tlp, sizeof tlp)) {
        fprintf(stderr, "mambakit: bench mil: Fashion-MNIST not found (%s)\n", ip);
        return 1;
    }
    const char *enc = base->encoder;
    if (!enc) {
        if (!mk_find_model("vision.mkm", ep, sizeof ep)) {
            fprintf(stderr, "mambakit: bench mil: no models/vision.mkm (looked in %s)\n", ep);
            return 1;
        }
        enc = ep;
    }
    unsigned char *im, *lb, *tim, *tlb;
    int n, tn, P, rc = 0;
    if (mil_read_idx_images(ip, lp, &im, &lb, &n, &P)) return cli_fail();
    if (mil_read_idx_images(tip, tlp, &tim, &tlb, &tn, &P)) {
        free(im), free(lb);
        return cli_fail();
    }
    const int ntr = pool < n ? pool : n, nte = pool < tn ? pool : tn;
    int Fv = 0;
    double t0 = mk_time();
    float *vtr = mil_embed_gray28(im, ntr, enc, 0, &Fv), *vte = vtr ? mil_embed_gray28(tim, nte, enc, 0, &Fv) : NULL;
    double t_embed = mk_time() - t0;
    float *ptr = mk_malloc(sizeof(float) * (size_t)ntr * P), *pte = mk_malloc(sizeof(float) * (size_t)nte * P);
    for (size_t k = 0; k < (size_t)ntr * P; k++) ptr[k] = im[k] / 255.f;
    for (size_t k = 0; k < (size_t)nte * P; k++) pte[k] = tim[k] / 255.f;
    if (!vte) {
        rc = cli_fail();
        goto done;
    }
    const int target = 9, sizes[] = {50, 100, 150, 200};
    if (!json) {
        printf("\nFashion-MNIST image bags, raw pixels vs vision-encoder features (%s, %d per image; %d + %d pool\n"
               "images embedded in %.0f s), bags from the first %d training / %d test images, 1000 test bags,\n"
               "%d runs, test AUC and accuracy mean ± std:\n\n",
               enc, Fv, ntr, nte, t_embed, ntr, nte, repeats);
        printf("| train bags | features |");
        for (int k = 0; k < nt; k++) printf(" %s AUC | %s acc |", mil_type_names[types[k]], mil_type_names[types[k]]);
        paired_header(nt, types, "runs");
        printf("\n|---:|---|");
        for (int k = 0; k < nt; k++) printf("---:|---:|");
        paired_rule(nt);
        printf("\n");
    }
    for (int s = 0; s < 4; s++)
        for (int fk = 0; fk < 2; fk++) {
            const float *tr_pool = fk ? vtr : ptr, *te_pool = fk ? vte : pte;
            const int F = fk ? Fv : P;
            if (!json) printf("| %d | %s |", sizes[s], fk ? "vision" : "pixels");
            model_runs pr[MIL_NTYPES];
            for (int k = 0; k < nt; k++) {
                double *acc = pr[k].acc, *auc = pr[k].auc;
                for (int r = 0; r < repeats; r++) {
                    mil_bags tr, te;
                    free(mil_bags_from_pool(&tr, tr_pool, F, lb, ntr, sizes[s], 10, 2, target, 1000 + 17 * r + s));
                    free(mil_bags_from_pool(&te, te_pool, F, tlb, nte, 1000, 10, 2, target, 5000 + r));
                    fit_and_score(base, types[k], F, base->t.seed + r, &tr, &te, &acc[r], &auc[r]);
                    mil_bags_free(&tr);
                    mil_bags_free(&te);
                }
                if (json)
                    printf("{\"bench\":\"fmnist_image_bags\",\"features\":\"%s\",\"train_bags\":%d,\"model\":\"%s\","
                           "\"runs\":%d,\"auc_mean\":%.4f,\"auc_std\":%.4f,\"accuracy_mean\":%.4f,\"accuracy_std\":%.4f}\n",
                           fk ? "vision" : "pixels", sizes[s], mil_type_names[types[k]], repeats,
                           mean_of(auc, repeats), std_of(auc, repeats), mean_of(acc, repeats), std_of(acc, repeats));
                else
                    printf(" %.3f ± %.3f | %.3f ± %.3f |", mean_of(auc, repeats), std_of(auc, repeats),
                           mean_of(acc, repeats), std_of(acc, repeats));
                fflush(stdout);
            }
            char sz[16];
            snprintf(sz, sizeof sz, "%d", sizes[s]);
            paired_print(pr, nt, repeats, json, "fmnist_image_bags", fk ? "\"features\":\"vision\"," : "\"features\":\"pixels\",",
                         "train_bags", sz, types);
            if (!json) printf("\n");
        }
done:
    free(vtr), free(vte), free(ptr), free(pte);
    free(im), free(lb), free(tim), free(tlb);
    return rc;
}

int cmd_bench_mil(int argc, char **argv) {
    /* bench settings: small enough for 10-fold x 5 CV of every model on 2 CPU cores */
    mil_opts o;
    opts_default(&o);
    o.c.D = 32, o.c.H = 32, o.c.d_state = 8, o.c.dropout = 0.25f;
    o.t.epochs = 20, o.t.lr = 1e-3f;
    o.t.clip = 0; /* a global-norm clip penalises the model with more parameters: none in the comparison */
    o.c.order = MIL_ORDER_SCORE; /* the classic sets and Fashion-MNIST bags are sets: their row order means nothing */
    long folds = 10, repeats = 5, fm_runs = 5, fm_vision = 0;
    int fm_given = 0;
    int json = 0, do_sets = 1, do_fm = 1, do_long = 1, quick = 0;
    char sets[256] = "musk1,musk2,elephant,fox,tiger", models[256] = "mamba,abmil,gated,mean,max";
    const char *ddir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_is_help(a)) {
            printf("usage: mambakit bench mil [options]   (make bench-mil)\n\n"
                   "MambaMIL vs ABMIL vs gated ABMIL vs mean/max pooling, same harness and settings:\n"
                   "the classic MIL sets (stratified K-fold CV x repeats), Fashion-MNIST bags with\n"
                   "50/100/150/200 training bags, and long synthetic bags (time, peak RSS).\n\n"
                   "  --sets LIST         comma list of musk1,musk2,elephant,fox,tiger (default all); 'none' skips\n"
                   "  --models LIST       comma list of mamba,abmil,gated,mean,max (default all)\n"
                   "  --folds K           CV folds (default %ld)\n"
                   "  --repeats N         CV repeats (default %ld)\n"
                   "  --fmnist-runs N     Fashion-MNIST-bags runs per size (default %ld); 0 skips\n"
                   "  --fmnist-vision N   Fashion-MNIST image bags, pixels vs vision-encoder features,\n"
                   "                      bags drawn from the first N train / test images (default 0: off)\n"
                   "  --no-long           skip the long-bag stress case\n"
                   "  --quick             2 repeats, 1 Fashion-MNIST run, long bags up to 20k\n"
                   "  --data-dir DIR      where mil/*.csv and fashion-mnist/ live (default: search path)\n"
                   "  --json              JSON lines instead of markdown tables\n\n",
                   folds, repeats, fm_runs);
            opts_help(stdout, &o);
            return 0;
        }
        int r = opts_parse(&o, argc, argv, &i);
        if (r < 0) return 2;
        if (r) continue;
        if (!strcmp(a, "--sets") || !strcmp(a, "--models")) {
            if (!v || strlen(v) >= 255) {
                fprintf(stderr, "mambakit: %s needs a comma list\n", a);
                return 2;
            }
            strcpy(!strcmp(a, "--sets") ? sets : models, v);
            i++;
        } else if (!strcmp(a, "--folds")) {
            if (cli_int(a, v, 2, 100, &folds)) return 2;
            i++;
        } else if (!strcmp(a, "--repeats")) {
            if (cli_int(a, v, 1, 64, &repeats)) return 2;
            i++;
        } else if (!strcmp(a, "--fmnist-runs")) {
            if (cli_int(a, v, 0, 64, &fm_runs)) return 2;
            fm_given = 1;
            i++;
        } else if (!strcmp(a, "--fmnist-vision")) {
            if (cli_int(a, v, 0, 60000, &fm_vision)) return 2;
            i++;
        } else if (!strcmp(a, "--data-dir")) {
            if (!v) {
                fprintf(stderr, "mambakit: --data-dir needs a value\n");
                return 2;
            }
            ddir = v;
            i++;
        } else if (!strcmp(a, "--no-long")) {
            do_long = 0;
        } else if (!strcmp(a, "--quick")) {
            quick = 1;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else {
            fprintf(stderr, "mambakit: bench mil: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (quick) repeats = 2, fm_runs = fm_given ? fm_runs : 1;
    if (!strcmp(sets, "none")) do_sets = 0;
    if (!fm_runs) do_fm = 0;
    int types[MIL_NTYPES], nt = 0;
    for (char *tok = strtok(models, ","); tok; tok = strtok(NULL, ",")) {
        int t = mil_type_from_name(tok);
        if (t < 0 || nt == MIL_NTYPES) {
            fprintf(stderr, "mambakit: --models: unknown model '%s'\n", tok);
            return 2;
        }
        types[nt++] = t;
    }
    mk_quiet = 1;
    if (do_long) { /* first: the forked children must not inherit loaded data sets in their RSS */
        static const long full[] = {10000, 25000, 50000, 100000}, q[] = {5000, 10000, 20000};
        if (bench_long(quick ? q : full, quick ? 3 : 4, json, &o.c)) return 1;
    }
    if (!json)
        printf("\nMIL benchmark: d_model %d, attention hidden %d, SR-Mamba %d layers stride %d d_state %d, residual gate %d,\n"
               "%s order, attention on %s, branch drop %g, dropout %g, auxiliary exit %g%s, %d epochs, AdamW lr %g wd %g, clip %g, batch %d bag(s), seed %lu, %d thread(s)%s\n",
               o.c.D, o.c.H, o.c.n_layer, o.c.stride, o.c.d_state, o.c.res_gate, mil_order_names[o.c.order],
               o.c.attend_e ? "e" : "h", o.c.branch_drop, o.c.dropout, o.c.aux, o.c.aux_mix ? " (mixed into the prediction)" : "",
               o.t.epochs, o.t.lr, o.t.weight_decay, o.t.clip, o.t.batch, o.t.seed, mk_num_threads(),
               o.t.shuffle_inst ? ",\ntraining bags in a new random instance order each time (--shuffle-instances)" : "");
    if (!json && o.t.gate_l1 > 0) printf("gate L1 step %g x lr after each AdamW step (--gate-l1)\n", o.t.gate_l1);
    if (do_sets) {
        if (!json) {
            printf("\n%ld-fold stratified CV x %ld repeats, out-of-fold accuracy and AUC per repeat, mean ± std over "
                   "repeats:\n\n| set |", folds, repeats);
            for (int k = 0; k < nt; k++) printf(" %s acc | %s AUC |", mil_type_names[types[k]], mil_type_names[types[k]]);
            paired_header(nt, types, "repeats");
            printf(" ABMIL (paper) | gated ABMIL (paper) |\n|---|");
            for (int k = 0; k < nt; k++) printf("---:|---:|");
            paired_rule(nt);
            printf("---:|---:|\n");
        }
        for (char *tok = strtok(sets, ","); tok; tok = strtok(NULL, ",")) {
            int si = -1;
            for (int k = 0; k < 5; k++)
                if (!strcmp(tok, BENCH_SETS[k])) si = k;
            char rel[64], path[4096];
            snprintf(rel, sizeof rel, "mil/%s.csv", tok);
            if (si < 0 || !mk_find_data(ddir, rel, path, sizeof path)) {
                fprintf(stderr, "mambakit: bench mil: skipping %s: %s\n", tok, si < 0 ? "unknown set" : "not found");
                continue;
            }
            mil_bags b;
            if (mil_bags_load(&b, path, 0)) return cli_fail();
            if (!json) printf("| %s |", tok);
            model_runs pr[MIL_NTYPES];
            for (int k = 0; k < nt; k++) {
                mil_opts oo = o;
                oo.c.type = types[k];
                oo.c.F = b.F;
                double *acc = pr[k].acc, *auc = pr[k].auc, fa[64 * 100];
                double t0 = mk_time();
                if (mil_cross_validate(&b, &oo.c, &oo.t, (int)folds, (int)repeats, acc, auc, fa, 0)) {
                    mil_bags_free(&b);
                    return cli_fail();
                }
                if (json)
                    printf("{\"bench\":\"cv\",\"set\":\"%s\",\"model\":\"%s\",\"folds\":%ld,\"repeats\":%ld,"
                           "\"accuracy_mean\":%.4f,\"accuracy_std\":%.4f,\"auc_mean\":%.4f,\"auc_std\":%.4f,"
                           "\"seconds\":%.1f}\n",
                           tok, mil_type_names[types[k]], folds, repeats, mean_of(acc, repeats), std_of(acc, repeats),
                           mean_of(auc, repeats), std_of(auc, repeats), mk_time() - t0);
                else
                    printf(" %.3f ± %.3f | %.3f ± %.3f |", mean_of(acc, repeats), std_of(acc, repeats),
                           mean_of(auc, repeats), std_of(auc, repeats));
                fflush(stdout);
            }
            char q[80];
            snprintf(q, sizeof q, "\"%s\"", tok);
            paired_print(pr, nt, (int)repeats, json, "cv", "", "set", q, types);
            if (!json) printf(" %.3f | %.3f |\n", ILSE_ATT[si], ILSE_GATED[si]);
            mil_bags_free(&b);
        }
    }
    if (do_fm && bench_fmnist(&o, types, nt, (int)fm_runs, json, ddir)) return 1;
    if (fm_vision && fm_runs && bench_fmnist_vision(&o, types, nt, (int)fm_runs, (int)fm_vision, json, ddir)) return 1;
    long gz, gt;
    mil_gate_l1_stats(&gz, &gt);
    if (gt) {
        if (json) printf("{\"bench\":\"gate_l1\",\"gate_l1\":%g,\"gate_entries\":%ld,\"zero\":%ld}\n", o.t.gate_l1, gt, gz);
        else printf("\n--gate-l1 %g: %ld of the %ld trained gate entries ended at exactly 0 (%.1f %%)\n", o.t.gate_l1, gz, gt,
                    100.0 * gz / gt);
    }
    return 0;
}
