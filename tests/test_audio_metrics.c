/* test_audio_metrics.c — SI-SDR, SNR, STOI and the classical enhancers.
 *
 * Metrics are checked against constructions whose value is known exactly
 * (noise made orthogonal to the reference in double precision, so SI-SDR =
 * SNR = the set value), and STOI against an independent double-precision
 * re-implementation written here from the paper (naive DFT, no FFTW), on real
 * speech from FSDD. The enhancers are checked for exact overlap-add
 * reconstruction (transparent when the noise estimate is zero), for a clear
 * SI-SDR gain on real speech + white noise at 0 dB, and evaluated on NOIZEUS.
 *
 *   ./build/tests/test_audio_metrics               the checks (< ~40 s with sanitizers)
 *   ./build/tests/test_audio_metrics --noizeus-table
 *        also the full NOIZEUS table (30 sentences x 8 noises x 4 SNRs, with
 *        STOI) as Markdown, as in docs/AUDIO_METRICS.md (use a release-built
 *        copy for speed; see the doc).
 *   ./build/tests/test_audio_metrics --fsdd-table
 *        only the FSDD (16 kHz) + white/real-noise table of the doc. */
#include <math.h>
#include <samplerate.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/classical.h"
#include "audio/metrics.h"
#include "core/util.h"
#include "tests/test.h"

/* ---------------------------------------------------------------- helpers */

/* Mono float samples of a sound file (first channel); NULL on failure. */
static float *load_wav(const char *path, size_t *n, int *sr) {
    SF_INFO info;
    memset(&info, 0, sizeof info);
    SNDFILE *f = sf_open(path, SFM_READ, &info);
    if (!f) return NULL;
    if (info.frames <= 0 || info.channels < 1) {
        sf_close(f);
        return NULL;
    }
    float *buf = mk_malloc((size_t)info.frames * info.channels * sizeof *buf);
    sf_count_t got = sf_readf_float(f, buf, info.frames);
    sf_close(f);
    float *x = mk_malloc((size_t)got * sizeof *x);
    for (sf_count_t i = 0; i < got; i++) x[i] = buf[i * info.channels];
    free(buf);
    *n = (size_t)got;
    *sr = info.samplerate;
    return x;
}

/* Resample with libsamplerate (same converter STOI uses). */
static float *resample(const float *x, size_t n, int from, int to, size_t *m) {
    double ratio = (double)to / from;
    size_t cap = (size_t)ceil(n * ratio) + 64;
    float *y = mk_malloc(cap * sizeof *y);
    SRC_DATA d;
    memset(&d, 0, sizeof d);
    d.data_in = x;
    d.data_out = y;
    d.input_frames = (long)n;
    d.output_frames = (long)cap;
    d.src_ratio = ratio;
    if (src_simple(&d, SRC_SINC_MEDIUM_QUALITY, 1)) {
        free(y);
        return NULL;
    }
    *m = (size_t)d.output_frames_gen;
    return y;
}

/* FSDD speaker george, index 0, digits 0..9 concatenated: ~4 s of real
 * speech at 8 kHz with the short pauses the recordings have. */
static float *load_fsdd_george(size_t *n, char *tried, size_t tried_len) {
    char path[2048];
    size_t total = 0;
    float *all = NULL;
    for (int d = 0; d < 10; d++) {
        char rel[64];
        snprintf(rel, sizeof rel, "fsdd/recordings/%d_george_0.wav", d);
        if (!mk_find_data(NULL, rel, path, sizeof path)) {
            snprintf(tried, tried_len, "%s", path);
            free(all);
            return NULL;
        }
        size_t m;
        int sr;
        float *x = load_wav(path, &m, &sr);
        if (!x || sr != 8000) {
            snprintf(tried, tried_len, "%s (unreadable or not 8 kHz)", path);
            free(x);
            free(all);
            return NULL;
        }
        all = mk_realloc(all, (total + m) * sizeof *all);
        memcpy(all + total, x, m * sizeof *x);
        total += m;
        free(x);
    }
    *n = total;
    return all;
}

/* ref + white Gaussian noise scaled so that |ref|^2 / |noise|^2 = 10^(snr/10)
 * exactly (in double). With orth, the noise is first made zero-mean and
 * orthogonal to the zero-mean reference (Gram–Schmidt in double), which makes
 * SI-SDR equal to the same value. */
