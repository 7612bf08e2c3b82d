/* test_audio.c — the speech-enhancement signal path: STFT perfect
 * reconstruction and a DFT cross-check, resampling, file I/O round trips and
 * bad files, mixing at an SNR, the model's gradient against finite
 * differences, streaming == offline for a causal model, and the shipped
 * models on held-out speech. */
#include <math.h>
#include <sndfile.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio/io.h"
#include "audio/metrics.h"
#include "audio/mix.h"
#include "audio/model.h"
#include "audio/stft.h"
#include "core/util.h"
#include "tests/test.h"

static char tmpdir[256];

static void test_stft(void) {
    const int cfgs[3][2] = {{200, 50}, {400, 100}, {256, 128}};
    mk_rng rng;
    mk_rng_seed(&rng, 1);
    for (int c = 0; c < 3; c++) {
        audio_stft s;
        audio_stft_init(&s, cfgs[c][0], cfgs[c][1]);
        size_t n = 1237;
        float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
        for (size_t i = 0; i < n; i++) x[i] = mk_rng_normal(&rng);
        size_t T = audio_stft_frames(&s, n);
        float *re = malloc(sizeof(float) * T * s.F), *im = malloc(sizeof(float) * T * s.F);
        audio_stft_forward(&s, re, im, x, n);
        audio_stft_inverse(&s, y, n, re, im, T);
        double err = test_rel_err_f(y, x, n, 1e-3);
        test_report(err < 1e-5, "stft_perfect_reconstruction", "n_fft %d hop %d: max rel err %.2e", cfgs[c][0],
                    cfgs[c][1], err);
        /* frame 7 against a direct DFT of the Hann-windowed samples */
        int t = 7, N = s.n_fft, P = N - s.hop;
        double maxd = 0, maxr = 1e-9;
        for (int k = 0; k < s.F; k++) {
            double ar = 0, ai = 0;
            for (int j = 0; j < N; j++) {
                long src = (long)t * s.hop - P + j;
                double v = src >= 0 && (size_t)src < n ? x[src] : 0;
                double w = 0.5 - 0.5 * cos(2 * M_PI * j / N);
                ar += v * w * cos(2 * M_PI * k * j / N);
                ai -= v * w * sin(2 * M_PI * k * j / N);
            }
            maxd = fmax(maxd, fmax(fabs(ar - re[t * s.F + k]), fabs(ai - im[t * s.F + k])));
            maxr = fmax(maxr, hypot(ar, ai));
        }
        test_report(maxd / maxr < 1e-5, "stft_matches_dft", "n_fft %d: max rel err %.2e", N, maxd / maxr);
        free(x), free(y), free(re), free(im);
        audio_stft_free(&s);
    }
    audio_stft s;
    int bad = audio_stft_init(&s, 200, 300);
    test_report(bad == -1, "stft_rejects_bad_hop", "%s", mk_last_error());
}

static void test_resample(void) {
    int sr = 16000, n = 16000;
    float *x = malloc(sizeof(float) * n);
    for (int i = 0; i < n; i++) x[i] = 0.5f * sinf(2 * M_PI * 440.0 * i / sr);
    size_t m;
    float *y = audio_resample(x, n, sr, 8000, &m);
    double e = 0, p = 0;
    for (size_t i = 200; i < m - 200; i++) {
        double ref = 0.5 * sin(2 * M_PI * 440.0 * i / 8000);
        e += (y[i] - ref) * (y[i] - ref), p += ref * ref;
    }
    double snr = 10 * log10(p / e);
    test_report(m == 8000 && snr > 40, "resample_16k_to_8k", "len %zu, sine SNR %.1f dB", m, snr);
    size_t m2;
    float *z = audio_resample(y, m, 8000, 44100, &m2);
    test_report(m2 == 44100, "resample_length", "8k->44.1k gives %zu samples", m2);
    free(x), free(y), free(z);
}

/* Write raw bytes to a file. */
static void put_file(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
}

/* A canonical 44-byte PCM WAV header. */
static size_t wav_header(unsigned char *h, uint32_t ch, uint32_t rate, uint32_t bits, uint32_t data_bytes) {
    uint32_t v;
    uint16_t s;
    memcpy(h, "RIFF", 4);
    v = 36 + data_bytes, memcpy(h + 4, &v, 4);
    memcpy(h + 8, "WAVEfmt ", 8);
    v = 16, memcpy(h + 16, &v, 4);
    s = 1, memcpy(h + 20, &s, 2);
    s = (uint16_t)ch, memcpy(h + 22, &s, 2);
    memcpy(h + 24, &rate, 4);
    v = rate * ch * bits / 8, memcpy(h + 28, &v, 4);
    s = (uint16_t)(ch * bits / 8), memcpy(h + 32, &s, 2);
    s = (uint16_t)bits, memcpy(h + 34, &s, 2);
    memcpy(h + 36, "data", 4);
    memcpy(h + 40, &data_bytes, 4);
    return 44;
}

