/* mix.h — noisy/clean training and test pairs, built on the fly.
 *
 * Clean speech: FSDD recordings (real, 8 kHz) plus sentences synthesised with
 * espeak-ng at data-preparation time (cached as WAV under a cache directory,
 * never shipped). Speaker-disjoint split: FSDD speakers theo and yweweler and
 * two espeak voice variants are held out for testing; the rest train.
 * A clean segment is 1-3 utterances with random pauses, at a random gain.
 *
 * Noise: the real Speech Commands background recordings (first 80 % of each
 * file trains, last 20 % tests), generated white, pink and brown noise, and
 * babble (4-7 utterances of the same split summed). Mixed at an SNR drawn
 * uniformly from [-5, 15] dB (training) or fixed (tests).
 *
 * All signals are at the model rate (8 kHz). */
#ifndef MK_AUDIO_MIX_H
#define MK_AUDIO_MIX_H

#include <stddef.h>

#include "core/util.h"

enum {
    AUDIO_NOISE_WHITE = 0,
    AUDIO_NOISE_PINK,
    AUDIO_NOISE_BROWN,
    AUDIO_NOISE_BABBLE,
    AUDIO_NOISE_DISHES, /* real recordings from here on */
    AUDIO_NOISE_MIAOWING,
    AUDIO_NOISE_BIKE,
    AUDIO_NOISE_TAP,
    AUDIO_NOISE_COUNT
};
const char *audio_noise_name(int type);
/* 1 for the stationary noises (white, pink, brown). */
int audio_noise_stationary(int type);

typedef struct {
    float *x;
    size_t n;
    int speaker; /* index into the corpus's speaker names */
} audio_utt;

typedef struct {
    int sr, test;
    audio_utt *utt;
    int n_utt, n_fsdd;
    float *noise[AUDIO_NOISE_COUNT]; /* real recordings (this split's part), NULL for generated */
    size_t noise_n[AUDIO_NOISE_COUNT];
} audio_corpus;

/* Load the split (test = 0: train, 1: test) from data_dir (NULL: the data
 * search path). espeak_cache: directory for synthesised speech (created; NULL
 * or n_espeak = 0: no synthetic speech). Real noise recordings that are
 * missing are reported and their types fall back to generated noise; missing
 * FSDD is an error. 0 or -1 with mk_error. */
int audio_corpus_load(audio_corpus *c, const char *data_dir, int test, int sr, const char *espeak_cache,
                      int n_espeak);
void audio_corpus_free(audio_corpus *c);

/* Generated noise (white / pink / brown, unit RMS). */
void audio_gen_noise(float *out, size_t n, int type, mk_rng *rng);
/* A clean segment of n samples (speech from the corpus, RMS ~ 0.05 before gain). */
void audio_make_clean(const audio_corpus *c, mk_rng *rng, float *out, size_t n);
/* A noise segment of n samples of the given type (unit RMS). */
void audio_make_noise(const audio_corpus *c, mk_rng *rng, int type, float *out, size_t n);
/* noisy = clean + g * noise with g chosen for the SNR (dB); returns g. */
float audio_mix_snr(float *noisy, const float *clean, const float *noise, size_t n, float snr_db);

/* One training / test pair: type < 0 draws a noise type, snr_db NAN draws from
 * [-5, 15]; gain_db_range > 0 applies a random gain of +-range dB to both. */
void audio_make_pair(const audio_corpus *c, mk_rng *rng, float *noisy, float *clean, size_t n, int type,
                     float snr_db, float gain_db_range);

#endif
