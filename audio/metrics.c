/* metrics.c — SI-SDR, SNR and classic STOI.
 *
 * Sums run in double: a 10 s clip at 16 kHz has 160 k terms and the error
 * energy of a good enhancer is ~1e-3 of the signal's, so float accumulation
 * would cost whole tenths of a dB.
 *
 * STOI follows Taal et al. (2011) and their reference MATLAB code step by
 * step (which is also what the widely used pystoi package reproduces):
 *   1. resample both signals to 10 kHz (libsamplerate SRC_SINC_MEDIUM_QUALITY:
 *      passband to 90 % of the lower Nyquist, which covers the top band's
 *      4.3 kHz edge from 16 kHz; on NOIZEUS it changes scores by < 4e-4
 *      against SRC_SINC_BEST_QUALITY at a third of the cost);
 *   2. frame with a 256-sample Hann window (MATLAB hanning(256), i.e. no zero
 *      end points), hop 128; drop frames whose clean energy is more than 40 dB
 *      below the loudest clean frame, and overlap-add the kept (windowed)
 *      frames back into shortened signals;
 *   3. STFT of those (same window and hop, FFT size 512); frames start at
 *      0, 128, ... while start < length - 256 (the reference's framing);
 *   4. 15 one-third-octave bands from 150 Hz: band envelope
 *      sqrt(sum of |X|^2 over the band's bins);
 *   5. for every run of N = 30 consecutive frames and every band: scale the
 *      processed envelope to the clean one's energy, clip it at
 *      (1 + 10^(-beta/20)) times the clean envelope (beta = -15 dB), and take
 *      the correlation coefficient with the clean envelope;
 *   6. average all correlations.
 * Dimension letters: J bands (15), M frames, N segment length (30). */
#include "audio/metrics.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#if MK_HAVE_FFTW
#include <fftw3.h>
#endif
#if MK_HAVE_SAMPLERATE
#include <samplerate.h>
#endif

#define DB_CAP 200.0

/* 10 log10(num / den), saturated to +/-DB_CAP; NAN when both are zero. */
static float db_ratio(double num, double den) {
    if (num <= 0 && den <= 0) return NAN;
    if (den <= 0) return (float)DB_CAP;
    if (num <= 0) return (float)-DB_CAP;
    double d = 10.0 * log10(num / den);
    if (d > DB_CAP) d = DB_CAP;
    if (d < -DB_CAP) d = -DB_CAP;
    return (float)d;
}

// ref: Le Roux et al. 2019, eq. (2): s_target = (<s^,s>/|s|^2) s, e = s^ - s_target.
float audio_sisdr(const float *est, const float *ref, size_t n) {
    if (n == 0) return NAN;
    double me = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        me += est[i];
        mr += ref[i];
    }
    me /= (double)n;
    mr /= (double)n;
    double dot = 0, rr = 0;
    for (size_t i = 0; i < n; i++) {
        double e = est[i] - me, r = ref[i] - mr;
        dot += e * r;
        rr += r * r;
    }
    if (rr <= 0) return NAN; /* silent reference: no target to measure against */
    double a = dot / rr, tt = 0, ee = 0;
    for (size_t i = 0; i < n; i++) {
        double t = a * (ref[i] - mr);
        double e = (est[i] - me) - t;
        tt += t * t;
        ee += e * e;
    }
    return db_ratio(tt, ee);
}

float audio_snr(const float *est, const float *ref, size_t n) {
    if (n == 0) return NAN;
    double rr = 0, ee = 0;
    for (size_t i = 0; i < n; i++) {
        double r = ref[i], e = r - (double)est[i];
        rr += r * r;
        ee += e * e;
    }
    return db_ratio(rr, ee);
}

/* ------------------------------------------------------------------ STOI */

enum {
    STOI_FS = 10000,
    STOI_FRAME = 256, /* 25.6 ms */
    STOI_HOP = 128,
    STOI_NFFT = 512,
    STOI_J = 15,   /* one-third-octave bands */
    STOI_N = 30,   /* frames per segment (384 ms) */
};
#define STOI_MINFREQ 150.0
#define STOI_BETA (-15.0)
#define STOI_DYN_RANGE 40.0
#define STOI_EPS DBL_EPSILON

/* MATLAB hanning(N): 0.5 (1 - cos(2 pi k / (N+1))), k = 1..N. */
static void stoi_window(double *w) {
    for (int k = 0; k < STOI_FRAME; k++)
        w[k] = 0.5 * (1.0 - cos(2.0 * M_PI * (k + 1) / (STOI_FRAME + 1)));
}

/* Number of frames the reference framing takes from a length-len signal:
 * starts 0, hop, ... strictly below len - frame. */
