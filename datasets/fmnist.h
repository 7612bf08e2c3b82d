/* fmnist.h — the IDX format of MNIST / Fashion-MNIST, gzip-compressed or raw.
 *
 * ref: http://yann.lecun.com/exdb/mnist/ ("FILE FORMATS FOR THE MNIST DATABASE")
 *   images: u32 magic 0x00000803, u32 count, u32 rows, u32 cols, then count*rows*cols u8
 *   labels: u32 magic 0x00000801, u32 count, then count u8
 * All integers big-endian. Files are read through zlib's gzread, which also
 * reads uncompressed files as they are. Headers are checked (magic, sane
 * sizes, exact payload length) before anything is allocated. */
#ifndef MK_FMNIST_H
#define MK_FMNIST_H

#include <stdint.h>

typedef struct {
    int n, rows, cols;
    uint8_t *images; /* (n, rows, cols) */
    uint8_t *labels; /* (n) */
} fmnist_set;

/* Load one split: images file + labels file. Returns 0, or -1 with mk_error
 * naming the file and the problem. */
int fmnist_load(fmnist_set *s, const char *images_path, const char *labels_path);
/* Find and load "train" or "test" under the data search path
 * (fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz).
 * data_dir may be NULL. On failure mk_error lists the places tried. */
int fmnist_load_split(fmnist_set *s, const char *data_dir, const char *split);
void fmnist_free(fmnist_set *s);

/* The ten Fashion-MNIST class names, index = label. */
extern const char *const fmnist_classes[10];

#endif
