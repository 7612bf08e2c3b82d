/* metrics.h — objective speech-quality metrics: SI-SDR, SNR and STOI.
 *
 * All take mono float signals of the same length n. The dB metrics are
 * computed in double precision internally and saturate at +/-200 dB rather
 * than returning inf (an exact copy gives +200, silence against speech -200).
 *
 * ref: J. Le Roux, S. Wisdom, H. Erdogan, J. R. Hershey, "SDR – half-baked
 *      or well done?", ICASSP 2019 (SI-SDR).
 * ref: C. H. Taal, R. C. Hendriks, R. Heusdens, J. Jensen, "An algorithm for
 *      intelligibility prediction of time-frequency weighted noisy speech",
 *      IEEE TASLP 19(7), 2011 (STOI). */
#ifndef MK_AUDIO_METRICS_H
#define MK_AUDIO_METRICS_H

#include <stddef.h>

/* Scale-invariant SDR in dB. Both signals are made zero-mean first; the
 * target is the projection of est onto ref, the rest is the error.
 * NAN for n == 0 or a silent (constant) reference. */
float audio_sisdr(const float *est, const float *ref, size_t n);

/* Plain SNR in dB: 10 log10(|ref|^2 / |ref - est|^2). */
float audio_snr(const float *est, const float *ref, size_t n);

/* Classic (non-extended) STOI of processed speech `proc` against `clean`,
 * both at sample rate sr (resampled to 10 kHz with libsamplerate). Returns
 * a score in about [0, 1] (higher = more intelligible), or -1 with mk_error
 * set if the signals are too short (< 30 frames after silent-frame removal),
 * sr is unusable (outside 1 kHz .. 768 kHz) or a sample is not finite.
 * Thread-safe (FFTW planning inside `#pragma omp critical(mk_fftw_plan)`). */
float audio_stoi(const float *clean, const float *proc, size_t n, int sr);

#endif