static size_t stoi_nframes(size_t len) {
    if (len <= STOI_FRAME) return 0;
    return (len - STOI_FRAME - 1) / STOI_HOP + 1;
}

/* Band edges [lo[j], hi[j]) in FFT bins: the bins nearest to
 * 150 * 2^((2j -+ 1)/6) Hz (first nearest on a tie, as argmin does). */
static void stoi_bands(int *lo, int *hi) {
    const int nb = STOI_NFFT / 2 + 1;
    for (int j = 0; j < STOI_J; j++) {
        double fl = STOI_MINFREQ * pow(2.0, (2.0 * j - 1) / 6.0);
        double fh = STOI_MINFREQ * pow(2.0, (2.0 * j + 1) / 6.0);
        int bl = 0, bh = 0;
        double dl = INFINITY, dh = INFINITY;
        for (int b = 0; b < nb; b++) {
            double f = (double)b * STOI_FS / STOI_NFFT;
            if ((f - fl) * (f - fl) < dl) dl = (f - fl) * (f - fl), bl = b;
            if ((f - fh) * (f - fh) < dh) dh = (f - fh) * (f - fh), bh = b;
        }
        lo[j] = bl;
        hi[j] = bh;
    }
}

#if MK_HAVE_SAMPLERATE
/* Resample x (n samples at sr) to 10 kHz into a new buffer; *m gets its length. */
static float *stoi_resample(const float *x, size_t n, int sr, size_t *m) {
    double ratio = (double)STOI_FS / sr;
    size_t cap = (size_t)ceil(n * ratio) + 64;
    float *y = mk_malloc(cap * sizeof *y);
    SRC_DATA d;
    memset(&d, 0, sizeof d);
    d.data_in = x;
    d.data_out = y;
    d.input_frames = (long)n;
    d.output_frames = (long)cap;
    d.src_ratio = ratio;
    int err = src_simple(&d, SRC_SINC_MEDIUM_QUALITY, 1);
    if (err) {
        mk_error("stoi: resampling %d Hz -> 10 kHz failed: %s", sr, src_strerror(err));
        free(y);
        return NULL;
    }
    *m = (size_t)d.output_frames_gen;
    return y;
}
#endif

/* Steps 2: remove frames more than 40 dB below the loudest clean frame.
 * Writes the shortened signals into xs/ys (each at least len long) and
 * returns their length. */
static size_t stoi_remove_silence(float *xs, float *ys, const float *x, const float *y,
                                  size_t len, const double *w) {
    size_t nf = stoi_nframes(len);
    double *energy = mk_malloc((nf ? nf : 1) * sizeof *energy);
    double emax = -INFINITY;
    for (size_t t = 0; t < nf; t++) {
        const float *f = x + t * STOI_HOP;
        double s = 0;
        for (int k = 0; k < STOI_FRAME; k++) s += (w[k] * f[k]) * (w[k] * f[k]);
        energy[t] = 20.0 * log10(sqrt(s) + STOI_EPS);
        if (energy[t] > emax) emax = energy[t];
    }
    memset(xs, 0, len * sizeof *xs);
    memset(ys, 0, len * sizeof *ys);
    size_t kept = 0;
    for (size_t t = 0; t < nf; t++) {
        if (!(energy[t] > emax - STOI_DYN_RANGE)) continue;
        const float *fx = x + t * STOI_HOP, *fy = y + t * STOI_HOP;
        float *ox = xs + kept * STOI_HOP, *oy = ys + kept * STOI_HOP;
        for (int k = 0; k < STOI_FRAME; k++) {
            ox[k] += (float)(w[k] * fx[k]);
            oy[k] += (float)(w[k] * fy[k]);
        }
        kept++;
    }
    free(energy);
    return kept ? (kept - 1) * STOI_HOP + STOI_FRAME : 0;
}