static void test_io(void) {
    char path[512];
    /* stereo 16 kHz float WAV round trip, and FLAC */
    size_t n = 3000;
    float *x = malloc(sizeof(float) * 2 * n);
    mk_rng rng;
    mk_rng_seed(&rng, 2);
    for (size_t i = 0; i < 2 * n; i++) x[i] = 0.3f * (2 * mk_rng_uniform(&rng) - 1);
    const int fmts[2] = {SF_FORMAT_WAV | SF_FORMAT_FLOAT, SF_FORMAT_FLAC | SF_FORMAT_PCM_16};
    const char *names[2] = {"rt.wav", "rt.flac"};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[k]);
        int rc = audio_write(path, x, n, 2, 16000, fmts[k]);
        audio_buf a;
        int rr = rc ? -1 : audio_read(path, &a);
        double err = rr ? 1 : test_rel_err_f(a.data, x, 2 * n, 1e-3);
        test_report(!rc && !rr && a.frames == n && a.channels == 2 && a.rate == 16000 && a.format == fmts[k] &&
                        err < (k ? 1e-4 : 1e-7),
                    "io_roundtrip", "%s: %zu frames x %d ch @ %d Hz, max err %.1e", names[k], rr ? 0 : a.frames,
                    rr ? 0 : a.channels, rr ? 0 : a.rate, err);
        if (!rr) audio_free(&a);
    }
    /* writing into a missing directory fails and leaves nothing */
    snprintf(path, sizeof path, "%s/nodir/out.wav", tmpdir);
    int wr = audio_write(path, x, n, 2, 16000, 0);
    snprintf(path, sizeof path, "%s/nodir", tmpdir);
    test_report(wr == -1 && access(path, F_OK) != 0, "io_write_fails_cleanly", "%s", mk_last_error());
    free(x);

    /* bad files: each must fail with a message naming the file */
    unsigned char buf[4096];
    memset(buf, 0, sizeof buf);
    struct {
        const char *name, *what;
        uint32_t ch, rate, bits, data_bytes;
        size_t body;
    } bad[] = {
        {"zero.wav", "zero-length", 1, 8000, 16, 0, 0},
        {"trunc.wav", "truncated", 1, 8000, 16, 100000, 2000},
        {"chan.wav", "1000 channels", 1000, 8000, 16, 2000 * 1000, 2000},
        {"rate.wav", "rate 10 Hz", 1, 10, 16, 2000, 2000},
        {"fast.wav", "rate 4 GHz", 1, 4000000000u, 16, 2000, 2000},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t h = wav_header(buf, bad[i].ch, bad[i].rate, bad[i].bits, bad[i].data_bytes);
        snprintf(path, sizeof path, "%s/%s", tmpdir, bad[i].name);
        put_file(path, buf, h + bad[i].body);
        audio_buf a;
        int rc = audio_read(path, &a);
        test_report(rc == -1 && strstr(mk_last_error(), bad[i].name) != NULL, "io_rejects_bad_file", "%s: %s",
                    bad[i].what, mk_last_error());
    }
    snprintf(path, sizeof path, "%s/garbage.wav", tmpdir);
    for (int i = 0; i < 1000; i++) buf[i] = (unsigned char)(i * 37 + 11);
    put_file(path, buf, 1000);
    audio_buf a;
    int r1 = audio_read(path, &a);
    test_report(r1 == -1, "io_rejects_garbage", "%s", mk_last_error());
    r1 = audio_read("/nonexistent/x.wav", &a);
    test_report(r1 == -1, "io_rejects_missing", "%s", mk_last_error());
}

