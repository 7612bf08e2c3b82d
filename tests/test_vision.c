/* test_vision.c — the vision front end: scan orders, resize and channel
 * conversion against hand-computed values, PNG round trip, decoder limits on
 * crafted bad input, the model's gradients against central differences, the
 * Fashion-MNIST reader on the real files, and the shipped model's accuracy. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/ops.h"
#include "core/util.h"
#include "datasets/fmnist.h"
#include "tests/test.h"
#include "vision/image.h"
#include "vision/model.h"
#include "vision/occlusion.h"

/* ------------------------------------------------------------------ orders */
static void test_orders(void) {
    const int gh = 4, gw = 6, P = gh * gw, L = P + 1;
    int o[4 * 25];
    int ok = 1;
    /* bidir: row-major with the class token (index P) at position P/2, then its reverse */
    int G = vision_orders_build(VISION_ORDER_BIDIR, gh, gw, o);
    ok &= G == 2;
    for (int t = 0, p = 0; t < L; t++) {
        int want = t == P / 2 ? P : p++;
        ok &= o[t] == want && o[L + L - 1 - t] == want;
    }
    test_report(ok, "vision.orders.bidir", "G=%d", G);
    /* cross: direction 1 is column-major: consecutive patches step down a column */
    G = vision_orders_build(VISION_ORDER_CROSS, gh, gw, o);
    ok = G == 4;
    for (int g = 0; g < G; g++) ok &= mk_order_is_perm(o + g * L, L) && o[g * L + (g < 2 ? P / 2 : L - 1 - P / 2)] == P;
    int prev = -1, steps_down = 0;
    for (int t = 0; t < L; t++) {
        int v = o[L + t];
        if (v == P) continue;
        if (prev >= 0 && v == prev + gw) steps_down++;
        prev = v;
    }
    ok &= steps_down == gw * (gh - 1);
    for (int t = 0; t < L; t++) ok &= o[3 * L + t] == o[L + L - 1 - t];
    test_report(ok, "vision.orders.cross", "column steps %d (want %d)", steps_down, gw * (gh - 1));
    /* atrous: the first quarter of direction 0 is the (0,0) stride-2 sub-lattice */
    G = vision_orders_build(VISION_ORDER_ATROUS, gh, gw, o);
    ok = G == 4;
    for (int g = 0; g < G; g++) ok &= mk_order_is_perm(o + g * L, L);
    for (int t = 0; t < P / 4; t++) {
        int v = o[t];
        ok &= (v / gw) % 2 == 0 && (v % gw) % 2 == 0;
        int w = o[L + t]; /* column-wise walk also starts on (0,0) */
        ok &= (w / gw) % 2 == 0 && (w % gw) % 2 == 0;
    }
    test_report(ok, "vision.orders.atrous", "G=%d", G);
}

/* ------------------------------------------------------------ image ops */
static void test_resize(void) {
    vision_image in = {6, 4, 1, NULL}, out;
    in.px = malloc(sizeof(float) * 24);
    for (int i = 0; i < 24; i++) in.px[i] = (float)((i * 7) % 11) / 10.f;
    /* 2x area shrink = mean of 2x2 blocks */
    vision_image_resize(&out, &in, 2, 3);
    double err = 0;
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 3; x++) {
            double m = 0;
            for (int dy = 0; dy < 2; dy++)
                for (int dx = 0; dx < 2; dx++) m += in.px[(2 * y + dy) * 6 + 2 * x + dx] / 4.0;
            err = fmax(err, fabs(out.px[y * 3 + x] - m));
        }
    vision_image_free(&out);
    test_report(err < 1e-6, "vision.resize.area_2x", "max err %.2g", err);
    /* non-integer shrink of a constant image stays constant (weights sum to 1) */
    for (int i = 0; i < 24; i++) in.px[i] = 0.37f;
    vision_image_resize(&out, &in, 3, 5);
    err = 0;
    for (int i = 0; i < 15; i++) err = fmax(err, fabs(out.px[i] - 0.37));
    vision_image_free(&out);
    test_report(err < 1e-6, "vision.resize.area_const", "max err %.2g", err);
    /* bilinear enlarge of a horizontal ramp v = x: interior samples on the ramp */
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 6; x++) in.px[y * 6 + x] = (float)x;
    vision_image_resize(&out, &in, 8, 12);
    err = 0;
    for (int y = 0; y < 8; y++)
        for (int x = 1; x < 11; x++) err = fmax(err, fabs(out.px[y * 12 + x] - ((x + 0.5) * 0.5 - 0.5)));
    vision_image_free(&out);
    test_report(err < 1e-5, "vision.resize.bilinear_ramp", "max err %.2g", err);
    vision_image_free(&in);

    vision_image rgba = {1, 1, 4, NULL}, g;
    rgba.px = malloc(sizeof(float) * 4);
    rgba.px[0] = 1, rgba.px[1] = 0.5f, rgba.px[2] = 0.25f, rgba.px[3] = 0.8f;
    vision_image_convert(&g, &rgba, 1);
    double want = 0.299 + 0.587 * 0.5 + 0.114 * 0.25;
    test_report(fabs(g.px[0] - want) < 1e-6, "vision.convert.luma", "got %.6f want %.6f", g.px[0], want);
    vision_image_free(&g);
    vision_image_free(&rgba);
}

