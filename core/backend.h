/* backend.h — which device runs the core. The only place that knows CUDA
 * exists is core/backend.c (+ core/cuda/); everything else asks here.
 *
 * Domain commands take `--device cpu|cuda` and call mk_device_parse; on a
 * machine without a usable GPU (or a build without CUDA) "cuda" falls back to
 * the CPU with a one-line notice. */
#ifndef MK_BACKEND_H
#define MK_BACKEND_H

enum { MK_DEV_CPU = 0, MK_DEV_CUDA = 1 };

/* 1 if this build has CUDA and a device is visible. Cheap after the first call. */
int mk_cuda_available(void);
/* Name of device 0 ("NVIDIA H100 80GB HBM3"), or a reason it is unavailable. */
const char *mk_cuda_device_name(void);
/* "cpu" -> MK_DEV_CPU; "cuda"/"gpu" -> MK_DEV_CUDA if available, else MK_DEV_CPU
 * with a notice on stderr; anything else -> -1 with mk_error set. */
int mk_device_parse(const char *name);

#endif
