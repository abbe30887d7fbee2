/* Measuring on the GPU, in a build without the toolkit: each entry says so. */
#include "harness/cuda_measure.h"

#include <math.h>

ml_status cuda_device_check(char *desc, size_t n)
{
    if (n)
        desc[0] = '\0';
    return cuda_device_present();
}
const char *cuda_driver_version(void) { return ""; }
double cuda_sample_ms(void (*fn)(void *), void *ctx)
{
    (void)fn, (void)ctx;
    return NAN;
}
ml_status cuda_time(void (*fn)(void *), void *ctx, int warm, int iters, int cold, double *median_ms, double *min_ms)
{
    (void)fn, (void)ctx, (void)warm, (void)iters, (void)cold;
    *median_ms = *min_ms = 0;
    return cuda_device_present();
}
ml_status cuda_time_samples(void (*fn)(void *), void *ctx, int warm, int iters, int cold, double *samples)
{
    (void)fn, (void)ctx, (void)warm, (void)iters, (void)cold, (void)samples;
    return cuda_device_present();
}
const char *cuda_time_method(void) { return "not timed (no CUDA backend)"; }
ml_status cuda_graph_capture(void (*fn)(void *), void *ctx, void **exec)
{
    (void)fn, (void)ctx;
    *exec = NULL;
    return cuda_device_present();
}
void cuda_graph_run(void *exec) { (void)exec; }
void cuda_graph_free(void *exec) { (void)exec; }
