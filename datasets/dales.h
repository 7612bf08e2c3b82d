/* dales.h — the DALES Objects subset (aerial LiDAR object point clouds, 5 classes).
 *
 * Files (see the data set's README.md):
 *   index.csv            "object_id,label,class_name,first_point,num_points", one row per object
 *   points_xyz_f32le.bin float32 little-endian x,y,z triples, all objects concatenated
 * Validation before use: the exact header, five fields per row, labels 0..4 matching
 * the class names, contiguous first_point ranges, num_points >= 1, the binary's length
 * equal to 12 * (sum of num_points), and every coordinate finite. Errors are one line
 * naming the file (and line for index.csv).
 * Split: object_id ending in 8 or 9 -> test, else train (the README's suggestion). */
#ifndef MK_DALES_H
#define MK_DALES_H

#define DALES_NCLASS 5
#define DALES_MAX_OBJECTS 100000
#define DALES_MAX_POINTS 200000000L

typedef struct {
    int n;          /* objects */
    int *id;        /* (n) object_id */
    int *label;     /* (n) 0..4 */
    long *first;    /* (n) first point index */
    int *count;     /* (n) points per object */
    long n_points;
    float *xyz;     /* (n_points, 3) */
} dales_set;

extern const char *const dales_classes[DALES_NCLASS];

/* Load from the index file path; the binary is "points_xyz_f32le.bin" in the same folder.
 * Returns 0, or -1 with mk_error. */
int dales_load(dales_set *d, const char *index_path);
/* Find "dales_objects/index.csv" via mk_find_data (data_dir may be NULL) and load. */
int dales_load_default(dales_set *d, const char *data_dir);
void dales_free(dales_set *d);
/* 1 if the object belongs to the test split (object_id % 10 is 8 or 9). */
static inline int dales_is_test(int object_id) { return object_id % 10 >= 8; }

#endif
