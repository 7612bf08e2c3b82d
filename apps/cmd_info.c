/* cmd_info.c — `mambakit info MODEL`: what a model file holds. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "apps/cli.h"
#include "core/ckpt.h"
#include "core/params.h"

static void info_help(void) {
    printf("usage: mambakit info [options] MODEL...\n"
           "  prints each model file's task, size, parameter count and configuration fields\n"
           "  (architecture, training options and the figures recorded when it was saved)\n"
           "  --tensors   also list every tensor: name and shape\n"
           "  --json      one JSON object per file: {\"file\", \"task\", \"bytes\", \"parameters\",\n"
           "              \"tensors\", \"config\": {key: value as written}[, \"tensor_list\": [{\"name\",\n"
           "              \"shape\"}]]}\n"
           "exit status: 0, 1 if a file could not be read (one line each), 2 bad usage\n");
}

static void shape_str(const mk_tensor *t, char *buf, size_t n) {
    size_t o = 0;
    buf[0] = 0;
    for (int d = 0; d < t->ndim && o < n; d++) o += snprintf(buf + o, n - o, "%s%d", d ? "x" : "", t->shape[d]);
}

int cmd_info(int argc, char **argv) {
    int json = 0, tensors = 0, nfiles = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            info_help();
            return 0;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--tensors")) {
            tensors = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "mambakit: info: unknown option '%s' (see mambakit info --help)\n", argv[i]);
            return 2;
        } else {
            nfiles++;
        }
    }
    if (!nfiles) {
        info_help();
        return 2;
    }
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1]) continue;
        mk_config c;
        mk_params p;
        mk_params_init(&p);
        /* the table is read (and checked against the file's size) as a loader would */
        if (mk_ckpt_load_table(argv[i], NULL, &c, &p)) {
            mk_params_free(&p);
            rc = cli_fail();
            continue;
        }
        struct stat st;
        long long bytes = stat(argv[i], &st) == 0 ? (long long)st.st_size : -1;
        if (json) {
            printf("{\"file\": ");
            cli_json_str(stdout, argv[i]);
            printf(", \"task\": ");
            cli_json_str(stdout, c.task);
            printf(", \"bytes\": %lld, \"parameters\": %zu, \"tensors\": %d, \"config\": {", bytes, p.total, p.n);
            for (int k = 0; k < c.n; k++) {
                printf("%s", k ? ", " : "");
                cli_json_str(stdout, c.key[k]);
                printf(": ");
                cli_json_str(stdout, c.val[k]);
            }
            printf("}");
            if (tensors) {
                printf(", \"tensor_list\": [");
                for (int k = 0; k < p.n; k++) {
                    printf("%s{\"name\": ", k ? ", " : "");
                    cli_json_str(stdout, p.t[k].name);
                    printf(", \"shape\": [");
                    for (int d = 0; d < p.t[k].ndim; d++) printf("%s%d", d ? ", " : "", p.t[k].shape[d]);
                    printf("]}");
                }
                printf("]");
            }
            printf("}\n");
        } else {
            printf("%s: task %s, %lld bytes, %zu parameters in %d tensors\n", argv[i], c.task, bytes, p.total, p.n);
            for (int k = 0; k < c.n; k++) printf("  %-24s %s\n", c.key[k], c.val[k]);
            if (tensors) {
                printf("  tensors:\n");
                for (int k = 0; k < p.n; k++) {
                    char sh[64];
                    shape_str(&p.t[k], sh, sizeof sh);
                    printf("    %-40s %-16s %zu\n", p.t[k].name, sh, p.t[k].numel);
                }
            }
        }
        mk_params_free(&p);
    }
    return rc;
}
