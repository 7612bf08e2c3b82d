/* cmd_copy.c — selective copying task (filled in below). */
#include <stdio.h>
#include "apps/cli.h"
int cmd_train_copy(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "mambakit: train copy: not built yet\n"); return 1; }