static void test_png_roundtrip(void) {
    char path[] = "/tmp/mk_test_vision_XXXXXX.png";
    int fd = mkstemps(path, 4);
    if (fd < 0) {
        test_report(0, "vision.png.roundtrip", "mkstemps failed");
        return;
    }
    close(fd);
    const int w = 5, h = 3, c = 3;
    uint8_t px[45];
    for (int i = 0; i < 45; i++) px[i] = (uint8_t)(i * 37 + 11);
    int ok = vision_png_write(path, px, w, h, c) == 0;
    vision_image im;
    ok = ok && vision_image_load(&im, path) == 0;
    int same = ok && im.w == w && im.h == h && im.c == c;
    for (int i = 0; same && i < 45; i++) same &= (int)lrintf(im.px[i] * 255.f) == px[i];
    if (ok) vision_image_free(&im);
    unlink(path);
    test_report(same, "vision.png.roundtrip", "%dx%dx%d", w, h, c);
}

/* crafted inputs: each must fail with a message, without a huge allocation */
static void test_bad_images(void) {
    vision_image im;
    unsigned char png_hdr[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                                 0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0, 8, 2, 0, 0, 0, 0, 0, 0, 0};
    /* 0x000186a0 = 100000 */
    uLong crc = crc32(0, png_hdr + 12, 17);
    png_hdr[29] = crc >> 24, png_hdr[30] = crc >> 16, png_hdr[31] = crc >> 8, png_hdr[32] = crc;
    int r = vision_image_load_mem(&im, png_hdr, sizeof png_hdr, "huge.png");
    test_report(r != 0 && strstr(mk_last_error(), "huge.png") && strstr(mk_last_error(), "100000x100000"),
                "vision.bad.huge_header", "%s", mk_last_error());
    r = vision_image_load_mem(&im, (const unsigned char *)"", 0, "empty.png");
    test_report(r != 0 && strstr(mk_last_error(), "empty"), "vision.bad.empty", "%s", mk_last_error());
    const char junk[] = "this is not an image at all, just text";
    r = vision_image_load_mem(&im, (const unsigned char *)junk, sizeof junk, "junk.png");
    test_report(r != 0 && strstr(mk_last_error(), "junk.png"), "vision.bad.junk", "%s", mk_last_error());
    /* a real PNG cut in half */
    char path[] = "/tmp/mk_test_vision_XXXXXX.png";
    int fd = mkstemps(path, 4);
    close(fd);
    uint8_t px[32 * 32];
    for (int i = 0; i < 32 * 32; i++) px[i] = (uint8_t)(i * 131);
    vision_png_write(path, px, 32, 32, 1);
    size_t len;
    char *buf = mk_read_file(path, 1 << 20, &len);
    unlink(path);
    r = buf ? vision_image_load_mem(&im, (unsigned char *)buf, len / 2, "cut.png") : 0;
    if (r == 0 && buf) vision_image_free(&im);
    test_report(buf && r != 0 && strstr(mk_last_error(), "cut.png"), "vision.bad.truncated", "%s", mk_last_error());
    free(buf);
}

/* ---------------------------------------------------------- gradient check */
static double probe_loss(vision_model *m, vision_acts *a, const float *img, int B, const float *r) {
    vision_forward(m, a, img, B, 0, NULL);
    double s = 0;
    for (int i = 0; i < B * m->cfg.n_class; i++) s += (double)a->logits[i] * r[i];
    return s;
}

