/* RMSNorm on the GPU: one warp per row, the sum of squares in registers. */
#include "base/cuda_rt.h"
#include "blocks/rmsnorm.h"

__global__ static void rmsnorm_kernel(float *out, size_t ld_out, float *rstd, const float *in, size_t ld_in,
                                      const float *w, size_t rows, int C, float eps)
{
    const size_t r = (size_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (r >= rows)
        return;
    const float *x = in + r * ld_in;
    float ss = 0.0f;
    for (int c = lane; c < C; c += 32)
        ss += x[c] * x[c];
    for (int o = 16; o > 0; o /= 2)
        ss += __shfl_xor_sync(0xffffffffu, ss, o);
    const float rs = rsqrtf(ss / C + eps);
    if (rstd && lane == 0)
        rstd[r] = rs;
    float *y = out + r * ld_out;
    for (int c = lane; c < C; c += 32)
        y[c] = x[c] * rs * w[c];
}

extern "C" void rmsnorm_forward_cuda(float *out, size_t ld_out, float *rstd, const float *in, size_t ld_in,
                                     const float *w, size_t rows, int C, float eps)
{
    const int warps = 8;
    const unsigned blocks = (unsigned)((rows + warps - 1) / warps);
    if (!blocks)
        return;
    rmsnorm_kernel<<<blocks, 32 * warps, 0, (cudaStream_t)cuda_stream()>>>(out, ld_out, rstd, in, ld_in, w, rows, C, eps);
    CUDA_LAUNCHED();
}
