/* io.h — audio files in and out (libsndfile), mono mixdown and resampling
 * (libsamplerate).
 *
 * Samples are float in [-1, 1], interleaved (frames, channels). Everything
 * libsndfile reads is accepted (WAV, FLAC, OGG/Vorbis, Opus, AIFF, AU, ...).
 * Files are validated before any allocation: channel count, sample rate and
 * length must lie inside the AUDIO_MAX_* limits, and a file whose data ends
 * before its header says is rejected as truncated. */
#ifndef MK_AUDIO_IO_H
#define MK_AUDIO_IO_H

#include <stddef.h>

#define AUDIO_MAX_CHANNELS 64
#define AUDIO_MIN_RATE 1000
#define AUDIO_MAX_RATE 768000
#define AUDIO_MAX_SAMPLES ((size_t)1 << 28) /* whole-file reads: ~93 min at 48 kHz mono */

typedef struct {
    float *data;   /* (frames, channels) interleaved */
    size_t frames;
    int channels, rate;
    int format;    /* libsndfile SF_FORMAT_* of the source, reused when writing */
} audio_buf;

/* Read a whole file. 0, or -1 with mk_error("PATH: what is wrong"). */
int audio_read(const char *path, audio_buf *a);
void audio_free(audio_buf *a);

/* Write a (interleaved) in format (0: 16-bit PCM WAV) atomically: a temp
 * file renamed into place, nothing left behind on failure. Falls back to
 * the format's container with 16-bit PCM, then float, if the subtype cannot
 * be written. 0 or -1 with mk_error. */
int audio_write(const char *path, const float *data, size_t frames, int channels, int rate, int format);

/* out (frames) = mean over channels of in (frames, channels). */
void audio_mixdown(float *out, const float *in, size_t frames, int channels);
/* out (frames) = channel c of in (frames, channels). */
void audio_channel(float *out, const float *in, size_t frames, int channels, int c);

/* Resample a mono signal with libsamplerate (sinc, medium quality). Returns a
 * malloc'd buffer of exactly round(n * sr_out / sr_in) samples in *nout, or
 * NULL with mk_error. sr_in == sr_out copies. */
float *audio_resample(const float *x, size_t n, int sr_in, int sr_out, size_t *nout);

/* Streaming resampler for one channel (constant memory). */
typedef struct audio_resampler audio_resampler;
audio_resampler *audio_resampler_new(int sr_in, int sr_out); /* NULL + mk_error on failure */
/* Push n input samples (end = 1 on the last call, n may be 0 then); writes at
 * most cap output samples, returns how many. cap >= n*ratio + 64 suffices. */
size_t audio_resampler_process(audio_resampler *r, const float *x, size_t n, int end, float *out, size_t cap);
void audio_resampler_free(audio_resampler *r);

/* Check a file header's channel count and rate against the limits above.
 * 0 or -1 with mk_error naming path. */
int audio_check_header(const char *path, int channels, int rate);

/* 1 if libsndfile's parse log of an open SNDFILE* says the data chunk runs
 * past the end of the file (libsndfile itself just shortens such files). */
int audio_sf_truncated(void *sf);

#endif