static float *add_noise(const float *ref, size_t n, double snr_db, int orth, uint64_t seed) {
    mk_rng r;
    mk_rng_seed(&r, seed);
    double *e = mk_malloc(n * sizeof *e);
    for (size_t i = 0; i < n; i++) e[i] = mk_rng_normal(&r);
    double mr = 0;
    for (size_t i = 0; i < n; i++) mr += ref[i];
    mr /= (double)n;
    if (orth) {
        double me = 0, dot = 0, rr = 0;
        for (size_t i = 0; i < n; i++) me += e[i];
        me /= (double)n;
        for (size_t i = 0; i < n; i++) {
            e[i] -= me;
            dot += e[i] * (ref[i] - mr);
            rr += (ref[i] - mr) * (ref[i] - mr);
        }
        for (size_t i = 0; i < n; i++) e[i] -= dot / rr * (ref[i] - mr);
    }
    double pr = 0, pe = 0;
    for (size_t i = 0; i < n; i++) {
        double rv = orth ? ref[i] - mr : ref[i];
        pr += rv * rv;
        pe += e[i] * e[i];
    }
    double g = sqrt(pr / pe / pow(10.0, snr_db / 10.0));
    float *y = mk_malloc(n * sizeof *y);
    for (size_t i = 0; i < n; i++) y[i] = (float)(ref[i] + g * e[i]);
    free(e);
    return y;
}

/* ---------------------------------------------- independent STOI (double)
 * Written from Taal et al. 2011 / their MATLAB code, sharing nothing with
 * audio/metrics.c: naive DFT with a cos/sin table, band edges by rounding
 * frequency / bin width, correlation through the textbook formula. Input must
 * already be at 10 kHz. Returns -1 if fewer than 30 frames remain. */
static double ref_stoi(const float *x, const float *y, size_t n) {
    const int L = 256, H = 128, F = 512, J = 15, N = 30;
    double w[256], ct[512], st[512];
    for (int k = 0; k < L; k++) w[k] = 0.5 - 0.5 * cos(2 * M_PI * (k + 1) / (L + 1.0));
    for (int k = 0; k < F; k++) ct[k] = cos(2 * M_PI * k / F), st[k] = -sin(2 * M_PI * k / F);
    /* silent frames: dB of the windowed clean frame norm */
    size_t nf = 0;
    for (size_t s = 0; s + L < n; s += H) nf++;
    double *db = calloc(nf + 1, sizeof *db), top = -1e300;
    for (size_t f = 0; f < nf; f++) {
        double e = 0;
        for (int k = 0; k < L; k++) e += pow(w[k] * x[f * H + k], 2);
        db[f] = 20 * log10(sqrt(e) + 2.220446049250313e-16);
        top = fmax(top, db[f]);
    }
    double *xs = calloc(n + 1, sizeof *xs), *ys = calloc(n + 1, sizeof *ys);
    size_t kept = 0;
    for (size_t f = 0; f < nf; f++)
        if (db[f] - top + 40 > 0) {
            for (int k = 0; k < L; k++) {
                xs[kept * H + k] += w[k] * x[f * H + k];
                ys[kept * H + k] += w[k] * y[f * H + k];
            }
            kept++;
        }
    size_t len = kept ? (kept - 1) * H + L : 0, M = 0;
    for (size_t s = 0; s + L < len; s += H) M++;
    free(db);
    if (M < (size_t)N) {
        free(xs);
        free(ys);
        return -1;
    }
    int lo[15], hi[15];
    double df = 10000.0 / F;
    for (int j = 0; j < J; j++) {
        lo[j] = (int)floor(150 * pow(2, (2 * j - 1) / 6.0) / df + 0.5);
        hi[j] = (int)floor(150 * pow(2, (2 * j + 1) / 6.0) / df + 0.5);
    }
    double *X = calloc(J * M, sizeof *X), *Y = calloc(J * M, sizeof *Y);
    for (int which = 0; which < 2; which++) {
        double *sig = which ? ys : xs, *E = which ? Y : X;
        for (size_t m = 0; m < M; m++) {
            double fr[256];
            for (int k = 0; k < L; k++) fr[k] = w[k] * sig[m * H + k];
            for (int j = 0; j < J; j++) {
                double acc = 0;
                for (int b = lo[j]; b < hi[j]; b++) {
                    double re = 0, im = 0;
                    for (int k = 0; k < L; k++) {
                        int idx = (b * k) % F;
                        re += fr[k] * ct[idx];
                        im += fr[k] * st[idx];
                    }
                    acc += re * re + im * im;
                }
                E[j * M + m] = sqrt(acc);
            }
        }
    }
    double c = pow(10, 15.0 / 20), total = 0;
    size_t cnt = 0;
    for (size_t m = N; m <= M; m++)
        for (int j = 0; j < J; j++) {
            double *xv = X + j * M + m - N, *yv = Y + j * M + m - N, yp[30];
            double nx = 0, ny = 0;
            for (int i = 0; i < N; i++) nx += xv[i] * xv[i], ny += yv[i] * yv[i];
            double a = sqrt(nx / (ny + 1e-300));
            for (int i = 0; i < N; i++) yp[i] = fmin(a * yv[i], xv[i] * (1 + c));
            double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
            for (int i = 0; i < N; i++) {
                sx += xv[i], sy += yp[i];
                sxx += xv[i] * xv[i], syy += yp[i] * yp[i], sxy += xv[i] * yp[i];
            }
            /* Pearson r = (N sxy - sx sy) / sqrt((N sxx - sx^2)(N syy - sy^2)) */
            double num = N * sxy - sx * sy;
            double den = sqrt(fmax(N * sxx - sx * sx, 0) * fmax(N * syy - sy * sy, 0));
            total += den > 0 ? num / den : 0;
            cnt++;
        }
    free(X);
    free(Y);
    free(xs);
    free(ys);
    return total / cnt;
}

