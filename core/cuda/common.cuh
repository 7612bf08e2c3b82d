// common.cuh — shared by core/cuda/*.cu: the stream, launch checks, fast math helpers.
#pragma once
#include <cuda_runtime.h>
#include <stdio.h>

#include "core/cuda/kernels.h"

#define MKC_FULL 0xffffffffu

// Record the first launch error; mkc_sync() reports it.
void mkc_note_error(const char *what, cudaError_t e);
#define MKC_CHECK_LAUNCH(what)                                     \
    do {                                                           \
        cudaError_t e_ = cudaGetLastError();                       \
        if (e_ != cudaSuccess) mkc_note_error(what, e_);           \
    } while (0)

static inline cudaStream_t mkc_s() { return (cudaStream_t)mkc_stream(); }
static inline unsigned mkc_blocks(size_t n, unsigned tpb) { return (unsigned)((n + tpb - 1) / tpb); }

// 2^x with the hardware unit (MUFU.EX2), flush-to-zero: the scan's decays.
__device__ __forceinline__ float mkc_ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
// ref: core/ops.h mk_softplusf: guarded for large x
__device__ __forceinline__ float mkc_softplus(float x) { return x > 20.f ? x : log1pf(__expf(x)); }
__device__ __forceinline__ float mkc_sigmoid(float x) { return 1.f / (1.f + __expf(-x)); }
