/* cmd_train.c — `mambakit train TASK` and `mambakit eval TASK` dispatch. */
#include <stdio.h>
#include <string.h>

#include "apps/cli.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} sub;

static int dispatch(const char *verb, const sub *s, int n, int argc, char **argv) {
    if (argc < 2 || cli_is_help(argv[1])) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: mambakit %s TASK [options]   (mambakit %s TASK --help)\n\ntasks:\n", verb, verb);
        for (int i = 0; i < n; i++) fprintf(f, "  %-9s %s\n", s[i].name, s[i].help);
        return argc < 2 ? 2 : 0;
    }
    for (int i = 0; i < n; i++)
        if (!strcmp(argv[1], s[i].name)) return s[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "mambakit: %s: unknown task '%s'\n", verb, argv[1]);
    return 2;
}

int cmd_train(int argc, char **argv) {
    static const sub s[] = {
        {"vision", cmd_train_vision, "image classifier on Fashion-MNIST"},
        {"enhance", cmd_train_enhance, "speech enhancement (denoising) model"},
        {"forecast", cmd_train_forecast, "S-Mamba forecaster on a CSV series"},
        {"copy", cmd_train_copy, "the Mamba paper's selective-copying task (a check that the core learns)"},
    };
    return dispatch("train", s, (int)(sizeof s / sizeof s[0]), argc, argv);
}

int cmd_eval(int argc, char **argv) {
    static const sub s[] = {
        {"vision", cmd_eval_vision, "test accuracy and confusion matrix"},
        {"enhance", cmd_eval_enhance, "SI-SDR / STOI on the held-out speech test split"},
    };
    return dispatch("eval", s, (int)(sizeof s / sizeof s[0]), argc, argv);
}
