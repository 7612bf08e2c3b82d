/* io.c — libsndfile reading/writing, mixdown and libsamplerate resampling. */
#include "audio/io.h"

#include <math.h>
#include <samplerate.h>
#include <sndfile.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"

int audio_check_header(const char *path, int channels, int rate) {
    if (channels < 1 || channels > AUDIO_MAX_CHANNELS) {
        mk_error("%s: %d channels is outside the supported 1..%d", path, channels, AUDIO_MAX_CHANNELS);
        return -1;
    }
    if (rate < AUDIO_MIN_RATE || rate > AUDIO_MAX_RATE) {
        mk_error("%s: sample rate %d Hz is outside the supported %d..%d Hz", path, rate, AUDIO_MIN_RATE,
                 AUDIO_MAX_RATE);
        return -1;
    }
    return 0;
}

/* libsndfile silently shortens a WAV/AIFF/CAF whose data chunk runs past the
 * end of the file, leaving only a note in its parse log ("data : N (should
 * be M)"). A cut-off download must be an error, not shorter audio. */
int audio_sf_truncated(void *sfp) {
    char log[8192];
    sf_command((SNDFILE *)sfp, SFC_GET_LOG_INFO, log, sizeof log);
    for (char *line = log; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if ((!strncmp(line, "data", 4) || !strncmp(line, "SSND", 4)) && strstr(line, "should be")) {
            char *nl = strchr(line, '\n');
            char *hit = strstr(line, "should be");
            if (!nl || hit < nl) return 1;
        }
    }
    return 0;
}

int audio_read(const char *path, audio_buf *a) {
    memset(a, 0, sizeof *a);
    SF_INFO info;
    memset(&info, 0, sizeof info);
    SNDFILE *sf = sf_open(path, SFM_READ, &info);
    if (!sf) {
        mk_error("%s: cannot read audio (%s)", path, sf_strerror(NULL));
        return -1;
    }
    if (audio_check_header(path, info.channels, info.samplerate)) goto fail;
    if (info.frames <= 0) {
        mk_error("%s: no audio samples (zero-length file)", path);
        goto fail;
    }
    if (audio_sf_truncated(sf)) {
        mk_error("%s: truncated audio (the file ends before its data chunk does)", path);
        goto fail;
    }
    size_t total;
    if (!mk_mul_ok((size_t)info.frames, (size_t)info.channels, &total) || total > AUDIO_MAX_SAMPLES) {
        mk_error("%s: %lld frames x %d channels is too long for a whole-file read (use --stream)", path,
                 (long long)info.frames, info.channels);
        goto fail;
    }
    a->data = mk_malloc(total * sizeof(float));
    sf_count_t got = sf_readf_float(sf, a->data, info.frames);
    if (got != info.frames) {
        mk_error("%s: truncated audio (header says %lld frames, found %lld)", path, (long long)info.frames,
                 (long long)(got < 0 ? 0 : got));
        goto fail;
    }
    for (size_t i = 0; i < total; i++)
        if (!isfinite(a->data[i])) {
            mk_error("%s: sample %zu is not a finite number", path, i / info.channels);
            goto fail;
        }
    a->frames = (size_t)info.frames;
    a->channels = info.channels;
    a->rate = info.samplerate;
    a->format = info.format;
    sf_close(sf);
    return 0;
fail:
    sf_close(sf);
    free(a->data);
    memset(a, 0, sizeof *a);
    return -1;
}

void audio_free(audio_buf *a) {
    free(a->data);
    memset(a, 0, sizeof *a);
}

/* Formats to try for writing: the source's, then its container with 16-bit
 * PCM, then float, then plain 16-bit WAV. */
static int pick_format(int format, int channels, int rate) {
    SF_INFO info = {.samplerate = rate, .channels = channels};
    int major = format & SF_FORMAT_TYPEMASK;
    int cands[4] = {format, major | SF_FORMAT_PCM_16, major | SF_FORMAT_FLOAT, SF_FORMAT_WAV | SF_FORMAT_PCM_16};
    for (int i = format ? 0 : 3; i < 4; i++) {
        info.format = cands[i];
        if (sf_format_check(&info)) return cands[i];
    }
    return 0;
}

