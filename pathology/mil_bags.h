/* mil_bags.h — bags of instance feature vectors for multiple-instance learning.
 *
 * A bag is a variable number of instances (rows of F floats) with one binary
 * label. All bags of a set live in one (n_inst, F) array; bag b owns rows
 * start[b] .. start[b+1]-1.
 *
 * File formats (chosen by content: a binary file starts with the magic):
 *
 * CSV, one instance per row:  bag_id,label,f1,...,fF
 *   - an optional header line (recognised when its label field is not a number);
 *   - bag_id is any text without commas; rows of a bag need not be contiguous
 *     (bags keep the order of their first row);
 *   - label is 0 or 1 and the same on every row of the bag; with
 *     MIL_LOAD_UNLABELED, "?" or an empty field means unknown (-1), for predict;
 *   - every row has the same number of fields; features are finite numbers.
 *   Any violation is an error naming the file and line.
 *
 * Binary (little-endian), for large bags:
 *   offset 0   char[8]  magic "MKMILBAG"
 *          8   u32      version (1)
 *         12   u32      F, features per instance (1 .. MIL_MAX_FEATURES)
 *         16   u64      n_bags (1 .. MIL_MAX_BAGS)
 *         24   u64      n_inst, total instances
 *         32   n_bags x { u64 count; i32 label (0, 1, or -1 unknown); u32 reserved (0);
 *                         char name[64] (NUL-padded) }            80 bytes each
 *              float32 x[n_inst][F]
 *   The file length must equal 32 + 80*n_bags + 4*n_inst*F exactly; counts must
 *   be >= 1 and sum to n_inst; features must be finite. */
#ifndef MIL_BAGS_H
#define MIL_BAGS_H

#include <stddef.h>

#include "core/util.h"

#define MIL_MAX_FEATURES 65536
#define MIL_MAX_BAGS 10000000L
#define MIL_NAME_MAX 64
#define MIL_LOAD_UNLABELED 1 /* flag: allow unknown labels (-1) */

typedef struct {
    int n_bags;
    int F;        /* features per instance */
    long n_inst;  /* total instances */
    long *start;  /* (n_bags + 1) row offsets */
    int *label;   /* (n_bags): 0, 1, or -1 unknown */
    char (*name)[MIL_NAME_MAX]; /* (n_bags) */
    float *x;     /* (n_inst, F) */
} mil_bags;

static inline long mil_bag_len(const mil_bags *b, int i) { return b->start[i + 1] - b->start[i]; }
static inline const float *mil_bag_x(const mil_bags *b, int i) { return b->x + (size_t)b->start[i] * b->F; }

/* Load a CSV or binary bag file. flags: MIL_LOAD_UNLABELED or 0.
 * Returns 0, or -1 with mk_error("PATH: line N: what"). */
int mil_bags_load(mil_bags *b, const char *path, int flags);
int mil_bags_parse_csv(mil_bags *b, const char *text, size_t len, const char *path, int flags);
/* Write as binary (atomic). 0 on success. */
int mil_bags_save_bin(const mil_bags *b, const char *path);
/* Write as CSV with a header (atomic). */
int mil_bags_save_csv(const mil_bags *b, const char *path);
void mil_bags_free(mil_bags *b);
/* Allocate n_bags bags of the given lengths (contents uninitialised, names "1".."n"). */
void mil_bags_alloc(mil_bags *b, int n_bags, int F, const long *lens);
/* New set made of the listed bags of src (copies). */
void mil_bags_subset(mil_bags *dst, const mil_bags *src, const int *idx, int n);
/* Count of label-1 bags (unknown labels are not counted). */
int mil_bags_positives(const mil_bags *b);

/* Synthetic long bags: instances ~ N(0,1)^F; a positive bag has `n_key`
 * key instances (mean shifted by +2 on the first 4 features) at random
 * positions. Deterministic given seed. */
void mil_bags_synth(mil_bags *b, int n_bags, long len, int F, int n_key, unsigned long seed);

/* Fashion-MNIST bags (Ilse et al. 2018 MNIST-bags protocol): bag sizes
 * ~ round(N(mean_len, sd_len)) clipped to >= 1, instances drawn uniformly
 * from the images; label 1 iff an image of class `target` is in the bag.
 * Features are the 784 pixels / 255. images (n, 784) as bytes, labels (n).
 * Returns the number of positive bags. */
int mil_bags_from_images(mil_bags *b, const unsigned char *images, const unsigned char *labels, int n_images,
                         int n_bags, double mean_len, double sd_len, int target, unsigned long seed);
/* The same bags (same seed, same draws) from a pool of n_images feature
 * vectors pool (n_images, F), e.g. embedded images; pool NULL gives F = 1 with
 * x = the image index. Returns the source image of every instance (n_inst,
 * malloc'ed). */
int *mil_bags_from_pool(mil_bags *b, const float *pool, int F, const unsigned char *labels, int n_images,
                        int n_bags, double mean_len, double sd_len, int target, unsigned long seed);
/* Read a gzip IDX file pair (images idx3, labels idx1). Returns 0 or -1 with
 * mk_error. *images (n, rows*cols) and *labels (n) are malloc'ed. */
int mil_read_idx_images(const char *img_path, const char *lab_path, unsigned char **images, unsigned char **labels,
                        int *n, int *pixels);

#endif
