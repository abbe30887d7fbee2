#include "harness/cuda_measure.h"

#include <cuda_runtime.h>
#include <dlfcn.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The same check where the caller cannot return a status: the failure is
 * recorded for the next cuda_sync, which reports it. Returns 1 on success. */
static int cuda_ok(cudaError_t e, const char *stmt, const char *file, int line)
{
    if (e == cudaSuccess)
        return 1;
    cuda_note_failure("CUDA: %s failed at %s:%d: %s", stmt, file, line, cudaGetErrorString(e));
    return 0;
}
#define CUDA_OK(stmt) cuda_ok((stmt), #stmt, __FILE__, __LINE__)

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
    CUDA_TRY(cudaDriverGetVersion(&driver));
    /* CUDA 13 dropped cudaDeviceProp.clockRate; the attributes remain */
    CUDA_TRY(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0));
    CUDA_TRY(cudaDeviceGetAttribute(&mem_khz, cudaDevAttrMemoryClockRate, 0));
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

/* A kernel that keeps the stream busy for about ns nanoseconds (the global
 * timer), so that what follows it (the start event and the timed calls) is
 * already queued when the GPU gets there: the host's launch latency and an
 * idle GPU stay out of the sample. Also bounded by max_cycles of the SM clock,
 * should the global timer not advance. */
__global__ static void busy_kernel(unsigned long long ns, long long max_cycles)
{
    unsigned long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    const long long c0 = clock64();
    do
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    while (t - t0 < ns && clock64() - c0 < max_cycles);
}

static void queue_busy(cudaStream_t s, double us)
{
    const unsigned long long ns = (unsigned long long)(us * 1e3);
    busy_kernel<<<1, 1, 0, s>>>(ns, (long long)(4 * ns)); /* 4 cycles a ns: 2x the time at 2 GHz */
    CUDA_OK(cudaGetLastError()); /* not CUDA_LAUNCHED: its debug mode would wait here and idle the GPU again */
}

static double host_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

/* How long the busy kernel runs: twice what the host took to queue one call,
 * plus 20 us, at most 5 ms. */
static double busy_us_for(double enqueue_us)
{
    const double us = 2 * enqueue_us + 20;
    return us < 5000 ? us : 5000;
}

/* What the last cuda_time / cuda_time_samples did, for the printed lines. */
static int method_calls = 0, method_cold = 0;
static double method_busy_us = 0;

extern "C" const char *cuda_time_method(void)
{
    static char buf[200];
    if (!method_calls)
        return "not timed";
    char calls[48] = "one call";
    if (method_calls > 1)
        snprintf(calls, sizeof calls, "%d back-to-back calls", method_calls);
    snprintf(buf, sizeof buf, "%s between two events per sample%s, queued behind a %.0f us busy kernel", calls,
             method_cold ? ", L2 flushed before it" : "", method_busy_us);
    return buf;
}

/* One sample: [flush,] busy kernel, start event, calls x fn, stop event; the
 * time per call in ms, NaN when an event failed (recorded for cuda_sync). */
static double one_sample(void (*fn)(void *), void *ctx, int calls, double busy_us, void *flush, size_t flush_bytes,
                         int i, cudaEvent_t a, cudaEvent_t b)
{
    cudaStream_t s = (cudaStream_t)cuda_stream();
    float ms = 0;
    if (flush && !CUDA_OK(cudaMemsetAsync(flush, i & 0xff, flush_bytes, s)))
        return NAN;
    queue_busy(s, busy_us);
    if (!CUDA_OK(cudaEventRecord(a, s)))
        return NAN;
    for (int k = 0; k < calls; k++)
        fn(ctx);
    if (!CUDA_OK(cudaEventRecord(b, s)) || !CUDA_OK(cudaEventSynchronize(b)) ||
        !CUDA_OK(cudaEventElapsedTime(&ms, a, b)))
        return NAN;
    return (double)ms / calls;
}

