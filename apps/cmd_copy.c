/* cmd_copy.c — `mambakit train copy`: the selective-copying task, selective
 * Mamba beside the same model with selection turned off. */
#include <stdio.h>
#include <string.h>

#include "apps/cli.h"
#include "datasets/selcopy.h"

int cmd_train_copy(int argc, char **argv) {
    selcopy_opts o;
    selcopy_defaults(&o);
    o.verbose = 1;
    int json = 0, compare = 1;
    const char *save = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x;
        double f;
        if (cli_is_help(a)) {
            printf("usage: mambakit train copy [options]\n"
                   "  Trains a small Mamba on the selective-copying task (Gu & Dao 2023) and, beside it,\n"
                   "  the same model with the selection mechanism off (LTI), and prints both accuracies.\n"
                   "  --steps N        training steps (default %d)\n"
                   "  --batch N        sequences per step (default %d)\n"
                   "  --lr X           peak learning rate (default %g)\n"
                   "  --d-model N      model width (default %d)\n"
                   "  --layers N       Mamba layers (default %d)\n"
                   "  --body N         sequence body length (default %d)\n"
                   "  --tokens N       tokens to copy (default %d)\n"
                   "  --vocab N        data vocabulary size (default %d)\n"
                   "  --seed N         random seed (default %llu)\n"
                   "  --selective-only skip the LTI comparison\n"
                   "  -o FILE          save the selective model\n"
                   "  --json           print results as JSON\n",
                   o.steps, o.batch, o.lr, o.d_model, o.n_layer, o.body_len, o.n_data, o.vocab, o.seed);
            return 0;
        }
#define INTOPT(name, field, lo, hi)                               \
    else if (!strcmp(a, name)) {                                  \
        if (cli_int(name, v, lo, hi, &x)) return 2;               \
        o.field = (int)x;                                         \
        i++;                                                      \
    }
        INTOPT("--steps", steps, 1, 10000000)
        INTOPT("--batch", batch, 1, 4096)
        INTOPT("--d-model", d_model, 4, 4096)
        INTOPT("--layers", n_layer, 1, 64)
        INTOPT("--body", body_len, 2, 100000)
        INTOPT("--tokens", n_data, 1, 1000)
        INTOPT("--vocab", vocab, 2, 10000)
        else if (!strcmp(a, "--seed")) {
            if (cli_int(a, v, 0, 1L << 62, &x)) return 2;
            o.seed = (unsigned long long)x;
            i++;
        }
        else if (!strcmp(a, "--lr")) {
            if (cli_float(a, v, 1e-7, 1.0, &f)) return 2;
            o.lr = (float)f;
            i++;
        }
        else if (!strcmp(a, "-o")) {
            if (!v) return fprintf(stderr, "mambakit: -o needs a file\n"), 2;
            save = v;
            i++;
        }
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--selective-only")) compare = 0;
        else {
            fprintf(stderr, "mambakit: train copy: unknown option '%s'\n", a);
            return 2;
        }
#undef INTOPT
    }
    if (o.n_data > o.body_len) {
        fprintf(stderr, "mambakit: train copy: --tokens %d exceeds --body %d\n", o.n_data, o.body_len);
        return 2;
    }
    selcopy_result rs, rl = {0};
    if (selcopy_run(&o, &rs, save)) return cli_fail();
    if (compare) {
        selcopy_opts ol = o;
        ol.selective = 0;
        if (selcopy_run(&ol, &rl, NULL)) return cli_fail();
    }
    if (json) {
        printf("{\"selective\":{\"accuracy\":%.4f,\"loss\":%.4f,\"params\":%ld,\"seconds\":%.2f}", rs.accuracy,
               rs.final_loss, rs.params, rs.seconds);
        if (compare)
            printf(",\"lti\":{\"accuracy\":%.4f,\"loss\":%.4f,\"params\":%ld,\"seconds\":%.2f}", rl.accuracy,
                   rl.final_loss, rl.params, rl.seconds);
        printf("}\n");
    } else {
        printf("selective copying: %d tokens among %d, vocab %d, %d steps x %d sequences\n", o.n_data, o.body_len,
               o.vocab, o.steps, o.batch);
        printf("  %-22s token accuracy %5.1f%%  loss %.3f  params %ld  %.1fs\n", "Mamba (selective)",
               100 * rs.accuracy, rs.final_loss, rs.params, rs.seconds);
        if (compare)
            printf("  %-22s token accuracy %5.1f%%  loss %.3f  params %ld  %.1fs\n", "same, selection off",
                   100 * rl.accuracy, rl.final_loss, rl.params, rl.seconds);
    }
    return 0;
}
