/* cmd_vision.c — placeholder until this front end lands. */
#include <stdio.h>
#include "apps/cli.h"
int cmd_classify(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "mambakit: classify: not built yet\n");
    return 1;
}
int cmd_train_vision(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "mambakit: train_vision: not built yet\n");
    return 1;
}
int cmd_eval_vision(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "mambakit: eval_vision: not built yet\n");
    return 1;
}
int cmd_bench_vision(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "mambakit: bench_vision: not built yet\n");
    return 1;
}
