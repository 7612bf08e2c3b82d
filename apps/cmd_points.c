/* cmd_points.c — placeholder until this front end lands. */
#include <stdio.h>
#include "apps/cli.h"
int cmd_points(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "mambakit: points: not built yet\n");
    return 1;
}
