/* cmd_info.c — `mambakit info MODEL`: what a model file holds. */
#include <stdio.h>
#include <string.h>

#include "apps/cli.h"
#include "core/ckpt.h"

int cmd_info(int argc, char **argv) {
    if (argc < 2 || cli_is_help(argv[1])) {
        printf("usage: mambakit info MODEL\n  prints the task, configuration fields and file size of a model file\n");
        return argc < 2 ? 2 : 0;
    }
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        mk_config c;
        if (mk_ckpt_read_config(argv[i], NULL, &c)) {
            rc = cli_fail();
            continue;
        }
        printf("%s: task %s\n", argv[i], c.task);
        for (int k = 0; k < c.n; k++) printf("  %-24s %s\n", c.key[k], c.val[k]);
    }
    return rc;
}
