#include "base/cuda_rt.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

extern "C" ml_status cuda_device_present(void)
{
    static int known = 0;
    static char why[256];
    if (!known) {
        int count = 0;
        cudaError_t e = cudaGetDeviceCount(&count);
        if (e != cudaSuccess || count == 0) {
            snprintf(why, sizeof why, "no CUDA device: %s", e != cudaSuccess ? cudaGetErrorString(e) : "none found");
            (void)cudaGetLastError();
        }
        known = 1;
    }
    return why[0] ? ml_fail(ML_ERR_USAGE, "%s", why) : ML_OK;
}

/* ---- asynchronous failures, reported by the next cuda_sync ---- */

static char pending[512];
static int debug_mode = -1;

extern "C" void cuda_note_failure(const char *fmt, ...)
{
    if (pending[0])
        return; /* the first failure is the one that explains the rest */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pending, sizeof pending, fmt, ap);
    va_end(ap);
}

extern "C" void cuda_after_launch(const char *file, int line)
{
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) {
        cuda_note_failure("CUDA: launch at %s:%d failed: %s", file, line, cudaGetErrorString(e));
        return;
    }
    if (debug_mode < 0) {
        const char *v = getenv("MIXERLAB_CUDA_DEBUG");
        debug_mode = v && v[0] && strcmp(v, "0") != 0;
    }
    if (!debug_mode)
        return;
    cudaStream_t s = (cudaStream_t)cuda_stream();
    cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(s, &cap) == cudaSuccess && cap != cudaStreamCaptureStatusNone)
        return; /* no waiting inside a graph capture */
    e = cudaStreamSynchronize(s);
    if (e != cudaSuccess)
        cuda_note_failure("CUDA: kernel launched at %s:%d failed: %s", file, line, cudaGetErrorString(e));
}

extern "C" void cuda_blas_status(int status, const char *call, const char *file, int line)
{
    if (status != CUBLAS_STATUS_SUCCESS)
        cuda_note_failure("cuBLAS: %.120s failed at %s:%d: %s", call, file, line,
                          cublasGetStatusString((cublasStatus_t)status));
}

extern "C" ml_status cuda_sync(const char *what)
{
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess)
        e = cudaStreamSynchronize((cudaStream_t)cuda_stream());
    if (pending[0]) {
        ml_status s = ml_fail(ML_ERR_RUNTIME, "%s: %s", what, pending);
        pending[0] = '\0';
        return s;
    }
    if (e != cudaSuccess)
        return ml_fail(ML_ERR_RUNTIME, "CUDA: %s failed: %s", what, cudaGetErrorString(e));
    return ML_OK;
}

/* ---- memory ---- */

extern "C" ml_status cuda_malloc(void **p, size_t bytes, const char *what)
{
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);
    if (e != cudaSuccess)
        (void)cudaGetLastError(); /* not sticky: clear it, or the next check would report it again */
    if (e == cudaErrorMemoryAllocation)
        return ml_fail(ML_ERR_NOMEM, "out of device memory allocating %zu bytes for %s", bytes, what);
    CUDA_TRY(e);
    return ML_OK;
}

extern "C" void cuda_free(void *p)
{
    cudaError_t e = p ? cudaFree(p) : cudaSuccess;
    if (e != cudaSuccess) /* an earlier asynchronous error shows here too: the next cuda_sync reports it */
        cuda_note_failure("CUDA: cudaFree failed at %s:%d: %s", __FILE__, __LINE__, cudaGetErrorString(e));
}

extern "C" ml_status cuda_to_device(void *dst, const void *src, size_t bytes)
{
    /* on mixerlab's stream, then wait: its kernels never race the copy (a
     * non-blocking stream does not order itself after the legacy default stream) */
    cudaStream_t s = (cudaStream_t)cuda_stream();
    CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s));
    CUDA_TRY(cudaStreamSynchronize(s));
    return ML_OK;
}

extern "C" ml_status cuda_to_host(void *dst, const void *src, size_t bytes)
{
    cudaStream_t s = (cudaStream_t)cuda_stream();
    CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s));
    CUDA_TRY(cudaStreamSynchronize(s));
    return ML_OK;
}

extern "C" ml_status cuda_memset_zero(void *p, size_t bytes)
{
    cudaStream_t s = (cudaStream_t)cuda_stream();
    CUDA_TRY(cudaMemsetAsync(p, 0, bytes, s));
    CUDA_TRY(cudaStreamSynchronize(s));
    return ML_OK;
}

/* ---- the stream and the cuBLAS handle ---- */

extern "C" void *cuda_stream(void)
{
    static cudaStream_t s = NULL;
    if (!s) {
        cudaError_t e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
        if (e != cudaSuccess) { /* the work would silently go to the legacy stream: say so */
            (void)cudaGetLastError();
            s = NULL;
            cuda_note_failure("CUDA: cudaStreamCreateWithFlags failed at %s:%d: %s", __FILE__, __LINE__,
                              cudaGetErrorString(e));
        }
    }
    return s;
}

static cuda_math math_mode = CUDA_MATH_FP32;

static void apply_math(cublasHandle_t h)
{
    static const cublasMath_t modes[3] = {CUBLAS_DEFAULT_MATH, CUBLAS_TF32_TENSOR_OP_MATH, CUBLAS_PEDANTIC_MATH};
    CUBLAS_NOTE(cublasSetMathMode(h, modes[math_mode]));
}

extern "C" void *cuda_blas(void)
{
    static cublasHandle_t h = NULL;
    static int failed = 0;
    if (!h && !failed) {
        cublasStatus_t st = cublasCreate(&h);
        if (st != CUBLAS_STATUS_SUCCESS) {
            failed = 1;
            h = NULL;
            cuda_note_failure("cuBLAS: cublasCreate failed: %s (is libcublas from the same CUDA as the driver?)",
                              cublasGetStatusString(st));
            return NULL;
        }
        CUBLAS_NOTE(cublasSetStream(h, (cudaStream_t)cuda_stream()));
        /* a workspace of our own: cuBLAS may not allocate inside a graph capture */
        static void *blas_ws = NULL;
        const size_t blas_ws_bytes = (size_t)32 << 20;
        if (cudaMalloc(&blas_ws, blas_ws_bytes) == cudaSuccess)
            CUBLAS_NOTE(cublasSetWorkspace(h, blas_ws, blas_ws_bytes));
        else /* not fatal: cuBLAS then allocates its own, and a capture that needs it fails, reported there */
            (void)cudaGetLastError();
        apply_math(h);
    }
    if (failed)
        cuda_note_failure("cuBLAS: no handle (cublasCreate failed earlier)");
    return h;
}

extern "C" cuda_math cuda_get_math(void) { return math_mode; }

extern "C" void cuda_set_math(cuda_math m)
{
    math_mode = m;
    cublasHandle_t h = (cublasHandle_t)cuda_blas();
    if (h)
        apply_math(h);
}

extern "C" const char *cuda_math_name(cuda_math m)
{
    return m == CUDA_MATH_TF32 ? "tf32" : m == CUDA_MATH_PEDANTIC ? "pedantic" : "fp32";
}
