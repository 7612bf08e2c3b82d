/* csv.c — reading a time-series CSV into a ts_table: delimiter detection,
 * RFC 4180 quoting, time column detection, NA interpolation, and errors that
 * name the line. Also dates (civil calendar <-> days) and time spacing. */
#include "ts.h"

#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"

#define TS_MAX_FILE (1u << 30) /* 1 GiB of CSV text */
#define TS_MAX_COLS 100000

/* ---------------------------------------------------------------- dates */

/* ref: H. Hinnant, "chrono-Compatible Low-Level Date Algorithms" (days_from_civil). */
long ts_days_from_civil(int y, int m, int d) {
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long)doe - 719468;
}

void ts_civil_from_days(long z, int *y, int *m, int *d) {
    z += 719468;
    long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long yy = (long)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

static int read_uint(const char **p, int min_digits, int max_digits, int *out) {
    int n = 0, v = 0;
    while (isdigit((unsigned char)**p) && n < max_digits) v = v * 10 + (*(*p)++ - '0'), n++;
    if (n < min_digits || isdigit((unsigned char)**p)) return 0;
    *out = v;
    return 1;
}

static int days_in_month(int y, int m) {
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 ? 28 + leap : dm[m - 1];
}

int ts_parse_datetime(const char *s, double *out, ts_time_style *st) {
    const char *p = s;
    int y, mo, d = 1, hh = 0, mm = 0, ss = 0;
    ts_time_style l = {'-', 3, 0, 0, ' '};
    if (!read_uint(&p, 4, 4, &y)) return 0;
    if (*p != '-' && *p != '/') return 0;
    l.date_sep = *p++;
    if (!read_uint(&p, 1, 2, &mo) || mo < 1 || mo > 12) return 0;
    if (*p == l.date_sep) {
        p++;
        if (!read_uint(&p, 1, 2, &d) || d < 1 || d > days_in_month(y, mo)) return 0;
    } else {
        l.date_parts = 2;
    }
    double frac = 0;
    if (l.date_parts == 3 && (*p == ' ' || *p == 'T')) {
        l.t_sep = *p++;
        if (!read_uint(&p, 1, 2, &hh) || hh > 23 || *p++ != ':') return 0;
        if (!read_uint(&p, 2, 2, &mm) || mm > 59) return 0;
        l.has_clock = 1;
        if (*p == ':') {
            p++;
            if (!read_uint(&p, 2, 2, &ss) || ss > 60) return 0;
            l.has_seconds = 1;
            if (*p == '.') {
                double scale = 0.1;
                p++;
                while (isdigit((unsigned char)*p)) frac += (*p++ - '0') * scale, scale *= 0.1;
            }
        }
        if (*p == 'Z') p++;
    }
    if (*p) return 0;
    *out = (double)ts_days_from_civil(y, mo, d) * 86400.0 + hh * 3600.0 + mm * 60.0 + ss + frac;
    if (st) *st = l;
    return 1;
}

/* ------------------------------------------------------------- spacing */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median_diff(const double *t, int n) {
    if (n < 2) return 1;
    double *d = mk_malloc(sizeof(double) * (n - 1));
    for (int i = 0; i + 1 < n; i++) d[i] = t[i + 1] - t[i];
    qsort(d, n - 1, sizeof(double), cmp_double);
    double m = d[(n - 1) / 2];
    free(d);
    return m;
}

void ts_detect_spacing(const ts_table *t, ts_spacing *s) {
    memset(s, 0, sizeof *s);
    s->kind = TS_STEP_SECONDS;
    s->freq = '?';
    s->seconds = 1;
    if (t->time_kind == TS_TIME_NONE || t->n_rows < 2) return;
    double md = median_diff(t->t, t->n_rows);
    s->seconds = md > 0 ? md : 1;
    if (t->time_kind == TS_TIME_INDEX) return;
    const double day = 86400;
    if (md >= 28 * day && md <= 31 * day) s->kind = TS_STEP_MONTHS, s->months = 1;
    else if (md >= 89 * day && md <= 92 * day) s->kind = TS_STEP_MONTHS, s->months = 3;
    else if (md >= 365 * day && md <= 366 * day) s->kind = TS_STEP_MONTHS, s->months = 12;
    if (s->kind == TS_STEP_MONTHS) {
        s->freq = s->months == 12 ? 'y' : 'm';
        s->season = s->months == 1 ? 12 : s->months == 3 ? 4 : 0;
        return;
    }
    if (md < 3600) {
        s->freq = 't';
        double per = day / md;
        s->season = fabs(per - floor(per + 0.5)) < 1e-6 ? (int)floor(per + 0.5) : 0;
    } else if (md < day) {
        s->freq = 'h';
        double per = day / md;
        s->season = fabs(per - floor(per + 0.5)) < 1e-6 ? (int)floor(per + 0.5) : 0;
    } else if (md < 7 * day) {
        s->freq = 'd';
        s->season = md == day ? 7 : 0;
    } else {
        s->freq = 'w';
        s->season = md == 7 * day ? 52 : 0;
    }
}

double ts_advance(const ts_spacing *s, double t_last, int k) {
    if (s->kind == TS_STEP_SECONDS) return t_last + s->seconds * k;
    long days = (long)floor(t_last / 86400.0);
    double tod = t_last - days * 86400.0;
    int y, m, d;
    ts_civil_from_days(days, &y, &m, &d);
    long mi = (long)y * 12 + (m - 1) + (long)s->months * k;
    y = (int)(mi / 12);
    m = (int)(mi % 12) + 1;
    int dim = days_in_month(y, m);
    if (d > dim) d = dim;
    return ts_days_from_civil(y, m, d) * 86400.0 + tod;
}

void ts_format_time(const ts_table *t, double v, char *buf, size_t n) {
    if (t->time_kind == TS_TIME_INDEX) {
        snprintf(buf, n, "%.15g", v);
        return;
    }
    long days = (long)floor(v / 86400.0);
    double sec = v - days * 86400.0;
    int y, m, d;
    ts_civil_from_days(days, &y, &m, &d);
    int is = (int)floor(sec + 0.5);
    int hh = is / 3600, mm = (is / 60) % 60, ss = is % 60;
    char sep = t->date_sep ? t->date_sep : '-';
    if (t->date_parts == 2) {
        snprintf(buf, n, "%04d%c%02d", y, sep, m);
    } else if (!t->has_clock) {
        snprintf(buf, n, "%04d%c%02d%c%02d", y, sep, m, sep, d);
    } else if (!t->has_seconds) {
        snprintf(buf, n, "%04d%c%02d%c%02d%c%02d:%02d", y, sep, m, sep, d, t->t_sep ? t->t_sep : ' ', hh, mm);
    } else {
        snprintf(buf, n, "%04d%c%02d%c%02d%c%02d:%02d:%02d", y, sep, m, sep, d, t->t_sep ? t->t_sep : ' ', hh, mm,
                 ss);
    }
}

/* ----------------------------------------------------------- features */

int ts_time_nfeat(char freq) {
    switch (freq) {
    case 't': return 5;
    case 'h': return 4;
    case 'd': return 3;
    case 'w': return 2;
    case 'm': return 1;
    default: return 0;
    }
}

/* ref: Autoformer utils/timefeatures.py ("timeF"): each feature scaled to [-0.5, 0.5]. */
void ts_time_features(float *out, double t, char freq) {
    long days = (long)floor(t / 86400.0);
    int sec = (int)floor(t - days * 86400.0);
    int y, m, d;
    ts_civil_from_days(days, &y, &m, &d);
    float minute = (float)((sec / 60) % 60) / 59.f - 0.5f;
    float hour = (float)(sec / 3600) / 23.f - 0.5f;
    float dow = (float)(((days + 3) % 7 + 7) % 7) / 6.f - 0.5f; /* Monday = 0 */
    float dom = (float)(d - 1) / 30.f - 0.5f;
    int doy0 = (int)(days - ts_days_from_civil(y, 1, 1));
    float doy = (float)doy0 / 365.f - 0.5f;
    float moy = (float)(m - 1) / 11.f - 0.5f;
    float woy = (float)(doy0 / 7) / 52.f - 0.5f;
    switch (freq) {
    case 't': out[0] = minute, out[1] = hour, out[2] = dow, out[3] = dom, out[4] = doy; break;
    case 'h': out[0] = hour, out[1] = dow, out[2] = dom, out[3] = doy; break;
    case 'd': out[0] = dow, out[1] = dom, out[2] = doy; break;
    case 'w': out[0] = dom, out[1] = woy; break;
    case 'm': out[0] = moy; break;
    default: break;
    }
}

int ts_autocorr_period(const float *x, int n, int stride, int maxp) {
    if (n < 8 || maxp < 2) return 0;
    if (maxp > n / 2) maxp = n / 2;
    double mu = 0, var = 0;
    for (int i = 0; i < n; i++) mu += x[(size_t)i * stride];
    mu /= n;
    for (int i = 0; i < n; i++) var += (x[(size_t)i * stride] - mu) * (x[(size_t)i * stride] - mu);
    if (var <= 0) return 0;
    double *ac = mk_calloc(maxp + 2, sizeof(double));
    for (int k = 1; k <= maxp + 1 && k < n; k++) {
        double s = 0;
        for (int i = 0; i + k < n; i++) s += (x[(size_t)i * stride] - mu) * (x[(size_t)(i + k) * stride] - mu);
        ac[k] = s / var;
    }
    /* the first local maximum after the autocorrelation has dipped, if clearly positive */
    int best = 0;
    double bv = 0.2;
    int dipped = 0;
    for (int k = 2; k <= maxp; k++) {
        if (ac[k] < ac[1] * 0.9 || ac[k] < 0.5) dipped = 1;
        if (dipped && ac[k] > ac[k - 1] && ac[k] >= ac[k + 1] && ac[k] > bv) {
            best = k;
            bv = ac[k];
            break;
        }
    }
    free(ac);
    return best;
}

/* ------------------------------------------------------------ tokenizer */

typedef struct {
    char *buf;    /* unescaped fields, NUL-terminated */
    size_t *off;  /* field offsets into buf */
    size_t nf, capf;
    int *rec_start; /* first field index of each record */
    int *rec_n;     /* fields per record */
    int *rec_line;  /* 1-based line where the record starts */
    int nr, capr;
} csv_tok;

static void tok_free(csv_tok *t) {
    free(t->buf);
    free(t->off);
    free(t->rec_start);
    free(t->rec_n);
    free(t->rec_line);
}

static char detect_delim(const char *s, size_t len) {
    int cnt[3] = {0, 0, 0};
    const char cand[3] = {',', ';', '\t'};
    int inq = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '"') inq = !inq;
        else if (!inq && (c == '\n' || c == '\r')) break;
        else if (!inq)
            for (int k = 0; k < 3; k++)
                if (c == cand[k]) cnt[k]++;
    }
    int b = 0;
    for (int k = 1; k < 3; k++)
        if (cnt[k] > cnt[b]) b = k;
    return cand[b];
}

