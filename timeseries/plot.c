/* plot.c — a small line-plot rasteriser for the forecast PNG: one panel per
 * column, history in blue, forecast in red, a dashed line where the forecast
 * starts, light horizontal grid lines. RGB8 written with libpng. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "ts.h"

#if MK_HAVE_PNG
#include <png.h>
#endif

typedef struct {
    int w, h;
    unsigned char *px; /* (h, w, 3) */
} canvas;

static void put(canvas *c, int x, int y, const unsigned char rgb[3]) {
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
    memcpy(c->px + ((size_t)y * c->w + x) * 3, rgb, 3);
}

static void rect(canvas *c, int x0, int y0, int x1, int y1, const unsigned char rgb[3]) {
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) put(c, x, y, rgb);
}

/* Bresenham, two pixels thick. */
static void line(canvas *c, int x0, int y0, int x1, int y1, const unsigned char rgb[3]) {
    int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1, dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1, err = dx + dy;
    for (;;) {
        put(c, x0, y0, rgb);
        put(c, x0, y0 + 1, rgb);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * err;
        if (e2 >= dy) err += dy, x0 += sx;
        if (e2 <= dx) err += dx, y0 += sy;
    }
}

/* A 3x5 pixel font (upper case, digits, a little punctuation), drawn at
 * scale 2 for the panel labels. Each glyph: 5 rows of 3 pixels, '1' = ink. */
static const struct {
    char c;
    const char *rows;
} FONT[] = {
    {'0', "111101101101111"}, {'1', "010110010010111"}, {'2', "111001111100111"}, {'3', "111001111001111"},
    {'4', "101101111001001"}, {'5', "111100111001111"}, {'6', "111100111101111"}, {'7', "111001001010010"},
    {'8', "111101111101111"}, {'9', "111101111001111"}, {'A', "010101111101101"}, {'B', "110101110101110"},
    {'C', "011100100100011"}, {'D', "110101101101110"}, {'E', "111100110100111"}, {'F', "111100110100100"},
    {'G', "011100101101011"}, {'H', "101101111101101"}, {'I', "111010010010111"}, {'J', "001001001101010"},
    {'K', "101101110101101"}, {'L', "100100100100111"}, {'M', "101111111101101"}, {'N', "110101101101101"},
    {'O', "010101101101010"}, {'P', "110101110100100"}, {'Q', "010101101110011"}, {'R', "110101110101101"},
    {'S', "011100010001110"}, {'T', "111010010010010"}, {'U', "101101101101111"}, {'V', "101101101101010"},
    {'W', "101101111111101"}, {'X', "101101010101101"}, {'Y', "101101010010010"}, {'Z', "111001010100111"},
    {'-', "000000111000000"}, {'.', "000000000000010"}, {'_', "000000000000111"}, {'%', "101001010100101"},
    {'(', "010100100100010"}, {')', "010001001001010"}, {'/', "001001010100100"}, {':', "000010000010000"},
    {'+', "000010111010000"}, {',', "000000000010100"}, {'=', "000111000111000"},
};

static void text(canvas *c, int x, int y, const char *s, const unsigned char rgb[3]) {
    const int S = 2;
    for (; *s; s++, x += 4 * S) {
        char ch = (char)toupper((unsigned char)*s);
        for (size_t k = 0; k < sizeof FONT / sizeof *FONT; k++) {
            if (FONT[k].c != ch) continue;
            for (int r = 0; r < 5; r++)
                for (int q = 0; q < 3; q++)
                    if (FONT[k].rows[r * 3 + q] == '1') rect(c, x + q * S, y + r * S, x + q * S + S - 1, y + r * S + S - 1, rgb);
            break;
        }
    }
}

int ts_plot_png(const char *path, const float *hist, int n_hist, const float *fc, int n_fc, int C,
                const char *const *names) {
#if !MK_HAVE_PNG
    mk_error("%s: built without libpng, cannot write a plot", path);
    return -1;
#else
    const int W = 900, PH = 180, M = 12;
    if (C < 1 || C > 200 || n_hist + n_fc < 2) {
        mk_error("%s: nothing to plot (%d columns, %d points)", path, C, n_hist + n_fc);
        return -1;
    }
    canvas cv = {W, PH * C, NULL};
    cv.px = mk_malloc((size_t)cv.w * cv.h * 3);
    memset(cv.px, 255, (size_t)cv.w * cv.h * 3);
    const unsigned char frame[3] = {120, 120, 120}, grid[3] = {225, 225, 225}, blue[3] = {31, 119, 180},
                        red[3] = {214, 39, 40}, sep[3] = {160, 160, 160},
                        ink[3] = {40, 40, 40};
    const int n = n_hist + n_fc;
    for (int c = 0; c < C; c++) {
        int x0 = M, x1 = W - M, y0 = c * PH + M, y1 = (c + 1) * PH - M;
        float lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < n_hist; i++) lo = fminf(lo, hist[(size_t)i * C + c]), hi = fmaxf(hi, hist[(size_t)i * C + c]);
        for (int i = 0; i < n_fc; i++) lo = fminf(lo, fc[(size_t)i * C + c]), hi = fmaxf(hi, fc[(size_t)i * C + c]);
        if (!(hi > lo)) hi = lo + 1, lo -= 1;
        float pad = 0.05f * (hi - lo);
        lo -= pad, hi += pad;
        for (int g = 1; g < 4; g++) rect(&cv, x0, y0 + (y1 - y0) * g / 4, x1, y0 + (y1 - y0) * g / 4, grid);
        rect(&cv, x0, y0, x1, y0, frame);
        rect(&cv, x0, y1, x1, y1, frame);
        rect(&cv, x0, y0, x0, y1, frame);
        rect(&cv, x1, y0, x1, y1, frame);
        int xs = x0 + (int)((double)(x1 - x0) * (n_hist - 0.5) / (n - 1));
        for (int y = y0; y < y1; y += 6) rect(&cv, xs, y, xs, y + 2 < y1 ? y + 2 : y1, sep);
        int px = 0, py = 0;
        for (int i = 0; i < n; i++) {
            float v = i < n_hist ? hist[(size_t)i * C + c] : fc[(size_t)(i - n_hist) * C + c];
            int x = x0 + (int)((double)(x1 - x0) * i / (n - 1));
            int y = y1 - (int)((double)(y1 - y0) * (v - lo) / (hi - lo));
            if (i > 0) line(&cv, px, py, x, y, i <= n_hist ? blue : red);
            px = x, py = y;
        }
        /* labels: column name top left, the value range at the right edge */
        char lab[48];
        if (names && names[c]) {
            snprintf(lab, sizeof lab, "%.40s", names[c]);
            text(&cv, x0 + 6, y0 + 6, lab, ink);
        }
        snprintf(lab, sizeof lab, "%.4g", hi - pad);
        text(&cv, x1 - 6 - 8 * (int)strlen(lab), y0 + 6, lab, ink);
        snprintf(lab, sizeof lab, "%.4g", lo + pad);
        text(&cv, x1 - 6 - 8 * (int)strlen(lab), y1 - 16, lab, ink);
    }
    mk_atomic_file af;
    if (mk_atomic_open(&af, path, "wb")) {
        free(cv.px);
        return -1;
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        mk_atomic_abort(&af);
        free(cv.px);
        mk_error("%s: cannot write PNG", path);
        return -1;
    }
    png_init_io(png, af.f);
    png_set_IHDR(png, info, cv.w, cv.h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < cv.h; y++) png_write_row(png, cv.px + (size_t)y * cv.w * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(cv.px);
    if (mk_atomic_commit(&af)) return -1;
    return 0;
#endif
}
