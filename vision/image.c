/* image.c — stb_image decoding (the one STB_IMAGE_IMPLEMENTATION of the
 * project), area/bilinear resize, channel conversion, libpng writing. */
#include "vision/image.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"

#if MK_HAVE_STB
#define STBI_NO_STDIO /* we read files ourselves, with a size limit */
#define STBI_FAILURE_USERMSG
#define STB_IMAGE_IMPLEMENTATION
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
/* A PNG may hold a zero-length IDAT chunk (the format allows it); stb_image
 * then copies 0 bytes into a still-NULL buffer, which is harmless but
 * undefined behaviour that UBSan stops on (found by tests/test_fuzz.c). Inside
 * stb only, memcpy skips empty copies. */
static inline void *stb_memcpy_(void *d, const void *s, size_t n) { return n ? memcpy(d, s, n) : d; }
#define memcpy stb_memcpy_
#include <stb_image.h>
#undef memcpy
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#endif

#if MK_HAVE_PNG
#include <png.h>
#endif

int vision_is_image_name(const char *path) {
    static const char *ext[] = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tga", ".psd",
                                ".hdr", ".pnm", ".pgm", ".ppm", ".pic"};
    const char *dot = strrchr(path, '.');
    if (!dot) return 0;
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (!strcasecmp(dot, ext[i])) return 1;
    return 0;
}

void vision_image_free(vision_image *im) {
    free(im->px);
    memset(im, 0, sizeof *im);
}

int vision_image_load_mem(vision_image *im, const unsigned char *buf, size_t len, const char *name) {
    memset(im, 0, sizeof *im);
#if MK_HAVE_STB
    if (len == 0) {
        mk_error("%s: empty file", name);
        return -1;
    }
    if (len > (size_t)INT32_MAX) {
        mk_error("%s: file too large", name);
        return -1;
    }
    int w, h, c;
    /* stb refuses PNGs above 2^30 bytes with a generic message: say what the header claims */
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 24 && !memcmp(buf, sig, 8) && !memcmp(buf + 12, "IHDR", 4)) {
        uint32_t pw = ((uint32_t)buf[16] << 24) | ((uint32_t)buf[17] << 16) | ((uint32_t)buf[18] << 8) | buf[19];
        uint32_t ph = ((uint32_t)buf[20] << 24) | ((uint32_t)buf[21] << 16) | ((uint32_t)buf[22] << 8) | buf[23];
        if (pw > VISION_MAX_SIDE || ph > VISION_MAX_SIDE || (uint64_t)pw * ph > VISION_MAX_PIXELS) {
            mk_error("%s: image %ux%u is too large (limit %d per side, %u pixels)", name, pw, ph, VISION_MAX_SIDE,
                     VISION_MAX_PIXELS);
            return -1;
        }
    }
    if (!stbi_info_from_memory(buf, (int)len, &w, &h, &c)) {
        const char *why = stbi_failure_reason();
        mk_error("%s: not a readable image (%s)", name, why ? why : "unknown format");
        return -1;
    }
    size_t npx;
    if (w <= 0 || h <= 0 || w > VISION_MAX_SIDE || h > VISION_MAX_SIDE || !mk_mul_ok((size_t)w, (size_t)h, &npx) ||
        npx > VISION_MAX_PIXELS) {
        mk_error("%s: image %dx%d is too large (limit %d per side, %u pixels)", name, w, h, VISION_MAX_SIDE,
                 VISION_MAX_PIXELS);
        return -1;
    }
    float *f = NULL;
    if (stbi_is_hdr_from_memory(buf, (int)len)) {
        f = stbi_loadf_from_memory(buf, (int)len, &w, &h, &c, 0);
        if (f) /* HDR is linear radiance: clamp to [0, 1] */
            for (size_t i = 0; i < npx * c; i++) f[i] = f[i] < 0 ? 0 : f[i] > 1 ? 1 : f[i];
    } else if (stbi_is_16_bit_from_memory(buf, (int)len)) {
        stbi_us *u = stbi_load_16_from_memory(buf, (int)len, &w, &h, &c, 0);
        if (u) {
            f = mk_malloc(sizeof(float) * npx * c);
            for (size_t i = 0; i < npx * c; i++) f[i] = u[i] / 65535.f;
            stbi_image_free(u);
        }
    } else {
        stbi_uc *u = stbi_load_from_memory(buf, (int)len, &w, &h, &c, 0);
        if (u) {
            f = mk_malloc(sizeof(float) * npx * c);
            for (size_t i = 0; i < npx * c; i++) f[i] = u[i] / 255.f;
            stbi_image_free(u);
        }
    }
    if (!f) {
        const char *why = stbi_failure_reason();
        mk_error("%s: cannot decode image (%s)", name, why ? why : "corrupt data");
        return -1;
    }
    im->w = w;
    im->h = h;
    im->c = c;
    im->px = f;
    return 0;
