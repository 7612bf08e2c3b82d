/* mix.c — noisy/clean pairs from real speech, synthetic speech and noise (see mix.h). */
#include "audio/mix.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audio/io.h"

extern char **environ;

static const char *noise_names[AUDIO_NOISE_COUNT] = {"white", "pink", "brown", "babble",
                                                     "dishes", "miaowing", "bike", "tap"};
static const char *noise_files[AUDIO_NOISE_COUNT] = {NULL, NULL, NULL, NULL,
                                                     "speech_commands_noise/doing_the_dishes.wav",
                                                     "speech_commands_noise/dude_miaowing.wav",
                                                     "speech_commands_noise/exercise_bike.wav",
                                                     "speech_commands_noise/running_tap.wav"};

const char *audio_noise_name(int type) { return type >= 0 && type < AUDIO_NOISE_COUNT ? noise_names[type] : "?"; }
int audio_noise_stationary(int type) { return type <= AUDIO_NOISE_BROWN; }

/* FSDD speakers: the last two are the held-out test speakers. */
static const char *fsdd_speakers[] = {"george", "jackson", "lucas", "nicolas", "theo", "yweweler"};
#define FSDD_TRAIN_SPEAKERS 4
/* espeak-ng voices + variants; the last three are held out. */
static const char *espeak_voices[] = {"en-us+m1", "en-us+m3", "en+f1", "en-us+f2", "en-gb-scotland+m2",
                                      "en-gb-x-rp+f3", "en+m5", "en-us+f5",
                                      /* test */ "en-us+m7", "en+f4", "en-gb-x-gbclan+m4"};
#define ESPEAK_TRAIN_VOICES 8
#define ESPEAK_VOICES 11

static const char *words[] = {
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "hundred",
    "the", "a", "house", "river", "green", "quickly", "speaks", "morning", "window", "after", "before",
    "yellow", "station", "train", "leaves", "at", "noon", "please", "call", "me", "tomorrow", "we",
    "found", "small", "boat", "near", "bridge", "children", "play", "outside", "when", "weather",
    "is", "warm", "open", "door", "kitchen", "table", "paper", "letter", "answer", "question", "music",
    "played", "softly", "evening", "light", "turned", "red", "blue", "cold", "water", "fresh", "bread",
    "market", "city", "road", "north", "south", "garden", "flowers", "bright", "dark", "minute", "hour"};

static void normalise_rms(float *x, size_t n, float target) {
    double e = 0;
    for (size_t i = 0; i < n; i++) e += (double)x[i] * x[i];
    e = sqrt(e / (n ? n : 1));
    if (e > 1e-9)
        for (size_t i = 0; i < n; i++) x[i] *= (float)(target / e);
}

/* Active-speech RMS: RMS over the 20 ms blocks whose energy is within 30 dB
 * of the loudest block (so leading/trailing silence does not count). */
static float active_rms(const float *x, size_t n, int sr) {
    size_t blk = (size_t)sr / 50;
    if (blk < 1) blk = 1;
    double emax = 0;
    for (size_t s = 0; s < n; s += blk) {
        double e = 0;
        size_t end = s + blk < n ? s + blk : n;
        for (size_t i = s; i < end; i++) e += (double)x[i] * x[i];
        e /= (end - s);
        if (e > emax) emax = e;
    }
    double sum = 0;
    size_t cnt = 0;
    for (size_t s = 0; s < n; s += blk) {
        double e = 0;
        size_t end = s + blk < n ? s + blk : n;
        for (size_t i = s; i < end; i++) e += (double)x[i] * x[i];
        if (e / (end - s) >= emax * 1e-3) sum += e, cnt += end - s;
    }
    return cnt ? (float)sqrt(sum / cnt) : 0.f;
}