int audio_write(const char *path, const float *data, size_t frames, int channels, int rate, int format) {
    int fmt = pick_format(format, channels, rate);
    if (!fmt) {
        mk_error("%s: cannot write %d channels at %d Hz in any format", path, channels, rate);
        return -1;
    }
    mk_atomic_file af;
    if (mk_atomic_open(&af, path, "wb")) return -1;
    SF_INFO info = {.samplerate = rate, .channels = channels, .format = fmt};
    SNDFILE *sf = sf_open_fd(fileno(af.f), SFM_WRITE, &info, 0);
    if (!sf) {
        mk_error("%s: cannot write audio (%s)", path, sf_strerror(NULL));
        mk_atomic_abort(&af);
        return -1;
    }
    /* float input beyond [-1, 1] is clipped when written as integers */
    sf_command(sf, SFC_SET_CLIPPING, NULL, SF_TRUE);
    sf_count_t put = sf_writef_float(sf, data, (sf_count_t)frames);
    int err = sf_error(sf);
    if (sf_close(sf) || put != (sf_count_t)frames || err) {
        mk_error("%s: writing audio failed (%s)", path, sf_error_number(err));
        mk_atomic_abort(&af);
        return -1;
    }
    return mk_atomic_commit(&af) ? -1 : 0;
}

void audio_mixdown(float *out, const float *in, size_t frames, int channels) {
    for (size_t i = 0; i < frames; i++) {
        float s = 0;
        for (int c = 0; c < channels; c++) s += in[i * channels + c];
        out[i] = s / channels;
    }
}

void audio_channel(float *out, const float *in, size_t frames, int channels, int c) {
    for (size_t i = 0; i < frames; i++) out[i] = in[i * channels + c];
}

struct audio_resampler {
    SRC_STATE *st;
    double ratio;
};

audio_resampler *audio_resampler_new(int sr_in, int sr_out) {
    double ratio = (double)sr_out / sr_in;
    if (!(ratio >= 1.0 / 256 && ratio <= 256)) {
        mk_error("cannot resample %d Hz to %d Hz (ratio beyond 256)", sr_in, sr_out);
        return NULL;
    }
    int err = 0;
    SRC_STATE *st = src_new(SRC_SINC_MEDIUM_QUALITY, 1, &err);
    if (!st) {
        mk_error("resampler: %s", src_strerror(err));
        return NULL;
    }
    audio_resampler *r = mk_calloc(1, sizeof *r);
    r->st = st;
    r->ratio = ratio;
    return r;
}

size_t audio_resampler_process(audio_resampler *r, const float *x, size_t n, int end, float *out, size_t cap) {
    size_t done = 0, used = 0;
    for (;;) {
        SRC_DATA d;
        memset(&d, 0, sizeof d);
        d.data_in = x ? x + used : NULL;
        d.input_frames = (long)(n - used);
        d.data_out = out + done;
        d.output_frames = (long)(cap - done);
        d.end_of_input = end;
        d.src_ratio = r->ratio;
        int err = src_process(r->st, &d);
        MK_ASSERT(err == 0);
        used += (size_t)d.input_frames_used;
        done += (size_t)d.output_frames_gen;
        if (used >= n && (d.output_frames_gen == 0 || !end)) break;
        MK_ASSERT(done < cap || used >= n); /* the caller's cap is sized for the ratio */
        if (done >= cap) break;
    }
    return done;
}

void audio_resampler_free(audio_resampler *r) {
    if (!r) return;
    src_delete(r->st);
    free(r);
}

float *audio_resample(const float *x, size_t n, int sr_in, int sr_out, size_t *nout) {
    size_t want = (size_t)llround((double)n * sr_out / sr_in);
    float *y = mk_calloc(want + 1, sizeof(float));
    *nout = want;
    if (sr_in == sr_out) {
        memcpy(y, x, n * sizeof(float));
        return y;
    }
    audio_resampler *r = audio_resampler_new(sr_in, sr_out);
    if (!r) {
        free(y);
        return NULL;
    }
    size_t cap = want + 256;
    float *tmp = mk_malloc(cap * sizeof(float));
    size_t got = audio_resampler_process(r, x, n, 1, tmp, cap);
    audio_resampler_free(r);
    memcpy(y, tmp, (got < want ? got : want) * sizeof(float)); /* pad the last sample or two with zeros */
    free(tmp);
    return y;
}