/* ---------------------------------------------------------------- checks */

static void test_sisdr_snr(void) {
    /* A synthetic vowel-like reference (harmonics + envelope), 4 s at 16 kHz
     * (long enough that random noise/reference correlation stays < 0.1 dB). */
    const size_t n = 64000;
    float *ref = mk_malloc(n * sizeof *ref);
    for (size_t i = 0; i < n; i++) {
        double t = i / 16000.0, v = 0;
        for (int h = 1; h <= 8; h++) v += sin(2 * M_PI * 140 * h * t + h) / h;
        ref[i] = (float)(0.3 * v * (0.6 + 0.4 * sin(2 * M_PI * 3 * t)) + 0.01);
    }
    float *tmp = mk_malloc(n * sizeof *tmp);

    /* scaled copy: huge, and independent of the scale */
    double worst = 1e9;
    for (double g = 0.01; g < 200; g *= 7.3) {
        for (size_t i = 0; i < n; i++) tmp[i] = (float)(g * ref[i]);
        worst = fmin(worst, audio_sisdr(tmp, ref, n));
    }
    test_report(worst > 100, "sisdr_scaled_copy", "min over gains 0.01..150: %.1f dB (want > 100)", worst);

    /* orthogonal noise at set SNR: SI-SDR and SNR (of the zero-mean parts)
     * equal the set value */
    double maxd_si = 0, maxd_snr = 0, maxd_inv = 0, maxd_dc = 0;
    const double snrs[] = {-10, -5, 0, 5, 10, 20, 30};
    for (int k = 0; k < 7; k++) {
        float *y = add_noise(ref, n, snrs[k], 1, 100 + k);
        maxd_si = fmax(maxd_si, fabs(audio_sisdr(y, ref, n) - snrs[k]));
        for (size_t i = 0; i < n; i++) tmp[i] = 3.7f * y[i];
        maxd_inv = fmax(maxd_inv, fabs(audio_sisdr(tmp, ref, n) - audio_sisdr(y, ref, n)));
        for (size_t i = 0; i < n; i++) tmp[i] = y[i] + 0.25f;
        maxd_dc = fmax(maxd_dc, fabs(audio_sisdr(tmp, ref, n) - audio_sisdr(y, ref, n)));
        free(y);
        y = add_noise(ref, n, snrs[k], 0, 200 + k);
        maxd_snr = fmax(maxd_snr, fabs(audio_snr(y, ref, n) - snrs[k]));
        free(y);
    }
    test_report(maxd_si < 0.01, "sisdr_orthogonal_noise", "max |SI-SDR - set SNR| over -10..30 dB: %.4f dB", maxd_si);
    test_report(maxd_inv < 0.001, "sisdr_scale_invariant", "max change under x3.7: %.5f dB", maxd_inv);
    test_report(maxd_dc < 0.001, "sisdr_zero_mean", "max change under +0.25 DC offset: %.5f dB", maxd_dc);
    test_report(maxd_snr < 0.01, "snr_set_value", "max |SNR - set SNR|: %.4f dB", maxd_snr);

    /* plain (non-orthogonal) white noise: SI-SDR within 0.1 dB of the set SNR,
     * expected value computed here in double from the definition */
    double maxd_plain = 0, maxd_def = 0;
    for (int k = 1; k < 7; k++) { /* -5..30 dB */
        float *y = add_noise(ref, n, snrs[k], 0, 300 + k);
        double s = audio_sisdr(y, ref, n);
        double my = 0, mr = 0, dot = 0, rr = 0, tt = 0, ee = 0;
        for (size_t i = 0; i < n; i++) my += y[i], mr += ref[i];
        my /= n, mr /= n;
        for (size_t i = 0; i < n; i++) dot += (y[i] - my) * (ref[i] - mr), rr += (ref[i] - mr) * (ref[i] - mr);
        for (size_t i = 0; i < n; i++) {
            double t = dot / rr * (ref[i] - mr), e = y[i] - my - t;
            tt += t * t, ee += e * e;
        }
        maxd_def = fmax(maxd_def, fabs(s - 10 * log10(tt / ee)));
        /* SI-SDR is defined on zero-mean signals: compare to the set SNR of
         * the zero-mean reference (the DC 0.01 is part of ref's energy) */
        double pr0 = 0, pr = 0;
        for (size_t i = 0; i < n; i++) pr0 += (ref[i] - mr) * (ref[i] - mr), pr += ref[i] * ref[i];
        maxd_plain = fmax(maxd_plain, fabs(s - (snrs[k] + 10 * log10(pr0 / pr))));
        free(y);
    }
    test_report(maxd_def < 0.001, "sisdr_matches_definition", "max diff vs double-precision definition: %.5f dB", maxd_def);
    test_report(maxd_plain < 0.1, "sisdr_white_noise", "max |SI-SDR - set SNR| for white noise at -5..30 dB: %.3f dB (want < 0.1)", maxd_plain);

    /* SNR is not scale invariant: est = ref/2 is exactly 6.02 dB */
    for (size_t i = 0; i < n; i++) tmp[i] = 0.5f * ref[i];
    double h = audio_snr(tmp, ref, n);
    test_report(fabs(h - 10 * log10(4.0)) < 1e-4, "snr_half_gain", "%.5f dB (expected %.5f)", h, 10 * log10(4.0));

    /* degenerate inputs */
    memset(tmp, 0, n * sizeof *tmp);
    int ok = isnan(audio_sisdr(ref, tmp, n)) && isnan(audio_sisdr(ref, ref, 0)) &&
             audio_sisdr(ref, ref, n) == 200.0f && audio_snr(ref, ref, n) == 200.0f &&
             audio_snr(tmp, ref, n) == 0.0f;
    test_report(ok, "metrics_degenerate", "silent ref -> NaN, empty -> NaN, exact copy -> +200 dB cap");
    free(ref);
    free(tmp);
}

