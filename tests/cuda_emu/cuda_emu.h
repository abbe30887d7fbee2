/* A CUDA emulator for the kernel tests on machines without a GPU.
 *
 * tests/cuda_emu/transform.sed turns a blocks/NAME.cu file into plain C++ that
 * includes this header: every `k<<<grid, block, smem, stream>>>(args)` becomes
 * emu_launch(grid, block, smem, stream, k, args), and `extern __shared__ T x[]`
 * a pointer to the launch's dynamic shared memory. emu_launch runs the grid one
 * block at a time on the calling thread, each block's threads one after
 * another or, for kernels with barriers, as fibers that meet at __syncthreads
 * and exchange values through __shfl_xor_sync. The kernels' own indexing,
 * shared-memory layout and reductions run unchanged, on host memory. What it cannot show: speed, races that only a real warp
 * schedule exposes, and anything of the device's memory model beyond
 * block-wide barriers. */
#ifndef MIXERLAB_CUDA_EMU_H
#define MIXERLAB_CUDA_EMU_H

#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <set>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static /* one block at a time: a static is that block's shared memory */

/* A block's threads as fibers on the calling thread (ucontext): each runs
 * until it reaches a barrier or returns, then the next; when all have, the
 * next phase resumes them. A thread that returns drops out of later
 * barriers, as an exited CUDA thread does. Cheap enough for hundreds of
 * barriers per block, unlike OS threads on a 2-core machine. */
void emu_fiber_yield(void);

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) float2 {
    float x, y;
};
static inline float4 make_float4(float a, float b, float c, float d) { return float4{a, b, c, d}; }

typedef void *cudaStream_t;
typedef int cudaError_t;
enum { cudaSuccess = 0 };
enum cudaMemcpyKind { cudaMemcpyDeviceToDevice = 3 };
static inline const char *cudaGetErrorString(cudaError_t) { return "(emulated)"; }
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
template <class F> static inline cudaError_t cudaFuncSetAttribute(F, cudaFuncAttribute, int) { return cudaSuccess; }
/* device memory is host memory here: a 2-D copy is a row-by-row memmove */
static inline cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                                            size_t height, cudaMemcpyKind, cudaStream_t)
{
    for (size_t r = 0; r < height; r++)
        std::memmove(static_cast<char *>(dst) + r * dpitch, static_cast<const char *>(src) + r * spitch, width);
    return cudaSuccess;
}

extern uint3 threadIdx, blockIdx; /* all emulated threads share the calling thread */
extern dim3 blockDim, gridDim;
/* the running block's barrier, shuffle slots and dynamic shared memory */
extern float emu_shfl_slots[1024];
extern unsigned char *emu_dynamic_shared;
/* Blocks run their threads one after another, each to its end, until a
 * kernel reaches __syncthreads or a shuffle; then that kernel's blocks run as
 * fibers from then on (its first block again from the start: our kernels
 * write nothing to global memory before their first barrier). */
extern bool emu_sequential;
struct emu_needs_fibers {};

/* CUDA's single-precision rsqrt (a correctly rounded stand-in: the emulator checks indexing, not ulps) */
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }

static inline void __syncthreads(void)
{
    if (emu_sequential)
        throw emu_needs_fibers{};
    emu_fiber_yield();
}

static inline unsigned emu_thread_rank(void)
{
    return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}

/* Every thread of the block must call it together (the kernels do: their
 * shuffles are never inside a branch that splits a block). */
static inline float __shfl_xor_sync(unsigned mask, float v, int off)
{
    (void)mask;
    if (emu_sequential)
        throw emu_needs_fibers{};
    const unsigned t = emu_thread_rank();
    emu_shfl_slots[t] = v;
    emu_fiber_yield();
    const float r = emu_shfl_slots[(t & ~31u) | ((t & 31u) ^ (unsigned)off)];
    emu_fiber_yield();
    return r;
}

/* body() once per thread of a block of nt threads, as fibers (runtime.cpp). */
void emu_run_fibers(unsigned nt, dim3 block, const std::function<void()> &body);

/* kernel(args...) for every thread of every block of grid; smem bytes of
 * dynamic shared memory, zero-filled before each block. */
template <class... P, class... A>
static void emu_launch(dim3 grid, dim3 block, size_t smem, cudaStream_t stream, void (*kernel)(P...), A... args)
{
    (void)stream;
    const unsigned nt = block.x * block.y * block.z;
    if (nt == 0 || nt > 1024) {
        fprintf(stderr, "cuda_emu: block of %u threads\n", nt);
        abort();
    }
    static std::set<const void *> with_barriers; /* kernels seen to reach a barrier: run as fibers */
    const void *key = reinterpret_cast<const void *>(kernel);
    std::vector<unsigned char> dyn(smem > 0 ? smem : 1);
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                std::memset(dyn.data(), 0, dyn.size());
                emu_dynamic_shared = dyn.data();
                blockIdx = uint3{bx, by, bz};
                blockDim = block;
                gridDim = grid;
                if (!with_barriers.count(key)) {
                    emu_sequential = true;
                    try {
                        for (unsigned t = 0; t < nt; t++) {
                            threadIdx = uint3{t % block.x, t / block.x % block.y, t / (block.x * block.y)};
                            kernel(static_cast<P>(args)...);
                        }
                        emu_sequential = false;
                        continue;
                    } catch (const emu_needs_fibers &) {
                        emu_sequential = false;
                        with_barriers.insert(key);
                        std::memset(dyn.data(), 0, dyn.size());
                    }
                }
                emu_run_fibers(nt, block, [&] { kernel(static_cast<P>(args)...); });
            }
}

#endif
