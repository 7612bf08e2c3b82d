/* cli.h — the subcommands of the mambakit binary, one function each.
 * Each takes (argc, argv) with argv[0] = the subcommand name, prints its own
 * --help (exit 0), returns 0 on success, 1 on bad input / failure (after a
 * one-line "mambakit: ..." error on stderr), 2 on bad usage. */
#ifndef MK_CLI_H
#define MK_CLI_H

#include <stddef.h>
#include <stdio.h>

#define MK_VERSION "0.1.0"

int cmd_classify(int argc, char **argv);   /* apps/cmd_vision.c */
int cmd_enhance(int argc, char **argv);    /* apps/cmd_audio.c */
int cmd_forecast(int argc, char **argv);   /* apps/cmd_forecast.c */
int cmd_mil(int argc, char **argv);        /* apps/cmd_mil.c */
int cmd_points(int argc, char **argv);     /* apps/cmd_points.c */
int cmd_train(int argc, char **argv);      /* apps/cmd_train.c: dispatches to the cmd_train_* below */
int cmd_eval(int argc, char **argv);       /* apps/cmd_train.c: dispatches to the cmd_eval_* below */
int cmd_bench(int argc, char **argv);      /* apps/cmd_bench.c */
int cmd_info(int argc, char **argv);       /* apps/cmd_info.c */
int cmd_average(int argc, char **argv);    /* apps/cmd_average.c */

int cmd_train_vision(int argc, char **argv);   /* apps/cmd_vision.c */
int cmd_eval_vision(int argc, char **argv);    /* apps/cmd_vision.c */
int cmd_train_enhance(int argc, char **argv);  /* apps/cmd_audio.c */
int cmd_eval_enhance(int argc, char **argv);   /* apps/cmd_audio.c */
int cmd_train_forecast(int argc, char **argv); /* apps/cmd_forecast.c */
int cmd_train_copy(int argc, char **argv);     /* apps/cmd_copy.c: selective-copying task */
int cmd_bench_vision(int argc, char **argv);   /* apps/cmd_vision.c   (make bench-vision) */
int cmd_bench_audio(int argc, char **argv);    /* apps/cmd_audio.c    (make bench-audio) */
int cmd_bench_ts(int argc, char **argv);       /* apps/cmd_forecast.c (make bench-ts) */
int cmd_bench_mil(int argc, char **argv);      /* apps/cmd_mil.c      (make bench-mil) */
int cmd_bench_cuda(int argc, char **argv);     /* apps/cmd_cuda.c     (make bench-cuda) */

/* Shared option helpers: "--name value" parsing with clear errors. */
int cli_is_help(const char *a);
/* Parse an int/float option value; on error print a one-line message naming
 * the option and return -1. */
int cli_int(const char *opt, const char *val, long lo, long hi, long *out);
int cli_float(const char *opt, const char *val, double lo, double hi, double *out);
/* Print "mambakit: <msg>" from mk_last_error() and return 1. */
int cli_fail(void);
/* s as a JSON string, quotes included: " and \ escaped, control bytes as \u00XX. */
void cli_json_str(FILE *f, const char *s);
/* The trainers checkpoint to OUT.ckpt, so a run resumed from CKPT with no output
 * named writes CKPT without ".ckpt" (never the shipped default model, which a
 * resumed fine-tune of it would overwrite): that path in buf, or NULL when CKPT
 * does not end in ".ckpt" (or buf is too small), where the trainers ask for the
 * output to be named. */
const char *cli_out_from_ckpt(const char *ckpt, char *buf, size_t n);
/* The output of `CMD --resume RESUME` run with no output option OPT: the path
 * above, announced on stderr as where WHAT goes; NULL after a one-line error
 * asking for OPT (the caller exits 2) where it cannot be derived. */
const char *cli_resume_out(const char *cmd, const char *opt, const char *what, const char *resume, char *buf,
                           size_t n);

#endif