static int tokenize(csv_tok *t, const char *s, size_t len, char delim, const char *name) {
    memset(t, 0, sizeof *t);
    t->buf = mk_malloc(len + 1);
    size_t w = 0, i = 0;
    int line = 1;
    while (i < len) {
        int start_line = line;
        size_t first = t->nf;
        for (;;) {
            /* one field */
            if (t->nf == t->capf) {
                t->capf = t->capf ? 2 * t->capf : 1024;
                t->off = mk_realloc(t->off, sizeof(size_t) * t->capf);
            }
            t->off[t->nf++] = w;
            while (i < len && s[i] == ' ') i++;
            if (i < len && s[i] == '"') {
                int qline = line;
                i++;
                for (;;) {
                    if (i >= len) {
                        mk_error("%s: line %d: unterminated quoted field", name, qline);
                        return -1;
                    }
                    if (s[i] == '"') {
                        if (i + 1 < len && s[i + 1] == '"') t->buf[w++] = '"', i += 2;
                        else {
                            i++;
                            break;
                        }
                    } else {
                        if (s[i] == '\n') line++;
                        t->buf[w++] = s[i++];
                    }
                }
                while (i < len && s[i] != delim && s[i] != '\n' && s[i] != '\r') {
                    if (s[i] != ' ') {
                        mk_error("%s: line %d: text after a closing quote", name, line);
                        return -1;
                    }
                    i++;
                }
            } else {
                size_t f0 = w;
                while (i < len && s[i] != delim && s[i] != '\n' && s[i] != '\r') t->buf[w++] = s[i++];
                while (w > f0 && (t->buf[w - 1] == ' ' || t->buf[w - 1] == '\t')) w--;
            }
            t->buf[w++] = 0;
            if (i < len && s[i] == delim) {
                i++;
                continue;
            }
            if (i < len && s[i] == '\r') i++;
            if (i < len && s[i] == '\n') i++;
            line++;
            break;
        }
        int nfr = (int)(t->nf - first);
        if (nfr == 1 && t->buf[t->off[first]] == 0) { /* blank line */
            t->nf = first;
            continue;
        }
        if (t->nr == t->capr) {
            t->capr = t->capr ? 2 * t->capr : 1024;
            t->rec_start = mk_realloc(t->rec_start, sizeof(int) * t->capr);
            t->rec_n = mk_realloc(t->rec_n, sizeof(int) * t->capr);
            t->rec_line = mk_realloc(t->rec_line, sizeof(int) * t->capr);
        }
        if (t->nf > 0x7fffffff) {
            mk_error("%s: too many fields", name);
            return -1;
        }
        t->rec_start[t->nr] = (int)first;
        t->rec_n[t->nr] = nfr;
        t->rec_line[t->nr] = start_line;
        t->nr++;
    }
    return 0;
}

