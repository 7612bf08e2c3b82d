// probe.cu — is there a CUDA device? (the one question the CPU side asks)
#include <cuda_runtime.h>
#include <stdio.h>

extern "C" int mk_cuda_probe(char *name, int len) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        snprintf(name, len, "no CUDA device: %s", e != cudaSuccess ? cudaGetErrorString(e) : "none visible");
        cudaGetLastError();
        return 0;
    }
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, 0) == cudaSuccess) snprintf(name, len, "%s", p.name);
    return n;
}
