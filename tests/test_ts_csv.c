/* test_ts_csv.c — the time-series CSV reader: delimiters, quotes, CRLF, dates,
 * NA interpolation, errors with line numbers; spacing and time features; the
 * real benchmark files when present. */
#include <math.h>
#include <string.h>

#include "core/util.h"
#include "tests/test.h"
#include "timeseries/ts.h"

static int parse(ts_table *t, const char *s) { return ts_csv_parse(t, s, strlen(s), "mem.csv"); }

static int near(float a, double b) { return fabs(a - b) <= 1e-5 * (1 + fabs(b)); }

static void test_delimiters(void) {
    ts_table t;
    int ok = !parse(&t, "a,b\n1,2\n3,4\n") && t.delim == ',' && t.n_rows == 2 && t.n_cols == 2 && near(t.x[3], 4) &&
             t.time_kind == TS_TIME_NONE;
    test_report(ok, "csv_comma", "rows %d cols %d", t.n_rows, t.n_cols);
    ts_table_free(&t);
    ok = !parse(&t, "a;b;c\n1,5;2;3\n4;5;6,25\n") && t.delim == ';' && t.n_cols == 3 && near(t.x[0], 1.5) &&
         near(t.x[5], 6.25);
    test_report(ok, "csv_semicolon_decimal_comma", "x0 %g x5 %g", t.n_cols ? t.x[0] : -1, t.n_cols ? t.x[5] : -1);
    ts_table_free(&t);
    ok = !parse(&t, "a\tb\n1\t2\n3\t4\n") && t.delim == '\t' && t.n_cols == 2 && near(t.x[2], 3);
    test_report(ok, "csv_tab", "delim %d", t.delim);
    ts_table_free(&t);
    ok = !parse(&t, "a,b\r\n1,2\r\n3,4\r\n\r\n") && t.n_rows == 2 && near(t.x[1], 2) && !strcmp(t.names[1], "b");
    test_report(ok, "csv_crlf", "rows %d name1 '%s'", t.n_rows, t.n_cols > 1 ? t.names[1] : "");
    ts_table_free(&t);
    /* no trailing newline, BOM */
    ok = !parse(&t, "\xEF\xBB\xBFx,y\n1,2\n3,4") && t.n_rows == 2 && !strcmp(t.names[0], "x") && near(t.x[3], 4);
    test_report(ok, "csv_bom_no_final_newline", "rows %d", t.n_rows);
    ts_table_free(&t);
}

static void test_quotes(void) {
    ts_table t;
    int ok = !parse(&t, "\"load, kW\",\"say \"\"hi\"\"\",v\n\"1.5\",\"2\",3\n4,\"5\",6\n") && t.n_cols == 3 &&
             !strcmp(t.names[0], "load, kW") && !strcmp(t.names[1], "say \"hi\"") && near(t.x[0], 1.5) &&
             near(t.x[4], 5);
    test_report(ok, "csv_quotes", "name0 '%s' name1 '%s'", t.n_cols ? t.names[0] : "", t.n_cols > 1 ? t.names[1] : "");
    ts_table_free(&t);
    /* a quoted field spanning lines; line numbers of later errors still right */
    int bad = parse(&t, "note,v\n\"two\nlines\",1\nx,2\ny,3,4\n");
    ok = bad && strstr(mk_last_error(), "line 5");
    test_report(ok, "csv_multiline_quote_line_numbers", "%s", mk_last_error());
    bad = parse(&t, "a,b\n\"1,2\n");
    test_report(bad && strstr(mk_last_error(), "line 2") && strstr(mk_last_error(), "unterminated"),
                "csv_unterminated_quote", "%s", mk_last_error());
}