/* A sample spans at least this long when the L2 stays warm: a launch's latency
 * or the event's resolution is then a small part of it. */
#define CUDA_SAMPLE_SPAN_MS 1.0
#define CUDA_SAMPLE_MAX_CALLS 1000

extern "C" ml_status cuda_time_samples(void (*fn)(void *), void *ctx, int warm, int iters, int cold, double *samples)
{
    void *flush = NULL;
    size_t flush_bytes = 0;
    if (cold) {
        int l2 = 0;
        CUDA_TRY(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
        flush_bytes = 2 * (size_t)(l2 > 0 ? l2 : 64 << 20);
        CUDA_TRY(cudaMalloc(&flush, flush_bytes));
    }
    /* warm-up; the last warm call also says how long the host takes to queue one call */
    double enqueue_us = 0;
    for (int i = 0; i < (warm > 1 ? warm : 1); i++) {
        const double t0 = host_us();
        fn(ctx);
        enqueue_us = host_us() - t0;
    }
    ml_status st = cuda_sync("warm-up");
    cudaEvent_t a = NULL, b = NULL;
    if (st == ML_OK && (!CUDA_OK(cudaEventCreate(&a)) || !CUDA_OK(cudaEventCreate(&b))))
        st = cuda_sync("timing events");
    const double busy = busy_us_for(enqueue_us);
    int calls = 1;
    if (st == ML_OK && !cold) { /* as many back-to-back calls as fill CUDA_SAMPLE_SPAN_MS */
        const double one = one_sample(fn, ctx, 1, busy, NULL, 0, 0, a, b);
        if (one > 0 && one < CUDA_SAMPLE_SPAN_MS)
            calls = (int)fmin(ceil(CUDA_SAMPLE_SPAN_MS / one), CUDA_SAMPLE_MAX_CALLS);
    }
    for (int i = 0; i < iters; i++)
        samples[i] = st == ML_OK ? one_sample(fn, ctx, calls, busy, flush, flush_bytes, i, a, b) : NAN;
    method_calls = calls, method_cold = cold, method_busy_us = busy;
    if (a)
        CUDA_OK(cudaEventDestroy(a));
    if (b)
        CUDA_OK(cudaEventDestroy(b));
    if (flush)
        CUDA_OK(cudaFree(flush));
    return st == ML_OK ? cuda_sync("timed run") : st;
}

extern "C" double cuda_sample_ms(void (*fn)(void *), void *ctx)
{
    static cudaEvent_t a = NULL, b = NULL;
    static double enqueue_us = 0; /* of the previous call: the sweeps sample the same work many times */
    if (!a && (!CUDA_OK(cudaEventCreate(&a)) || !CUDA_OK(cudaEventCreate(&b)))) {
        a = b = NULL;
        return NAN;
    }
    cudaStream_t s = (cudaStream_t)cuda_stream();
    float ms = 0;
    queue_busy(s, busy_us_for(enqueue_us));
    if (!CUDA_OK(cudaEventRecord(a, s)))
        return NAN;
    const double t0 = host_us();
    fn(ctx);
    enqueue_us = host_us() - t0;
    if (!CUDA_OK(cudaEventRecord(b, s)) || !CUDA_OK(cudaEventSynchronize(b)) ||
        !CUDA_OK(cudaEventElapsedTime(&ms, a, b)))
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
    CUDA_OK(cudaGraphDestroy(g));
    CUDA_TRY(e);
    *exec = ge;
    return ML_OK;
}

extern "C" void cuda_graph_run(void *exec)
{
    CUDA_OK(cudaGraphLaunch((cudaGraphExec_t)exec, (cudaStream_t)cuda_stream()));
}

extern "C" void cuda_graph_free(void *exec)
{
    if (exec)
        CUDA_OK(cudaGraphExecDestroy((cudaGraphExec_t)exec));
}