#else
    (void)buf;
    (void)len;
    mk_error("%s: this build has no image decoder (install libstb-dev and rebuild)", name);
    return -1;
#endif
}

int vision_image_load(vision_image *im, const char *path) {
    memset(im, 0, sizeof *im);
    size_t len;
    char *buf = mk_read_file(path, VISION_MAX_FILE, &len);
    if (!buf) return -1; /* mk_error already names the file */
    int r = vision_image_load_mem(im, (const unsigned char *)buf, len, path);
    free(buf);
    return r;
}

void vision_image_convert(vision_image *out, const vision_image *in, int c) {
    MK_ASSERT(c >= 1 && c <= 4);
    size_t n = (size_t)in->w * in->h;
    out->w = in->w;
    out->h = in->h;
    out->c = c;
    out->px = mk_malloc(sizeof(float) * n * c);
    int ic = in->c, icol = ic >= 3 ? 3 : 1; /* colour channels in the input */
    for (size_t i = 0; i < n; i++) {
        const float *s = in->px + i * ic;
        float *d = out->px + i * c;
        float alpha = (ic == 2 || ic == 4) ? s[ic - 1] : 1.f;
        float rgb[3];
        if (icol == 3) rgb[0] = s[0], rgb[1] = s[1], rgb[2] = s[2];
        else rgb[0] = rgb[1] = rgb[2] = s[0];
        if (c == 1 || c == 2) {
            /* ref: ITU-R BT.601 luma */
            d[0] = icol == 3 ? 0.299f * rgb[0] + 0.587f * rgb[1] + 0.114f * rgb[2] : s[0];
            if (c == 2) d[1] = alpha;
        } else {
            d[0] = rgb[0], d[1] = rgb[1], d[2] = rgb[2];
            if (c == 4) d[3] = alpha;
        }
    }
}

/* Weights of a 1-D resampling from n_in to n_out samples, as a sparse matrix:
 * for output i, taps [start[i], start[i]+cnt[i]) with weights wt[i*maxk + k]. */
typedef struct {
    int *start, *cnt;
    float *wt;
    int maxk;
} resample1d;