static void test_dates(void) {
    ts_table t;
    ts_spacing sp;
    char buf[64];
    int ok = !parse(&t, "date,v\n2016-07-01 00:00:00,1\n2016-07-01 01:00:00,2\n2016-07-01 02:00:00,3\n");
    ts_detect_spacing(&t, &sp);
    ts_format_time(&t, ts_advance(&sp, t.t[2], 1), buf, sizeof buf);
    ok = ok && t.time_kind == TS_TIME_DATE && t.n_cols == 1 && sp.freq == 'h' && sp.season == 24 &&
         !strcmp(buf, "2016-07-01 03:00:00") && !strcmp(t.time_name, "date");
    test_report(ok, "csv_datetime_hourly", "freq %c season %d next '%s'", sp.freq, sp.season, buf);
    ts_table_free(&t);

    ok = !parse(&t, "day,v\n2020-02-27,1\n2020-02-28,2\n2020-02-29,3\n");
    ts_detect_spacing(&t, &sp);
    ts_format_time(&t, ts_advance(&sp, t.t[2], 1), buf, sizeof buf);
    ok = ok && sp.freq == 'd' && sp.season == 7 && !strcmp(buf, "2020-03-01");
    test_report(ok, "csv_date_daily_leap", "freq %c next '%s'", sp.freq, buf);
    ts_table_free(&t);

    ok = !parse(&t, "month,v\n2019-11-30,1\n2019-12-31,2\n2020-01-31,3\n");
    ts_detect_spacing(&t, &sp);
    ts_format_time(&t, ts_advance(&sp, t.t[2], 1), buf, sizeof buf);
    ok = ok && sp.kind == TS_STEP_MONTHS && sp.months == 1 && sp.season == 12 && !strcmp(buf, "2020-02-29");
    test_report(ok, "csv_date_monthly", "months %d next '%s'", sp.months, buf);
    ts_table_free(&t);

    ok = !parse(&t, "Month,Passengers\n1949-01,112\n1949-02,118\n1949-03,132\n");
    ts_detect_spacing(&t, &sp);
    ts_format_time(&t, ts_advance(&sp, t.t[2], 10), buf, sizeof buf);
    ok = ok && t.date_parts == 2 && sp.months == 1 && !strcmp(buf, "1950-01");
    test_report(ok, "csv_year_month", "next+10 '%s'", buf);
    ts_table_free(&t);

    /* exchange_rate style: Y/M/D H:MM without zero padding */
    ok = !parse(&t, "date,0,OT\r\n1990/1/1 0:00,0.7855,0.5\r\n1990/1/2 0:00,0.7818,0.6\r\n");
    ts_detect_spacing(&t, &sp);
    ts_format_time(&t, ts_advance(&sp, t.t[1], 1), buf, sizeof buf);
    ok = ok && t.time_kind == TS_TIME_DATE && t.n_cols == 2 && !strcmp(t.names[0], "0") &&
         !strcmp(buf, "1990/01/03 00:00");
    test_report(ok, "csv_date_slash_unpadded", "next '%s' cols %d", buf, t.n_cols);
    ts_table_free(&t);

    ok = !parse(&t, "ts,v\n2021-03-04T05:06:07Z,1\n2021-03-04T05:21:07Z,2\n");
    ts_detect_spacing(&t, &sp);
    ts_format_time(&t, ts_advance(&sp, t.t[1], 1), buf, sizeof buf);
    ok = ok && sp.freq == 't' && sp.season == 96 && !strcmp(buf, "2021-03-04T05:36:07");
    test_report(ok, "csv_iso_T_Z_15min", "next '%s' season %d", buf, sp.season);
    ts_table_free(&t);

    /* a plain integer index */
    ok = !parse(&t, "step,a,b\n10,1,2\n12,3,4\n14,5,6\n");
    ts_detect_spacing(&t, &sp);
    ts_format_time(&t, ts_advance(&sp, t.t[2], 1), buf, sizeof buf);
    ok = ok && t.time_kind == TS_TIME_INDEX && t.n_cols == 2 && !strcmp(buf, "16");
    test_report(ok, "csv_integer_index", "kind %d cols %d next '%s'", t.time_kind, t.n_cols, buf);
    ts_table_free(&t);
    /* an integer first column that is not an index stays data */
    ok = !parse(&t, "count,b\n3,2\n1,4\n7,6\n") && t.time_kind == TS_TIME_NONE && t.n_cols == 2;
    test_report(ok, "csv_integer_data_not_index", "kind %d cols %d", t.time_kind, t.n_cols);
    ts_table_free(&t);

    int q = mk_quiet;
    mk_quiet = 1;
    ok = !parse(&t, "date,v\n2020-01-02,1\n2020-01-01,2\n2020-01-03,2\n") && t.n_unordered == 1;
    mk_quiet = q;
    test_report(ok, "csv_time_backwards_warned", "unordered %d", t.n_unordered);
    ts_table_free(&t);
    ok = !parse(&t, "a,b\n0,5\n1,6\n2,7\n") && t.time_kind == TS_TIME_INDEX && t.n_cols == 1;
    test_report(ok, "csv_zero_based_index", "kind %d", t.time_kind);
    ts_table_free(&t);

    /* invalid dates are not dates */
    double v;
    ok = !ts_parse_datetime("2021-02-29", &v, NULL) && !ts_parse_datetime("2021-13-01", &v, NULL) &&
         !ts_parse_datetime("21-01-01", &v, NULL) && ts_parse_datetime("2000-02-29 23:59:59", &v, NULL) &&
         v == 951868799.0;
    test_report(ok, "datetime_validation", "2000-02-29 23:59:59 -> %.0f", v);
}

static void test_na(void) {
    ts_table t;
    int q = mk_quiet;
    mk_quiet = 1;
    int ok = !parse(&t, "a,b,name\n,1,x\n2,NA,y\n4,,z\n6,NaN,w\n8,9,v\nnull,null,u\n");
    mk_quiet = q;
    /* a: [2,2,4,6,8,8]; b: [1, 3, 5, 7, 9, 9] (linear between 1 at row 0 and 9 at row 4) */
    const double ea[6] = {2, 2, 4, 6, 8, 8}, eb[6] = {1, 3, 5, 7, 9, 9};
    for (int r = 0; ok && r < 6; r++) ok = near(t.x[r * 2], ea[r]) && near(t.x[r * 2 + 1], eb[r]);
    ok = ok && t.n_filled == 6 && t.n_skipped == 1 && t.n_cols == 2;
    test_report(ok, "csv_na_interpolation", "filled %d skipped %d", t.n_filled, t.n_skipped);
    ts_table_free(&t);
}

