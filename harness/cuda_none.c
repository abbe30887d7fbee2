/* The CUDA entry points of a build without the toolkit: each says so. */
#include "harness/cuda_util.h"

#include <math.h>

static ml_status none(void)
{
    return ml_fail(ML_ERR_USAGE, "this build has no CUDA backend (configure with the CUDA toolkit installed, "
                                 "-DMIXERLAB_CUDA=ON)");
}

int cuda_compiled(void) { return 0; }
const char *cuda_build_info(void) { return "not compiled in"; }
ml_status cuda_device_check(char *desc, size_t n)
{
    if (n)
        desc[0] = '\0';
    return none();
}
ml_status cuda_malloc(void **p, size_t bytes, const char *what)
{
    (void)bytes, (void)what;
    *p = NULL;
    return none();
}
void cuda_free(void *p) { (void)p; }
ml_status cuda_to_device(void *dst, const void *src, size_t bytes)
{
    (void)dst, (void)src, (void)bytes;
    return none();
}
ml_status cuda_to_host(void *dst, const void *src, size_t bytes)
{
    (void)dst, (void)src, (void)bytes;
    return none();
}
ml_status cuda_sync(const char *what)
{
    (void)what;
    return none();
}
void *cuda_stream(void) { return NULL; }
void *cuda_blas(void) { return NULL; }
const char *cuda_driver_version(void) { return ""; }
void cuda_set_tf32(int on) { (void)on; }
int cuda_tf32(void) { return 0; }
double cuda_sample_ms(void (*fn)(void *), void *ctx)
{
    (void)fn, (void)ctx;
    return NAN;
}
ml_status cuda_time(void (*fn)(void *), void *ctx, int warm, int iters, int cold, double *median_ms, double *min_ms)
{
    (void)fn, (void)ctx, (void)warm, (void)iters, (void)cold;
    *median_ms = *min_ms = 0;
    return none();
}
void cuda_copy_rows(float *dst, size_t ld_dst, const float *src, size_t ld_src, size_t n, size_t rows)
{
    (void)dst, (void)ld_dst, (void)src, (void)ld_src, (void)n, (void)rows;
}
ml_status cuda_graph_capture(void (*fn)(void *), void *ctx, void **exec)
{
    (void)fn, (void)ctx;
    *exec = NULL;
    return none();
}
void cuda_graph_run(void *exec) { (void)exec; }
void cuda_graph_free(void *exec) { (void)exec; }
ml_status cuda_memset_zero(void *p, size_t bytes)
{
    (void)p, (void)bytes;
    return none();
}
ml_status cuda_time_samples(void (*fn)(void *), void *ctx, int warm, int iters, int cold, double *samples)
{
    (void)fn, (void)ctx, (void)warm, (void)iters, (void)cold, (void)samples;
    return none();
}
