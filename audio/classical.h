/* classical.h — classical single-channel speech enhancers, the baselines the
 * Mamba enhancer is measured against.
 *
 * Both work on a Hann-windowed STFT (FFTW single precision) with weighted
 * overlap-add synthesis normalised by the summed squared window, so an
 * identity gain reproduces the input exactly. The noise power spectrum is
 * estimated from the lowest-energy frames of the input itself (no separate
 * noise recording needed). out receives n samples; out == noisy (in place)
 * is allowed. Memory use is proportional to n only. Both return 0, or -1
 * with mk_error set on an unusable sr (outside 1 kHz .. 768 kHz), a
 * non-finite input sample or an FFT plan failure. Thread-safe: FFTW plans
 * are made inside `#pragma omp critical(mk_fftw_plan)`.
 *
 * ref: S. F. Boll, "Suppression of acoustic noise in speech using spectral
 *      subtraction", IEEE TASSP 27(2), 1979; M. Berouti, R. Schwartz,
 *      J. Makhoul, "Enhancement of speech corrupted by acoustic noise",
 *      ICASSP 1979 (oversubtraction + spectral floor).
 * ref: Y. Ephraim, D. Malah, "Speech enhancement using a minimum mean-square
 *      error short-time spectral amplitude estimator", IEEE TASSP 32(6), 1984
 *      (decision-directed a priori SNR). */
#ifndef MK_AUDIO_CLASSICAL_H
#define MK_AUDIO_CLASSICAL_H

#include <stddef.h>

/* Magnitude spectral subtraction with SNR-dependent oversubtraction and a
 * spectral floor. */
int audio_spectral_subtraction(float *out, const float *noisy, size_t n, int sr);

/* Wiener filter with decision-directed a priori SNR (alpha = 0.98). */
int audio_wiener(float *out, const float *noisy, size_t n, int sr);

#endif