static void test_errors(void) {
    ts_table t;
    int bad = parse(&t, "a,b,c\n1,2,3\n4,5,6\n7,8\n");
    test_report(bad && strstr(mk_last_error(), "mem.csv: line 4") && strstr(mk_last_error(), "2 fields"),
                "csv_ragged_row", "%s", mk_last_error());
    int q = mk_quiet;
    mk_quiet = 1;
    bad = parse(&t, "name,city\nann,paris\nbob,rome\n");
    mk_quiet = q;
    test_report(bad && strstr(mk_last_error(), "no numeric column"), "csv_no_numeric", "%s", mk_last_error());
    bad = parse(&t, "a,b\n");
    test_report(bad && strstr(mk_last_error(), "no data rows"), "csv_header_only", "%s", mk_last_error());
    bad = parse(&t, "");
    test_report(bad, "csv_empty", "%s", mk_last_error());
    /* a number beyond the float range would become inf in the table (found by test_fuzz) */
    bad = parse(&t, "a,b\n1,2\n3,4e40\n5,6\n");
    test_report(bad && strstr(mk_last_error(), "mem.csv: line 3: value '4e40' in column 'b' is outside the range"),
                "csv_value_out_of_float_range", "%s", mk_last_error());
    bad = parse(&t, "a;b\n1;2\n3;-9,5e99\n");
    test_report(bad && strstr(mk_last_error(), "line 3: value '-9,5e99'"), "csv_value_out_of_float_range_comma", "%s",
                mk_last_error());
    bad = parse(&t, "a,b\n1,2\n3,3.4e38\n");
    test_report(!bad && t.n_rows == 2 && t.x[3] > 3.3e38f, "csv_value_near_float_max", "%s", bad ? mk_last_error() : "");
    if (!bad) ts_table_free(&t);
}

static void test_features(void) {
    float f[5];
    double t;
    /* 2016-07-01 was a Friday (weekday 4 with Monday = 0), day of year 183 */
    ts_parse_datetime("2016-07-01 13:45:00", &t, NULL);
    ts_time_features(f, t, 't');
    int ok = near(f[0], 45 / 59.0 - 0.5) && near(f[1], 13 / 23.0 - 0.5) && near(f[2], 4 / 6.0 - 0.5) &&
             near(f[3], -0.5) && near(f[4], 182 / 365.0 - 0.5);
    test_report(ok, "time_features_minutely", "%g %g %g %g %g", f[0], f[1], f[2], f[3], f[4]);
    ok = ts_time_nfeat('h') == 4 && ts_time_nfeat('d') == 3 && ts_time_nfeat('m') == 1 && ts_time_nfeat('?') == 0;
    test_report(ok, "time_features_counts", "");
    /* autocorrelation finds the period of a noisy sine */
    float x[600];
    mk_rng r;
    mk_rng_seed(&r, 3);
    for (int i = 0; i < 600; i++) x[i] = sinf(2 * 3.14159265f * i / 17) + 0.1f * mk_rng_normal(&r);
    int p = ts_autocorr_period(x, 600, 1, 96);
    test_report(p == 17, "autocorr_period", "found %d, expected 17", p);
}

static void test_real(void) {
    static const struct {
        const char *rel;
        int rows, cols;
        char freq;
    } files[] = {{"ETT/ETTh1.csv", 17420, 7, 'h'},
                 {"ETT/ETTm1.csv", 69680, 7, 't'},
                 {"weather/weather.csv", 52696, 21, 't'},
                 {"exchange_rate/exchange_rate.csv", 7588, 8, 'd'},
                 {"illness/national_illness.csv", 966, 7, 'w'}};
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        char path[4096], name[96];
        snprintf(name, sizeof name, "csv_real_%s", files[k].rel);
        if (!test_find_data(name, files[k].rel, path, sizeof path)) continue;
        ts_table t;
        ts_spacing sp;
        int q = mk_quiet;
        mk_quiet = 1;
        int bad = ts_csv_read(&t, path);
        mk_quiet = q;
        if (bad) {
            test_report(0, name, "%s", mk_last_error());
            continue;
        }
        ts_detect_spacing(&t, &sp);
        int finite = 1;
        for (size_t i = 0; i < (size_t)t.n_rows * t.n_cols; i++) finite &= isfinite(t.x[i]) != 0;
        int ok = t.n_rows == files[k].rows && t.n_cols == files[k].cols && sp.freq == files[k].freq &&
                 t.time_kind == TS_TIME_DATE && finite && t.n_filled == 0;
        test_report(ok, name, "%d x %d, freq %c, last line %d", t.n_rows, t.n_cols, sp.freq,
                    t.row_line[t.n_rows - 1]);
        ts_table_free(&t);
    }
}

int main(void) {
    test_delimiters();
    test_quotes();
    test_dates();
    test_na();
    test_errors();
    test_features();
    test_real();
    return test_exit();
}
