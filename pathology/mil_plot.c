/* mil_plot.c — per-bag attention heat strips as a PNG (see mil_model.h). */
#include "pathology/mil_model.h"
#include "pathology/mil_images.h"
#include "vision/image.h"

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

/* ------------------------------------------------------ image-bag mosaic */

enum { TILE = 32, BORDER = 4, CELL = TILE + 2 * BORDER, CGAP = 2, COLS = 16, BAG_GAP = 8, MAX_TILES = 256,
       MAX_BAGS = 400, BAR_H = 14 };

static void fill(unsigned char *px, int W, int x0, int y0, int w, int h, const unsigned char *rgb) {
    for (int y = y0; y < y0 + h; y++)
        for (int x = x0; x < x0 + w; x++) memcpy(px + ((size_t)y * W + x) * 3, rgb, 3);
}

int mil_plot_mosaic(const char *path, const mil_bags *b, const mil_image_list *imgs, const float *attn,
                    const float *prob) {
    const int nb = b->n_bags < MAX_BAGS ? b->n_bags : MAX_BAGS;
    if (b->n_bags > MAX_BAGS) mk_warn("%s: drawing the first %d of %d bags", path, MAX_BAGS, b->n_bags);
    const int x_tiles = MARGIN + LABEL_W + 2 + PROB_W + 4, W = x_tiles + COLS * (CELL + CGAP) + MARGIN;
    int Hh = MARGIN;
    for (int i = 0; i < nb; i++) {
        long L = mil_bag_len(b, i), n = L < MAX_TILES ? L : MAX_TILES;
        if (L > MAX_TILES) mk_warn("%s: bag '%s': drawing the first %d of %ld patches", path, b->name[i], MAX_TILES, L);
        Hh += (int)((n + COLS - 1) / COLS) * (CELL + CGAP) + BAG_GAP;
    }
    const int y_bar = Hh;
    Hh += BAR_H + 6 + MARGIN;
    unsigned char *px = mk_malloc((size_t)W * Hh * 3);
    memset(px, 255, (size_t)W * Hh * 3);
    int y0 = MARGIN, rc = 0;
    for (int i = 0; i < nb && !rc; i++) {
        const long L = mil_bag_len(b, i), n = L < MAX_TILES ? L : MAX_TILES;
        const float *a = attn + b->start[i];
        unsigned char lab[3] = {255, 255, 255}, pr[3], col[3];
        if (b->label[i] == 1) lab[0] = 214, lab[1] = 39, lab[2] = 40;
        else if (b->label[i] == 0) lab[0] = lab[1] = lab[2] = 150;
        pr[0] = pr[1] = pr[2] = (unsigned char)lrintf(255 * (1 - prob[i]));
        fill(px, W, MARGIN, y0, LABEL_W, CELL, lab);
        fill(px, W, MARGIN + LABEL_W + 2, y0, PROB_W, CELL, pr);
        float amax = 0;
        for (long k = 0; k < L; k++) amax = a[k] > amax ? a[k] : amax;
        for (long k = 0; k < n; k++) {
            int cx = x_tiles + (int)(k % COLS) * (CELL + CGAP), cy = y0 + (int)(k / COLS) * (CELL + CGAP);
            ramp(amax > 0 ? a[k] / amax : 0, col);
            fill(px, W, cx, cy, CELL, CELL, col);
            vision_image im, cv, rs;
            if (vision_image_load(&im, imgs->path[b->start[i] + k])) {
                rc = -1;
                break;
            }
            vision_image_convert(&cv, &im, 3);
            vision_image_free(&im);
            vision_image_resize(&rs, &cv, TILE, TILE);
            vision_image_free(&cv);
            for (int y = 0; y < TILE; y++)
                for (int x = 0; x < TILE; x++)
                    for (int c = 0; c < 3; c++) {
                        float v = rs.px[((size_t)y * TILE + x) * 3 + c];
                        px[((size_t)(cy + BORDER + y) * W + cx + BORDER + x) * 3 + c] =
                            (unsigned char)lrintf(255 * (v < 0 ? 0 : v > 1 ? 1 : v));
                    }
            vision_image_free(&rs);
        }
        y0 += (int)((n + COLS - 1) / COLS) * (CELL + CGAP) + BAG_GAP;
    }
    if (!rc) { /* colour bar: attention / bag max from 0 (left) to 1 (right), ticks at 0, 0.5, 1 */
        const int bw = COLS * (CELL + CGAP) - CGAP;
        const unsigned char black[3] = {0, 0, 0};
        unsigned char col[3];
        for (int x = 0; x < bw; x++) {
            ramp((float)x / (bw - 1), col);
            fill(px, W, x_tiles + x, y_bar, 1, BAR_H, col);
        }
        for (int t = 0; t < 3; t++) fill(px, W, x_tiles + t * (bw - 2) / 2, y_bar + BAR_H, 2, 5, black);
    }
    if (!rc) rc = vision_png_write(path, px, W, Hh, 3);
    free(px);
    return rc;
}
