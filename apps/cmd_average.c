/* cmd_average.c — `mambakit average A.mkm B.mkm ... -o OUT.mkm`: the uniform
 * average of the weights of models of one architecture (stochastic weight
 * averaging over the ends of fine-tune cycles, or a "model soup"), or with
 * --weights an affine combination of them (weights summing to 1, negative ones
 * allowed: interpolating between a model and its fine-tune, or extrapolating
 * past one along the direction training moved it).
 *
 * Averaging only makes sense for models that share an architecture and lie in
 * one basin (one started from the other, or both from a common model), so the
 * inputs must have the same task, the same tensor table and the same config,
 * except the training record (keys train_*, val_*, test_*, best_*, average*
 * (so a soup can be combined with its parent), and the unprefixed epoch,
 * epochs, lr, accuracy of older tasks):
 * where those differ they describe no single run of the result and are
 * dropped from its config. Sums are taken in double, in file order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/cli.h"
#include "core/ckpt.h"

#define MAX_INPUTS 64

static int is_training_record(const char *key) {
    return !strncmp(key, "train_", 6) || !strncmp(key, "val_", 4) || !strncmp(key, "test_", 5) ||
           !strncmp(key, "best_", 5) || !strcmp(key, "epoch") || !strcmp(key, "epochs") || !strcmp(key, "lr") ||
           !strcmp(key, "accuracy") || !strncmp(key, "average", 7);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: mambakit average MODEL MODEL [MODEL...] [--weights W1,W2,...] -o OUT\n"
            "  Writes the uniform average of the models' weights (stochastic weight averaging of\n"
            "  the models ending successive fine-tune cycles; they must share the architecture and\n"
            "  should descend from one model, or the average is meaningless). The inputs must have\n"
            "  the same task, tensors and configuration; training-record entries (train_*, val_*,\n"
            "  test_*, best_*, average*, epoch(s), lr, accuracy) that differ are dropped from the output's configuration.\n"
            "  Evaluate the result before using it (e.g. mambakit eval vision --split val --model OUT).\n"
            "  -o FILE     output model (required; may not be one of the inputs)\n"
            "  --weights W1,W2,...  one weight per model, in order, summing to 1 (the result is\n"
            "              W1*MODEL1 + W2*MODEL2 + ...); negative weights extrapolate, e.g.\n"
            "              --weights -0.5,1.5 for PARENT CHILD goes half as far again past CHILD\n"
            "  -h, --help  this help\n");
}

int cmd_average(int argc, char **argv) {
    const char *in[MAX_INPUTS], *out = NULL, *wopt = NULL;
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-o")) {
            if (++i >= argc) {
                fprintf(stderr, "mambakit: average: -o needs a file name\n");
                return 2;
            }
            out = argv[i];
        } else if (!strcmp(argv[i], "--weights")) {
            if (++i >= argc) {
                fprintf(stderr, "mambakit: average: --weights needs a list, e.g. 0.25,0.75\n");
                return 2;
            }
            wopt = argv[i];
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "mambakit: average: unknown option '%s' (see mambakit average --help)\n", argv[i]);
            return 2;
        } else if (n == MAX_INPUTS) {
            fprintf(stderr, "mambakit: average: at most %d models\n", MAX_INPUTS);
            return 2;
        } else {
            in[n++] = argv[i];
        }
    }
    if (n < 2 || !out) {
        usage(stderr);
        return 2;
    }
    /* uniform: sum, then divide by n (the soups shipped so far were made so, bit for bit);
     * weighted: sum of w_i x_i, divided by 1 */
    double w[MAX_INPUTS], div = wopt ? 1.0 : n;
    for (int i = 0; i < n; i++) w[i] = 1.0;
    if (wopt) {
        int k = 0;
        double s = 0;
        const char *c = wopt;
        for (;;) {
            char *end;
            double v = strtod(c, &end);
            if (end == c || (*end && *end != ',') || v != v || v > 1e6 || v < -1e6) {
                fprintf(stderr, "mambakit: average: --weights '%s': not a comma-separated list of numbers\n", wopt);
                return 2;
            }
            if (k < MAX_INPUTS) w[k] = v;
            k++;
            s += v;
            if (!*end) break;
            c = end + 1;
        }
        if (k != n) {
            fprintf(stderr, "mambakit: average: --weights gives %d weights for %d models\n", k, n);
            return 2;
        }
        if (s < 1 - 1e-6 || s > 1 + 1e-6) {
            fprintf(stderr, "mambakit: average: --weights sum to %.9g, not 1 (scaling every weight is not an average)\n", s);
            return 2;
        }
    }
    for (int i = 0; i < n; i++)
        if (mk_same_file(in[i], out)) {
            fprintf(stderr, "mambakit: %s: the output may not be one of the inputs\n", out);
            return 1;
        }

    static mk_config cfg0, cfg; /* ~58 KB each: off the stack */
    mk_params p0, p;
    mk_params_init(&p0);
    if (mk_ckpt_load_table(in[0], NULL, &cfg0, &p0)) {
        mk_params_free(&p0);
        return cli_fail();
    }
    double *sum = mk_calloc(p0.total, sizeof(double));
    for (size_t j = 0; j < p0.total; j++) sum[j] = w[0] * p0.data[j];
    char drop[MK_CKPT_MAX_CONFIG] = {0};
    int rc = 0;
    for (int i = 1; i < n && !rc; i++) {
        mk_params_init(&p);
        if (mk_ckpt_load_table(in[i], cfg0.task, &cfg, &p)) {
            rc = cli_fail();
        } else if (p.n != p0.n || p.total != p0.total) {
            fprintf(stderr, "mambakit: %s: %d tensors / %zu weights, %s has %d / %zu: not the same architecture\n",
                    in[i], p.n, p.total, in[0], p0.n, p0.total);
            rc = 1;
        } else {
            for (int t = 0; t < p.n && !rc; t++) {
                const mk_tensor *a = &p0.t[t], *b = &p.t[t];
                int same = !strcmp(a->name, b->name) && a->ndim == b->ndim;
                for (int k = 0; same && k < a->ndim; k++) same = a->shape[k] == b->shape[k];
                if (!same) {
                    fprintf(stderr, "mambakit: %s: tensor %d is '%s', in %s '%s' of another shape: not the same architecture\n",
                            in[i], t, b->name, in[0], a->name);
                    rc = 1;
                }
            }
            for (int k = 0; k < cfg0.n && !rc; k++) {
                const char *v = mk_config_get(&cfg, cfg0.key[k]);
                if (v && !strcmp(v, cfg0.val[k])) continue;
                if (is_training_record(cfg0.key[k])) {
                    drop[k] = 1;
                } else {
                    fprintf(stderr, "mambakit: %s: config '%s' is '%s', in %s '%s': not the same model\n", in[i],
                            cfg0.key[k], v ? v : "(absent)", in[0], cfg0.val[k]);
                    rc = 1;
                }
            }
            for (int k = 0; k < cfg.n && !rc; k++)
                if (!mk_config_get(&cfg0, cfg.key[k]) && !is_training_record(cfg.key[k])) {
                    fprintf(stderr, "mambakit: %s: config '%s' is absent from %s: not the same model\n", in[i],
                            cfg.key[k], in[0]);
                    rc = 1;
                }
            for (size_t j = 0; j < p.total && !rc; j++) sum[j] += w[i] * p.data[j];
        }
        mk_params_free(&p);
    }
    if (!rc) {
        for (size_t j = 0; j < p0.total; j++) p0.data[j] = (float)(sum[j] / div);
        mk_config_init(&cfg, cfg0.task);
        for (int k = 0; k < cfg0.n; k++)
            if (!drop[k]) mk_config_set(&cfg, cfg0.key[k], "%s", cfg0.val[k]);
        mk_config_set_int(&cfg, "averaged_models", n);
        if (wopt && strlen(wopt) < MK_CKPT_VAL) mk_config_set(&cfg, "average_weights", "%s", wopt);
        p0.step = 0;
        if (mk_ckpt_save(out, &cfg, &p0, 0)) {
            rc = cli_fail();
        } else {
            int nd = 0;
            for (int k = 0; k < cfg0.n; k++) nd += drop[k];
            printf("%s: %s of %d %s models (%zu weights)", out, wopt ? "weighted average" : "average", n, cfg0.task,
                   p0.total);
            if (nd) {
                printf("; dropped the training record that differs:");
                for (int k = 0; k < cfg0.n; k++)
                    if (drop[k]) printf(" %s", cfg0.key[k]);
            }
            printf("\n");
        }
    }
    free(sum);
    mk_params_free(&p0);
    return rc;
}
