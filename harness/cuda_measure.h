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
/* Event timing of fn(ctx) on cuda_stream(): *ms per call, median of iters
 * samples after warm calls (at least one). A sample is N back-to-back calls
 * between two events, N chosen after the warm-up so that a sample spans at
 * least 1 ms (1 to 1000 calls), and the sample is queued behind a busy kernel
 * that outlasts the host's queueing of one call: so neither the first launch's
 * latency nor an idle GPU is inside it (where the host launches more slowly
 * than the GPU runs, the sample shows that, as a loop of calls would).
 * cold = 1 writes twice the L2 size before each sample (outside the timed
 * span) and times one call per sample, so each starts with a cold cache.
 * cuda_time_method() says what the last timing did. */
ml_status cuda_time(void (*fn)(void *), void *ctx, int warm, int iters, int cold, double *median_ms, double *min_ms);
/* One run of fn(ctx) between two CUDA events on cuda_stream(), queued behind a
 * busy kernel (sized from the previous call's queueing time), in ms, waiting
 * for it (a timer_sample_fn); NaN when the events fail (cuda_sync then says why). */
double cuda_sample_ms(void (*fn)(void *), void *ctx);
/* The same as cuda_time, every sample (ms per call) in the order taken into samples[iters]. */
ml_status cuda_time_samples(void (*fn)(void *), void *ctx, int warm, int iters, int cold, double *samples);
/* "20 back-to-back calls between two events per sample, queued behind a 31 us
 * busy kernel" for the last cuda_time / cuda_time_samples, for printed lines. */
const char *cuda_time_method(void);
/* Captures fn(ctx) on cuda_stream() as a CUDA graph (*exec), to be replayed
 * with cuda_graph_run; fn must not allocate or synchronise. */
ml_status cuda_graph_capture(void (*fn)(void *), void *ctx, void **exec);
void cuda_graph_run(void *exec);
void cuda_graph_free(void *exec);

#ifdef __cplusplus
}
#endif

#endif