/* ------------------------------------------------------------- table */

static int is_na(const char *s) {
    static const char *na[] = {"", "na", "nan", "null", "n/a", "none", "-", "?", "#n/a", "nil"};
    for (size_t k = 0; k < sizeof na / sizeof *na; k++)
        if (!strcasecmp(s, na[k])) return 1;
    return 0;
}

/* 1: a number that fits a float; 0: not a number; -1: a number outside the
 * float range (or inf), which would otherwise turn into inf in the table. */
static int num_ok(double v) { return isfinite(v) && fabs(v) <= FLT_MAX ? 1 : -1; }
static int parse_num(const char *s, char delim, double *v) {
    char *end;
    *v = strtod(s, &end);
    if (end != s && *end == 0) return num_ok(*v);
    if (delim == ';' && strchr(s, ',') && !strchr(s, '.')) { /* decimal comma */
        char tmp[64];
        size_t n = strlen(s);
        if (n >= sizeof tmp) return 0;
        memcpy(tmp, s, n + 1);
        *strchr(tmp, ',') = '.';
        *v = strtod(tmp, &end);
        return end != tmp && *end == 0 ? num_ok(*v) : 0;
    }
    return 0;
}

void ts_table_free(ts_table *t) {
    if (t->names)
        for (int j = 0; j < t->n_cols; j++) free(t->names[j]);
    free(t->names);
    free(t->x);
    free(t->t);
    free(t->row_line);
    free(t->time_name);
    memset(t, 0, sizeof *t);
}

