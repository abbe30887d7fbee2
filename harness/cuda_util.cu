#include "harness/cuda_util.h"

#include <cuda_runtime.h>
#include <stdio.h>

/* The error-check family: the failing statement, file and line, and CUDA's
 * own message, recorded as the current error. */
#define CUDA_TRY(stmt)                                                                                    \
    do {                                                                                                  \
        cudaError_t e_ = (stmt);                                                                          \
        if (e_ != cudaSuccess)                                                                            \
            return ml_fail(ML_ERR_RUNTIME, "CUDA: %s failed at %s:%d: %s", #stmt, __FILE__, __LINE__,     \
                           cudaGetErrorString(e_));                                                       \
    } while (0)

extern "C" int cuda_compiled(void) { return 1; }

extern "C" const char *cuda_build_info(void)
{
    static char buf[64];
    snprintf(buf, sizeof buf, "compiled in (CUDA toolkit %d.%d)", CUDART_VERSION / 1000, CUDART_VERSION % 1000 / 10);
    return buf;
}

extern "C" ml_status cuda_device_check(char *desc, size_t n)
{
    if (n)
        desc[0] = '\0';
    int count = 0, driver = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0)
        return ml_fail(ML_ERR_USAGE, "no CUDA device: %s", e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    cudaDeviceProp p;
    CUDA_TRY(cudaGetDeviceProperties(&p, 0));
    cudaDriverGetVersion(&driver);
    snprintf(desc, n, "%s, sm_%d%d, %d SMs, %.1f GiB, driver API %d.%d", p.name, p.major, p.minor,
             p.multiProcessorCount, p.totalGlobalMem / 1073741824.0, driver / 1000, driver % 1000 / 10);
    return ML_OK;
}

extern "C" ml_status cuda_malloc(void **p, size_t bytes, const char *what)
{
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);
    if (e == cudaErrorMemoryAllocation)
        return ml_fail(ML_ERR_NOMEM, "out of device memory allocating %zu bytes for %s", bytes, what);
    CUDA_TRY(e);
    return ML_OK;
}

extern "C" void cuda_free(void *p) { cudaFree(p); }

extern "C" ml_status cuda_to_device(void *dst, const void *src, size_t bytes)
{
    CUDA_TRY(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
    return ML_OK;
}

extern "C" ml_status cuda_to_host(void *dst, const void *src, size_t bytes)
{
    CUDA_TRY(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
    return ML_OK;
}

extern "C" ml_status cuda_sync(const char *what)
{
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess)
        e = cudaDeviceSynchronize();
    if (e != cudaSuccess)
        return ml_fail(ML_ERR_RUNTIME, "CUDA: %s failed: %s", what, cudaGetErrorString(e));
    return ML_OK;
}
