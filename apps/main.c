/* main.c — the mambakit command: one binary, one subcommand per job. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apps/cli.h"
#include "core/ops.h"
#include "core/util.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} command;

static const command commands[] = {
    {"classify", cmd_classify, "classify images (PNG, JPEG, ...) with the vision model"},
    {"enhance", cmd_enhance, "denoise speech audio files (offline or --stream)"},
    {"forecast", cmd_forecast, "forecast the next H steps of a CSV time series"},
    {"mil", cmd_mil, "multiple-instance learning on bags (train / predict)"},
    {"points", cmd_points, "classify point clouds: classify | train | eval"},
    {"train", cmd_train, "train a model: vision | enhance | forecast | copy"},
    {"eval", cmd_eval, "evaluate a model on its test set: vision | enhance"},
    {"bench", cmd_bench, "benchmarks: scan | vision | audio | ts | mil | cuda"},
    {"info", cmd_info, "print a model file's task, config and tensors"},
    {"average", cmd_average, "average the weights of models of one architecture (SWA)"},
};
#define NCMD (int)(sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
    fprintf(f,
            "mambakit %s — selective state space models (Mamba) for vision, audio, time series,\n"
            "pathology and point clouds. Runs on the CPU; --device cuda where built with CUDA.\n\n"
            "usage: mambakit COMMAND [options]    (mambakit COMMAND --help for its options)\n\ncommands:\n",
            MK_VERSION);
    for (int i = 0; i < NCMD; i++) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f,
            "\nenvironment: MAMBAKIT_DATA (data search path), MAMBAKIT_MODELS (model search path),\n"
            "             OMP_NUM_THREADS (CPU threads)\n");
}

int main(int argc, char **argv) {
    /* OpenBLAS on a CPU newer than it knows runs its generic kernels (7x slower sgemm); only an
     * environment variable set before it loads changes that, hence one re-run of this same
     * program with it set (core/linear.c). If the re-run cannot start, go on as we are. */
    const char *core = blas_better_core();
    if (core && setenv("OPENBLAS_CORETYPE", core, 1) == 0) execv("/proc/self/exe", argv);
    mk_set_argv0(argv[0]);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("mambakit %s (OpenBLAS core %s)\n", MK_VERSION, blas_core_name());
        return 0;
    }
    blas_fit_threads();
    for (int i = 0; i < NCMD; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "mambakit: unknown command '%s' (see mambakit --help)\n", argv[1]);
    return 2;
}