float audio_stoi(const float *clean, const float *proc, size_t n, int sr) {
#if !MK_HAVE_FFTW || !MK_HAVE_SAMPLERATE
    (void)clean, (void)proc, (void)n, (void)sr;
    mk_error("stoi: built without FFTW3 or libsamplerate");
    return -1;
#else
    if (sr < 1000 || sr > 768000) {
        mk_error("stoi: unsupported sample rate %d Hz", sr);
        return -1;
    }
    if (n > ((size_t)1 << 34)) {
        mk_error("stoi: input of %zu samples is too long", n);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(clean[i]) || !isfinite(proc[i])) {
            mk_error("stoi: sample %zu is not a finite number", i);
            return -1;
        }
    float *x = NULL, *y = NULL, *xs = NULL, *ys = NULL, *fin = NULL;
    double *env = NULL;
    fftwf_complex *fout = NULL;
    fftwf_plan plan = NULL;
    float result = -1;
    size_t len = n;
    if (sr != STOI_FS) {
        size_t ly = 0;
        x = stoi_resample(clean, n, sr, &len);
        if (!x) goto done;
        y = stoi_resample(proc, n, sr, &ly);
        if (!y) goto done;
        if (ly < len) len = ly;
    } else {
        x = mk_malloc((n ? n : 1) * sizeof *x);
        y = mk_malloc((n ? n : 1) * sizeof *y);
        memcpy(x, clean, n * sizeof *x);
        memcpy(y, proc, n * sizeof *y);
    }
    double w[STOI_FRAME];
    stoi_window(w);
    xs = mk_malloc((len ? len : 1) * sizeof *xs);
    ys = mk_malloc((len ? len : 1) * sizeof *ys);
    size_t slen = stoi_remove_silence(xs, ys, x, y, len, w);
    size_t M = stoi_nframes(slen);
    if (M < STOI_N) {
        mk_error("stoi: signal too short: %zu frames of 25.6 ms after silence removal, "
                 "need %d (about 0.4 s of speech)", M, STOI_N);
        goto done;
    }

    /* Step 3-4: band envelopes env[(s * J + j) * M + t], s = 0 clean, 1 processed. */
    int lo[STOI_J], hi[STOI_J];
    stoi_bands(lo, hi);
    env = mk_malloc(2 * STOI_J * M * sizeof *env);
    fin = fftwf_alloc_real(STOI_NFFT);
    fout = fftwf_alloc_complex(STOI_NFFT / 2 + 1);
#pragma omp critical(mk_fftw_plan)
    plan = fftwf_plan_dft_r2c_1d(STOI_NFFT, fin, fout, FFTW_ESTIMATE);
    if (!plan) {
        mk_error("stoi: FFTW could not plan a %d-point FFT", STOI_NFFT);
        goto done;
    }
    for (int s = 0; s < 2; s++) {
        const float *sig = s == 0 ? xs : ys;
        for (size_t t = 0; t < M; t++) {
            const float *f = sig + t * STOI_HOP;
            for (int k = 0; k < STOI_FRAME; k++) fin[k] = (float)(w[k] * f[k]);
            for (int k = STOI_FRAME; k < STOI_NFFT; k++) fin[k] = 0;
            fftwf_execute(plan);
            for (int j = 0; j < STOI_J; j++) {
                double e = 0;
                for (int b = lo[j]; b < hi[j]; b++)
                    e += (double)fout[b][0] * fout[b][0] + (double)fout[b][1] * fout[b][1];
                env[((size_t)s * STOI_J + j) * M + t] = sqrt(e);
            }
        }
    }

    /* Step 5-6: per segment and band, normalise, clip, correlate. */
    const double clip = 1.0 + pow(10.0, -STOI_BETA / 20.0);
    double sum = 0;
    size_t count = 0;
    for (size_t m = STOI_N; m <= M; m++) {
        for (int j = 0; j < STOI_J; j++) {
            const double *xe = env + (size_t)j * M + (m - STOI_N);
            const double *ye = env + ((size_t)STOI_J + j) * M + (m - STOI_N);
            double xx = 0, yy = 0;
            for (int i = 0; i < STOI_N; i++) xx += xe[i] * xe[i], yy += ye[i] * ye[i];
            double a = sqrt(xx) / (sqrt(yy) + STOI_EPS);
            double yp[STOI_N], mx = 0, my = 0;
            for (int i = 0; i < STOI_N; i++) {
                double v = a * ye[i], cap = clip * xe[i];
                yp[i] = v < cap ? v : cap;
                mx += xe[i];
                my += yp[i];
            }
            mx /= STOI_N;
            my /= STOI_N;
            double sxy = 0, sxx = 0, syy = 0;
            for (int i = 0; i < STOI_N; i++) {
                double dx = xe[i] - mx, dy = yp[i] - my;
                sxy += dx * dy;
                sxx += dx * dx;
                syy += dy * dy;
            }
            sum += sxy / ((sqrt(sxx) + STOI_EPS) * (sqrt(syy) + STOI_EPS));
            count++;
        }
    }
    result = (float)(sum / (double)count);

done:
    if (plan) {
#pragma omp critical(mk_fftw_plan)
        fftwf_destroy_plan(plan);
    }
    if (fin) fftwf_free(fin);
    if (fout) fftwf_free(fout);
    free(env);
    free(xs);
    free(ys);
    free(x);
    free(y);
    return result;
#endif
}
