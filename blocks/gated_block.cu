/* The gate on the GPU: v = act(g) · [i | c'], written over g, one thread per
 * element, with the CPU reference's own act_apply (shared __host__ __device__). */
#include "blocks/gated_block.h"

__global__ static void gate_kernel(float *u, const float *m, size_t rows, int Hd, int E, act_kind act)
{
    const size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= rows * (size_t)Hd)
        return;
    const size_t r = k / Hd;
    const int j = (int)(k % Hd), ni = Hd - E;
    float *g = u + r * 2 * (size_t)Hd;
    const float other = j < ni ? g[Hd + j] : m[r * E + (j - ni)];
    g[j] = act_apply(act, g[j]) * other;
}

extern "C" void gate_forward_cuda(float *u, const float *m, size_t rows, int Hd, int E, act_kind act)
{
    const size_t n = rows * (size_t)Hd;
    if (n)
        gate_kernel<<<(unsigned)((n + 255) / 256), 256>>>(u, m, rows, Hd, E, act);
}