static void test_gradients(int order, int stem, int head) {
    vision_cfg c;
    memset(&c, 0, sizeof c);
    c.img_h = 8, c.img_w = 8, c.img_c = 1, c.patch = 2, c.kernel = 4, c.stem = stem, c.n_class = 3;
    c.order = order, c.head = head, c.mean[0] = 0, c.std[0] = 1;
    mamba_cfg_default(&c.mc, 8, 2);
    c.mc.d_state = 4;
    vision_model m;
    char name[96];
    snprintf(name, sizeof name, "vision.grad.%s%s.%s", vision_order_name(order), stem ? "+stem" : "",
             head == VISION_HEAD_CLS ? "cls" : "mean");
    if (vision_model_create(&m, &c)) {
        test_report(0, name, "create: %s", mk_last_error());
        return;
    }
    mk_rng rng;
    mk_rng_seed(&rng, 42);
    vision_model_init(&m, &rng);
    /* larger head/pos values than the init so every path carries signal */
    mk_init_normal(mk_param(&m.p, m.head_w), (size_t)3 * 8, 0.5f, &rng);
    mk_init_normal(mk_param(&m.p, m.pos), (size_t)m.cfg.L * 8, 0.3f, &rng);
    const int B = 2;
    float img[2 * 64], r[6];
    for (int i = 0; i < 128; i++) img[i] = mk_rng_normal(&rng);
    for (int i = 0; i < 6; i++) r[i] = mk_rng_normal(&rng);
    vision_acts a;
    vision_acts_init(&a);
    mk_params_zero_grad(&m.p);
    probe_loss(&m, &a, img, B, r);
    vision_backward(&m, &a, r);
    double worst = 0;
    char worst_name[MK_NAME_MAX] = "";
    for (int ti = 0; ti < m.p.n; ti++) {
        mk_tensor *t = &m.p.t[ti];
        size_t picks = t->numel < 3 ? t->numel : 3;
        for (size_t k = 0; k < picks; k++) {
            size_t j = (k * 7919 + ti * 31) % t->numel;
            float *w = m.p.data + t->offset + j;
            float save = *w;
            const float h = 2e-3f;
            *w = save + h;
            double lp = probe_loss(&m, &a, img, B, r);
            *w = save - h;
            double lm = probe_loss(&m, &a, img, B, r);
            *w = save;
            double fd = (lp - lm) / (2 * h), an = m.p.grad[t->offset + j];
            double e = fabs(fd - an) / fmax(fmax(fabs(fd), fabs(an)), 5e-2);
            if (e > worst) {
                worst = e;
                snprintf(worst_name, sizeof worst_name, "%s", t->name);
            }
        }
    }
    test_report(worst < 2e-2, name, "worst normalised error %.2e at %s", worst, worst_name);
    vision_acts_free(&a);
    vision_model_free(&m);
}

/* ------------------------------------------------------------------- data */
static void test_fmnist(void) {
    fmnist_set s;
    if (fmnist_load_split(&s, NULL, "test")) {
        test_skip("vision.fmnist.test_set", mk_last_error());
        return;
    }
    int hist[10] = {0};
    for (int i = 0; i < s.n; i++) hist[s.labels[i]]++;
    int ok = s.n == 10000 && s.rows == 28 && s.cols == 28;
    for (int k = 0; k < 10; k++) ok &= hist[k] == 1000; /* the test set is balanced */
    test_report(ok, "vision.fmnist.test_set", "n=%d %dx%d, class 0 has %d", s.n, s.rows, s.cols, hist[0]);
    fmnist_free(&s);

    /* a gzip file with a wrong magic and one whose header promises too much */
    char path[] = "/tmp/mk_test_idx_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    unsigned char hdr[16] = {0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 28, 0, 0, 0, 28};
    gzFile g = gzopen(path, "wb");
    gzwrite(g, hdr, 16);
    gzwrite(g, "short", 5);
    gzclose(g);
    int r = fmnist_load(&s, path, path);
    test_report(r != 0 && strstr(mk_last_error(), "truncated"), "vision.fmnist.truncated", "%s", mk_last_error());
    hdr[3] = 9;
    g = gzopen(path, "wb");
    gzwrite(g, hdr, 16);
    gzclose(g);
    r = fmnist_load(&s, path, path);
    test_report(r != 0 && strstr(mk_last_error(), "magic"), "vision.fmnist.bad_magic", "%s", mk_last_error());
    unlink(path);
}

