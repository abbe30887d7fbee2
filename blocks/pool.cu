/* Mean over the grid on the GPU: one thread per (batch, channel), tokens
 * summed in order as the CPU reference does (in double). */
#include "blocks/pool.h"
#include "base/cuda_rt.h"

__global__ static void meanpool_kernel(float *out, const float *in, int B, size_t L, int C)
{
    const size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= (size_t)B * C)
        return;
    const size_t b = k / C, c = k % C;
    double s = 0.0;
    for (size_t t = 0; t < L; t++)
        s += in[(b * L + t) * C + c];
    out[k] = (float)(s / (double)L);
}

extern "C" void meanpool_forward_cuda(float *out, const float *in, int B, size_t L, int C)
{
    const size_t n = (size_t)B * C;
    if (!n)
        return;
    meanpool_kernel<<<(unsigned)((n + 127) / 128), 128, 0, (cudaStream_t)cuda_stream()>>>(out, in, B, L, C);
    CUDA_LAUNCHED();
}