static void test_mix(void) {
    mk_rng rng;
    mk_rng_seed(&rng, 3);
    size_t n = 16000;
    float *s = malloc(sizeof(float) * 3 * n), *w = s + n, *y = w + n;
    for (size_t i = 0; i < n; i++) s[i] = 0.1f * sinf(0.05f * i) * (i % 4000 < 2000);
    audio_gen_noise(w, n, AUDIO_NOISE_PINK, &rng);
    audio_mix_snr(y, s, w, n, 5.f);
    double ps = 0, pn = 0;
    for (size_t i = 0; i < n; i++) ps += (double)s[i] * s[i], pn += (double)(y[i] - s[i]) * (y[i] - s[i]);
    double snr = 10 * log10(ps / pn);
    test_report(fabs(snr - 5) < 1e-3, "mix_snr", "asked 5 dB, got %.4f dB", snr);
    /* pink: power falls ~3 dB per octave; white: flat; brown: ~6 dB */
    const int types[3] = {AUDIO_NOISE_WHITE, AUDIO_NOISE_PINK, AUDIO_NOISE_BROWN};
    const double want[3] = {0, 3, 6};
    audio_stft st;
    audio_stft_init(&st, 256, 128);
    for (int k = 0; k < 3; k++) {
        audio_gen_noise(w, n, types[k], &rng);
        size_t T = audio_stft_frames(&st, n);
        float *re = malloc(sizeof(float) * T * st.F), *im = malloc(sizeof(float) * T * st.F);
        audio_stft_forward(&st, re, im, w, n);
        double band[2] = {0, 0}; /* bins 16..31 and 32..63: one octave apart */
        for (size_t t = 0; t < T; t++)
            for (int f = 16; f < 64; f++)
                band[f >= 32] += (re[t * st.F + f] * re[t * st.F + f] + im[t * st.F + f] * im[t * st.F + f]) /
                                 (f >= 32 ? 32 : 16);
        double drop = 10 * log10(band[0] / band[1]);
        test_report(fabs(drop - want[k]) < 1.5, "noise_colour", "%s: %.2f dB per octave (expect ~%.0f)",
                    audio_noise_name(types[k]), drop, want[k]);
        free(re), free(im);
    }
    audio_stft_free(&st);
    free(s);
}

/* A small enhancer (d_model 16, d_state 4) moved off its initialisation by
 * jitter * N(0, 1) per weight, so tests see a "trained" model; rng is left
 * seeded for the test's own draws. */
static void jittered_enhancer(audio_enhancer *m, audio_enhancer_cfg *c, int causal, int n_layer, unsigned long long seed,
                              unsigned long long rng_seed, float jitter, mk_rng *rng) {
    audio_enhancer_cfg_default(c, causal);
    c->d_model = 16, c->n_layer = n_layer, c->d_state = 4;
    audio_enhancer_create(m, c, seed);
    mk_rng_seed(rng, rng_seed);
    for (size_t i = 0; i < m->p.total; i++) m->p.data[i] += jitter * mk_rng_normal(rng);
}

/* A slowly modulated tone and the same plus white noise (std 0.1). */
static void tone_pair(float *clean, float *noisy, size_t n, mk_rng *rng) {
    for (size_t i = 0; i < n; i++) {
        clean[i] = 0.3f * sinf(0.07f * i) * sinf(0.003f * i);
        noisy[i] = clean[i] + 0.1f * mk_rng_normal(rng);
    }
}

/* d(loss)/d(param) by central differences for a few entries of each tensor. */
static void test_grad(void) {
    audio_enhancer_cfg c;
    audio_enhancer m;
    mk_rng rng;
    jittered_enhancer(&m, &c, 0, 1, 5, 4, 0.05f, &rng);
    size_t n = 800;
    int B = 2;
    float *noisy = malloc(sizeof(float) * 2 * B * n), *clean = noisy + B * n;
    tone_pair(clean, noisy, (size_t)B * n, &rng);
    audio_train_ws w;
    audio_train_ws_init(&w);
    w.sisdr_weight = 0.01f; /* include the waveform SI-SDR term (gradient through the ISTFT) */
    mk_params_zero_grad(&m.p);
    audio_enhancer_train_batch(&m, &w, noisy, clean, B, n, 1);
    const char *names[] = {"in_proj.weight", "in_proj.bias", "mask.weight", "mask.bias", "mask.skip",
                           "backbone.layers.0.in_proj.weight", "backbone.layers.0.dir1.A_log"};
    double worst = 0;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        int ti = mk_params_find(&m.p, names[k]);
        MK_ASSERT(ti >= 0);
        for (int j = 0; j < 3; j++) {
            size_t e = (size_t)(j * 7919 + 13) % m.p.t[ti].numel;
            float *p = mk_param(&m.p, ti) + e, old = *p, h = 1e-2f * fmaxf(1.f, fabsf(old));
            *p = old + h;
            double lp = audio_enhancer_train_batch(&m, &w, noisy, clean, B, n, 0);
            *p = old - h;
            double lm = audio_enhancer_train_batch(&m, &w, noisy, clean, B, n, 0);
            *p = old;
            double fd = (lp - lm) / (2 * h), an = mk_grad(&m.p, ti)[e];
            double rel = fabs(fd - an) / fmax(fmax(fabs(fd), fabs(an)), 1e-4);
            if (rel > worst) worst = rel;
        }
    }
    test_report(worst < 0.05, "enhancer_gradient", "max rel diff vs central differences %.3g over 21 entries", worst);
    audio_train_ws_free(&w);
    free(noisy);
    audio_enhancer_free(&m);
}

