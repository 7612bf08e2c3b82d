/* classical.c — spectral subtraction and the decision-directed Wiener filter.
 *
 * Both share one STFT engine (FFTW single precision):
 *   - frame length K = the power of two nearest 32 ms (256 at 8 kHz, 512 at
 *     16 kHz), hop K/4, periodic Hann window for analysis AND synthesis;
 *   - frame t covers samples [t*hop - (K - hop), ... + K): the signal is
 *     zero-extended on both sides, so every output sample gets the full set of
 *     K/hop overlapping frames and weighted overlap-add divided by
 *     sum_m w^2(p + m*hop) is exact (a unit gain returns the input to float
 *     rounding; the tests check it);
 *   - the noise power spectrum is the mean power spectrum of the 10 % of
 *     frames (at least 4) with the lowest energy, taken among frames that lie
 *     wholly inside the signal. Frame energies are kept (T doubles), spectra
 *     are recomputed rather than stored, so memory is O(n) and small.
 * Dimension letters: K frame / FFT length, B = K/2 + 1 bins, T frames. */
#include "audio/classical.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#if MK_HAVE_FFTW
#include <fftw3.h>
#endif

enum { CL_SPECSUB, CL_WIENER };

/* Spectral subtraction, magnitude domain (Boll), with Berouti's
 * SNR-dependent oversubtraction alpha = SS_ALPHA0 - SS_SLOPE * segSNR(dB),
 * segSNR clamped to [-5, 20] dB (alpha 2.2 .. 1.2), and spectral floor
 * SS_BETA * |N|. Berouti's power-domain values (4, 3/20) over-subtract in
 * the magnitude domain; these were picked on a small grid with FSDD train
 * clips + white noise (docs/AUDIO_METRICS.md). The #ifndef lets a sweep
 * override them with -D. */
#ifndef SS_ALPHA0
#define SS_ALPHA0 2.0
#endif
#ifndef SS_SLOPE
#define SS_SLOPE 0.04
#endif
#ifndef SS_BETA
#define SS_BETA 0.05
#endif
/* Wiener: decision-directed a priori SNR smoothing and its floor (-25 dB). */
#ifndef WF_ALPHA
#define WF_ALPHA 0.98
#endif
#ifndef WF_XI_MIN
#define WF_XI_MIN 0.0031622776601683794
#endif
#ifndef NOISE_FRACTION
#define NOISE_FRACTION 0.10
#endif
#ifndef NOISE_SCALE
#define NOISE_SCALE 1.0
#endif
#ifndef NOISE_MIN_FRAMES
#define NOISE_MIN_FRAMES 4
#endif

typedef struct {
    int K, hop, B;
    size_t T;     /* frames */
    float *w;     /* (K) periodic Hann */
    float *norm;  /* (hop) 1 / sum_m w^2(p + m*hop) */
#if MK_HAVE_FFTW
    float *buf;          /* (K) time-domain frame */
    fftwf_complex *spec; /* (B) */
    fftwf_plan fwd, inv;
#endif
} cl_stft;

static int cl_frame_len(int sr) {
    double target = 0.032 * sr;
    int K = 16;
    while (K * 2 <= 65536 && fabs(log2(K * 2.0 / target)) < fabs(log2((double)K / target))) K *= 2;
    return K;
}

/* Start sample of frame t (may be negative: zero-extended signal). */
static long cl_start(const cl_stft *s, size_t t) {
    return (long)t * s->hop - (s->K - s->hop);
}

#if MK_HAVE_FFTW
static void cl_close(cl_stft *s) {
#pragma omp critical(mk_fftw_plan)
    {
        if (s->fwd) fftwf_destroy_plan(s->fwd);
        if (s->inv) fftwf_destroy_plan(s->inv);
    }
    if (s->buf) fftwf_free(s->buf);
    if (s->spec) fftwf_free(s->spec);
    free(s->w);
    free(s->norm);
    memset(s, 0, sizeof *s);
}

