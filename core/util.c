/* util.c — errors, allocation, RNG, timing, progress, files, data search path. */
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

int mk_quiet = 0;
static _Thread_local char err_buf[1024];

void mk_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
}
const char *mk_last_error(void) { return err_buf[0] ? err_buf : "unknown error"; }

void mk_warn(const char *fmt, ...) {
    if (mk_quiet) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("mambakit: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void *mk_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "mambakit: out of memory allocating %zu bytes\n", n);
        abort();
    }
    return p;
}
void *mk_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "mambakit: out of memory allocating %zu x %zu bytes\n", count, size);
        abort();
    }
    return p;
}
void *mk_realloc(void *q, size_t n) {
    void *p = realloc(q, n ? n : 1);
    if (!p) {
        fprintf(stderr, "mambakit: out of memory allocating %zu bytes\n", n);
        abort();
    }
    return p;
}
int mk_mul_ok(size_t a, size_t b, size_t *out) {
    if (a && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

/* ---- RNG: splitmix64 seeding, xorshift128+ stream ---- */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
void mk_rng_seed(mk_rng *r, uint64_t seed) {
    uint64_t x = seed;
    r->s[0] = splitmix64(&x);
    r->s[1] = splitmix64(&x);
    if (!r->s[0] && !r->s[1]) r->s[1] = 1;
}
static uint64_t rng_next(mk_rng *r) {
    uint64_t s1 = r->s[0];
    const uint64_t s0 = r->s[1];
    const uint64_t result = s0 + s1;
    r->s[0] = s0;
    s1 ^= s1 << 23;
    r->s[1] = s1 ^ s0 ^ (s1 >> 18) ^ (s0 >> 5);
    return result;
}
uint32_t mk_rng_u32(mk_rng *r) { return (uint32_t)(rng_next(r) >> 32); }
float mk_rng_uniform(mk_rng *r) { return (mk_rng_u32(r) >> 8) * (1.0f / 16777216.0f); }
float mk_rng_normal(mk_rng *r) {
    /* Box–Muller; u1 in (0,1] so log is finite */
    float u1 = 1.0f - mk_rng_uniform(r), u2 = mk_rng_uniform(r);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530718f * u2);
}
int mk_rng_int(mk_rng *r, int n) { return n <= 1 ? 0 : (int)((uint64_t)mk_rng_u32(r) * (uint64_t)n >> 32); }
void mk_rng_shuffle(mk_rng *r, int *a, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = mk_rng_int(r, i + 1);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

double mk_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- progress ---- */
void mk_progress_start(mk_progress *p, const char *label, long total) {
    p->label = label;
    p->total = total;
    p->t0 = mk_time();
    p->last_print = 0;
    p->tty = isatty(2);
    p->last_done = 0;
    p->rate = 0;
}
static void fmt_dur(char *b, size_t n, double s) {
    if (s < 0 || s != s || s > 1e7) snprintf(b, n, "--");
    else if (s < 60) snprintf(b, n, "%.0fs", s);
    else if (s < 3600) snprintf(b, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(b, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}
void mk_progress_update(mk_progress *p, long done, const char *unit, const char *extra) {
    if (mk_quiet) return;
    double now = mk_time(), el = now - p->t0;
    int last = p->total > 0 && done >= p->total;
    if (!last && now - p->last_print < (p->tty ? 0.2 : 10.0)) return;
    double dt = now - (p->last_print > 0 ? p->last_print : p->t0);
    if (el < 30 || p->rate <= 0) p->rate = el > 0 ? done / el : 0;
    else if (dt > 0) p->rate += (1.0 - exp(-dt / 60.0)) * ((done - p->last_done) / dt - p->rate);
    p->last_print = now;
    p->last_done = done;
    double rate = p->rate;
    char eta[32], elb[32];
    fmt_dur(eta, sizeof eta, rate > 0 && p->total > 0 ? (p->total - done) / rate : -1);
    fmt_dur(elb, sizeof elb, el);
    fprintf(stderr, "%s%s %ld/%ld (%3.0f%%)  %s  %.1f %s/s  elapsed %s  ETA %s%s", p->tty ? "\r\033[K" : "",
            p->label, done, p->total, p->total > 0 ? 100.0 * done / p->total : 0.0, extra ? extra : "",
            rate, unit ? unit : "it", elb, eta, p->tty ? "" : "\n");
    fflush(stderr);
}
void mk_progress_end(mk_progress *p) {
    if (mk_quiet) return;
    if (p->tty) fputc('\n', stderr);
}

/* ---- files ---- */
int mk_atomic_open(mk_atomic_file *a, const char *path, const char *mode) {
    memset(a, 0, sizeof *a);
    if (strlen(path) + 32 >= sizeof a->tmp) {
        mk_error("%s: path too long", path);
        return -1;
    }
    snprintf(a->path, sizeof a->path, "%s", path);
    snprintf(a->tmp, sizeof a->tmp, "%s.tmp.%ld", path, (long)getpid());
    a->f = fopen(a->tmp, mode);
    if (!a->f) {
        mk_error("%s: cannot write: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}
int mk_atomic_commit(mk_atomic_file *a) {
    int bad = ferror(a->f);
    if (fclose(a->f) != 0) bad = 1;
    a->f = NULL;
    if (bad) {
        unlink(a->tmp);
        mk_error("%s: write failed", a->path);
        return -1;
    }
    if (rename(a->tmp, a->path) != 0) {
        mk_error("%s: cannot rename temp file into place: %s", a->path, strerror(errno));
        unlink(a->tmp);
        return -1;
    }
    return 0;
}
void mk_atomic_abort(mk_atomic_file *a) {
    if (a->f) fclose(a->f);
    a->f = NULL;
    if (a->tmp[0]) unlink(a->tmp);
}

char *mk_read_file(const char *path, size_t max_bytes, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        mk_error("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        mk_error("%s: not a regular file", path);
        return NULL;
    }
    if ((size_t)st.st_size > max_bytes) {
        fclose(f);
        mk_error("%s: file too large (%lld bytes, limit %zu)", path, (long long)st.st_size, max_bytes);
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    char *buf = mk_malloc(n + 1);
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    if (got != n) {
        free(buf);
        mk_error("%s: read error", path);
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

int mk_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0) return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* ---- search paths ---- */
static char argv0_dir[PATH_MAX];
void mk_set_argv0(const char *argv0) {
    char buf[PATH_MAX];
    if (!argv0) return;
    if (realpath(argv0, buf)) {
        char *s = strrchr(buf, '/');
        if (s) *s = 0;
        snprintf(argv0_dir, sizeof argv0_dir, "%s", buf);
    }
}
static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}
static int try_dir(const char *dir, const char *rel, char *out, size_t outlen, char *tried, size_t tlen) {
    if (!dir || !*dir) return 0;
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    if (exists(p)) {
        snprintf(out, outlen, "%s", p);
        return 1;
    }
    size_t u = strlen(tried);
    if (u + strlen(p) + 3 < tlen) snprintf(tried + u, tlen - u, "%s%s", u ? ", " : "", p);
    return 0;
}
int mk_find_data(const char *explicit_dir, const char *rel, char *out, size_t outlen) {
    char tried[2048] = "";
    if (explicit_dir) {
        if (try_dir(explicit_dir, rel, out, outlen, tried, sizeof tried)) return 1;
        snprintf(out, outlen, "%s", tried);
        return 0;
    }
    const char *env = getenv("MAMBAKIT_DATA");
    if (try_dir(env, rel, out, outlen, tried, sizeof tried)) return 1;
    if (try_dir("../shared/data", rel, out, outlen, tried, sizeof tried)) return 1;
    if (try_dir("../../shared/data", rel, out, outlen, tried, sizeof tried)) return 1;
    if (argv0_dir[0]) {
        char d[PATH_MAX + 32];
        snprintf(d, sizeof d, "%s/../../shared/data", argv0_dir); /* build/mambakit */
        if (try_dir(d, rel, out, outlen, tried, sizeof tried)) return 1;
        snprintf(d, sizeof d, "%s/../../../shared/data", argv0_dir); /* build/san/mambakit */
        if (try_dir(d, rel, out, outlen, tried, sizeof tried)) return 1;
    }
    if (try_dir("/usr/share/datasets", rel, out, outlen, tried, sizeof tried)) return 1;
    snprintf(out, outlen, "%s", tried);
    return 0;
}
int mk_find_model(const char *name, char *out, size_t outlen) {
    char tried[2048] = "";
    if (try_dir(getenv("MAMBAKIT_MODELS"), name, out, outlen, tried, sizeof tried)) return 1;
    if (try_dir("models", name, out, outlen, tried, sizeof tried)) return 1;
    if (argv0_dir[0]) {
        char d[PATH_MAX + 32];
        snprintf(d, sizeof d, "%s/../models", argv0_dir);
        if (try_dir(d, name, out, outlen, tried, sizeof tried)) return 1;
        snprintf(d, sizeof d, "%s/../../models", argv0_dir);
        if (try_dir(d, name, out, outlen, tried, sizeof tried)) return 1;
    }
    snprintf(out, outlen, "%s", tried);
    return 0;
}

int mk_num_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
