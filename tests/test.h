/* test.h — the tiny harness every test binary uses.
 * Each check prints one line: "PASS name detail" or "FAIL name detail".
 * main() returns test_exit(): non-zero if anything failed. */
#ifndef MK_TEST_H
#define MK_TEST_H
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>

#include "core/util.h"

static int test_failures_ = 0;

/* MK_TEST_TAG prefixes every check's name: "rel." for the copies of test_scan and test_ops built
 * against the release library (Makefile), whose SIMD clones the sanitizer builds leave out */
#ifndef MK_TEST_TAG
#define MK_TEST_TAG ""
#endif

/* Report one named check with a printf-style detail. Returns ok. */
static inline int test_report(int ok, const char *name, const char *fmt, ...) {
    va_list ap;
    printf("%s %s%s", ok ? "PASS" : "FAIL", MK_TEST_TAG, name);
    if (fmt && *fmt) {
        printf("  ");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
    }
    printf("\n");
    fflush(stdout);
    if (!ok) test_failures_++;
    return ok;
}
static inline void test_skip(const char *name, const char *why) {
    printf("SKIP %s%s: skipped: %s\n", MK_TEST_TAG, name, why);
    fflush(stdout);
}
/* Find REL on the data search path into path; if it is absent, report the
 * check as skipped ("no data at ...") and return 0. */
static inline int test_find_data(const char *name, const char *rel, char *path, size_t len) {
    if (mk_find_data(NULL, rel, path, len)) return 1;
    char why[4200];
    snprintf(why, sizeof why, "no data at %s", path);
    test_skip(name, why);
    return 0;
}
static inline int test_exit(void) { return test_failures_ ? 1 : 0; }

/* max |a-b| / max(max|b|, floor): normalised error between two float arrays. */
static inline double test_rel_err(const float *a, const double *ref, size_t n, double floor_) {
    double md = 0, mr = floor_;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (d > md || d != d) md = d != d ? INFINITY : d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return md / mr;
}
static inline double test_rel_err_f(const float *a, const float *b, size_t n, double floor_) {
    double md = 0, mr = floor_;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > md || d != d) md = d != d ? INFINITY : d;
        if (fabs((double)b[i]) > mr) mr = fabs((double)b[i]);
    }
    return md / mr;
}
#endif