/* The shipped model and the real test set, or a skip / failure reported under
 * `name` (returns -1 then, with nothing left allocated). */
static int load_shipped(const char *name, vision_model *m, fmnist_set *s) {
    char mpath[4096];
    if (!mk_find_model("vision.mkm", mpath, sizeof mpath)) {
        test_skip(name, "no models/vision.mkm");
        return -1;
    }
    if (fmnist_load_split(s, NULL, "test")) {
        test_skip(name, mk_last_error());
        return -1;
    }
    if (vision_model_load(m, mpath, 0, NULL)) {
        test_report(0, name, "load: %s", mk_last_error());
        fmnist_free(s);
        return -1;
    }
    return 0;
}

static int argmax(const float *z, int K) {
    int am = 0;
    for (int k = 1; k < K; k++)
        if (z[k] > z[am]) am = k;
    return am;
}

/* The shipped model on the first N real test images: it must classify them
 * (this is what the model card's accuracy claims, on a sample). */
static void test_shipped_model(void) {
    vision_model m;
    fmnist_set s;
    if (load_shipped("vision.shipped_model", &m, &s)) return;
    const int N = 300, HW = 28 * 28;
    float *img = malloc(sizeof(float) * (size_t)N * HW);
    for (int i = 0; i < N * HW; i++) img[i] = (s.images[i] / 255.f - m.cfg.mean[0]) / m.cfg.std[0];
    vision_acts a;
    vision_acts_init(&a);
    int hit = 0;
    for (int i0 = 0; i0 < N; i0 += 100) {
        vision_forward(&m, &a, img + (size_t)i0 * HW, 100, 0, NULL);
        for (int b = 0; b < 100; b++) {
            hit += argmax(a.logits + b * 10, 10) == s.labels[i0 + b];
        }
    }
    test_report(hit >= (int)(0.88 * N), "vision.shipped_model", "%d/%d of the first test images right (need 88%%)",
                hit, N);
    free(img);
    vision_acts_free(&a);
    vision_model_free(&m);
    fmnist_free(&s);
}

/* Occlusion maps of the shipped model on a real test image, with 6-px squares every
 * 5 px (origins 0, 5, ..., 20 and 22, flush with the edge: overlaps and the edge case):
 * - against the test's own occlusion, one window at a time with single-image
 *   forwards and the per-pixel mean taken here in double;
 * - with the top 11 rows set to the fill value, every square covering rows 0-9
 *   lies within them, so hiding changes nothing there and the map must read 0
 *   (a square put elsewhere, e.g. x and y swapped, would hide part of the object). */