/* Runs without data: a synthetic syllable train (harmonics with a 4 Hz
 * on/off envelope and a moving pitch), 3 s at 10 kHz, against the reference. */
static void test_stoi_synthetic(void) {
    const size_t n = 30000;
    float *x = mk_malloc(n * sizeof *x);
    double ph = 0;
    for (size_t i = 0; i < n; i++) {
        double t = i / 10000.0, f0 = 120 + 40 * sin(2 * M_PI * 0.7 * t), env = fmax(0, sin(2 * M_PI * 4 * t));
        ph += 2 * M_PI * f0 / 10000.0;
        double v = 0;
        for (int h = 1; h <= 20; h++) v += sin(h * ph) / h;
        x[i] = (float)(0.2 * env * env * v);
    }
    double maxdiff = 0;
    for (int k = 0; k < 3; k++) {
        float *y = add_noise(x, n, -5.0 + 5 * k, 0, 700 + k);
        maxdiff = fmax(maxdiff, fabs(audio_stoi(x, y, n, 10000) - ref_stoi(x, y, n)));
        free(y);
    }
    double self = audio_stoi(x, x, n, 10000);
    test_report(maxdiff < 1e-3 && fabs(self - 1) < 1e-5, "stoi_synthetic_vs_reference",
                "max |ours - double reference| at -5/0/5 dB: %.2e; self %.6f", maxdiff, self);
    free(x);
}

