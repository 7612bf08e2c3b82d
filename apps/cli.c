/* cli.c — option parsing helpers shared by the subcommands. */
#include "apps/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

int cli_is_help(const char *a) { return !strcmp(a, "-h") || !strcmp(a, "--help"); }

int cli_int(const char *opt, const char *val, long lo, long hi, long *out) {
    char *end;
    if (!val) {
        fprintf(stderr, "mambakit: %s needs a value\n", opt);
        return -1;
    }
    errno = 0;
    long v = strtol(val, &end, 10);
    if (errno || end == val || *end || v < lo || v > hi) {
        fprintf(stderr, "mambakit: %s: '%s' is not an integer in [%ld, %ld]\n", opt, val, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_float(const char *opt, const char *val, double lo, double hi, double *out) {
    char *end;
    if (!val) {
        fprintf(stderr, "mambakit: %s needs a value\n", opt);
        return -1;
    }
    double v = strtod(val, &end);
    if (end == val || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "mambakit: %s: '%s' is not a number in [%g, %g]\n", opt, val, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_fail(void) {
    fprintf(stderr, "mambakit: %s\n", mk_last_error());
    return 1;
}

void cli_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

const char *cli_out_from_ckpt(const char *ckpt, char *buf, size_t n) {
    size_t len = ckpt ? strlen(ckpt) : 0;
    if (len <= 5 || strcmp(ckpt + len - 5, ".ckpt") || len - 5 >= n) return NULL;
    memcpy(buf, ckpt, len - 5);
    buf[len - 5] = 0;
    return buf;
}

const char *cli_resume_out(const char *cmd, const char *opt, const char *what, const char *resume, char *buf,
                           size_t n) {
    if (!cli_out_from_ckpt(resume, buf, n)) {
        fprintf(stderr, "mambakit: %s: --resume %s: name the model file with %s (the checkpoint's name does not end in .ckpt)\n",
                cmd, resume, opt);
        return NULL;
    }
    fprintf(stderr, "%s: resuming %s; the %s goes to %s (%s to change)\n", cmd, resume, what, buf, opt);
    return buf;
}
