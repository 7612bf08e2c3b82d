/* occlusion.c — which part of a picture a classification rests on: occlusion
 * sensitivity (Zeiler & Fergus 2014). A win×win square of the model's input is
 * hidden behind the picture's own background and the drop of the class's
 * probability is recorded; each pixel gets the mean drop over the squares that
 * cover it. Model-agnostic (forward passes only, no gradients), and a drop is
 * a probability, which reads more plainly than a gradient. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "core/util.h"
#include "image.h"
#include "model.h"
#include "occlusion.h"

void vision_occlusion_grid(int H, int W, int *win, int *stride) {
    int m = H < W ? H : W;
    *win = (m + 3) / 7 > 1 ? (m + 3) / 7 : 1;
    *stride = *win / 2 > 1 ? *win / 2 : 1;
}

/* window origins along one axis: every stride, plus the last one flush with the edge */
static int origins(int n, int win, int stride, int *o) {
    int k = 0;
    if (win >= n) {
        o[k++] = 0;
        return k;
    }
    for (int x = 0; x + win <= n; x += stride) o[k++] = x;
    if (o[k - 1] + win < n) o[k++] = n - win;
    return k;
}

void vision_border_fill(const vision_cfg *c, const float *img, float *fill) {
    const int H = c->img_h, W = c->img_w, C = c->img_c;
    for (int ch = 0; ch < C; ch++) {
        double s = 0;
        long n = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                if (y == 0 || y == H - 1 || x == 0 || x == W - 1) s += img[((size_t)y * W + x) * C + ch], n++;
        fill[ch] = (float)(s / n);
    }
}

int vision_occlusion(vision_model *m, vision_acts *a, const float *img, int k, int win, int stride,
                     const float *fill, float *map, float *p0) {
    const vision_cfg *c = &m->cfg;
    const int H = c->img_h, W = c->img_w, C = c->img_c, K = c->n_class;
    const size_t per = (size_t)H * W * C;
    if (k < 0 || k >= K || win < 1 || stride < 1) {
        mk_error("occlusion: class %d of %d, window %d, stride %d", k, K, win, stride);
        return -1;
    }
    int *oy = mk_malloc(sizeof(int) * (H + 1)), *ox = mk_malloc(sizeof(int) * (W + 1));
    const int ny = origins(H, win, stride, oy), nx = origins(W, win, stride, ox), nwin = ny * nx;
    enum { BATCH = 64 };
    float *batch = mk_malloc(sizeof(float) * per * BATCH), *prob = mk_malloc(sizeof(float) * (size_t)BATCH * K);
    double *sum = mk_calloc((size_t)H * W, sizeof(double));
    int *cover = mk_calloc((size_t)H * W, sizeof(int));

    vision_forward(m, a, img, 1, 0, NULL);
    softmax_rows(prob, a->logits, 1, K);
    const float base = prob[k];
    for (int w0 = 0; w0 < nwin; w0 += BATCH) {
        const int nb = nwin - w0 < BATCH ? nwin - w0 : BATCH;
        for (int b = 0; b < nb; b++) {
            float *x = batch + (size_t)b * per;
            memcpy(x, img, sizeof(float) * per);
            const int y0 = oy[(w0 + b) / nx], x0 = ox[(w0 + b) % nx];
            for (int y = y0; y < y0 + win && y < H; y++)
                for (int xx = x0; xx < x0 + win && xx < W; xx++)
                    for (int ch = 0; ch < C; ch++) x[((size_t)y * W + xx) * C + ch] = fill[ch];
        }
        vision_forward(m, a, batch, nb, 0, NULL);
        softmax_rows(prob, a->logits, nb, K);
        for (int b = 0; b < nb; b++) {
            const int y0 = oy[(w0 + b) / nx], x0 = ox[(w0 + b) % nx];
            const double drop = (double)base - prob[(size_t)b * K + k];
            for (int y = y0; y < y0 + win && y < H; y++)
                for (int xx = x0; xx < x0 + win && xx < W; xx++) sum[(size_t)y * W + xx] += drop, cover[(size_t)y * W + xx]++;
        }
    }
    for (size_t i = 0; i < (size_t)H * W; i++) map[i] = cover[i] ? (float)(sum[i] / cover[i]) : 0.f;
    if (p0) *p0 = base;
    free(oy), free(ox), free(batch), free(prob), free(sum), free(cover);
    return 0;
}

/* diverging colour for v in [-1, 1]: blue (the class gains when hidden) - white - red (it loses) */
static void diverging(float v, float rgb[3]) {
    v = v < -1 ? -1 : v > 1 ? 1 : v;
    if (v >= 0) rgb[0] = 1, rgb[1] = 1 - 0.85f * v, rgb[2] = 1 - 0.9f * v;
    else rgb[0] = 1 + 0.85f * v, rgb[1] = 1 + 0.6f * v, rgb[2] = 1;
}

int vision_occlusion_png(const char *path, const vision_model *m, const float *img, const float *map) {
    const vision_cfg *c = &m->cfg;
    const int H = c->img_h, W = c->img_w, C = c->img_c;
    int s = (256 + (H > W ? H : W) - 1) / (H > W ? H : W); /* about 256 px a panel */
    if (s < 1) s = 1;
    const int gap = 8, PW = W * s, PH = H * s, OW = 2 * PW + gap;
    uint8_t *px = mk_malloc((size_t)OW * PH * 3);
    memset(px, 255, (size_t)OW * PH * 3);
    float amax = 0;
    for (int i = 0; i < H * W; i++) amax = fmaxf(amax, fabsf(map[i]));
    if (!(amax > 0.05f)) amax = 0.05f; /* drops of a few thousandths stay faint, not noise blown up */
    for (int y = 0; y < PH; y++)
        for (int x = 0; x < PW; x++) {
            const int sy = y / s, sx = x / s;
            float rgb[3], grey = 0;
            for (int ch = 0; ch < 3; ch++) { /* the input as the model saw it, back in [0, 1] */
                const int cc = C == 1 ? 0 : ch < C ? ch : C - 1;
                float v = img[((size_t)sy * W + sx) * C + cc] * c->std[cc] + c->mean[cc];
                rgb[ch] = v < 0 ? 0 : v > 1 ? 1 : v;
                grey += rgb[ch] / 3;
            }
            uint8_t *l = px + ((size_t)y * OW + x) * 3, *r = px + ((size_t)y * OW + PW + gap + x) * 3;
            float heat[3];
            diverging(map[sy * W + sx] / amax, heat);
            for (int ch = 0; ch < 3; ch++) {
                l[ch] = (uint8_t)lrintf(255 * rgb[ch]);
                /* the heat over a faded picture, so the shape stays visible under the colour */
                r[ch] = (uint8_t)lrintf(255 * heat[ch] * (0.55f + 0.45f * grey));
            }
        }
    int rc = vision_png_write(path, px, OW, PH, 3);
    free(px);
    return rc;
}