static void test_stoi(const float *speech8, size_t n8) {
    /* too short: 0_george_0 alone is 0.3 s */
    float *tmp = mk_malloc(n8 * sizeof *tmp);
    {
        float v = audio_stoi(speech8, speech8, 2400, 8000);
        const char *msg = mk_last_error();
        test_report(v == -1.0f && strstr(msg, "too short"), "stoi_too_short", "0.3 s -> %.1f, \"%s\"", v, msg);
        v = audio_stoi(speech8, speech8, n8, 0);
        test_report(v == -1.0f, "stoi_bad_rate", "sr 0 -> %.1f, \"%s\"", v, mk_last_error());
        memcpy(tmp, speech8, n8 * sizeof *tmp);
        tmp[n8 / 2] = NAN;
        v = audio_stoi(speech8, tmp, n8, 8000);
        test_report(v == -1.0f, "stoi_nan", "NaN sample -> %.1f, \"%s\"", v, mk_last_error());
        float *o = mk_malloc(n8 * sizeof *o);
        int r1 = audio_wiener(o, tmp, n8, 8000), r2 = audio_spectral_subtraction(o, speech8, n8, -8000);
        test_report(r1 == -1 && r2 == -1, "enhance_bad_input", "NaN sample -> %d, sr -8000 -> %d, \"%s\"", r1, r2,
                    mk_last_error());
        free(o);
    }
    double self = audio_stoi(speech8, speech8, n8, 8000);
    test_report(fabs(self - 1) < 1e-5, "stoi_clean_vs_clean", "%.6f (want 1)", self);
    for (size_t i = 0; i < n8; i++) tmp[i] = 0.2f * speech8[i];
    double gain = audio_stoi(speech8, tmp, n8, 8000);
    test_report(fabs(gain - 1) < 1e-4, "stoi_gain_invariant", "processed = 0.2 x clean: %.6f (want 1)", gain);

    /* against the independent reference at 10 kHz, and the 8 kHz path */
    size_t n10, n10b;
    float *x10 = resample(speech8, n8, 8000, 10000, &n10);
    const double snrs[] = {-10, -5, 0, 5, 10, 20};
    double prev = -1, maxdiff = 0, maxdiff8 = 0, scores[6];
    int mono = 1;
    for (int k = 0; k < 6; k++) {
        float *y8 = add_noise(speech8, n8, snrs[k], 0, 500 + k);
        float *y10 = resample(y8, n8, 8000, 10000, &n10b);
        double ours8 = audio_stoi(speech8, y8, n8, 8000);
        double ours10 = audio_stoi(x10, y10, n10, 10000);
        double ref = ref_stoi(x10, y10, n10);
        maxdiff = fmax(maxdiff, fabs(ours10 - ref));
        maxdiff8 = fmax(maxdiff8, fabs(ours8 - ref));
        scores[k] = ours8;
        if (ours8 <= prev) mono = 0;
        prev = ours8;
        free(y8);
        free(y10);
    }
    test_report(maxdiff < 1e-3, "stoi_vs_reference", "max |ours - double reference| at 10 kHz: %.2e", maxdiff);
    test_report(maxdiff8 < 1e-3, "stoi_8k_path", "8 kHz input resampled inside vs reference: %.2e", maxdiff8);
    test_report(mono, "stoi_monotone_snr", "white noise -10/-5/0/5/10/20 dB: %.3f %.3f %.3f %.3f %.3f %.3f",
                scores[0], scores[1], scores[2], scores[3], scores[4], scores[5]);
    /* Published behaviour (Taal et al. 2011 Fig. 4; pystoi on TIMIT-like
     * speech): white noise at -10 dB scores around 0.4-0.6, at +20 dB > 0.95. */
    test_report(scores[0] < 0.65 && scores[0] < self - 0.35 && scores[5] > 0.93, "stoi_heavy_noise",
                "-10 dB: %.3f, +20 dB: %.3f", scores[0], scores[5]);
    free(x10);
    free(tmp);
}