/* A causal model gives the same output offline and frame by frame. */
static void test_stream_equals_offline(void) {
    audio_enhancer_cfg c;
    audio_enhancer m;
    mk_rng rng;
    jittered_enhancer(&m, &c, 1, 2, 9, 6, 0.1f, &rng);
    size_t n = 3001;
    float *x = malloc(sizeof(float) * 3 * (n + 400)), *y1 = x + n + 400, *y2 = y1 + n + 400;
    for (size_t i = 0; i < n; i++) x[i] = 0.2f * sinf(0.05f * i) + 0.05f * mk_rng_normal(&rng);
    audio_enhance(&m, y1, x, n);
    audio_stream *s = audio_stream_new(&m);
    size_t k = 0, i = 0, blocks[] = {1, 7, 50, 333, 1000, 13};
    for (int b = 0; i < n; b = (b + 1) % 6) {
        size_t len = blocks[b] < n - i ? blocks[b] : n - i;
        k += audio_stream_push(s, x + i, len, y2 + k);
        i += len;
    }
    k += audio_stream_flush(s, y2 + k);
    double err = test_rel_err_f(y2, y1, n, 1e-3);
    test_report(k == n && err < 1e-4, "stream_equals_offline", "%zu of %zu samples, max rel diff %.2e", k, n, err);
    audio_stream_free(s);
    /* latency: an impulse at sample t must not affect output before t, and the
     * stream releases sample t once sample t + n_fft - 1 has arrived */
    test_report(audio_enhancer_latency(&m) * 1000 / c.sr == 25, "stream_latency_25ms", "%d samples at %d Hz",
                audio_enhancer_latency(&m), c.sr);
    s = audio_stream_new(&m);
    memset(x, 0, sizeof(float) * n);
    size_t out = audio_stream_push(s, x, 1000, y2);
    test_report(out >= 1000 - (size_t)c.n_fft && out <= 1000, "stream_bounded_delay", "1000 in, %zu out", out);
    audio_stream_free(s);
    audio_enhancer_free(&m);
    /* a bidirectional model refuses to stream */
    audio_enhancer_cfg_default(&c, 0);
    c.d_model = 8, c.n_layer = 1;
    audio_enhancer_create(&m, &c, 1);
    audio_stream *none = audio_stream_new(&m);
    test_report(none == NULL, "stream_needs_causal", "%s", mk_last_error());
    audio_enhancer_free(&m);
    free(x);
}

/* Deepening (train enhance --init --layers): the grown model enhances exactly as the
 * old one did, offline and streaming, yet the new layers' output projections get a
 * gradient, so training can use them. */
static void test_grow(void) {
    audio_enhancer_cfg c;
    audio_enhancer m;
    mk_rng rng;
    jittered_enhancer(&m, &c, 1, 2, 21, 22, 0.1f, &rng);
    size_t n = 1600, total0 = m.p.total;
    float *x = malloc(sizeof(float) * 5 * n), *y0 = x + n, *y1 = y0 + n, *clean = y1 + n, *s1 = clean + n;
    tone_pair(clean, x, n, &rng);
    audio_enhance(&m, y0, x, n);
    int rc = audio_enhancer_grow(&m, 4, 7);
    audio_enhance(&m, y1, x, n);
    audio_stream *s = audio_stream_new(&m);
    size_t k = audio_stream_push(s, x, n, s1);
    k += audio_stream_flush(s, s1 + k);
    audio_stream_free(s);
    double es = test_rel_err_f(s1, y0, n, 1e-3);
    test_report(rc == 0 && m.cfg.n_layer == 4 && m.p.total > total0 && !memcmp(y0, y1, sizeof(float) * n) && k == n &&
                    es < 1e-4,
                "enhancer_grow_same_function", "2 -> %d layers, %zu -> %zu parameters, offline output bit-identical, "
                "streaming max rel diff %.2e", m.cfg.n_layer, total0, m.p.total, es);
    audio_train_ws w;
    audio_train_ws_init(&w);
    mk_params_zero_grad(&m.p);
    audio_enhancer_train_batch(&m, &w, x, clean, 1, n, 1);
    double g = 0, z = 0;
    for (int l = 2; l < 4; l++) {
        int o = m.bb.layer[l].out_proj;
        for (size_t i = 0; i < m.p.t[o].numel; i++) g += fabs(mk_grad(&m.p, o)[i]), z += fabs(mk_param(&m.p, o)[i]);
    }
    test_report(z == 0 && g > 1e-6, "enhancer_grow_trainable", "new out_proj weights sum |w| %g, gradient sum |g| %.3g",
                z, g);
    audio_train_ws_free(&w);
    audio_enhancer_free(&m);
    free(x);
}

