/* The CUDA side of the harness: is a device there, device memory, copies.
 * Built from cuda_util.cu when the toolkit is found, else from cuda_none.c,
 * whose functions say clearly that CUDA is not compiled in. */
#ifndef MIXERLAB_CUDA_UTIL_H
#define MIXERLAB_CUDA_UTIL_H

#include "harness/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when this build has the CUDA backend. */
int cuda_compiled(void);
/* "CUDA 13.0 toolkit" or "not compiled in". */
const char *cuda_build_info(void);
/* ML_OK with the device (name, SMs, memory, driver) in desc, or a usage
 * error saying why there is none (no driver, no device, not compiled in). */
ml_status cuda_device_check(char *desc, size_t n);
/* "580.159.04, API 13.0" after a successful cuda_device_check, else "". */
const char *cuda_driver_version(void);
/* cuBLAS math for float32 products: 0 = pedantic float32 (the default),
 * 1 = TF32 tensor cores allowed (--precision tf32). */
void cuda_set_tf32(int on);
int cuda_tf32(void);
ml_status cuda_malloc(void **p, size_t bytes, const char *what);
void cuda_free(void *p);
ml_status cuda_memset_zero(void *p, size_t bytes);
ml_status cuda_to_device(void *dst, const void *src, size_t bytes);
ml_status cuda_to_host(void *dst, const void *src, size_t bytes);
/* Waits for the device and reports any launch or execution error. */
ml_status cuda_sync(const char *what);
/* The stream every kernel and cuBLAS call of mixerlab runs on (created on
 * first use; a real stream, so the forward can be captured as a graph), and
 * the cuBLAS handle bound to it. As void * so C code needs no CUDA headers. */
void *cuda_stream(void);
void *cuda_blas(void);
/* dst rows of n floats, ld_dst apart = src rows ld_src apart (device, on cuda_stream()). */
void cuda_copy_rows(float *dst, size_t ld_dst, const float *src, size_t ld_src, size_t n, size_t rows);
/* Event timing of fn(ctx) on cuda_stream(): *ms per call, median of iters after
 * warm calls. cold = 1 writes twice the L2 size before each sample (outside
 * the timed span) so each sample starts with a cold cache. */
ml_status cuda_time(void (*fn)(void *), void *ctx, int warm, int iters, int cold, double *median_ms, double *min_ms);
/* One run of fn(ctx) between two CUDA events on cuda_stream(), in ms, waiting
 * for it (a timer_sample_fn); NaN when the events fail (cuda_sync then says why). */
double cuda_sample_ms(void (*fn)(void *), void *ctx);
/* The same, every sample in the order taken into samples[iters]. */
ml_status cuda_time_samples(void (*fn)(void *), void *ctx, int warm, int iters, int cold, double *samples);
/* Captures fn(ctx) on cuda_stream() as a CUDA graph (*exec), to be replayed
 * with cuda_graph_run; fn must not allocate or synchronise. */
ml_status cuda_graph_capture(void (*fn)(void *), void *ctx, void **exec);
void cuda_graph_run(void *exec);
void cuda_graph_free(void *exec);

#ifdef __cplusplus
}
#endif

#endif