static void test_enhancers_fsdd(const float *speech8, size_t n8) {
    /* 1) exact overlap-add: with digital silence in front (more than the 10 %
     * of frames the noise estimate uses) the noise estimate is zero and both
     * enhancers must return the input. */
    size_t pad = n8 / 5 + 2000, n = pad + n8;
    float *x = calloc(n, sizeof *x), *out = mk_malloc(n * sizeof *out);
    memcpy(x + pad, speech8, n8 * sizeof *x);
    double e_ss, e_wf;
    audio_spectral_subtraction(out, x, n, 8000);
    e_ss = test_rel_err_f(out, x, n, 1e-3);
    audio_wiener(out, x, n, 8000);
    e_wf = test_rel_err_f(out, x, n, 1e-3);
    test_report(e_ss < 1e-4 && e_wf < 1e-4, "enhance_transparent", "zero noise estimate: rel err specsub %.1e, wiener %.1e", e_ss, e_wf);
    free(x);
    free(out);

    /* 2) real speech + white noise at 0 dB (8 kHz and resampled to 16 kHz) */
    for (int pass = 0; pass < 2; pass++) {
        int sr = pass ? 16000 : 8000;
        size_t m = n8;
        float *clean = pass ? resample(speech8, n8, 8000, 16000, &m) : (float *)speech8;
        float *noisy = add_noise(clean, m, 0.0, 0, 900 + pass);
        float *ss = mk_malloc(m * sizeof *ss), *wf = mk_malloc(m * sizeof *wf);
        int rc = audio_spectral_subtraction(ss, noisy, m, sr) | audio_wiener(wf, noisy, m, sr);
        int finite = rc == 0;
        for (size_t i = 0; i < m; i++) finite &= isfinite(ss[i]) && isfinite(wf[i]);
        double s0 = audio_sisdr(noisy, clean, m);
        double d_ss = audio_sisdr(ss, clean, m) - s0, d_wf = audio_sisdr(wf, clean, m) - s0;
        char name[64];
        snprintf(name, sizeof name, "enhance_fsdd_white_0dB_%dk", sr / 1000);
        test_report(finite && d_ss > 3 && d_wf > 3, name,
                    "input SI-SDR %.2f dB; improvement: spectral subtraction %+.2f dB, Wiener %+.2f dB (want > +3)",
                    s0, d_ss, d_wf);
        if (pass == 0) {
            /* in-place (out == noisy) gives the same result */
            float *inpl = mk_malloc(m * sizeof *inpl);
            memcpy(inpl, noisy, m * sizeof *inpl);
            audio_wiener(inpl, inpl, m, sr);
            double e = test_rel_err_f(inpl, wf, m, 1e-3);
            test_report(e == 0, "enhance_in_place", "rel diff in-place vs separate: %.1e", e);
            double st0 = audio_stoi(clean, noisy, m, sr), st_wf = audio_stoi(clean, wf, m, sr);
            test_report(st0 > 0 && st_wf > 0, "stoi_enhanced", "STOI noisy %.3f, Wiener %.3f (reported only)", st0, st_wf);
            free(inpl);
        }
        free(ss);
        free(wf);
        free(noisy);
        if (pass) free(clean);
    }
}

static const char *NOISES[8] = {"airport", "babble", "car", "exhibition", "restaurant", "station", "street", "train"};

/* NOIZEUS: SI-SDR improvement per noise type. Quick mode: 0 dB, first 5
 * sentences, SI-SDR only. Full mode: Markdown table, all sentences and SNRs,
 * with STOI. */
