/* stft.c — STFT / weighted overlap-add ISTFT on FFTW3 (contract in stft.h). */
#include "audio/stft.h"

#include <fftw3.h>
#include <math.h>
#include <string.h>

#include "core/util.h"

int audio_stft_init(audio_stft *s, int n_fft, int hop) {
    memset(s, 0, sizeof *s);
    if (n_fft < 4 || n_fft > 65536 || n_fft % 2 || hop < 1 || hop > n_fft / 2 || n_fft % hop) {
        mk_error("invalid STFT (n_fft %d, hop %d): need even n_fft, hop <= n_fft/2 dividing it", n_fft, hop);
        return -1;
    }
    s->n_fft = n_fft;
    s->hop = hop;
    s->F = n_fft / 2 + 1;
    s->window = mk_malloc(sizeof(float) * n_fft);
    s->wsum = mk_malloc(sizeof(float) * hop);
    for (int i = 0; i < n_fft; i++) /* periodic Hann: COLA for hop = n_fft/2, n_fft/4, ... */
        s->window[i] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * i / n_fft));
    for (int j = 0; j < hop; j++) {
        double a = 0;
        for (int k = j; k < n_fft; k += hop) a += (double)s->window[k] * s->window[k];
        s->wsum[j] = (float)a;
    }
    s->tbuf = fftwf_alloc_real(n_fft);
    s->fbuf = fftwf_alloc_complex(s->F);
    /* FFTW's planner is not thread-safe: callers create STFT objects from one thread. */
    s->plan_fwd = fftwf_plan_dft_r2c_1d(n_fft, s->tbuf, s->fbuf, FFTW_ESTIMATE);
    s->plan_inv = fftwf_plan_dft_c2r_1d(n_fft, s->fbuf, s->tbuf, FFTW_ESTIMATE);
    MK_ASSERT(s->plan_fwd && s->plan_inv);
    return 0;
}

void audio_stft_free(audio_stft *s) {
    if (s->plan_fwd) fftwf_destroy_plan(s->plan_fwd);
    if (s->plan_inv) fftwf_destroy_plan(s->plan_inv);
    if (s->tbuf) fftwf_free(s->tbuf);
    if (s->fbuf) fftwf_free(s->fbuf);
    free(s->window);
    free(s->wsum);
    memset(s, 0, sizeof *s);
}

size_t audio_stft_frames(const audio_stft *s, size_t n) {
    size_t P = (size_t)(s->n_fft - s->hop);
    return (n + P + s->hop - 1) / s->hop;
}

void audio_stft_frame(audio_stft *s, float *re, float *im, const float *frame) {
    for (int i = 0; i < s->n_fft; i++) s->tbuf[i] = frame[i] * s->window[i];
    fftwf_execute(s->plan_fwd);
    fftwf_complex *X = s->fbuf;
    for (int f = 0; f < s->F; f++) {
        re[f] = X[f][0];
        im[f] = X[f][1];
    }
}

void audio_istft_frame(audio_stft *s, float *out, const float *re, const float *im) {
    fftwf_complex *X = s->fbuf;
    for (int f = 0; f < s->F; f++) {
        X[f][0] = re[f];
        X[f][1] = im[f];
    }
    /* the inverse of a real signal's spectrum: DC and Nyquist bins are real */
    X[0][1] = 0;
    X[s->F - 1][1] = 0;
    fftwf_execute(s->plan_inv); /* unnormalised: scale by 1/n_fft */
    float sc = 1.0f / s->n_fft;
    for (int i = 0; i < s->n_fft; i++) out[i] = s->tbuf[i] * sc * s->window[i];
}

void audio_stft_forward(audio_stft *s, float *re, float *im, const float *x, size_t n) {
    size_t T = audio_stft_frames(s, n);
    long P = s->n_fft - s->hop;
    float *frame = mk_malloc(sizeof(float) * s->n_fft);
    for (size_t t = 0; t < T; t++) {
        long start = (long)(t * s->hop) - P;
        for (int i = 0; i < s->n_fft; i++) {
            long j = start + i;
            frame[i] = j >= 0 && (size_t)j < n ? x[j] : 0.f;
        }
        audio_stft_frame(s, re + t * s->F, im + t * s->F, frame);
    }
    free(frame);
}

void audio_stft_inverse(audio_stft *s, float *y, size_t n, const float *re, const float *im, size_t T) {
    long P = s->n_fft - s->hop;
    float *frame = mk_malloc(sizeof(float) * s->n_fft);
    memset(y, 0, sizeof(float) * n);
    for (size_t t = 0; t < T; t++) {
        audio_istft_frame(s, frame, re + t * s->F, im + t * s->F);
        long start = (long)(t * s->hop) - P;
        for (int i = 0; i < s->n_fft; i++) {
            long j = start + i;
            if (j >= 0 && (size_t)j < n) y[j] += frame[i];
        }
    }
    /* every sample is covered by all overlapping frames when T = audio_stft_frames(n);
     * with fewer frames the tail is only partly covered and is left as is */
    for (size_t j = 0; j < n; j++) {
        float w = s->wsum[(j + P) % s->hop];
        y[j] = w > 1e-6f ? y[j] / w : 0.f;
    }
    free(frame);
}
