/* The CUDA runtime every layer uses: is there a device, device memory, the
 * stream and cuBLAS handle all work runs on, and error checks. Built from
 * cuda_rt.cu when the toolkit is found, else from cuda_rt_none.c, whose
 * functions say clearly that CUDA is not compiled in. Timing (events, L2
 * flush, graphs, clocks) is measuring, not running: harness/cuda_measure.h.
 *
 * Errors of asynchronous work (a bad launch, a cuBLAS call that failed) are
 * recorded where they happen, with the file and line, and reported by the
 * next cuda_sync; with MIXERLAB_CUDA_DEBUG=1 in the environment every launch
 * is also waited for on the spot, so an execution error names its kernel. */
#ifndef MIXERLAB_CUDA_RT_H
#define MIXERLAB_CUDA_RT_H

#include "base/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when this build has the CUDA backend. */
int cuda_compiled(void);
/* "compiled in (CUDA toolkit 13.0)" or "not compiled in". */
const char *cuda_build_info(void);
/* ML_OK when a device can run our kernels, else a usage error saying why
 * (no driver, no device, not compiled in). Cheap after the first call. */
ml_status cuda_device_present(void);

/* How cuBLAS multiplies float32: FP32 lets cuBLAS pick its fastest float32
 * algorithms (CUBLAS_DEFAULT_MATH, which never uses TF32 for SGEMM); TF32
 * allows TF32 tensor cores; PEDANTIC forbids anything but plain float32 FMA
 * paths (CUBLAS_PEDANTIC_MATH). */
typedef enum { CUDA_MATH_FP32 = 0, CUDA_MATH_TF32 = 1, CUDA_MATH_PEDANTIC = 2 } cuda_math;
void cuda_set_math(cuda_math m);
cuda_math cuda_get_math(void);
const char *cuda_math_name(cuda_math m);

ml_status cuda_malloc(void **p, size_t bytes, const char *what);
void cuda_free(void *p);
ml_status cuda_memset_zero(void *p, size_t bytes);
ml_status cuda_to_device(void *dst, const void *src, size_t bytes);
ml_status cuda_to_host(void *dst, const void *src, size_t bytes);
/* Waits for the stream and reports the first failure since the last sync:
 * a launch or cuBLAS error recorded with its file and line, or an execution
 * error. Clears the record. */
ml_status cuda_sync(const char *what);

/* The stream every kernel and cuBLAS call of mixerlab runs on (created on
 * first use; a real stream, so the forward can be captured as a graph), and
 * the cuBLAS handle bound to it (NULL, with the failure recorded, when it
 * cannot be created). As void * so C code needs no CUDA headers. */
void *cuda_stream(void);
void *cuda_blas(void);

/* C = op(A)·op(B) (cuBLAS's column-major SGEMM, trans_* 0 or 1) on handle h
 * (cuda_blas()), its status recorded naming file and line. cuBLAS is opened
 * at its first use (dlopen), so commands that never multiply on the GPU do
 * not load it. */
void cuda_blas_sgemm(void *h, int trans_a, int trans_b, int m, int n, int k, const float *alpha, const float *A,
                     int lda, const float *B, int ldb, const float *beta, float *C, int ldc, const char *file,
                     int line);
/* The file cuBLAS was loaded from ("" before its first use). */
const char *cuda_blas_library(void);

/* Records the first asynchronous failure (printf-style) for cuda_sync. */
void cuda_note_failure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Called after every kernel launch (CUDA_LAUNCHED): records a launch error
 * naming file and line; in debug mode also waits and records execution errors. */
void cuda_after_launch(const char *file, int line);
/* A cuBLAS status other than success, recorded naming the call, file and line. */
void cuda_blas_status(int status, const char *call, const char *file, int line);

#ifdef __cplusplus
}
#endif

#define CUDA_LAUNCHED() cuda_after_launch(__FILE__, __LINE__)
#define CUBLAS_NOTE(stmt) cuda_blas_status((int)(stmt), #stmt, __FILE__, __LINE__)

#ifdef __CUDACC__
/* In CUDA sources: a runtime call that must succeed, or the function
 * returns an ml_status naming the failing statement, file and line, and
 * CUDA's own message. */
#define CUDA_TRY(stmt)                                                                                    \
    do {                                                                                                  \
        cudaError_t e_ = (stmt);                                                                          \
        if (e_ != cudaSuccess)                                                                            \
            return ml_fail(ML_ERR_RUNTIME, "CUDA: %s failed at %s:%d: %s", #stmt, __FILE__, __LINE__,     \
                           cudaGetErrorString(e_));                                                       \
    } while (0)
#endif

#endif
