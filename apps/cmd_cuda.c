/* cmd_cuda.c — placeholder until this front end lands. */
#include <stdio.h>
#include "apps/cli.h"
int cmd_bench_cuda(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "mambakit: bench_cuda: not built yet\n");
    return 1;
}
