/* stft.h — short-time Fourier transform and its inverse (FFTW3 single precision).
 *
 * Dimension letters: T frames, F = n_fft/2 + 1 frequency bins, P = n_fft - hop.
 *
 * Framing (the same offline and streaming, so the two agree sample for sample):
 * the signal x (n samples) is padded with P zeros in front and enough zeros
 * behind; frame t covers padded samples [t*hop, t*hop + n_fft), i.e. input
 * samples [t*hop - P, t*hop + hop). T = ceil((n + P) / hop), so every input
 * sample is covered by all n_fft/hop frames that overlap it.
 * Analysis: X_t = rfft(w * frame_t), w the periodic Hann window.
 * Synthesis: y = sum_t w * irfft(X_t) placed at frame t, divided by the
 * window sum  sum_t w^2  (weighted overlap-add), which is exact (perfect
 * reconstruction) whenever the window sum is non-zero.
 *
 * The defaults are the SEMamba setting expressed in time: a 25 ms window and a
 * 6.25 ms hop (n_fft 400 / hop 100 at 16 kHz, n_fft 200 / hop 50 at 8 kHz).
 *
 * ref: Allen & Rabiner 1977 (weighted overlap-add); Griffin & Lim 1984 (the
 * least-squares ISTFT with window-sum normalisation). */
#ifndef MK_AUDIO_STFT_H
#define MK_AUDIO_STFT_H

#include <stddef.h>

typedef struct {
    int n_fft, hop, F;
    float *window;  /* (n_fft) periodic Hann */
    float *wsum;    /* (hop) sum of w^2 over the n_fft/hop overlapping frames, per phase */
    float *tbuf;    /* (n_fft) time-domain scratch (FFTW-aligned) */
    void *fbuf;     /* (F) fftwf_complex scratch */
    void *plan_fwd, *plan_inv;
} audio_stft;

/* n_fft even, 1 <= hop <= n_fft, n_fft % hop == 0. 0 or -1 with mk_error. */
int audio_stft_init(audio_stft *s, int n_fft, int hop);
void audio_stft_free(audio_stft *s);

/* Number of frames for n samples: ceil((n + P) / hop). */
size_t audio_stft_frames(const audio_stft *s, size_t n);

/* One frame: frame (n_fft) raw samples -> re, im (F), windowed. */
void audio_stft_frame(audio_stft *s, float *re, float *im, const float *frame);
/* One frame inverse: re, im (F) -> out (n_fft) = w * irfft (not yet normalised). */
void audio_istft_frame(audio_stft *s, float *out, const float *re, const float *im);

/* Whole signal: x (n) -> re, im (T, F) with T = audio_stft_frames(n). */
void audio_stft_forward(audio_stft *s, float *re, float *im, const float *x, size_t n);
/* re, im (T, F) -> y (n) by weighted overlap-add with window-sum normalisation. */
void audio_stft_inverse(audio_stft *s, float *y, size_t n, const float *re, const float *im, size_t T);

#endif