static int add_utt(audio_corpus *c, int *cap, const char *path, int speaker) {
    audio_buf a;
    if (audio_read(path, &a)) return -1;
    float *mono = mk_malloc(sizeof(float) * a.frames);
    audio_mixdown(mono, a.data, a.frames, a.channels);
    size_t n;
    float *x = audio_resample(mono, a.frames, a.rate, c->sr, &n);
    free(mono);
    audio_free(&a);
    if (!x) return -1;
    float r = active_rms(x, n, c->sr);
    if (r < 1e-6f || n < (size_t)c->sr / 20) { /* silent or tiny: skip */
        free(x);
        return 0;
    }
    for (size_t i = 0; i < n; i++) x[i] *= 0.05f / r;
    if (c->n_utt == *cap) {
        *cap = *cap ? 2 * *cap : 1024;
        c->utt = mk_realloc(c->utt, sizeof(audio_utt) * *cap);
    }
    c->utt[c->n_utt++] = (audio_utt){x, n, speaker};
    return 0;
}

/* Run espeak-ng -w path with the given voice/speed/pitch on text. 0 on success. */
static int run_espeak(const char *path, const char *voice, int speed, int pitch, const char *text) {
    char sp[16], pt[16];
    snprintf(sp, sizeof sp, "%d", speed);
    snprintf(pt, sizeof pt, "%d", pitch);
    char *argv[] = {"espeak-ng", "-v", (char *)voice, "-s", sp, "-p", pt, "-w", (char *)path, (char *)text, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, "espeak-ng", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) return -1;
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int load_espeak(audio_corpus *c, int *cap, const char *dir, int count) {
    if (mkdir(dir, 0755) && errno != EEXIST) {
        mk_error("%s: cannot create the speech cache directory (%s)", dir, strerror(errno));
        return -1;
    }
    int v0 = c->test ? ESPEAK_TRAIN_VOICES : 0, nv = c->test ? ESPEAK_VOICES - ESPEAK_TRAIN_VOICES : ESPEAK_TRAIN_VOICES;
    int nw = (int)(sizeof words / sizeof words[0]);
    for (int i = 0; i < count; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s_%03d.wav", dir, c->test ? "test" : "train", i);
        int voice = v0 + i % nv;
        if (access(path, R_OK)) {
            mk_rng r;
            mk_rng_seed(&r, 1000003ULL * (c->test + 1) + i);
            char text[512] = "";
            int nword = 3 + mk_rng_int(&r, 6);
            for (int k = 0; k < nword; k++) {
                if (k) strcat(text, " ");
                strcat(text, words[mk_rng_int(&r, nw)]);
            }
            char tmp[4200];
            snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
            if (run_espeak(tmp, espeak_voices[voice], 130 + mk_rng_int(&r, 60), 30 + mk_rng_int(&r, 40), text) ||
                rename(tmp, path)) {
                unlink(tmp);
                mk_warn("espeak-ng failed (is it installed?): continuing without synthetic speech");
                return 0;
            }
        }
        if (add_utt(c, cap, path, 6 + voice)) return -1;
    }
    return 0;
}

int audio_corpus_load(audio_corpus *c, const char *data_dir, int test, int sr, const char *espeak_cache,
                      int n_espeak) {
    memset(c, 0, sizeof *c);
    c->sr = sr;
    c->test = test;
    int cap = 0;
    char path[8192], rel[256];
    if (!mk_find_data(data_dir, "fsdd/recordings/0_george_0.wav", path, sizeof path)) {
        mk_error("no FSDD speech found (looked in %s)", path);
        return -1;
    }
    size_t base_len = strlen(path) - strlen("recordings/0_george_0.wav");
    char base[4096];
    memcpy(base, path, base_len);
    base[base_len] = 0;
    int s0 = test ? FSDD_TRAIN_SPEAKERS : 0, s1 = test ? 6 : FSDD_TRAIN_SPEAKERS;
    for (int s = s0; s < s1; s++)
        for (int d = 0; d < 10; d++)
            for (int k = 0; k < 50; k++) {
                snprintf(path, sizeof path, "%srecordings/%d_%s_%d.wav", base, d, fsdd_speakers[s], k);
                if (access(path, R_OK)) continue;
                if (add_utt(c, &cap, path, s)) goto fail;
            }
    c->n_fsdd = c->n_utt;
    if (c->n_utt < 10) {
        mk_error("%s: too few FSDD recordings for the %s split", base, test ? "test" : "train");
        goto fail;
    }
    if (espeak_cache && n_espeak > 0 && load_espeak(c, &cap, espeak_cache, n_espeak)) goto fail;
    for (int t = 0; t < AUDIO_NOISE_COUNT; t++) {
        if (!noise_files[t]) continue;
        snprintf(rel, sizeof rel, "%s", noise_files[t]);
        if (!mk_find_data(data_dir, rel, path, sizeof path)) {
            mk_warn("no %s noise recording (looked in %s): generated noise is used instead", noise_names[t], path);
            continue;
        }
        audio_buf a;
        if (audio_read(path, &a)) goto fail;
        float *mono = mk_malloc(sizeof(float) * a.frames);
        audio_mixdown(mono, a.data, a.frames, a.channels);
        size_t n;
        float *x = audio_resample(mono, a.frames, a.rate, sr, &n);
        free(mono);
        audio_free(&a);
        if (!x) goto fail;
        size_t cut = n * 4 / 5; /* first 80 % trains, last 20 % tests */
        if (test) {
            memmove(x, x + cut, sizeof(float) * (n - cut));
            n -= cut;
        } else
            n = cut;
        c->noise[t] = x;
        c->noise_n[t] = n;
    }
    return 0;
fail:
    audio_corpus_free(c);
    return -1;
}

void audio_corpus_free(audio_corpus *c) {
    for (int i = 0; i < c->n_utt; i++) free(c->utt[i].x);
    free(c->utt);
    for (int t = 0; t < AUDIO_NOISE_COUNT; t++) free(c->noise[t]);
    memset(c, 0, sizeof *c);
}

void audio_gen_noise(float *out, size_t n, int type, mk_rng *rng) {
    /* pink: Paul Kellet's filter bank on white noise (about -3 dB/octave);
     * brown: a leaky integrator of white noise (-6 dB/octave above ~6 Hz at 8 kHz) */
    double b[7] = {0}, y = 0;
    for (size_t i = 0; i < n; i++) {
        float w = mk_rng_normal(rng);
        if (type == AUDIO_NOISE_PINK) {
            b[0] = 0.99886 * b[0] + w * 0.0555179;
            b[1] = 0.99332 * b[1] + w * 0.0750759;
            b[2] = 0.96900 * b[2] + w * 0.1538520;
            b[3] = 0.86650 * b[3] + w * 0.3104856;
            b[4] = 0.55000 * b[4] + w * 0.5329522;
            b[5] = -0.7616 * b[5] - w * 0.0168980;
            out[i] = (float)(b[0] + b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + w * 0.5362);
            b[6] = w * 0.115926;
        } else if (type == AUDIO_NOISE_BROWN) {
            y = 0.995 * y + w;
            out[i] = (float)y;
        } else
            out[i] = w;
    }
    if (type == AUDIO_NOISE_BROWN) { /* remove the slow drift's mean */
        double m = 0;
        for (size_t i = 0; i < n; i++) m += out[i];
        m /= n ? n : 1;
        for (size_t i = 0; i < n; i++) out[i] -= (float)m;
    }
    normalise_rms(out, n, 1.f);
}

/* Add utterance u into out[pos ...] with gain g, clipped to n. */
static void place(float *out, size_t n, const audio_utt *u, size_t pos, float g) {
    for (size_t i = 0; i < u->n && pos + i < n; i++) out[pos + i] += g * u->x[i];
}

void audio_make_clean(const audio_corpus *c, mk_rng *rng, float *out, size_t n) {
    memset(out, 0, sizeof(float) * n);
    size_t pos = (size_t)(mk_rng_uniform(rng) * 0.25f * c->sr);
    int placed = 0;
    while (pos < n && placed < 8) {
        const audio_utt *u = &c->utt[mk_rng_int(rng, c->n_utt)];
        float g = powf(10.f, (mk_rng_uniform(rng) * 6.f - 3.f) / 20.f);
        place(out, n, u, pos, g);
        placed++;
        pos += u->n + (size_t)((0.05f + 0.35f * mk_rng_uniform(rng)) * c->sr);
    }
}

void audio_make_noise(const audio_corpus *c, mk_rng *rng, int type, float *out, size_t n) {
    if (type == AUDIO_NOISE_BABBLE) {
        memset(out, 0, sizeof(float) * n);
        int talkers = 4 + mk_rng_int(rng, 4);
        for (int k = 0; k < talkers; k++) {
            /* each talker speaks back to back from a random start */
            long pos = -(long)mk_rng_int(rng, c->sr);
            while (pos < (long)n) {
                const audio_utt *u = &c->utt[mk_rng_int(rng, c->n_utt)];
                for (size_t i = 0; i < u->n; i++) {
                    long j = pos + (long)i;
                    if (j >= 0 && j < (long)n) out[j] += u->x[i];
                }
                pos += (long)u->n + mk_rng_int(rng, c->sr / 10 + 1);
            }
        }
        normalise_rms(out, n, 1.f);
    } else if (type >= AUDIO_NOISE_DISHES && type < AUDIO_NOISE_COUNT && c->noise[type] && c->noise_n[type] > 0) {
        const float *x = c->noise[type];
        size_t len = c->noise_n[type], off = (size_t)mk_rng_int(rng, (int)len);
        for (size_t i = 0; i < n; i++) out[i] = x[(off + i) % len];
        normalise_rms(out, n, 1.f);
    } else {
        int t = type <= AUDIO_NOISE_BROWN ? type : (type - AUDIO_NOISE_DISHES) % 3; /* missing recording */
        audio_gen_noise(out, n, t, rng);
    }
}

float audio_mix_snr(float *noisy, const float *clean, const float *noise, size_t n, float snr_db) {
    double ps = 0, pn = 0;
    for (size_t i = 0; i < n; i++) ps += (double)clean[i] * clean[i], pn += (double)noise[i] * noise[i];
    float g = pn > 0 ? (float)sqrt(ps / (pn * pow(10.0, snr_db / 10.0))) : 0.f;
    for (size_t i = 0; i < n; i++) noisy[i] = clean[i] + g * noise[i];
    return g;
}

void audio_make_pair(const audio_corpus *c, mk_rng *rng, float *noisy, float *clean, size_t n, int type,
                     float snr_db, float gain_db_range) {
    if (type < 0) type = mk_rng_int(rng, AUDIO_NOISE_COUNT);
    if (isnan(snr_db)) snr_db = -5.f + 20.f * mk_rng_uniform(rng);
    float *noise = mk_malloc(sizeof(float) * n);
    audio_make_clean(c, rng, clean, n);
    audio_make_noise(c, rng, type, noise, n);
    audio_mix_snr(noisy, clean, noise, n, snr_db);
    free(noise);
    if (gain_db_range > 0) {
        float g = powf(10.f, (2.f * mk_rng_uniform(rng) - 1.f) * gain_db_range / 20.f);
        for (size_t i = 0; i < n; i++) noisy[i] *= g, clean[i] *= g;
    }
    /* keep the mixture inside [-1, 1] as a file would */
    float peak = 0;
    for (size_t i = 0; i < n; i++) peak = fmaxf(peak, fabsf(noisy[i]));
    if (peak > 0.99f)
        for (size_t i = 0; i < n; i++) noisy[i] *= 0.99f / peak, clean[i] *= 0.99f / peak;
}
