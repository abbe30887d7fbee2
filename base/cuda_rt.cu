#include "base/cuda_rt.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static const char *status_name(int status);

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
                          status_name(status));
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

/* ---- cuBLAS, opened at first use ----
 * libcublas (with libcublasLt, half a gigabyte) is not linked: loading it
 * costs about 220 MB of resident memory at start-up, which every command,
 * CPU ones included, would pay (and a machine without cuBLAS could not start
 * mixerlab at all). It is opened with dlopen when the first product needs it,
 * from the loader's search path (LD_LIBRARY_PATH first), else the toolkit
 * mixerlab was built against. */
typedef struct {
    cublasStatus_t (*create)(cublasHandle_t *);
    cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t);
    cublasStatus_t (*set_workspace)(cublasHandle_t, void *, size_t);
    cublasStatus_t (*set_math)(cublasHandle_t, cublasMath_t);
    cublasStatus_t (*sgemm)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const float *,
                            const float *, int, const float *, int, const float *, float *, int);
    const char *(*status_string)(cublasStatus_t);
} blas_api;

static blas_api blas;
static char blas_from[600];

#ifndef MIXERLAB_CUBLAS_DIR
#define MIXERLAB_CUBLAS_DIR "/usr/local/cuda/lib64"
#endif

static int blas_open(void)
{
    static int tried = 0;
    if (tried)
        return blas.sgemm != NULL;
    tried = 1;
    char name[64], path[sizeof blas_from];
    snprintf(name, sizeof name, "libcublas.so.%d", CUBLAS_VER_MAJOR);
    void *lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    snprintf(path, sizeof path, "%s", name);
    if (!lib) {
        snprintf(path, sizeof path, "%s/%s", MIXERLAB_CUBLAS_DIR, name);
        lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
    if (!lib) {
        cuda_note_failure("cuBLAS: cannot load %s (searched the loader's path, LD_LIBRARY_PATH first, and %s): %s",
                          name, MIXERLAB_CUBLAS_DIR, dlerror());
        return 0;
    }
    blas_api b;
    b.create = (cublasStatus_t(*)(cublasHandle_t *))dlsym(lib, "cublasCreate_v2");
    b.set_stream = (cublasStatus_t(*)(cublasHandle_t, cudaStream_t))dlsym(lib, "cublasSetStream_v2");
    b.set_workspace = (cublasStatus_t(*)(cublasHandle_t, void *, size_t))dlsym(lib, "cublasSetWorkspace_v2");
    b.set_math = (cublasStatus_t(*)(cublasHandle_t, cublasMath_t))dlsym(lib, "cublasSetMathMode");
    b.sgemm = (decltype(b.sgemm))dlsym(lib, "cublasSgemm_v2");
    b.status_string = (const char *(*)(cublasStatus_t))dlsym(lib, "cublasGetStatusString");
    if (!b.create || !b.set_stream || !b.set_workspace || !b.set_math || !b.sgemm || !b.status_string) {
        cuda_note_failure("cuBLAS: %s lacks the functions mixerlab calls (an older cuBLAS than CUDA %d?)", path,
                          CUBLAS_VER_MAJOR);
        return 0;
    }
    blas = b;
    Dl_info info;
    if (dladdr((void *)b.sgemm, &info) && info.dli_fname)
        snprintf(blas_from, sizeof blas_from, "%s", info.dli_fname);
    else
        snprintf(blas_from, sizeof blas_from, "%s", path);
    return 1;
}

extern "C" const char *cuda_blas_library(void) { return blas_from; }

static const char *status_name(int status)
{
    return blas.status_string ? blas.status_string((cublasStatus_t)status) : "(cuBLAS not loaded)";
}

static cuda_math math_mode = CUDA_MATH_FP32;

static void apply_math(cublasHandle_t h)
{
    static const cublasMath_t modes[3] = {CUBLAS_DEFAULT_MATH, CUBLAS_TF32_TENSOR_OP_MATH, CUBLAS_PEDANTIC_MATH};
    CUBLAS_NOTE(blas.set_math(h, modes[math_mode]));
}

static cublasHandle_t handle = NULL;

extern "C" void *cuda_blas(void)
{
    static int failed = 0;
    if (!handle && !failed) {
        if (!blas_open()) {
            failed = 1;
            return NULL;
        }
        cublasStatus_t st = blas.create(&handle);
        if (st != CUBLAS_STATUS_SUCCESS) {
            failed = 1;
            handle = NULL;
            cuda_note_failure("cuBLAS: cublasCreate failed: %s (is libcublas from the same CUDA as the driver?)",
                              status_name(st));
            return NULL;
        }
        CUBLAS_NOTE(blas.set_stream(handle, (cudaStream_t)cuda_stream()));
        /* a workspace of our own: cuBLAS may not allocate inside a graph capture */
        static void *blas_ws = NULL;
        const size_t blas_ws_bytes = (size_t)32 << 20;
        if (cudaMalloc(&blas_ws, blas_ws_bytes) == cudaSuccess)
            CUBLAS_NOTE(blas.set_workspace(handle, blas_ws, blas_ws_bytes));
        else /* not fatal: cuBLAS then allocates its own, and a capture that needs it fails, reported there */
            (void)cudaGetLastError();
        apply_math(handle);
    }
    if (failed)
        cuda_note_failure("cuBLAS: no handle (it could not be loaded or created earlier)");
    return handle;
}

extern "C" void cuda_blas_sgemm(void *h, int trans_a, int trans_b, int m, int n, int k, const float *alpha,
                                const float *A, int lda, const float *B, int ldb, const float *beta, float *C, int ldc,
                                const char *file, int line)
{
    if (!h)
        return; /* cuda_blas recorded why */
    const cublasStatus_t st = blas.sgemm((cublasHandle_t)h, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                         trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, alpha, A, lda, B, ldb, beta, C,
                                         ldc);
    cuda_blas_status((int)st, "cublasSgemm", file, line);
}

extern "C" cuda_math cuda_get_math(void) { return math_mode; }

extern "C" void cuda_set_math(cuda_math m)
{
    math_mode = m;
    if (handle) /* a handle made later takes the mode when it is created */
        apply_math(handle);
}

extern "C" const char *cuda_math_name(cuda_math m)
{
    return m == CUDA_MATH_TF32 ? "tf32" : m == CUDA_MATH_PEDANTIC ? "pedantic" : "fp32";
}
