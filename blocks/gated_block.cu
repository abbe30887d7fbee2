/* The gate on the GPU: v = act(g) · [i | c'], one thread per element, with
 * the CPU reference's own act_apply (shared __host__ __device__). */
#include "base/cuda_rt.h"
#include "blocks/gated_block.h"

__global__ static void gate_kernel(float *v, size_t ld_v, const float *u, const float *m, size_t rows, int Hd, int E,
                                   act_kind act)
{
    const size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= rows * (size_t)Hd)
        return;
    const size_t r = k / Hd;
    const int j = (int)(k % Hd), ni = Hd - E;
    const float *g = u + r * 2 * (size_t)Hd;
    const float other = j < ni ? g[Hd + j] : m[r * E + (j - ni)];
    v[r * ld_v + j] = act_apply(act, g[j]) * other;
}

extern "C" void gate_forward_cuda(float *v, size_t ld_v, const float *u, const float *m, size_t rows, int Hd, int E,
                                  act_kind act)
{
    const size_t n = rows * (size_t)Hd;
    if (!n)
        return;
    gate_kernel<<<(unsigned)((n + 255) / 256), 256, 0, (cudaStream_t)cuda_stream()>>>(v, ld_v, u, m, rows, Hd, E, act);
    CUDA_LAUNCHED();
}
