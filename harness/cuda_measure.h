/* Measuring on the GPU: which device, its clocks and driver (NVML, opened at
 * run time), CUDA-event timing with an optional L2 flush, and CUDA graphs.
 * Built from cuda_measure.cu with the toolkit, else cuda_measure_none.c. The
 * runtime itself (memory, stream, cuBLAS) is base/cuda_rt.h. */
#ifndef MIXERLAB_CUDA_MEASURE_H
#define MIXERLAB_CUDA_MEASURE_H

#include "base/cuda_rt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ML_OK with the device (name, SMs, memory, clocks, driver) in desc, or a
 * usage error saying why there is none (no driver, no device, not compiled in). */
ml_status cuda_device_check(char *desc, size_t n);
/* "580.159.04, API 13.0" after a successful cuda_device_check, else "". */
const char *cuda_driver_version(void);
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
