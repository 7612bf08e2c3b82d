/* test_fuzz.c — mutation fuzzing of every parser that reads user files from
 * memory: the time-series CSV reader, the MIL bag reader (CSV and binary) and
 * the image decoder; and, on files, the audio reader (libsndfile parses from a
 * path) and the model loaders. Each starts from valid inputs (hand-written ones, and the
 * first lines of the real data files when the data search path has them, the
 * shipped example images), applies random edits (bytes replaced by ones that
 * matter to the format, inserted, deleted, lines duplicated, files cut), and
 * parses the result. Under ASan/UBSan any out-of-bounds access, leak or
 * undefined behaviour fails the run; besides, every call must either succeed
 * with a consistent, finite result or fail with one line that starts with the
 * file name. Deterministic (fixed seeds). */
#include <math.h>
#include <string.h>
#include <unistd.h>

#if MK_HAVE_ZLIB
#include <zlib.h>
#endif

#if MK_HAVE_SNDFILE
#include <sndfile.h>

#include "audio/io.h"
#include "audio/model.h"
#endif
#include "core/util.h"
#include "pathology/mil_bags.h"
#include "pathology/mil_model.h"
#include "tests/test.h"
#include "timeseries/ts.h"
#include "vision/image.h"
#include "vision/model.h"
#include "vision/points.h"

static mk_rng rng;

typedef struct {
    unsigned char *b;
    size_t n, cap;
} buf;

static void buf_set(buf *d, const unsigned char *s, size_t n) {
    if (n + 1 > d->cap) {
        d->cap = 2 * n + 64;
        d->b = mk_realloc(d->b, d->cap);
    }
    memcpy(d->b, s, n);
    d->n = n;
    d->b[n] = 0;
}

/* One to four random edits. `alpha` biases replaced/inserted bytes towards
 * the format's structural characters. */
static void mutate(buf *d, const char *alpha, size_t na) {
    int k = 1 + mk_rng_int(&rng, 4);
    for (int e = 0; e < k; e++) {
        size_t n = d->n;
        if (d->n + 256 > d->cap) {
            d->cap = 2 * d->n + 512;
            d->b = mk_realloc(d->b, d->cap);
        }
        int op = mk_rng_int(&rng, 7);
        size_t at = n ? (size_t)mk_rng_int(&rng, (int)n) : 0;
        unsigned char c = mk_rng_int(&rng, 4) ? (unsigned char)alpha[mk_rng_int(&rng, (int)na)]
                                              : (unsigned char)mk_rng_int(&rng, 256);
        if (op == 0 && n) { /* replace */
            d->b[at] = c;
        } else if (op == 1) { /* insert */
            memmove(d->b + at + 1, d->b + at, n - at);
            d->b[at] = c;
            d->n++;
        } else if (op == 2 && n) { /* delete a run */
            size_t len = 1 + (size_t)mk_rng_int(&rng, 16);
            if (at + len > n) len = n - at;
            memmove(d->b + at, d->b + at + len, n - at - len);
            d->n -= len;
        } else if (op == 3) { /* truncate */
            d->n = at;
        } else if (op == 4 && n) { /* duplicate a stretch (a line, a header field) */
            size_t len = 1 + (size_t)mk_rng_int(&rng, 200);
            if (at + len > n) len = n - at;
            memmove(d->b + at + len, d->b + at, n - at);
            d->n += len;
        } else if (op == 5 && n >= 4) { /* overwrite 4 bytes with an extreme integer (binary counts) */
            static const uint32_t ext[] = {0, 1, 0x7fffffff, 0x80000000u, 0xffffffffu, 65537, 100000};
            uint32_t v = ext[mk_rng_int(&rng, 7)];
            if (at + 4 > n) at = n - 4;
            memcpy(d->b + at, &v, 4);
        } else if (n) { /* flip one bit */
            d->b[at] ^= (unsigned char)(1u << mk_rng_int(&rng, 8));
        }
        d->b[d->n] = 0;
    }
}

/* A failure message must be one line naming the file. */
static int good_error(const char *name) {
    const char *m = mk_last_error();
    return m && !strncmp(m, name, strlen(name)) && !strchr(m, '\n') && strlen(m) > strlen(name) + 2;
}