static void test_occlusion(void) {
    vision_model m;
    fmnist_set s;
    if (load_shipped("vision.occlusion_reference", &m, &s)) return;
    const int H = 28, W = 28, HW = H * W, K = m.cfg.n_class, win = 6, stride = 5;
    vision_acts a;
    vision_acts_init(&a);
    float *img = malloc(sizeof(float) * HW), *x = malloc(sizeof(float) * HW), *map = malloc(sizeof(float) * HW);
    double *sum = calloc(HW, sizeof(double));
    int *cov = calloc(HW, sizeof(int));
    float fill, p[64];
    for (int i = 0; i < HW; i++) img[i] = (s.images[i] / 255.f - m.cfg.mean[0]) / m.cfg.std[0];
    vision_border_fill(&m.cfg, img, &fill);
    vision_forward(&m, &a, img, 1, 0, NULL);
    softmax_rows(p, a.logits, 1, K);
    const int k = argmax(p, K);
    const double base = p[k];
    const int org[6] = {0, 5, 10, 15, 20, 22};
    for (int wy = 0; wy < 6; wy++)
        for (int wx = 0; wx < 6; wx++) {
            memcpy(x, img, sizeof(float) * HW);
            for (int y = org[wy]; y < org[wy] + win; y++)
                for (int xx = org[wx]; xx < org[wx] + win; xx++) x[y * W + xx] = fill;
            vision_forward(&m, &a, x, 1, 0, NULL);
            softmax_rows(p, a.logits, 1, K);
            for (int y = org[wy]; y < org[wy] + win; y++)
                for (int xx = org[wx]; xx < org[wx] + win; xx++) sum[y * W + xx] += base - p[k], cov[y * W + xx]++;
        }
    float p0 = -1;
    int rc = vision_occlusion(&m, &a, img, k, win, stride, &fill, map, &p0);
    double worst = 0, peak = 0;
    for (int i = 0; i < HW; i++) {
        worst = fmax(worst, fabs(map[i] - sum[i] / cov[i]));
        peak = fmax(peak, fabs(sum[i] / cov[i]));
    }
    test_report(rc == 0 && worst < 1e-5 && peak > 1e-2 && fabs(p0 - base) < 1e-6, "vision.occlusion_reference",
                "36 windows: worst |map - reference| %.2e (largest |drop| %.3f, p %.4f)", worst, peak, base);

    const float bg = (0.f - m.cfg.mean[0]) / m.cfg.std[0];
    for (int i = 0; i < 11 * W; i++) img[i] = bg;
    rc = vision_occlusion(&m, &a, img, k, win, stride, &bg, map, NULL);
    double top = 0, rest = 0;
    for (int i = 0; i < HW; i++) {
        if (i < 10 * W) top = fmax(top, fabs(map[i]));
        else rest = fmax(rest, fabs(map[i]));
    }
    test_report(rc == 0 && top < 1e-5 && rest > 1e-2, "vision.occlusion_hidden_nothing",
                "rows hidden behind their own value: largest |drop| %.2e on rows 0-9, %.3f below", top, rest);
    free(img), free(x), free(map), free(sum), free(cov);
    vision_acts_free(&a);
    vision_model_free(&m);
    fmnist_free(&s);
}

/* ---------------------------------------------------------- product photos */
static void test_fit(void) {
    /* 20x10 light picture (0.9) with a dark 4x6 object (0.2) at x 12..15, y 2..7 */
    vision_image in = {20, 10, 1, NULL}, out;
    in.px = malloc(sizeof(float) * 200);
    for (int y = 0; y < 10; y++)
        for (int x = 0; x < 20; x++) in.px[y * 20 + x] = (x >= 12 && x < 16 && y >= 2 && y < 8) ? 0.2f : 0.9f;
    float bm = vision_image_border_mean(&in);
    test_report(fabsf(bm - 0.9f) < 1e-6f, "vision.fit.border_mean", "%.6f", bm);
    /* trimmed to 4x6, enlarged x2 to 8x12 (height fills 12), centred at x 2..9, inverted */
    vision_image_fit(&out, &in, 12, 12, 0.1f, 1);
    double err = 0;
    for (int y = 0; y < 12; y++)
        for (int x = 0; x < 12; x++) err = fmax(err, fabs(out.px[y * 12 + x] - (x >= 2 && x < 10 ? 0.8 : 0.1)));
    vision_image_free(&out);
    test_report(err < 1e-6, "vision.fit.trim_centre_negate", "max err %.2g", err);
    /* wide target: the height still limits (scale 2 of 6 rows = 12), centred at x 10..17 */
    vision_image_fit(&out, &in, 12, 28, 0.1f, 0);
    err = 0;
    for (int y = 0; y < 12; y++)
        for (int x = 0; x < 28; x++) err = fmax(err, fabs(out.px[y * 28 + x] - (x >= 10 && x < 18 ? 0.2 : 0.9)));
    vision_image_free(&out);
    test_report(err < 1e-6, "vision.fit.aspect_kept", "max err %.2g", err);
    /* all background: fitted whole (20x10 -> 12x6 centred at rows 3..8), inverted */
    for (int i = 0; i < 200; i++) in.px[i] = 0.9f;
    vision_image_fit(&out, &in, 12, 12, 0.1f, 1);
    err = 0;
    for (int i = 0; i < 144; i++) err = fmax(err, fabs(out.px[i] - 0.1));
    vision_image_free(&out);
    test_report(err < 1e-6, "vision.fit.all_background", "max err %.2g", err);
    vision_image_free(&in);
    /* grey+alpha: alpha is neither a background test nor inverted */
    vision_image ga = {3, 3, 2, NULL};
    ga.px = malloc(sizeof(float) * 18);
    for (int i = 0; i < 9; i++) ga.px[2 * i] = i == 4 ? 0.0f : 1.0f, ga.px[2 * i + 1] = 0.5f;
    vision_image_fit(&out, &ga, 3, 3, 0.1f, 1);
    int ok = out.c == 2;
    for (int i = 0; i < 9; i++) ok &= fabsf(out.px[2 * i] - 1.0f) < 1e-6f && out.px[2 * i + 1] == 0.5f;
    vision_image_free(&out);
    vision_image_free(&ga);
    test_report(ok, "vision.fit.alpha", "one dark pixel fills the 3x3 target, alpha kept");
}