static int cl_open(cl_stft *s, size_t n, int sr) {
    memset(s, 0, sizeof *s);
    s->K = cl_frame_len(sr);
    s->hop = s->K / 4;
    s->B = s->K / 2 + 1;
    s->T = (n + (size_t)(s->K - s->hop) + (size_t)s->hop - 1) / (size_t)s->hop;
    s->w = mk_malloc((size_t)s->K * sizeof *s->w);
    s->norm = mk_malloc((size_t)s->hop * sizeof *s->norm);
    for (int k = 0; k < s->K; k++) s->w[k] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * k / s->K));
    for (int p = 0; p < s->hop; p++) {
        double acc = 0;
        for (int k = p; k < s->K; k += s->hop) acc += (double)s->w[k] * s->w[k];
        s->norm[p] = (float)(1.0 / acc);
    }
    s->buf = fftwf_alloc_real((size_t)s->K);
    s->spec = fftwf_alloc_complex((size_t)s->B);
#pragma omp critical(mk_fftw_plan)
    {
        s->fwd = fftwf_plan_dft_r2c_1d(s->K, s->buf, s->spec, FFTW_ESTIMATE);
        s->inv = fftwf_plan_dft_c2r_1d(s->K, s->spec, s->buf, FFTW_ESTIMATE);
    }
    if (!s->buf || !s->spec || !s->fwd || !s->inv) {
        mk_error("enhance: FFTW could not plan a %d-point FFT", s->K);
        cl_close(s);
        return -1;
    }
    return 0;
}

/* Windowed frame t of x into s->buf, then its spectrum into s->spec. */
static void cl_analyse(cl_stft *s, const float *x, size_t n, size_t t) {
    long st = cl_start(s, t);
    for (int k = 0; k < s->K; k++) {
        long i = st + k;
        s->buf[k] = (i >= 0 && (size_t)i < n) ? s->w[k] * x[i] : 0.0f;
    }
    fftwf_execute(s->fwd);
}

/* Inverse FFT of s->spec, synthesis window, overlap-add into out. */
static void cl_synthesise(cl_stft *s, float *out, size_t n, size_t t) {
    fftwf_execute(s->inv); /* unnormalised: times K */
    long st = cl_start(s, t);
    const float scale = 1.0f / (float)s->K;
    for (int k = 0; k < s->K; k++) {
        long i = st + k;
        if (i >= 0 && (size_t)i < n) out[i] += s->buf[k] * s->w[k] * scale;
    }
}

static int cl_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Noise power spectrum lambda (B) from the lowest-energy frames. */
static void cl_noise_psd(cl_stft *s, const float *x, size_t n, double *lambda) {
    size_t T = s->T, nfull = 0;
    double *energy = mk_malloc(T * sizeof *energy);
    for (size_t t = 0; t < T; t++) {
        long st = cl_start(s, t);
        int full = st >= 0 && (size_t)st + (size_t)s->K <= n;
        double e = 0;
        for (int k = 0; k < s->K; k++) {
            long i = st + k;
            if (i >= 0 && (size_t)i < n) e += (double)(s->w[k] * x[i]) * (s->w[k] * x[i]);
        }
        /* Frames reaching past the ends only count if no full frame exists. */
        energy[t] = full ? e : INFINITY;
        nfull += full;
    }
    if (nfull == 0)
        for (size_t t = 0; t < T; t++) {
            double e = 0;
            long st = cl_start(s, t);
            for (int k = 0; k < s->K; k++) {
                long i = st + k;
                if (i >= 0 && (size_t)i < n) e += (double)(s->w[k] * x[i]) * (s->w[k] * x[i]);
            }
            energy[t] = e;
        }
    size_t pool = nfull ? nfull : T;
    size_t want = (size_t)ceil(NOISE_FRACTION * (double)pool);
    if (want < NOISE_MIN_FRAMES) want = NOISE_MIN_FRAMES;
    if (want > pool) want = pool;
    /* Energy threshold = the want-th smallest (selection by sorting a copy). */
    double *sorted = mk_malloc(T * sizeof *sorted);
    memcpy(sorted, energy, T * sizeof *sorted);
    qsort(sorted, T, sizeof *sorted, cl_cmp_double);
    double thr = sorted[want - 1];
    free(sorted);
    for (int b = 0; b < s->B; b++) lambda[b] = 0;
    size_t used = 0;
    for (size_t t = 0; t < T && used < want; t++) {
        if (!(energy[t] <= thr)) continue;
        cl_analyse(s, x, n, t);
        for (int b = 0; b < s->B; b++)
            lambda[b] += (double)s->spec[b][0] * s->spec[b][0] + (double)s->spec[b][1] * s->spec[b][1];
        used++;
    }
    for (int b = 0; b < s->B; b++) lambda[b] = NOISE_SCALE * lambda[b] / (double)used + 1e-20;
    free(energy);
}
#endif