int ts_csv_parse(ts_table *tb, const char *text, size_t len, const char *name) {
    memset(tb, 0, sizeof *tb);
    if (len >= 3 && (unsigned char)text[0] == 0xEF && (unsigned char)text[1] == 0xBB &&
        (unsigned char)text[2] == 0xBF)
        text += 3, len -= 3;
    char delim = detect_delim(text, len);
    csv_tok tk;
    int *kind = NULL;       /* per source column: 0 skip, 1 numeric, 2 date, 3 index */
    double *vals = NULL;
    int rc = -1;
    if (tokenize(&tk, text, len, delim, name)) goto done;
    if (tk.nr == 0) {
        mk_error("%s: empty file (no header row)", name);
        goto done;
    }
    const int nc = tk.rec_n[0], nr = tk.nr - 1;
    if (nc > TS_MAX_COLS) {
        mk_error("%s: line 1: %d columns is too many (max %d)", name, nc, TS_MAX_COLS);
        goto done;
    }
    for (int r = 1; r < tk.nr; r++)
        if (tk.rec_n[r] != nc) {
            mk_error("%s: line %d: %d field%s, but the header has %d", name, tk.rec_line[r], tk.rec_n[r],
                     tk.rec_n[r] == 1 ? "" : "s", nc);
            goto done;
        }
    if (nr < 1) {
        mk_error("%s: line %d: no data rows after the header", name, tk.rec_line[0]);
        goto done;
    }
    size_t nv;
    if (!mk_mul_ok((size_t)nr, (size_t)nc, &nv) || nv > ((size_t)1 << 31)) {
        mk_error("%s: %d rows x %d columns is too large", name, nr, nc);
        goto done;
    }
#define CELL(r, j) (tk.buf + tk.off[tk.rec_start[(r) + 1] + (j)])
    kind = mk_calloc(nc, sizeof(int));
    vals = mk_malloc(sizeof(double) * nr);
    int time_col = -1;
    ts_time_style style0 = {'-', 3, 0, 0, ' '};
    /* a date column: every cell parses as a date */
    for (int j = 0; j < nc && time_col < 0; j++) {
        int ok = 1, any_clock = 0, any_sec = 0;
        ts_time_style st = style0;
        for (int r = 0; r < nr && ok; r++) {
            ts_time_style s1;
            if (!ts_parse_datetime(CELL(r, j), &vals[r], &s1)) ok = 0;
            else {
                if (r == 0) st = s1;
                any_clock |= s1.has_clock, any_sec |= s1.has_seconds;
            }
        }
        if (ok) {
            time_col = j;
            kind[j] = 2;
            st.has_clock = any_clock, st.has_seconds = any_sec;
            tb->date_sep = st.date_sep, tb->date_parts = st.date_parts, tb->has_clock = st.has_clock;
            tb->has_seconds = st.has_seconds, tb->t_sep = st.t_sep;
            tb->time_kind = TS_TIME_DATE;
            tb->t = mk_malloc(sizeof(double) * nr);
            memcpy(tb->t, vals, sizeof(double) * nr);
        }
    }
    /* numeric columns; NA cells counted */
    int n_num = 0;
    int *first_bad = mk_calloc(nc, sizeof(int));
    for (int j = 0; j < nc; j++) {
        if (kind[j]) continue;
        int ok = 1, n_ok = 0;
        for (int r = 0; r < nr && ok; r++) {
            const char *c = CELL(r, j);
            double v;
            if (is_na(c)) continue;
            int pn = parse_num(c, delim, &v);
            if (pn < 0) {
                mk_error("%s: line %d: value '%s' in column '%s' is outside the range of 32-bit floats", name,
                         tk.rec_line[r + 1], c, tk.buf + tk.off[j]);
                free(first_bad);
                goto done;
            }
            if (!pn) ok = 0, first_bad[j] = r + 1;
            else n_ok++;
        }
        if (ok && n_ok > 0) kind[j] = 1, n_num++;
    }
    /* a leading strictly increasing integer column with a constant step is an index */
    /* ... when its header names an index, or it counts 0.. or 1.. in steps of one */
    if (time_col < 0 && kind[0] == 1 && n_num > 1 && nr >= 2) {
        static const char *idx_names[] = {"", "index", "idx", "t", "time", "step", "id", "n", "no", "year", "period"};
        int named = 0;
        for (size_t q = 0; q < sizeof idx_names / sizeof *idx_names; q++)
            named |= !strcasecmp(tk.buf + tk.off[0], idx_names[q]);
        int ok = 1;
        double step = 0;
        for (int r = 0; r < nr && ok; r++) {
            const char *c = CELL(r, 0);
            char *end;
            long long v = strtoll(c, &end, 10);
            if (end == c || *end) ok = 0;
            else vals[r] = (double)v;
            if (ok && r == 1) step = vals[1] - vals[0];
            if (ok && r >= 1 && (vals[r] - vals[r - 1] != step || step <= 0)) ok = 0;
        }
        if (ok && !named && !(step == 1 && (vals[0] == 0 || vals[0] == 1))) ok = 0;
        if (ok) {
            time_col = 0;
            kind[0] = 3;
            n_num--;
            tb->time_kind = TS_TIME_INDEX;
            tb->t = mk_malloc(sizeof(double) * nr);
            memcpy(tb->t, vals, sizeof(double) * nr);
        }
    }
    for (int j = 0; j < nc; j++)
        if (kind[j] == 0) {
            tb->n_skipped++;
            if (first_bad[j])
                mk_warn("%s: column '%s' is not numeric (line %d: '%s'), skipped", name, tk.buf + tk.off[j],
                        tk.rec_line[first_bad[j]], CELL(first_bad[j] - 1, j));
            else
                mk_warn("%s: column '%s' has no values, skipped", name, tk.buf + tk.off[j]);
        }
    free(first_bad);
    if (n_num == 0) {
        mk_error("%s: line 1: no numeric column", name);
        goto done;
    }
    if (tb->t) {
        int first = 0;
        for (int r = 1; r < nr; r++)
            if (!(tb->t[r] > tb->t[r - 1])) {
                if (!tb->n_unordered++) first = r;
            }
        if (tb->n_unordered)
            mk_warn("%s: time does not increase at %d row%s (first at line %d: '%s'); spacing taken as the median",
                    name, tb->n_unordered, tb->n_unordered == 1 ? "" : "s", tk.rec_line[first + 1],
                    CELL(first, time_col));
    }
    if (time_col >= 0) {
        const char *h = tk.buf + tk.off[time_col];
        tb->time_name = strdup(h);
    }
    tb->delim = delim;
    tb->n_rows = nr;
    tb->n_cols = n_num;
    tb->x = mk_malloc(sizeof(float) * nv / nc * n_num);
    tb->names = mk_calloc(n_num, sizeof(char *));
    tb->row_line = mk_malloc(sizeof(int) * nr);
    for (int r = 0; r < nr; r++) tb->row_line[r] = tk.rec_line[r + 1];
    int k = 0;
    for (int j = 0; j < nc; j++) {
        if (kind[j] != 1) continue;
        tb->names[k] = strdup(tk.buf + tk.off[j]);
        /* values with NA -> NaN, then linear interpolation */
        int last = -1;
        for (int r = 0; r < nr; r++) {
            const char *c = CELL(r, j);
            double v;
            if (is_na(c) || parse_num(c, delim, &v) != 1) {
                tb->x[(size_t)r * n_num + k] = NAN;
                tb->n_filled++;
                continue;
            }
            float fv = (float)v;
            tb->x[(size_t)r * n_num + k] = fv;
            if (last < 0) {
                for (int q = 0; q < r; q++) tb->x[(size_t)q * n_num + k] = fv;
            } else if (last < r - 1) {
                float a = tb->x[(size_t)last * n_num + k];
                for (int q = last + 1; q < r; q++)
                    tb->x[(size_t)q * n_num + k] = a + (fv - a) * (float)(q - last) / (float)(r - last);
            }
            last = r;
        }
        for (int q = last + 1; q < nr; q++) tb->x[(size_t)q * n_num + k] = tb->x[(size_t)last * n_num + k];
        k++;
    }
    if (tb->n_filled)
        mk_warn("%s: %d missing value%s filled by linear interpolation", name, tb->n_filled,
                tb->n_filled == 1 ? "" : "s");
#undef CELL
    rc = 0;
done:
    if (rc) ts_table_free(tb);
    free(kind);
    free(vals);
    tok_free(&tk);
    return rc;
}