static void test_noizeus(int full) {
    char path[4096];
    if (!test_find_data("enhance_noizeus", "noizeus/clean/sp01.wav", path, sizeof path)) return;
    const int snrs[4] = {0, 5, 10, 15};
    int n_snr = full ? 4 : 1, n_sent = full ? 30 : 5;
    if (full)
        printf("\n| noise | input SNR | noisy SI-SDR | specsub ΔSI-SDR | Wiener ΔSI-SDR | noisy STOI | specsub STOI | Wiener STOI |\n"
               "|---|---|---|---|---|---|---|---|\n");
    double all_ss = 0, all_wf = 0;
    int all_cnt = 0, all_finite = 1;
    for (int z = 0; z < n_snr; z++)
        for (int k = 0; k < 8; k++) {
            double s0 = 0, dss = 0, dwf = 0, t0 = 0, tss = 0, twf = 0;
            int cnt = 0;
            for (int s = 1; s <= n_sent; s++) {
                char rel[256], pc[4096], pn[4096];
                snprintf(rel, sizeof rel, "noizeus/clean/sp%02d.wav", s);
                if (!mk_find_data(NULL, rel, pc, sizeof pc)) continue;
                snprintf(rel, sizeof rel, "noizeus/noisy/%s_%ddB/sp%02d_%s_sn%d.wav", NOISES[k], snrs[z], s, NOISES[k], snrs[z]);
                if (!mk_find_data(NULL, rel, pn, sizeof pn)) continue;
                size_t nc, nn;
                int src, srn;
                float *c = load_wav(pc, &nc, &src), *y = load_wav(pn, &nn, &srn);
                if (!c || !y || nc != nn || src != srn) {
                    free(c);
                    free(y);
                    continue;
                }
                float *ss = mk_malloc(nn * sizeof *ss), *wf = mk_malloc(nn * sizeof *wf);
                audio_spectral_subtraction(ss, y, nn, srn);
                audio_wiener(wf, y, nn, srn);
                for (size_t i = 0; i < nn; i++) all_finite &= isfinite(ss[i]) && isfinite(wf[i]);
                double b = audio_sisdr(y, c, nn);
                s0 += b;
                dss += audio_sisdr(ss, c, nn) - b;
                dwf += audio_sisdr(wf, c, nn) - b;
                if (full) {
                    t0 += audio_stoi(c, y, nn, srn);
                    tss += audio_stoi(c, ss, nn, srn);
                    twf += audio_stoi(c, wf, nn, srn);
                }
                cnt++;
                free(c);
                free(y);
                free(ss);
                free(wf);
            }
            if (!cnt) continue;
            all_ss += dss, all_wf += dwf, all_cnt += cnt;
            if (full)
                printf("| %s | %d dB | %.2f | %+.2f | %+.2f | %.3f | %.3f | %.3f |\n", NOISES[k], snrs[z],
                       s0 / cnt, dss / cnt, dwf / cnt, t0 / cnt, tss / cnt, twf / cnt);
            else {
                char name[64];
                snprintf(name, sizeof name, "enhance_noizeus_%s_0dB", NOISES[k]);
                test_report(dss > 0 && dwf > 0, name,
                            "%d sentences: noisy SI-SDR %.2f dB, improvement specsub %+.2f dB, Wiener %+.2f dB (want > 0)",
                            cnt, s0 / cnt, dss / cnt, dwf / cnt);
            }
        }
    if (!all_cnt) {
        test_skip("enhance_noizeus", "no readable NOIZEUS pairs under noizeus/noisy/");
        return;
    }
    test_report(all_finite && all_ss / all_cnt > 0 && all_wf / all_cnt > 0, "enhance_noizeus",
                "%d files, mean SI-SDR improvement: specsub %+.2f dB, Wiener %+.2f dB (want > 0)", all_cnt,
                all_ss / all_cnt, all_wf / all_cnt);
}

/* --fsdd-table: FSDD test split (index 0-4, 300 clips) resampled to 16 kHz,
 * mixed with white noise and the 4 real Speech Commands background noises
 * (held-out last 20 % of each recording, random offset) at 0/5/10 dB; mean
 * SI-SDR of the noisy input and improvement of both enhancers, as Markdown. */
