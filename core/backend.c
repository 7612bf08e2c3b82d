/* backend.c — device selection. CUDA support is compiled in when the build
 * defines MK_HAVE_CUDA=1 (nvcc found); core/cuda/ holds the kernels. */
#include "backend.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

#if MK_HAVE_CUDA
int mk_cuda_probe(char *name, int len); /* core/cuda/probe.cu: device count, name of device 0 */
#endif

static int probed = 0, avail = 0;
static char devname[256] = "this build has no CUDA support";

int mk_cuda_available(void) {
    if (!probed) {
        probed = 1;
#if MK_HAVE_CUDA
        avail = mk_cuda_probe(devname, sizeof devname) > 0;
#endif
    }
    return avail;
}

const char *mk_cuda_device_name(void) {
    mk_cuda_available();
    return devname;
}

int mk_device_parse(const char *name) {
    if (!strcmp(name, "cpu")) return MK_DEV_CPU;
    if (!strcmp(name, "cuda") || !strcmp(name, "gpu")) {
        if (mk_cuda_available()) return MK_DEV_CUDA;
        fprintf(stderr, "mambakit: --device cuda: no CUDA device available (%s); running on the CPU\n", devname);
        return MK_DEV_CPU;
    }
    mk_error("--device: unknown device '%s' (cpu or cuda)", name);
    return -1;
}