/* The refusal branch of every loop: count it; the message must name the file. */
static int refused_well(const char *test, const char *file, const char *where, int it, int *rejected) {
    (*rejected)++;
    if (good_error(file)) return 1;
    test_report(0, test, "%siteration %d: bad error message '%s'", where, it, mk_last_error());
    return 0;
}

static unsigned char *read_head(const char *path, int lines, size_t *n) {
    size_t len;
    char *t = mk_read_file(path, (size_t)64 << 20, &len);
    if (!t) return NULL;
    size_t i = 0;
    for (int l = 0; i < len && l < lines; i++)
        if (t[i] == '\n') l++;
    *n = i;
    return (unsigned char *)t;
}

/* ---------------------------------------------------------------- CSV tables */
static void fuzz_ts_csv(void) {
    static const char *hand[] = {
        "date,OT,load,name\n2020-01-01 00:00:00,1.5,2,a\n2020-01-01 01:00:00,NA,3,b\n"
        "2020-01-01 02:00:00,2.5,,c\n2020-01-01 03:00:00,3.0,5e-1,d\n",
        "t;\"x, quoted\";y\r\n1;2,5;3\r\n2;\"4\";5\r\n3;nan;6\r\n4;8;null\r\n",
        "month\tsales\n2019-01\t10\n2019-02\t12\n2019-03\t9\n2019-04\t14\n",
        "\xEF\xBB\xBF" "a,b\n1,2\n3,4\n5,6\n",
    };
    const char *alpha = ",;\t\"\n\r0123456789-+.:eE TNAna?/";
    buf d = {0};
    int n_in = 0, ok = 1, accepted = 0, rejected = 0;
    const unsigned char *seeds[8];
    size_t seed_n[8];
    char *owned[2] = {NULL, NULL};
    for (size_t k = 0; k < sizeof hand / sizeof *hand; k++)
        seeds[n_in] = (const unsigned char *)hand[k], seed_n[n_in++] = strlen(hand[k]);
    static const char *real[] = {"ETT/ETTh1.csv", "illness/national_illness.csv"};
    for (int k = 0; k < 2; k++) {
        char path[4096];
        size_t n;
        if (mk_find_data(NULL, real[k], path, sizeof path) && (owned[k] = (char *)read_head(path, 30, &n)))
            seeds[n_in] = (const unsigned char *)owned[k], seed_n[n_in++] = n;
    }
    mk_quiet = 1;
    const int iters = 4000;
    for (int it = 0; it < iters && ok; it++) {
        int s = it % n_in;
        buf_set(&d, seeds[s], seed_n[s]);
        mutate(&d, alpha, strlen(alpha));
        ts_table t;
        if (ts_csv_parse(&t, (const char *)d.b, d.n, "fuzz.csv") == 0) {
            accepted++;
            ok = t.n_rows >= 1 && t.n_cols >= 1 && t.x && t.names;
            for (long i = 0; ok && i < (long)t.n_rows * t.n_cols; i++) ok = isfinite(t.x[i]);
            if (!ok) test_report(0, "fuzz_ts_csv", "iteration %d: accepted an inconsistent table (%d x %d)", it, t.n_rows,
                                 t.n_cols);
            ts_table_free(&t);
        } else {
            ok = refused_well("fuzz_ts_csv", "fuzz.csv", "", it, &rejected);
        }
    }
    mk_quiet = 0;
    if (ok)
        test_report(1, "fuzz_ts_csv", "%d mutated CSV files from %d seeds (%d real): %d parsed, %d refused with one line",
                    iters, n_in, n_in - 4, accepted, rejected);
    free(owned[0]), free(owned[1]), free(d.b);
}

/* ---------------------------------------------------------------- MIL bags */
static int check_bags(const mil_bags *b) {
    if (b->n_bags < 1 || b->F < 1 || b->n_inst < 1 || b->start[0] != 0 || b->start[b->n_bags] != b->n_inst) return 0;
    for (int i = 0; i < b->n_bags; i++)
        if (mil_bag_len(b, i) < 1 || b->label[i] < -1 || b->label[i] > 1) return 0;
    for (long i = 0; i < b->n_inst * b->F; i++)
        if (!isfinite(b->x[i])) return 0;
    return 1;
}