static int cl_enhance(float *out, const float *noisy, size_t n, int sr, int mode) {
#if !MK_HAVE_FFTW
    (void)out, (void)noisy, (void)n, (void)sr, (void)mode;
    mk_error("enhance: built without FFTW3");
    return -1;
#else
    if (sr < 1000 || sr > 768000) {
        mk_error("enhance: unsupported sample rate %d Hz", sr);
        return -1;
    }
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(noisy[i])) {
            mk_error("enhance: sample %zu is not a finite number", i);
            return -1;
        }
    cl_stft s;
    if (cl_open(&s, n, sr)) return -1;
    /* out may alias noisy: read from a private copy then. */
    float *copy = NULL;
    const float *x = noisy;
    if (out == noisy) {
        copy = mk_malloc(n * sizeof *copy);
        memcpy(copy, noisy, n * sizeof *copy);
        x = copy;
    }
    double *lambda = mk_malloc((size_t)s.B * sizeof *lambda);
    double *prev = mk_malloc((size_t)s.B * sizeof *prev); /* Wiener: |S^_{t-1}|^2 */
    cl_noise_psd(&s, x, n, lambda);
    double lambda_sum = 0;
    for (int b = 0; b < s.B; b++) lambda_sum += lambda[b];

    memset(out, 0, n * sizeof *out);
    for (size_t t = 0; t < s.T; t++) {
        cl_analyse(&s, x, n, t);
        fftwf_complex *Y = s.spec;
        if (mode == CL_SPECSUB) {
            double py = 0;
            for (int b = 0; b < s.B; b++) py += (double)Y[b][0] * Y[b][0] + (double)Y[b][1] * Y[b][1];
            double snr = 10.0 * log10((py + 1e-30) / lambda_sum);
            if (snr < -5) snr = -5;
            if (snr > 20) snr = 20;
            double alpha = SS_ALPHA0 - SS_SLOPE * snr;
            for (int b = 0; b < s.B; b++) {
                double mag = hypot(Y[b][0], Y[b][1]), nmag = sqrt(lambda[b]);
                double smag = mag - alpha * nmag;
                if (smag < SS_BETA * nmag) smag = SS_BETA * nmag;
                double g = mag > 0 ? smag / mag : 0; /* keep the noisy phase */
                Y[b][0] = (float)(g * Y[b][0]);
                Y[b][1] = (float)(g * Y[b][1]);
            }
        } else {
            // ref: Ephraim & Malah 1984, decision-directed a priori SNR:
            //      xi = a |S^_{t-1}|^2 / lambda + (1 - a) max(gamma - 1, 0); first frame |S^_{-1}|^2 = lambda
            for (int b = 0; b < s.B; b++) {
                double p = (double)Y[b][0] * Y[b][0] + (double)Y[b][1] * Y[b][1];
                double gamma = p / lambda[b];
                double ml = gamma > 1 ? gamma - 1 : 0;
                double xi = t == 0 ? WF_ALPHA + (1 - WF_ALPHA) * ml
                                   : WF_ALPHA * prev[b] / lambda[b] + (1 - WF_ALPHA) * ml;
                if (xi < WF_XI_MIN) xi = WF_XI_MIN;
                double g = xi / (1 + xi);
                prev[b] = g * g * p;
                Y[b][0] = (float)(g * Y[b][0]);
                Y[b][1] = (float)(g * Y[b][1]);
            }
        }
        cl_synthesise(&s, out, n, t);
    }
    for (size_t i = 0; i < n; i++) {
        long p = ((long)i + s.K - s.hop) % s.hop; /* phase of i within the hop grid */
        out[i] *= s.norm[p];
    }
    free(lambda);
    free(prev);
    free(copy);
    cl_close(&s);
    return 0;
#endif
}

int audio_spectral_subtraction(float *out, const float *noisy, size_t n, int sr) {
    return cl_enhance(out, noisy, n, sr, CL_SPECSUB);
}

int audio_wiener(float *out, const float *noisy, size_t n, int sr) {
    return cl_enhance(out, noisy, n, sr, CL_WIENER);
}
