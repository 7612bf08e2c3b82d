/* occlusion.h — occlusion sensitivity maps of the vision classifier. */
#ifndef MK_VISION_OCCLUSION_H
#define MK_VISION_OCCLUSION_H

#include "model.h"

/* The default square and step for an H×W input: a seventh of the shorter side
 * (4 px on 28×28), half of that as the step. */
void vision_occlusion_grid(int H, int W, int *win, int *stride);
/* Per-channel mean of the border pixels of a prepared (normalised) input: the
 * picture's background, which is what hides a square. fill: img_c floats. */
void vision_border_fill(const vision_cfg *c, const float *img, float *fill);
/* map (img_h*img_w): for each pixel the mean, over the win×win squares (origins
 * every stride, the last flush with the edge) that cover it, of p_k(img) minus
 * p_k(img with the square set to fill). *p0 (may be NULL): p_k(img). 0 or -1. */
int vision_occlusion(vision_model *m, vision_acts *a, const float *img, int k, int win, int stride,
                     const float *fill, float *map, float *p0);
/* PNG (atomic): the input as the model saw it beside the map in colour over it
 * (red: the class's probability drops when that part is hidden; blue: it rises;
 * full colour at the largest |drop|, or at 0.05 if all are smaller). 0 or -1
 * with mk_error. */
int vision_occlusion_png(const char *path, const vision_model *m, const float *img, const float *map);

#endif
