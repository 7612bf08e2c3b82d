/* util.h — small things every part of mambakit needs: errors, allocation,
 * a seeded RNG, timing, progress lines, atomic file writes and the data
 * search path. No domain knowledge lives here.
 *
 * Errors: library code never calls exit(). A function that can fail on bad
 * input returns non-zero (or NULL) after calling mk_error("file: what"), and
 * the caller (eventually main) prints mk_last_error(). Broken invariants use
 * MK_ASSERT, which aborts with file:line: those are bugs, not bad input. */
#ifndef MK_UTIL_H
#define MK_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MK_ASSERT(c)                                                              \
    do {                                                                          \
        if (!(c)) {                                                               \
            fprintf(stderr, "mambakit: internal error at %s:%d: %s\n", __FILE__, \
                    __LINE__, #c);                                                \
            abort();                                                              \
        }                                                                         \
    } while (0)

#if defined(__GNUC__)
#define MK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define MK_PRINTF(a, b)
#endif

/* Record a one-line error message (printf-style); mk_last_error() returns it. */
void mk_error(const char *fmt, ...) MK_PRINTF(1, 2);
const char *mk_last_error(void);
/* Print "mambakit: warning: ..." to stderr unless mk_quiet is set. */
void mk_warn(const char *fmt, ...) MK_PRINTF(1, 2);
extern int mk_quiet;

/* Checked allocation: aborts on out-of-memory (sizes must already be
 * validated against limits by the caller; this only guards the impossible). */
void *mk_malloc(size_t n);
void *mk_calloc(size_t count, size_t size);
void *mk_realloc(void *p, size_t n);
/* Overflow-safe a*b; returns 0 and leaves *out untouched on overflow. */
int mk_mul_ok(size_t a, size_t b, size_t *out);

/* ---- random numbers: xoshiro128+ style, one state per stream, deterministic ---- */
typedef struct { uint64_t s[2]; } mk_rng;
void mk_rng_seed(mk_rng *r, uint64_t seed);
uint32_t mk_rng_u32(mk_rng *r);
float mk_rng_uniform(mk_rng *r);               /* [0, 1) */
float mk_rng_normal(mk_rng *r);                /* N(0, 1) */
int mk_rng_int(mk_rng *r, int n);              /* [0, n) */
void mk_rng_shuffle(mk_rng *r, int *a, int n); /* Fisher–Yates */

/* ---- time ---- */
double mk_time(void); /* seconds, monotonic */

/* ---- progress line on stderr: "label  step/total  loss  rate  ETA" ----
 * Redraws in place on a terminal, prints every ~10 s otherwise. The rate (and
 * the ETA from it) is the run's average for its first 30 s, then a moving
 * average over about the last minute, so it follows a machine whose load changes. */
typedef struct {
    const char *label;
    long total;
    double t0, last_print;
    int tty;
    long last_done;
    double rate;
} mk_progress;
void mk_progress_start(mk_progress *p, const char *label, long total);
/* extra: free-form text after the standard fields, e.g. "acc 91.2%". */
void mk_progress_update(mk_progress *p, long done, const char *unit, const char *extra);
void mk_progress_end(mk_progress *p);

/* ---- files ---- */
/* Atomic write: open "<path>.tmp.<pid>", caller writes, then mk_file_commit
 * renames it into place (or mk_file_abort removes it). */
typedef struct {
    FILE *f;
    char tmp[4096];
    char path[4096];
} mk_atomic_file;
int mk_atomic_open(mk_atomic_file *a, const char *path, const char *mode);
int mk_atomic_commit(mk_atomic_file *a); /* fclose + rename; 0 on success */
void mk_atomic_abort(mk_atomic_file *a);
/* Whole file into memory (NUL-terminated); refuses files above max_bytes. */
char *mk_read_file(const char *path, size_t max_bytes, size_t *len);
/* 1 if the two paths name the same existing file (same device and inode). */
int mk_same_file(const char *a, const char *b);

/* ---- data search path ----
 * Finds `rel` (e.g. "ETT/ETTh1.csv") under, in order: an explicit dir
 * (--data-dir), $MAMBAKIT_DATA, ../shared/data, ../../shared/data (relative
 * to cwd and to the binary), /usr/share/datasets. Writes the full path into
 * out and returns 1 if found; on failure out holds the list of places tried. */
int mk_find_data(const char *explicit_dir, const char *rel, char *out, size_t outlen);
/* Path of a shipped model under models/ (cwd, then next to the binary, then
 * $MAMBAKIT_MODELS). Same return convention as mk_find_data. */
int mk_find_model(const char *name, char *out, size_t outlen);
void mk_set_argv0(const char *argv0);

/* Number of OpenMP threads in use (1 without OpenMP). */
int mk_num_threads(void);

#endif
