/* image.h — decoding, resizing, normalising and writing images.
 *
 * Pixels are float in [0, 1], interleaved channels, row-major: (H, W, C).
 * Decoding goes through stb_image (PNG, JPEG, BMP, GIF, TGA, PSD, HDR, PNM;
 * 8- and 16-bit, 1..4 channels); writing PNG through libpng. */
#ifndef MK_VISION_IMAGE_H
#define MK_VISION_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define VISION_MAX_SIDE 16384           /* refuse larger headers before decoding */
#define VISION_MAX_PIXELS (64u << 20)   /* 64 Mpixel */
#define VISION_MAX_FILE ((size_t)256 << 20)

typedef struct {
    int w, h, c;
    float *px; /* (h, w, c) in [0, 1] */
} vision_image;

/* Decode a file. The header is checked (size limits) before the pixel buffer
 * is allocated. Returns 0, or -1 with mk_error("PATH: reason"). */
int vision_image_load(vision_image *im, const char *path);
/* Same from memory; `name` is used in messages. */
int vision_image_load_mem(vision_image *im, const unsigned char *buf, size_t len, const char *name);
void vision_image_free(vision_image *im);

/* Convert channel count: 1<->3, drop/compose alpha (over black... no: alpha
 * is dropped, grey = ITU-R BT.601 luma). out must be freed by the caller. */
void vision_image_convert(vision_image *out, const vision_image *in, int c);
/* Resize to (h, w): area averaging when shrinking an axis, bilinear
 * (half-pixel centres) when enlarging. */
void vision_image_resize(vision_image *out, const vision_image *in, int h, int w);

/* Mean brightness of the image's outermost ring of pixels (colour channels
 * averaged; alpha ignored): the background of a product photo. */
float vision_image_border_mean(const vision_image *im);
/* Fashion-MNIST's own conversion of a product photo (Xiao et al. 2017, sec. 2),
 * without its sharpening: trim the rows and columns whose every pixel is within
 * tol of the corners' colour, shrink or enlarge the rest so that its longer side
 * fills (h, w) with the aspect ratio kept, centre it on a canvas of the corners'
 * colour, and with negate != 0 invert the colour channels (x -> 1 - x). An image
 * that is all background is fitted whole. */
void vision_image_fit(vision_image *out, const vision_image *in, int h, int w, float tol, int negate);

/* Write an 8-bit PNG (c = 1, 3 or 4) from bytes (h, w, c), atomically.
 * Returns 0 or -1 with mk_error. */
int vision_png_write(const char *path, const uint8_t *px, int w, int h, int c);

/* 1 if the path's extension is one stb_image decodes (used to expand directories). */
int vision_is_image_name(const char *path);

#endif
