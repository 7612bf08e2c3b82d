/* cmd_mil.c — placeholder until this front end lands. */
#include <stdio.h>
#include "apps/cli.h"
int cmd_mil(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "mambakit: mil: not built yet\n");
    return 1;
}
int cmd_bench_mil(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "mambakit: bench_mil: not built yet\n");
    return 1;
}
