/* cmd_audio.c — placeholder until this front end lands. */
#include <stdio.h>
#include "apps/cli.h"
int cmd_enhance(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "mambakit: enhance: not built yet\n");
    return 1;
}
int cmd_train_enhance(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "mambakit: train_enhance: not built yet\n");
    return 1;
}
int cmd_eval_enhance(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "mambakit: eval_enhance: not built yet\n");
    return 1;
}
int cmd_bench_audio(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "mambakit: bench_audio: not built yet\n");
    return 1;
}