int ts_csv_read(ts_table *t, const char *path) {
    size_t len;
    memset(t, 0, sizeof *t);
    char *s = mk_read_file(path, TS_MAX_FILE, &len);
    if (!s) return -1;
    int rc = ts_csv_parse(t, s, len, path);
    free(s);
    return rc;
}

int ts_table_select(ts_table *t, const char *const *names, int n, const char *file) {
    int *idx = mk_malloc(sizeof(int) * (n ? n : 1));
    for (int i = 0; i < n; i++) {
        idx[i] = -1;
        for (int j = 0; j < t->n_cols; j++)
            if (!strcmp(t->names[j], names[i])) idx[i] = j;
        if (idx[i] < 0) {
            mk_error("%s: no numeric column named '%s'", file, names[i]);
            free(idx);
            return -1;
        }
    }
    float *x = mk_malloc(sizeof(float) * (size_t)t->n_rows * n);
    for (int r = 0; r < t->n_rows; r++)
        for (int i = 0; i < n; i++) x[(size_t)r * n + i] = t->x[(size_t)r * t->n_cols + idx[i]];
    char **nm = mk_malloc(sizeof(char *) * n);
    for (int i = 0; i < n; i++) nm[i] = strdup(t->names[idx[i]]);
    for (int j = 0; j < t->n_cols; j++) free(t->names[j]);
    free(t->names);
    free(t->x);
    t->names = nm;
    t->x = x;
    t->n_cols = n;
    free(idx);
    return 0;
}