static void fsdd_table(void) {
    static const char *noise_files[4] = {"doing_the_dishes", "dude_miaowing", "exercise_bike", "running_tap"};
    float *noise[5] = {0};
    size_t noise_n[5] = {0};
    char path[4096];
    for (int k = 0; k < 4; k++) {
        char rel[128];
        snprintf(rel, sizeof rel, "speech_commands_noise/%s.wav", noise_files[k]);
        int sr;
        size_t n;
        if (!mk_find_data(NULL, rel, path, sizeof path) || !(noise[k + 1] = load_wav(path, &n, &sr)) || sr != 16000) {
            printf("fsdd-table: missing %s\n", rel);
            return;
        }
        size_t cut = n * 4 / 5; /* keep the held-out last 20 % */
        memmove(noise[k + 1], noise[k + 1] + cut, (n - cut) * sizeof(float));
        noise_n[k + 1] = n - cut;
    }
    const char *names[5] = {"white", "dishes", "cat", "bike", "tap"};
    printf("\n| noise | input SNR | clips | noisy SI-SDR | specsub ΔSI-SDR | Wiener ΔSI-SDR |\n|---|---|---|---|---|---|\n");
    const char *spk[6] = {"george", "jackson", "lucas", "nicolas", "theo", "yweweler"};
    for (int z = 0; z < 3; z++)
        for (int k = 0; k < 5; k++) {
            mk_rng r;
            mk_rng_seed(&r, 1000 + 10 * z + k);
            double s0 = 0, dss = 0, dwf = 0;
            int cnt = 0;
            for (int d = 0; d < 10; d++)
                for (int p = 0; p < 6; p++)
                    for (int i = 0; i < 5; i++) {
                        char rel[128];
                        snprintf(rel, sizeof rel, "fsdd/recordings/%d_%s_%d.wav", d, spk[p], i);
                        size_t n8, n;
                        int sr;
                        float *x8;
                        if (!mk_find_data(NULL, rel, path, sizeof path) || !(x8 = load_wav(path, &n8, &sr))) continue;
                        float *x = resample(x8, n8, sr, 16000, &n);
                        free(x8);
                        float *e = mk_malloc(n * sizeof *e);
                        if (k == 0)
                            for (size_t j = 0; j < n; j++) e[j] = mk_rng_normal(&r);
                        else {
                            size_t off = (size_t)mk_rng_int(&r, (int)(noise_n[k] - n));
                            memcpy(e, noise[k] + off, n * sizeof *e);
                        }
                        double px = 0, pe = 0;
                        for (size_t j = 0; j < n; j++) px += (double)x[j] * x[j], pe += (double)e[j] * e[j];
                        double g = sqrt(px / (pe + 1e-30) / pow(10, z * 5 / 10.0));
                        float *y = mk_malloc(n * sizeof *y), *o = mk_malloc(n * sizeof *o);
                        for (size_t j = 0; j < n; j++) y[j] = (float)(x[j] + g * e[j]);
                        double b = audio_sisdr(y, x, n);
                        s0 += b;
                        audio_spectral_subtraction(o, y, n, 16000);
                        dss += audio_sisdr(o, x, n) - b;
                        audio_wiener(o, y, n, 16000);
                        dwf += audio_sisdr(o, x, n) - b;
                        cnt++;
                        free(x), free(e), free(y), free(o);
                    }
            if (cnt)
                printf("| %s | %d dB | %d | %.2f | %+.2f | %+.2f |\n", names[k], z * 5, cnt, s0 / cnt, dss / cnt, dwf / cnt);
        }
    for (int k = 0; k < 5; k++) free(noise[k]);
}

int main(int argc, char **argv) {
    mk_set_argv0(argv[0]);
    int full = argc > 1 && !strcmp(argv[1], "--noizeus-table");
    if (argc > 1 && !strcmp(argv[1], "--fsdd-table")) {
        fsdd_table();
        return 0;
    }
    test_sisdr_snr();
    test_stoi_synthetic();
    char tried[4096] = "";
    size_t n8 = 0;
    float *speech8 = load_fsdd_george(&n8, tried, sizeof tried);
    if (!speech8) {
        char why[4200];
        snprintf(why, sizeof why, "no data at %s", tried);
        test_skip("stoi_fsdd", why);
        test_skip("enhance_fsdd", why);
    } else {
        test_stoi(speech8, n8);
        test_enhancers_fsdd(speech8, n8);
        free(speech8);
    }
    test_noizeus(full);
    return test_exit();
}
