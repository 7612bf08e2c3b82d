/* cmd_forecast.c — placeholder until this front end lands. */
#include <stdio.h>
#include "apps/cli.h"
int cmd_forecast(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "mambakit: forecast: not built yet\n");
    return 1;
}
int cmd_train_forecast(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "mambakit: train_forecast: not built yet\n");
    return 1;
}
int cmd_bench_ts(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "mambakit: bench_ts: not built yet\n");
    return 1;
}
