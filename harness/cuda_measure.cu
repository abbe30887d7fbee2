#include "harness/cuda_measure.h"

#include <cuda_runtime.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <stdio.h>
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

/* The SM clock now and the driver's version, from NVML when the driver
 * provides it. NVML is opened at run time (libnvidia-ml comes with the
 * driver, not the toolkit), so the binary still starts on machines without
 * one. Returns 0 when NVML cannot answer. */
typedef int (*nvml_fn_void)(void);
typedef int (*nvml_fn_bus)(const char *, void **);
typedef int (*nvml_fn_clock)(void *, int, unsigned *);
typedef int (*nvml_fn_driver)(char *, unsigned);

static int nvml_query(int dev, unsigned *sm_mhz, char *driver, size_t n)
{
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (!lib)
        return 0;
    nvml_fn_void init = (nvml_fn_void)dlsym(lib, "nvmlInit_v2"), shut = (nvml_fn_void)dlsym(lib, "nvmlShutdown");
    nvml_fn_bus by_bus = (nvml_fn_bus)dlsym(lib, "nvmlDeviceGetHandleByPciBusId_v2");
    nvml_fn_clock clock = (nvml_fn_clock)dlsym(lib, "nvmlDeviceGetClockInfo");
    nvml_fn_driver drv = (nvml_fn_driver)dlsym(lib, "nvmlSystemGetDriverVersion");
    int ok = 0;
    char bus[32];
    void *h = NULL;
    if (init && shut && by_bus && clock && drv && init() == 0) {
        /* NVML_CLOCK_SM is 1; 0 is NVML_SUCCESS */
        if (cudaDeviceGetPCIBusId(bus, sizeof bus, dev) == cudaSuccess && by_bus(bus, &h) == 0 &&
            clock(h, 1, sm_mhz) == 0 && drv(driver, (unsigned)n) == 0)
            ok = 1;
        shut();
    }
    dlclose(lib);
    return ok;
}

static char driver_version[96];

extern "C" const char *cuda_driver_version(void) { return driver_version; }

extern "C" ml_status cuda_device_check(char *desc, size_t n)
{
    if (n)
        desc[0] = '\0';
    int driver = 0, clock_khz = 0, mem_khz = 0;
    ML_TRY(cuda_device_present());
    cudaDeviceProp p;
    CUDA_TRY(cudaGetDeviceProperties(&p, 0));
    cudaDriverGetVersion(&driver);
    /* CUDA 13 dropped cudaDeviceProp.clockRate; the attributes remain */
    cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0);
    cudaDeviceGetAttribute(&mem_khz, cudaDevAttrMemoryClockRate, 0);
    /* NVML once per process (its start-up takes a while, and sweeps check the
     * device for every configuration): the SM clock when mixerlab first asked */
    static unsigned now_mhz = 0;
    static char nvml_driver[64] = "";
    static int have_nvml = -1;
    if (have_nvml < 0)
        have_nvml = nvml_query(0, &now_mhz, nvml_driver, sizeof nvml_driver);
    snprintf(driver_version, sizeof driver_version, "%s%sAPI %d.%d", nvml_driver, have_nvml ? ", " : "",
             driver / 1000, driver % 1000 / 10);
    char now[48] = "";
    if (have_nvml)
        snprintf(now, sizeof now, "%u MHz now, ", now_mhz);
    snprintf(desc, n, "%s, sm_%d%d, %d SMs, %.1f GiB, L2 %d MiB, SM clock %smax %d MHz, memory clock %d MHz, driver %s",
             p.name, p.major, p.minor, p.multiProcessorCount, p.totalGlobalMem / 1073741824.0, p.l2CacheSize >> 20, now,
             clock_khz / 1000, mem_khz / 1000, driver_version);
    return ML_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

extern "C" ml_status cuda_time_samples(void (*fn)(void *), void *ctx, int warm, int iters, int cold, double *samples)
{
    cudaStream_t s = (cudaStream_t)cuda_stream();
    void *flush = NULL;
    size_t flush_bytes = 0;
    if (cold) {
        int l2 = 0;
        cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0);
        flush_bytes = 2 * (size_t)(l2 > 0 ? l2 : 64 << 20);
        CUDA_TRY(cudaMalloc(&flush, flush_bytes));
    }
    for (int i = 0; i < warm; i++)
        fn(ctx);
    cudaEvent_t a, b;
    CUDA_TRY(cudaEventCreate(&a));
    CUDA_TRY(cudaEventCreate(&b));
    for (int i = 0; i < iters; i++) {
        float ms = 0;
        if (flush)
            cudaMemsetAsync(flush, i & 0xff, flush_bytes, s);
        cudaEventRecord(a, s);
        fn(ctx);
        cudaEventRecord(b, s);
        cudaEventSynchronize(b);
        cudaEventElapsedTime(&ms, a, b);
        samples[i] = ms;
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    if (flush)
        cudaFree(flush);
    return cuda_sync("timed run");
}

extern "C" double cuda_sample_ms(void (*fn)(void *), void *ctx)
{
    static cudaEvent_t a = NULL, b = NULL;
    if (!a && (cudaEventCreate(&a) != cudaSuccess || cudaEventCreate(&b) != cudaSuccess)) {
        a = b = NULL;
        return NAN;
    }
    cudaStream_t s = (cudaStream_t)cuda_stream();
    float ms = 0;
    cudaEventRecord(a, s);
    fn(ctx);
    cudaEventRecord(b, s);
    if (cudaEventSynchronize(b) != cudaSuccess || cudaEventElapsedTime(&ms, a, b) != cudaSuccess)
        return NAN;
    return ms;
}

extern "C" ml_status cuda_time(void (*fn)(void *), void *ctx, int warm, int iters, int cold, double *median_ms,
                               double *min_ms)
{
    if (iters < 1)
        iters = 1;
    double *t = (double *)malloc((size_t)iters * sizeof *t);
    if (!t)
        return ml_fail(ML_ERR_NOMEM, "out of memory for timings");
    ml_status st = cuda_time_samples(fn, ctx, warm, iters, cold, t);
    qsort(t, (size_t)iters, sizeof *t, cmp_double);
    *median_ms = t[iters / 2];
    *min_ms = t[0];
    free(t);
    return st;
}

extern "C" ml_status cuda_graph_capture(void (*fn)(void *), void *ctx, void **exec)
{
    cudaStream_t s = (cudaStream_t)cuda_stream();
    cudaGraph_t g = NULL;
    cudaGraphExec_t ge = NULL;
    cuda_blas(); /* created (and its workspace set) before the capture starts */
    CUDA_TRY(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    fn(ctx);
    CUDA_TRY(cudaStreamEndCapture(s, &g));
    cudaError_t e = cudaGraphInstantiate(&ge, g, 0);
    cudaGraphDestroy(g);
    CUDA_TRY(e);
    *exec = ge;
    return ML_OK;
}

extern "C" void cuda_graph_run(void *exec) { cudaGraphLaunch((cudaGraphExec_t)exec, (cudaStream_t)cuda_stream()); }

extern "C" void cuda_graph_free(void *exec)
{
    if (exec)
        cudaGraphExecDestroy((cudaGraphExec_t)exec);
}

