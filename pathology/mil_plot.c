/* mil_plot.c — per-bag attention heat strips as a PNG (see mil_model.h). */
#include "pathology/mil_model.h"

#include <math.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#if MK_HAVE_PNG
#include <png.h>
#endif

enum { STRIP_W = 800, ROW_H = 12, GAP = 3, MARGIN = 4, LABEL_W = 10, PROB_W = 10, MAX_ROWS = 4000 };

/* Dark blue -> teal -> yellow, a viridis-like ramp from three stops. */
static void ramp(float v, unsigned char *rgb) {
    static const float stop[3][3] = {{68, 1, 84}, {33, 145, 140}, {253, 231, 37}};
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    int k = v < 0.5f ? 0 : 1;
    float t = v < 0.5f ? v * 2 : (v - 0.5f) * 2;
    for (int c = 0; c < 3; c++) rgb[c] = (unsigned char)lrintf(stop[k][c] + t * (stop[k + 1][c] - stop[k][c]));
}

int mil_plot_attention(const char *path, int n_bags, const long *lens, const float *attn, const float *prob,
                       const int *label) {
#if !MK_HAVE_PNG
    (void)n_bags, (void)lens, (void)attn, (void)prob, (void)label;
    mk_error("%s: this build has no libpng (install libpng-dev and rebuild)", path);
    return -1;
#else
    int rows = n_bags < MAX_ROWS ? n_bags : MAX_ROWS;
    if (n_bags > MAX_ROWS) mk_warn("%s: plotting the first %d of %d bags", path, MAX_ROWS, n_bags);
    const int W = MARGIN * 2 + LABEL_W + 2 + PROB_W + 4 + STRIP_W, Hh = MARGIN * 2 + rows * (ROW_H + GAP);
    unsigned char *px = mk_malloc((size_t)W * Hh * 3);
    memset(px, 255, (size_t)W * Hh * 3);
    const float *a = attn;
    for (int b = 0; b < rows; b++) {
        long L = lens[b];
        int y0 = MARGIN + b * (ROW_H + GAP);
        unsigned char lab[3] = {255, 255, 255}, pr[3], col[3];
        if (label[b] == 1) lab[0] = 214, lab[1] = 39, lab[2] = 40;
        else if (label[b] == 0) lab[0] = lab[1] = lab[2] = 150;
        unsigned char g = (unsigned char)lrintf(255 * (1 - prob[b]));
        pr[0] = pr[1] = pr[2] = g;
        float amax = 0;
        for (long i = 0; i < L; i++) amax = a[i] > amax ? a[i] : amax;
        for (int y = y0; y < y0 + ROW_H; y++) {
            unsigned char *row = px + (size_t)y * W * 3;
            for (int x = 0; x < LABEL_W; x++) memcpy(row + 3 * (MARGIN + x), lab, 3);
            for (int x = 0; x < PROB_W; x++) memcpy(row + 3 * (MARGIN + LABEL_W + 2 + x), pr, 3);
        }
        int x0 = MARGIN + LABEL_W + 2 + PROB_W + 4;
        for (int x = 0; x < STRIP_W; x++) {
            long i0 = (long)((double)x * L / STRIP_W), i1 = (long)((double)(x + 1) * L / STRIP_W);
            if (i1 <= i0) i1 = i0 + 1;
            float v = 0;
            for (long i = i0; i < i1 && i < L; i++) v = a[i] > v ? a[i] : v;
            ramp(amax > 0 ? v / amax : 0, col);
            for (int y = y0; y < y0 + ROW_H; y++) memcpy(px + ((size_t)y * W + x0 + x) * 3, col, 3);
        }
        a += L;
    }
    mk_atomic_file af;
    if (mk_atomic_open(&af, path, "wb")) {
        free(px);
        return -1;
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        mk_atomic_abort(&af);
        free(px);
        mk_error("%s: cannot write PNG", path);
        return -1;
    }
    png_init_io(png, af.f);
    png_set_IHDR(png, info, W, Hh, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < Hh; y++) png_write_row(png, px + (size_t)y * W * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(px);
    return mk_atomic_commit(&af);
#endif
}