/* The shipped model on real test images turned into product photos the way
 * Fashion-MNIST made them the other way round: inverted (dark garment on
 * white), enlarged x4, placed off-centre on a larger white RGB canvas. With
 * --fit auto the model must recognise them about as well as the originals;
 * stretched, it must not (else the test could not fail). */
static void test_photo_real(void) {
    vision_model m;
    fmnist_set s;
    if (load_shipped("vision.photo_real", &m, &s)) return;
    const int N = 300, HW = 28 * 28, CW = 170, CH = 140;
    float *img = malloc(sizeof(float) * 100 * HW);
    vision_acts a;
    vision_acts_init(&a);
    int hit[2] = {0, 0}, flagged = 0, same = 1;
    vision_image small = {28, 28, 1, NULL}, big, photo = {CW, CH, 3, NULL};
    small.px = malloc(sizeof(float) * HW);
    photo.px = malloc(sizeof(float) * CW * CH * 3);
    for (int mode = 0; mode < 2; mode++)
        for (int i0 = 0; i0 < N; i0 += 100) {
            for (int b = 0; b < 100; b++) {
                const unsigned char *src = s.images + (size_t)(i0 + b) * HW;
                for (int i = 0; i < HW; i++) small.px[i] = src[i] / 255.f;
                if (mode == 0) { /* the original: auto leaves it alone */
                    int ph = 1;
                    vision_prepare_image(&m, &small, VISION_FIT_AUTO, img + (size_t)b * HW, &ph);
                    for (int i = 0; i < HW; i++)
                        same &= img[(size_t)b * HW + i] == (small.px[i] - m.cfg.mean[0]) / m.cfg.std[0];
                    same &= ph == 0;
                }
                for (int i = 0; i < HW; i++) small.px[i] = 1.f - small.px[i];
                vision_image_resize(&big, &small, 112, 112);
                for (int i = 0; i < CW * CH * 3; i++) photo.px[i] = 1.f;
                for (int y = 0; y < 112; y++)
                    for (int x = 0; x < 112; x++)
                        for (int c = 0; c < 3; c++) photo.px[((size_t)(11 + y) * CW + 37 + x) * 3 + c] = big.px[y * 112 + x];
                vision_image_free(&big);
                int ph = 0;
                vision_prepare_image(&m, &photo, mode ? VISION_FIT_AUTO : VISION_FIT_STRETCH, img + (size_t)b * HW, &ph);
                flagged += mode == 1 && ph;
            }
            vision_forward(&m, &a, img, 100, 0, NULL);
            for (int b = 0; b < 100; b++) {
                hit[mode] += argmax(a.logits + b * 10, 10) == s.labels[i0 + b];
            }
        }
    test_report(same, "vision.photo_real.auto_keeps_originals", "dark-background originals pass unchanged");
    test_report(flagged == N && hit[1] >= (int)(0.85 * N) && hit[1] >= hit[0] + N / 5, "vision.photo_real",
                "%d/%d photos right with --fit auto (need 85%%; %d flagged), %d/%d stretched", hit[1], N, flagged,
                hit[0], N);
    free(small.px);
    free(photo.px);
    free(img);
    vision_acts_free(&a);
    vision_model_free(&m);
    fmnist_free(&s);
}

/* The distillation loss against an independent double-precision formula and central
 * differences; alpha 0 must be the plain loss, a teacher equal to the student's own soft
 * distribution must leave only the hard term. */
