/* The host side of the CUDA emulator (cuda_emu.h): base/cuda_rt.h's and
 * harness/cuda_measure.h's functions on host memory, and Linear through the
 * CPU's OpenBLAS path in place of cuBLAS. Linked instead of base/cuda_rt.cu,
 * harness/cuda_measure.cu and blocks/linear.cu
 * into the emulated tests only. Fibers: one ucontext per thread of the running
 * block, switched at barriers. */
#include "tests/cuda_emu/cuda_emu.h"

#include <algorithm>
#include <cstdarg>
#include <ucontext.h>

extern "C" {
#include "blocks/linear.h"
#include "base/cuda_rt.h"
#include "harness/cuda_measure.h"
#include "harness/timer.h"
}

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;
float emu_shfl_slots[1024];
unsigned char *emu_dynamic_shared;
bool emu_sequential;

static cuda_math math_mode;

/* ---- fibers: one ucontext per emulated thread of the running block ---- */
static const size_t fiber_stack = 256 * 1024;
static std::vector<ucontext_t> fibers(1024);
static std::vector<std::vector<unsigned char>> stacks;
static std::vector<char> finished(1024);
static ucontext_t scheduler;
static unsigned running;
static const std::function<void()> *fiber_body;

void emu_fiber_yield(void) { swapcontext(&fibers[running], &scheduler); }

static void fiber_entry(void)
{
    (*fiber_body)();
    finished[running] = 1; /* then uc_link returns to the scheduler */
}

void emu_run_fibers(unsigned nt, dim3 block, const std::function<void()> &body)
{
    if (stacks.size() < nt)
        stacks.resize(nt, std::vector<unsigned char>(fiber_stack));
    fiber_body = &body;
    for (unsigned t = 0; t < nt; t++) {
        finished[t] = 0;
        getcontext(&fibers[t]);
        fibers[t].uc_stack.ss_sp = stacks[t].data();
        fibers[t].uc_stack.ss_size = fiber_stack;
        fibers[t].uc_link = &scheduler;
        makecontext(&fibers[t], fiber_entry, 0);
    }
    for (unsigned left = nt; left > 0;) { /* one pass = one barrier phase */
        for (unsigned t = 0; t < nt; t++) {
            if (finished[t])
                continue;
            running = t;
            threadIdx = uint3{t % block.x, t / block.x % block.y, t / (block.x * block.y)};
            swapcontext(&scheduler, &fibers[t]);
            left -= finished[t];
        }
    }
}

extern "C" {
int cuda_compiled(void) { return 1; }
const char *cuda_build_info(void) { return "the CUDA emulator of tests/cuda_emu (kernels on the CPU)"; }
ml_status cuda_device_present(void) { return ML_OK; }
ml_status cuda_device_check(char *desc, size_t n)
{
    snprintf(desc, n, "CUDA emulator: one block at a time, its threads in turn or as fibers, on the CPU");
    return ML_OK;
}
const char *cuda_driver_version(void) { return ""; }
void cuda_set_math(cuda_math m) { math_mode = m; }
cuda_math cuda_get_math(void) { return math_mode; }
const char *cuda_math_name(cuda_math m)
{
    return m == CUDA_MATH_TF32 ? "tf32" : m == CUDA_MATH_PEDANTIC ? "pedantic" : "fp32";
}
ml_status cuda_malloc(void **p, size_t bytes, const char *what)
{
    *p = aligned_alloc(256, (bytes / 256 + 1) * 256); /* a multiple of the alignment, never 0 */
    return *p ? ML_OK : ml_fail(ML_ERR_NOMEM, "out of memory allocating %zu bytes for %s", bytes, what);
}
void cuda_free(void *p) { free(p); }
ml_status cuda_memset_zero(void *p, size_t bytes)
{
    memset(p, 0, bytes);
    return ML_OK;
}
ml_status cuda_to_device(void *dst, const void *src, size_t bytes)
{
    memcpy(dst, src, bytes);
    return ML_OK;
}
ml_status cuda_to_host(void *dst, const void *src, size_t bytes)
{
    memcpy(dst, src, bytes);
    return ML_OK;
}
/* kernels run to completion at launch: a failure recorded by a kernel
 * wrapper (cuda_note_failure) is all there is to report */
static char pending[512];
void cuda_note_failure(const char *fmt, ...)
{
    if (pending[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pending, sizeof pending, fmt, ap);
    va_end(ap);
}
void cuda_after_launch(const char *file, int line) { (void)file, (void)line; }
void cuda_blas_status(int status, const char *call, const char *file, int line)
{
    if (status != 0)
        cuda_note_failure("cuBLAS: %.120s failed at %s:%d: status %d", call, file, line, status);
}
ml_status cuda_sync(const char *what)
{
    if (pending[0]) {
        ml_status s = ml_fail(ML_ERR_RUNTIME, "%s: %s", what, pending);
        pending[0] = '\0';
        return s;
    }
    return ML_OK;
}
void *cuda_stream(void) { return NULL; }
void *cuda_blas(void) { return NULL; }
double cuda_sample_ms(void (*fn)(void *), void *ctx)
{
    const double a = timer_now_s();
    fn(ctx);
    return (timer_now_s() - a) * 1e3;
}
ml_status cuda_time_samples(void (*fn)(void *), void *ctx, int warm, int iters, int cold, double *samples)
{
    (void)cold;
    for (int i = 0; i < warm; i++)
        fn(ctx);
    for (int i = 0; i < iters; i++)
        samples[i] = cuda_sample_ms(fn, ctx);
    return ML_OK;
}
ml_status cuda_time(void (*fn)(void *), void *ctx, int warm, int iters, int cold, double *median_ms, double *min_ms)
{
    std::vector<double> t((size_t)(iters > 0 ? iters : 1));
    cuda_time_samples(fn, ctx, warm, (int)t.size(), cold, t.data());
    std::sort(t.begin(), t.end());
    *median_ms = t[t.size() / 2];
    *min_ms = t[0];
    return ML_OK;
}
const char *cuda_time_method(void) { return "1 call per sample on the host clock (CUDA emulator)"; }
struct emu_graph {
    void (*fn)(void *);
    void *ctx;
};
ml_status cuda_graph_capture(void (*fn)(void *), void *ctx, void **exec)
{
    *exec = new emu_graph{fn, ctx};
    return ML_OK;
}
void cuda_graph_run(void *exec)
{
    emu_graph *g = static_cast<emu_graph *>(exec);
    g->fn(g->ctx);
}
void cuda_graph_free(void *exec) { delete static_cast<emu_graph *>(exec); }

/* cuBLAS's place: the CPU Linear on the same (host) pointers */
void linear_forward_cuda(float *out, size_t ld_out, const float *in, size_t ld_in, const float *w, const float *b,
                         size_t rows, int in_f, int out_f, int accumulate)
{
    linear_forward(out, ld_out, in, ld_in, w, b, rows, in_f, out_f, accumulate);
}
}