static void fuzz_mil(const char *dir) {
    static const char *hand = "bag_id,label,f1,f2,f3\nb1,1,0.5,1,2\nb1,1,3,-4,5e2\nb2,0,1,1,1\nb3,?,2,2,2\nb2,0,0,0,0\n";
    const char *alpha = ",\n\r0123456789-+.eE?abn ";
    buf d = {0};
    const unsigned char *seeds[3];
    size_t seed_n[3];
    int n_in = 0;
    char *owned = NULL;
    seeds[n_in] = (const unsigned char *)hand, seed_n[n_in++] = strlen(hand);
    char path[4096];
    size_t n;
    if (mk_find_data(NULL, "mil/musk1.csv", path, sizeof path) && (owned = (char *)read_head(path, 12, &n)))
        seeds[n_in] = (const unsigned char *)owned, seed_n[n_in++] = n;
    mk_quiet = 1;
    int ok = 1, accepted = 0, rejected = 0;
    const int iters = 3000;
    for (int it = 0; it < iters && ok; it++) {
        int s = it % n_in;
        buf_set(&d, seeds[s], seed_n[s]);
        mutate(&d, alpha, strlen(alpha));
        mil_bags b;
        int flags = it & 1 ? MIL_LOAD_UNLABELED : 0;
        if (mil_bags_parse_csv(&b, (const char *)d.b, d.n, "fuzz_bags.csv", flags) == 0) {
            accepted++;
            ok = check_bags(&b);
            for (int i = 0; ok && !flags && i < b.n_bags; i++) ok = b.label[i] >= 0;
            if (!ok) test_report(0, "fuzz_mil_csv", "iteration %d: accepted inconsistent bags", it);
            mil_bags_free(&b);
        } else {
            ok = refused_well("fuzz_mil_csv", "fuzz_bags.csv", "", it, &rejected);
        }
    }
    if (ok)
        test_report(1, "fuzz_mil_csv", "%d mutated bag files from %d seeds: %d parsed, %d refused with one line", iters,
                    n_in, accepted, rejected);

    /* binary bags: a valid file written by the library, then mutated on disk */
    mil_bags b;
    char bin[4200];
    snprintf(bin, sizeof bin, "%s/bags.bin", dir);
    MK_ASSERT(mil_bags_parse_csv(&b, hand, strlen(hand), "hand", MIL_LOAD_UNLABELED) == 0);
    MK_ASSERT(mil_bags_save_bin(&b, bin) == 0);
    mil_bags_free(&b);
    size_t bn;
    unsigned char *good = (unsigned char *)mk_read_file(bin, 1 << 20, &bn);
    ok = 1, accepted = 0, rejected = 0;
    const int biters = 1500;
    for (int it = 0; it < biters && ok; it++) {
        buf_set(&d, good, bn);
        mutate(&d, "\0\1\2\xff", 4);
        FILE *f = fopen(bin, "wb");
        fwrite(d.b, 1, d.n, f);
        fclose(f);
        if (mil_bags_load(&b, bin, MIL_LOAD_UNLABELED) == 0) {
            accepted++;
            ok = check_bags(&b);
            if (!ok) test_report(0, "fuzz_mil_bin", "iteration %d: accepted inconsistent bags", it);
            mil_bags_free(&b);
        } else {
            ok = refused_well("fuzz_mil_bin", bin, "", it, &rejected);
        }
    }
    mk_quiet = 0;
    if (ok)
        test_report(1, "fuzz_mil_bin", "%d mutated binary bag files (%zu bytes each before editing): %d loaded, %d refused",
                    biters, bn, accepted, rejected);
    unlink(bin);
    free(good), free(owned), free(d.b);
}

/* ---------------------------------------------------------------- audio files */
/* Seeds: a real FSDD recording (WAV) and the same speech written by the
 * library as FLAC, Ogg/Vorbis and stereo float AIFF, each mutated on disk and
 * read back with audio_read. Accepted audio must be within the AUDIO_MAX_*
 * limits and finite; a refusal must be one line naming the file. */