static double kd_ref(const double *z, const double *q, int y, int K, double eps, double alpha, double T) {
    double mx = z[0], s1 = 0, sT = 0, hard = 0, soft = 0;
    for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
    for (int k = 0; k < K; k++) s1 += exp(z[k] - mx), sT += exp((z[k] - mx) / T);
    for (int k = 0; k < K; k++) {
        double t = (k == y ? 1 - eps : 0) + eps / K;
        hard -= t * (z[k] - mx - log(s1));
        soft += q[k] * (log(q[k]) - ((z[k] - mx) / T - log(sT)));
    }
    return (1 - alpha) * hard + alpha * T * T * soft;
}
static void test_kd_loss(void) {
    enum { B = 3, K = 7 };
    mk_rng r;
    mk_rng_seed(&r, 17);
    float z[B * K], q[B * K], d[B * K], d0[B * K];
    int y[B] = {2, 0, 6};
    for (int i = 0; i < B * K; i++) z[i] = 2.f * mk_rng_normal(&r);
    for (int b = 0; b < B; b++) { /* a teacher distribution: softmax of other random logits */
        double s = 0;
        for (int k = 0; k < K; k++) s += (q[b * K + k] = expf(1.5f * mk_rng_normal(&r)));
        for (int k = 0; k < K; k++) q[b * K + k] /= (float)s;
    }
    const float eps = 0.1f, alpha = 0.6f, T = 2.5f;
    float loss = vision_xent_kd(d, NULL, z, q, y, B, K, eps, alpha, T);
    double ref = 0, worst = 0, gmax = 0;
    for (int b = 0; b < B; b++) {
        double zd[K], qd[K];
        for (int k = 0; k < K; k++) zd[k] = z[b * K + k], qd[k] = q[b * K + k];
        ref += kd_ref(zd, qd, y[b], K, eps, alpha, T) / B;
        for (int k = 0; k < K; k++) {
            const double h = 1e-4;
            zd[k] += h;
            double lp = kd_ref(zd, qd, y[b], K, eps, alpha, T) / B;
            zd[k] -= 2 * h;
            double lm = kd_ref(zd, qd, y[b], K, eps, alpha, T) / B;
            zd[k] += h;
            double fd = (lp - lm) / (2 * h);
            worst = fmax(worst, fabs(fd - d[b * K + k]));
            gmax = fmax(gmax, fabs(fd));
        }
    }
    test_report(fabs(loss - ref) < 1e-5 * fmax(1, fabs(ref)) && worst < 1e-5 * fmax(1, gmax), "vision.kd_loss",
                "loss %.7f vs double %.7f; gradient worst error %.2e (largest %.3f)", loss, ref, worst, gmax);
    float l0 = vision_xent_kd(d, NULL, z, q, y, B, K, eps, 0.f, T), lh = vision_xent_smooth(d0, NULL, z, y, B, K, eps);
    test_report(l0 == lh && !memcmp(d, d0, sizeof d), "vision.kd_alpha0", "alpha 0: %.7f vs plain %.7f", l0, lh);
    for (int b = 0; b < B; b++) { /* the student's own distribution at T as the teacher: KL 0, no soft gradient */
        double s = 0;
        for (int k = 0; k < K; k++) s += exp(z[b * K + k] / T);
        for (int k = 0; k < K; k++) q[b * K + k] = (float)(exp(z[b * K + k] / T) / s);
    }
    float l1 = vision_xent_kd(d, NULL, z, q, y, B, K, eps, alpha, T);
    double dd = 0;
    for (int i = 0; i < B * K; i++) dd = fmax(dd, fabs(d[i] - (1 - alpha) * d0[i]));
    test_report(fabs(l1 - (1 - alpha) * lh) < 1e-5 && dd < 1e-6, "vision.kd_self_teacher",
                "loss %.7f vs (1 - alpha) x plain %.7f, gradient off by %.2e", l1, (1 - alpha) * lh, dd);
}

int main(void) {
    test_orders();
    test_resize();
    test_png_roundtrip();
    test_bad_images();
    test_kd_loss();
    test_gradients(VISION_ORDER_BIDIR, 0, VISION_HEAD_CLS);
    test_gradients(VISION_ORDER_BIDIR, 4, VISION_HEAD_MEAN);
    test_gradients(VISION_ORDER_ATROUS, 4, VISION_HEAD_CLS);
    test_fmnist();
    test_shipped_model();
    test_occlusion();
    test_fit();
    test_photo_real();
    return test_exit();
}