static void resample_plan(resample1d *r, int n_in, int n_out) {
    double scale = (double)n_in / n_out;
    r->start = mk_malloc(sizeof(int) * n_out);
    r->cnt = mk_malloc(sizeof(int) * n_out);
    if (n_out < n_in) {
        /* area: output i covers input [i*scale, (i+1)*scale) */
        r->maxk = (int)ceil(scale) + 2;
        r->wt = mk_calloc((size_t)n_out * r->maxk, sizeof(float));
        for (int i = 0; i < n_out; i++) {
            double a = i * scale, b = (i + 1) * scale;
            int s = (int)floor(a), e = (int)ceil(b);
            if (e > n_in) e = n_in;
            r->start[i] = s;
            r->cnt[i] = e - s;
            MK_ASSERT(e - s <= r->maxk);
            for (int k = s; k < e; k++) {
                double lo = k > a ? k : a, hi = k + 1 < b ? k + 1 : b;
                r->wt[(size_t)i * r->maxk + (k - s)] = (float)((hi - lo) / scale);
            }
        }
    } else {
        /* bilinear with half-pixel centres, edges clamped */
        r->maxk = 2;
        r->wt = mk_calloc((size_t)n_out * 2, sizeof(float));
        for (int i = 0; i < n_out; i++) {
            double x = (i + 0.5) * scale - 0.5;
            if (x < 0) x = 0;
            if (x > n_in - 1) x = n_in - 1;
            int x0 = (int)floor(x);
            if (x0 >= n_in - 1) x0 = n_in > 1 ? n_in - 2 : 0;
            double f = x - x0;
            r->start[i] = x0;
            r->cnt[i] = n_in > 1 ? 2 : 1;
            r->wt[(size_t)i * 2] = (float)(n_in > 1 ? 1 - f : 1);
            if (n_in > 1) r->wt[(size_t)i * 2 + 1] = (float)f;
        }
    }
}
static void resample_free(resample1d *r) {
    free(r->start);
    free(r->cnt);
    free(r->wt);
}

void vision_image_resize(vision_image *out, const vision_image *in, int h, int w) {
    MK_ASSERT(h > 0 && w > 0);
    const int C = in->c;
    out->w = w;
    out->h = h;
    out->c = C;
    out->px = mk_malloc(sizeof(float) * (size_t)w * h * C);
    resample1d rx, ry;
    resample_plan(&rx, in->w, w);
    resample_plan(&ry, in->h, h);
    /* separable: rows first (in->h x w), then columns */
    float *tmp = mk_calloc((size_t)in->h * w * C, sizeof(float));
    for (int y = 0; y < in->h; y++)
        for (int x = 0; x < w; x++) {
            float *d = tmp + ((size_t)y * w + x) * C;
            for (int k = 0; k < rx.cnt[x]; k++) {
                float wt = rx.wt[(size_t)x * rx.maxk + k];
                const float *s = in->px + ((size_t)y * in->w + rx.start[x] + k) * C;
                for (int c = 0; c < C; c++) d[c] += wt * s[c];
            }
        }
    memset(out->px, 0, sizeof(float) * (size_t)w * h * C);
    for (int y = 0; y < h; y++)
        for (int k = 0; k < ry.cnt[y]; k++) {
            float wt = ry.wt[(size_t)y * ry.maxk + k];
            const float *s = tmp + (size_t)(ry.start[y] + k) * w * C;
            float *d = out->px + (size_t)y * w * C;
            for (size_t i = 0; i < (size_t)w * C; i++) d[i] += wt * s[i];
        }
    free(tmp);
    resample_free(&rx);
    resample_free(&ry);
}

int vision_png_write(const char *path, const uint8_t *px, int w, int h, int c) {
#if MK_HAVE_PNG
    static const int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                 PNG_COLOR_TYPE_RGB_ALPHA};
    MK_ASSERT(c >= 1 && c <= 4 && w > 0 && h > 0);
    mk_atomic_file af;
    if (mk_atomic_open(&af, path, "wb") != 0) return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *rows = NULL;
    if (!png || !info) goto fail;
    rows = mk_malloc(sizeof(png_bytep) * h);
    if (setjmp(png_jmpbuf(png))) goto fail;
    png_init_io(png, af.f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, types[c], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)(px + (size_t)y * w * c);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return mk_atomic_commit(&af);
fail:
    if (png) png_destroy_write_struct(&png, info ? &info : NULL);
    free(rows);
    mk_atomic_abort(&af);
    mk_error("%s: PNG write failed", path);
    return -1;
#else
    (void)px; (void)w; (void)h; (void)c;
    mk_error("%s: this build has no libpng", path);
    return -1;
#endif
}

/* ------------------------------------------------------- product photos */

/* colour channels: grey+alpha and RGBA keep their alpha last */
static int colour_channels(int c) { return c == 2 || c == 4 ? c - 1 : c; }

