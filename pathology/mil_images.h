/* mil_images.h — bags of image patches, embedded by the vision encoder.
 *
 * An image-bag set is a directory DIR:
 *
 *   DIR/labels.csv          one line "bag,label" per bag (an optional header line,
 *                           recognised because its label is not 0/1/?); label 0 or 1;
 *                           with MIL_LOAD_UNLABELED "?" or an empty label means unknown
 *                           and labels.csv itself may be absent (every bag unknown).
 *   DIR/<bag>/<patch>.png   one sub-folder per bag, the folder name is the bag id;
 *                           every image file in it (any extension stb_image reads:
 *                           vision_is_image_name) is one instance, in natural file-name
 *                           order (patch2 before patch10: strverscmp). Other files and
 *                           hidden entries are ignored; sub-folders are not searched.
 *
 * Every patch is converted to the encoder's channels, resized to its input size
 * (so patch sizes may differ) and normalised with its statistics; the instance
 * feature vector is the encoder's pooled backbone feature before its head
 * (vision_acts.feat, F = d_model of the vision model).
 *
 * Errors (mk_error, one line naming the file, -1): no bag folders, an empty bag
 * folder (no images), an image that cannot be decoded, a bag folder without a
 * label row, a label row without a folder, a label that is not 0/1, a repeated
 * label row, no labels.csv when labels are required, a bag name > 63 bytes. */
#ifndef MIL_IMAGES_H
#define MIL_IMAGES_H

#include "pathology/mil_bags.h"

#define MIL_LABELS_FILE "labels.csv"
#define MIL_MAX_IMAGES 10000000L

typedef struct {
    long n;
    char **path; /* (n_inst) the image file of every instance, in bag order */
} mil_image_list;

/* 1 if path is a directory (an image-bag set), 0 otherwise. */
int mil_is_image_dir(const char *path);

/* Load and embed an image-bag set. encoder: a vision .mkm (task "vision").
 * paths (may be NULL) receives the instance files (for plotting).
 * progress: show a progress line while embedding. */
int mil_bags_load_images(mil_bags *b, mil_image_list *paths, const char *dir, const char *encoder, int flags,
                         int progress);
void mil_image_list_free(mil_image_list *l);

/* Embed n 28x28 grey images (bytes, (n, 784)) with a 28x28x1 vision encoder:
 * returns the features (n, *F) malloc'ed (*F = d_model), or NULL with mk_error. */
float *mil_embed_gray28(const unsigned char *images, int n, const char *encoder, int progress, int *F);

/* Attention mosaic as a PNG: one block per bag: true label (red 1 / grey 0 /
 * white unknown) and predicted probability (darker = higher) boxes, then the
 * bag's patches as tiles, each framed by a heat border coloured by its
 * attention relative to the bag's largest (same ramp as the strips), 16 tiles a
 * line; a colour bar (0 .. bag max) at the bottom. At most 256 tiles per bag and
 * 400 bags are drawn (a warning says so). attn holds the bags' attention one
 * after another. 0, or -1 with mk_error. */
int mil_plot_mosaic(const char *path, const mil_bags *b, const mil_image_list *imgs, const float *attn,
                    const float *prob);

#endif