/* Save + load gives the same model. */
static void test_save_load(void) {
    audio_enhancer_cfg c;
    audio_enhancer_cfg_default(&c, 1);
    c.d_model = 8, c.n_layer = 1;
    audio_enhancer m, m2;
    audio_enhancer_create(&m, &c, 3);
    char path[512];
    snprintf(path, sizeof path, "%s/m.mkm", tmpdir);
    int rc = audio_enhancer_save(&m, path, 0, NULL), rl = rc ? -1 : audio_enhancer_load(&m2, path, 0);
    test_report(!rc && !rl && m2.p.total == m.p.total && !memcmp(m2.p.data, m.p.data, sizeof(float) * m.p.total) &&
                    m2.cfg.causal == 1,
                "model_save_load", "%zu parameters", m.p.total);
    if (!rl) audio_enhancer_free(&m2);
    audio_enhancer_free(&m);
}

/* The shipped models improve held-out speech (speaker-disjoint FSDD speakers,
 * unseen noise segments) at 0 dB: data-dependent, skipped without data. */
static void test_shipped(void) {
    char mp[4096], sp[4096];
    if (!mk_find_model("enhance.mkm", mp, sizeof mp) || !mk_find_model("enhance_stream.mkm", sp, sizeof sp)) {
        test_skip("shipped_models_improve", "no models/enhance*.mkm");
        return;
    }
    audio_corpus te;
    mk_quiet = 1;
    if (audio_corpus_load(&te, NULL, 1, 8000, NULL, 0)) {
        char why[4200];
        snprintf(why, sizeof why, "no data at %s", mk_last_error());
        test_skip("shipped_models_improve", why);
        return;
    }
    audio_enhancer off, str;
    if (audio_enhancer_load(&off, mp, 0) || audio_enhancer_load(&str, sp, 0)) {
        test_report(0, "shipped_models_load", "%s", mk_last_error());
        audio_corpus_free(&te);
        return;
    }
    size_t n = 16000;
    float *noisy = malloc(sizeof(float) * 3 * n), *clean = noisy + n, *y = clean + n;
    mk_rng rng;
    mk_rng_seed(&rng, 77);
    const int types[3] = {AUDIO_NOISE_WHITE, AUDIO_NOISE_PINK, AUDIO_NOISE_TAP};
    double din = 0, doff = 0, dstr = 0;
    for (int k = 0; k < 3; k++) {
        audio_make_pair(&te, &rng, noisy, clean, n, types[k], 0.f, 0);
        din += audio_sisdr(noisy, clean, n) / 3;
        audio_enhance(&off, y, noisy, n);
        doff += audio_sisdr(y, clean, n) / 3;
        audio_stream *s = audio_stream_new(&str);
        size_t got = audio_stream_push(s, noisy, n, y);
        audio_stream_flush(s, y + got);
        audio_stream_free(s);
        dstr += audio_sisdr(y, clean, n) / 3;
    }
    test_report(doff - din > 3 && dstr - din > 3, "shipped_models_improve",
                "0 dB white/pink/tap, held-out speakers: SI-SDR %.2f -> offline %.2f, streaming %.2f dB", din, doff, dstr);
    free(noisy);
    audio_enhancer_free(&off);
    audio_enhancer_free(&str);
    audio_corpus_free(&te);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mk_test_audio.%d", (int)getpid());
    mkdir(tmpdir, 0700);
    test_stft();
    test_resample();
    test_io();
    test_mix();
    test_grad();
    test_stream_equals_offline();
    test_save_load();
    test_grow();
    test_shipped();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_exit();
}