static void fuzz_audio(const char *dir) {
#if !MK_HAVE_SNDFILE
    (void)dir;
    test_skip("fuzz_audio", "built without libsndfile");
#else
    char path[4096];
    if (!test_find_data("fuzz_audio", "fsdd/recordings/3_theo_7.wav", path, sizeof path)) return;
    audio_buf speech;
    if (audio_read(path, &speech)) {
        test_report(0, "fuzz_audio", "seed unreadable: %s", mk_last_error());
        return;
    }
    float *stereo = mk_malloc(2 * speech.frames * sizeof(float));
    for (size_t i = 0; i < speech.frames; i++) stereo[2 * i] = speech.data[i], stereo[2 * i + 1] = -0.5f * speech.data[i];
    static const struct { const char *name; int format, channels; } kinds[] = {
        {"seed.wav", 0, 1},
        {"seed.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 1},
        {"seed.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 1},
        {"seed.aiff", SF_FORMAT_AIFF | SF_FORMAT_FLOAT, 2},
    };
    const int nk = sizeof kinds / sizeof *kinds, iters = 300;
    int ok = 1, accepted = 0, rejected = 0, seeds = 0;
    buf d = {0};
    char fz[4200];
    for (int k = 0; k < nk && ok; k++) {
        char seed[4200];
        snprintf(seed, sizeof seed, "%s/%s", dir, kinds[k].name);
        const float *x = kinds[k].channels == 2 ? stereo : speech.data;
        if (audio_write(seed, x, speech.frames, kinds[k].channels, speech.rate, kinds[k].format)) {
            test_report(0, "fuzz_audio", "cannot write the %s seed: %s", kinds[k].name, mk_last_error());
            ok = 0;
            break;
        }
        size_t n;
        unsigned char *good = (unsigned char *)mk_read_file(seed, 16 << 20, &n);
        unlink(seed);
        if (!good) continue;
        seeds++;
        /* same extension as the seed: libsndfile also looks at it */
        snprintf(fz, sizeof fz, "%s/fuzz%s", dir, strrchr(kinds[k].name, '.'));
        for (int it = 0; it < iters && ok; it++) {
            buf_set(&d, good, n);
            /* edits land mostly in the header, where the counts and sizes are */
            size_t keep = d.n;
            if (it % 4) d.n = d.n < 512 ? d.n : 512;
            mutate(&d, "\0\1\2\x7f\x80\xff" "RIFFWAVEfmt dataOggSfLaCFORMAIFFCOMMSSND", 44);
            if (it % 4 && keep > 512) { /* the untouched rest of the file after the edited head */
                if (d.n + keep - 512 > d.cap) d.cap = d.n + keep, d.b = mk_realloc(d.b, d.cap);
                memcpy(d.b + d.n, good + 512, keep - 512), d.n += keep - 512;
            }
            FILE *f = fopen(fz, "wb");
            fwrite(d.b, 1, d.n, f);
            fclose(f);
            audio_buf a;
            if (audio_read(fz, &a) == 0) {
                accepted++;
                ok = a.frames >= 1 && a.channels >= 1 && a.channels <= AUDIO_MAX_CHANNELS && a.rate >= AUDIO_MIN_RATE &&
                     a.rate <= AUDIO_MAX_RATE && a.frames * (size_t)a.channels <= AUDIO_MAX_SAMPLES;
                for (size_t i = 0; ok && i < a.frames * (size_t)a.channels; i++) ok = isfinite(a.data[i]);
                if (!ok) test_report(0, "fuzz_audio", "%s, iteration %d: accepted inconsistent audio", kinds[k].name, it);
                audio_free(&a);
            } else {
                char where[128];
                snprintf(where, sizeof where, "%s, ", kinds[k].name);
                ok = refused_well("fuzz_audio", fz, where, it, &rejected);
            }
        }
        unlink(fz);
        free(good);
    }
    if (ok)
        test_report(1, "fuzz_audio", "%d mutated audio files from %d seeds (WAV, FLAC, Ogg/Vorbis, AIFF): %d read, %d refused",
                    seeds * iters, seeds, accepted, rejected);
    free(d.b), free(stereo);
    audio_free(&speech);
#endif
}

/* ---------------------------------------------------------------- model files */
/* Load, use once, free. 0: loaded and the output is finite; 1: inconsistent;
 * -1: refused (mk_error set). */
static int use_mil(const char *path) {
    mil_model m;
    if (mil_model_load(&m, path)) return -1;
    float *x = mk_malloc(sizeof(float) * 5 * (size_t)m.c.F);
    for (long i = 0; i < 5L * m.c.F; i++) x[i] = (float)mk_rng_normal(&rng);
    float logit = mil_forward(&m, x, 5, 0);
    free(x);
    mil_model_free(&m);
    return !isfinite(logit);
}
static int use_vision(const char *path) {
    vision_model m;
    if (vision_model_load(&m, path, 0, NULL)) return -1;
    vision_model_free(&m);
    return 0;
}
static int use_points(const char *path) {
    points_model m;
    if (points_model_load(&m, path)) return -1;
    points_model_free(&m);
    return 0;
}
#if MK_HAVE_SNDFILE
static int use_enhancer(const char *path) {
    audio_enhancer m;
    if (audio_enhancer_load(&m, path, 0)) return -1;
    enum { N = 1600 };
    float x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = 0.1f * (float)mk_rng_normal(&rng);
    audio_enhance(&m, y, x, N);
    audio_enhancer_free(&m);
    for (int i = 0; i < N; i++)
        if (!isfinite(y[i])) return 1;
    return 0;
}
#endif

/* The shipped models with edits confined to their header (task, config records,
 * tensor table; the float data after it is kept), loaded by the domain loaders.
 * A model that loads is used once and must give finite output; a refusal must be
 * one line naming the file. A config that asks for a larger model than the file
 * holds must be refused before the memory is taken (the loaders compare the
 * declared tensors with the file's table first), or this test runs out of memory. */
static void fuzz_models(const char *dir) {
    static const struct { const char *file; int (*use)(const char *); } kinds[] = {
        {"models/mil.mkm", use_mil},
        {"models/vision.mkm", use_vision},
        {"models/points.mkm", use_points},
#if MK_HAVE_SNDFILE
        {"models/enhance.mkm", use_enhancer},
        {"models/enhance_stream.mkm", use_enhancer},
#endif
    };
    const int nk = sizeof kinds / sizeof *kinds, iters = 150;
    int ok = 1, loaded = 0, rejected = 0, seeds = 0;
    buf d = {0};
    char fz[4200];
    snprintf(fz, sizeof fz, "%s/fuzz.mkm", dir);
    mk_quiet = 1;
    for (int k = 0; k < nk && ok; k++) {
        size_t n;
        unsigned char *good = (unsigned char *)mk_read_file(kinds[k].file, 8 << 20, &n);
        if (!good || n < 64) {
            free(good);
            continue;
        }
        seeds++;
        uint32_t nc, nt;
        memcpy(&nc, good + 48, 4), memcpy(&nt, good + 52, 4);
        size_t head = 64 + 128 * (size_t)nc + 100 * (size_t)nt;
        MK_ASSERT(head < n);
        for (int it = 0; it < iters && ok; it++) {
            buf_set(&d, good, head);
            mutate(&d, "0123456789.-e\0\1\xff", 16);
            size_t h = d.n; /* the edited header, then the original data */
            if (d.cap < h + n - head + 1) {
                d.cap = h + n - head + 1;
                d.b = mk_realloc(d.b, d.cap);
            }
            memcpy(d.b + h, good + head, n - head);
            d.n = h + n - head;
            FILE *f = fopen(fz, "wb");
            fwrite(d.b, 1, d.n, f);
            fclose(f);
            int r = kinds[k].use(fz);
            if (r == 0) {
                loaded++;
            } else if (r > 0) {
                test_report(0, "fuzz_models", "%s, iteration %d: loaded, but the output is not finite", kinds[k].file, it);
                ok = 0;
            } else {
                char where[128];
                snprintf(where, sizeof where, "%s, ", kinds[k].file);
                ok = refused_well("fuzz_models", fz, where, it, &rejected);
            }
        }
        free(good);
    }
    mk_quiet = 0;
    unlink(fz);
    free(d.b);
    if (!seeds) test_skip("fuzz_models", "no shipped models at models/ (run from the repository root)");
    else if (ok)
        test_report(1, "fuzz_models", "%d model files from %d shipped models, headers mutated: %d loaded and ran, %d refused",
                    seeds * iters, seeds, loaded, rejected);
}

/* ---------------------------------------------------------------- images */
static void fuzz_images(void) {
#if !MK_HAVE_STB || !MK_HAVE_ZLIB
    test_skip("fuzz_images", "built without stb_image or zlib");
    return;
#endif
    static const char *files[] = {"examples/ankle_boot_0.png", "examples/dress_13.pgm", "examples/sneaker_9_grey_alpha.png",
                                  "examples/bag_18_84x84_rgb.png"};
    int ok = 1, accepted = 0, rejected = 0, seeds = 0, iters = 0;
    buf d = {0};
    for (size_t k = 0; k < sizeof files / sizeof *files && ok; k++) {
        size_t n;
        unsigned char *img = (unsigned char *)mk_read_file(files[k], 1 << 20, &n);
        if (!img) continue;
        seeds++;
        for (int it = 0; it < 1000 && ok; it++, iters++) {
            buf_set(&d, img, n);
            mutate(&d, "\0\1\xff\x7f\x80", 5);
            vision_image im;
            if (vision_image_load_mem(&im, d.b, d.n, "fuzz.img") == 0) {
                accepted++;
                ok = im.w >= 1 && im.h >= 1 && im.c >= 1 && im.c <= 4 && im.px;
                for (long i = 0; ok && i < (long)im.w * im.h * im.c; i++) ok = im.px[i] >= 0 && im.px[i] <= 1;
                if (!ok) test_report(0, "fuzz_images", "%s, iteration %d: decoded an inconsistent image", files[k], it);
                vision_image_free(&im);
            } else {
                char where[128];
                snprintf(where, sizeof where, "%s, ", files[k]);
                ok = refused_well("fuzz_images", "fuzz.img", where, it, &rejected);
            }
        }
        free(img);
    }
    /* the case the fuzzing found: a zero-length IDAT chunk (legal PNG) before the data */
    size_t n;
    unsigned char *png = (unsigned char *)mk_read_file(files[0], 1 << 20, &n);
    if (png) {
        size_t at = 8;
        while (at + 8 <= n && memcmp(png + at + 4, "IDAT", 4))
            at += 12 + ((size_t)png[at] << 24 | (size_t)png[at + 1] << 16 | (size_t)png[at + 2] << 8 | png[at + 3]);
        unsigned char chunk[12] = {0, 0, 0, 0, 'I', 'D', 'A', 'T'};
#if MK_HAVE_ZLIB
        uLong crc = crc32(0L, chunk + 4, 4);
#else
        unsigned long crc = 0;
#endif
        for (int i = 0; i < 4; i++) chunk[8 + i] = (unsigned char)(crc >> (24 - 8 * i));
        unsigned char *z = mk_malloc(n + 12);
        memcpy(z, png, at), memcpy(z + at, chunk, 12), memcpy(z + at + 12, png + at, n - at);
        vision_image a, b;
        int ra = vision_image_load_mem(&a, png, n, "orig.png"), rb = vision_image_load_mem(&b, z, n + 12, "empty_idat.png");
        int same = !ra && !rb && a.w == b.w && a.h == b.h && a.c == b.c &&
                   !memcmp(a.px, b.px, sizeof(float) * (size_t)a.w * a.h * a.c);
        test_report(at + 8 <= n && same, "image_empty_idat_chunk", "IDAT at byte %zu; decodes as the original: %s", at,
                    same ? "yes" : (rb ? mk_last_error() : "no"));
        if (!ra) vision_image_free(&a);
        if (!rb) vision_image_free(&b);
        free(z), free(png);
    }
    free(d.b);
    if (!seeds) test_skip("fuzz_images", "no example images at examples/ (run from the repository root)");
    else if (ok)
        test_report(1, "fuzz_images", "%d mutated images from %d files (PNG, PGM): %d decoded, %d refused", iters, seeds,
                    accepted, rejected);
}

int main(void) {
    mk_rng_seed(&rng, 20261126);
    const char *tmp = getenv("TMPDIR");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/mk_test_fuzz_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        test_report(0, "fuzz_tmpdir", "cannot create %s", dir);
        return test_exit();
    }
    fuzz_ts_csv();
    fuzz_mil(dir);
    fuzz_images();
    fuzz_audio(dir);
    fuzz_models(dir);
    rmdir(dir);
    return test_exit();
}