float vision_image_border_mean(const vision_image *im) {
    const int W = im->w, H = im->h, C = im->c, cc = colour_channels(C);
    double s = 0;
    long n = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            if (y != 0 && y != H - 1 && x != 0 && x != W - 1) {
                x = W - 2; /* jump to the right edge */
                continue;
            }
            const float *p = im->px + ((size_t)y * W + x) * C;
            for (int c = 0; c < cc; c++) s += p[c];
            n += cc;
        }
    return n ? (float)(s / n) : 0.f;
}

/* 1 if every pixel of the span is within tol of bg (all colour channels) */
static int span_is_bg(const vision_image *im, int x0, int y0, int dx, int dy, int n, const float *bg, float tol) {
    const int cc = colour_channels(im->c);
    for (int k = 0; k < n; k++) {
        const float *p = im->px + ((size_t)(y0 + k * dy) * im->w + x0 + k * dx) * im->c;
        for (int c = 0; c < cc; c++)
            if (fabsf(p[c] - bg[c]) > tol) return 0;
    }
    return 1;
}

void vision_image_fit(vision_image *out, const vision_image *in, int h, int w, float tol, int negate) {
    MK_ASSERT(h > 0 && w > 0 && in->w > 0 && in->h > 0);
    const int W = in->w, H = in->h, C = in->c, cc = colour_channels(C);
    float bg[4] = {0};
    const size_t corner[4] = {0, (size_t)W - 1, (size_t)(H - 1) * W, (size_t)(H - 1) * W + W - 1};
    for (int c = 0; c < C; c++) {
        for (int k = 0; k < 4; k++) bg[c] += in->px[corner[k] * C + c];
        bg[c] *= 0.25f;
    }
    int top = 0, bot = H - 1, left = 0, right = W - 1;
    while (top <= bot && span_is_bg(in, 0, top, 1, 0, W, bg, tol)) top++;
    if (top > bot) { /* all background: keep the whole picture */
        top = 0, bot = H - 1;
    } else {
        while (span_is_bg(in, 0, bot, 1, 0, W, bg, tol)) bot--;
        while (span_is_bg(in, left, top, 0, 1, bot - top + 1, bg, tol)) left++;
        while (span_is_bg(in, right, top, 0, 1, bot - top + 1, bg, tol)) right--;
    }
    vision_image crop = {right - left + 1, bot - top + 1, C, NULL};
    crop.px = mk_malloc(sizeof(float) * (size_t)crop.w * crop.h * C);
    for (int y = 0; y < crop.h; y++)
        memcpy(crop.px + (size_t)y * crop.w * C, in->px + ((size_t)(top + y) * W + left) * C,
               sizeof(float) * (size_t)crop.w * C);
    /* the longer side (relative to the target's) fills the target */
    double s = fmin((double)h / crop.h, (double)w / crop.w);
    int nh = (int)lround(crop.h * s), nw = (int)lround(crop.w * s);
    nh = nh < 1 ? 1 : nh > h ? h : nh;
    nw = nw < 1 ? 1 : nw > w ? w : nw;
    vision_image rs;
    vision_image_resize(&rs, &crop, nh, nw);
    vision_image_free(&crop);
    out->w = w, out->h = h, out->c = C;
    out->px = mk_malloc(sizeof(float) * (size_t)w * h * C);
    for (size_t i = 0; i < (size_t)w * h; i++)
        for (int c = 0; c < C; c++) out->px[i * C + c] = bg[c];
    const int oy = (h - nh) / 2, ox = (w - nw) / 2;
    for (int y = 0; y < nh; y++)
        memcpy(out->px + ((size_t)(oy + y) * w + ox) * C, rs.px + (size_t)y * nw * C, sizeof(float) * (size_t)nw * C);
    vision_image_free(&rs);
    if (negate)
        for (size_t i = 0; i < (size_t)w * h; i++)
            for (int c = 0; c < cc; c++) out->px[i * C + c] = 1.f - out->px[i * C + c];
}
