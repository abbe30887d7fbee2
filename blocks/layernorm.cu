/* LayerNorm on the GPU: one warp per row, two passes (mean, then the
 * centred sum of squares) in registers, as the CPU reference does. */
#include "base/cuda_rt.h"
#include "blocks/layernorm.h"

__global__ static void layernorm_kernel(float *out, size_t ld_out, float *mean_out, float *rstd_out, const float *in,
                                        size_t ld_in, const float *w, const float *b, size_t rows, int C, float eps)
{
    const size_t r = (size_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (r >= rows)
        return;
    const float *x = in + r * ld_in;
    float s = 0.0f;
    for (int c = lane; c < C; c += 32)
        s += x[c];
    for (int o = 16; o > 0; o /= 2)
        s += __shfl_xor_sync(0xffffffffu, s, o);
    const float mean = s / C;
    float ss = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float d = x[c] - mean;
        ss += d * d;
    }
    for (int o = 16; o > 0; o /= 2)
        ss += __shfl_xor_sync(0xffffffffu, ss, o);
    const float rstd = rsqrtf(ss / C + eps);
    if (mean_out && lane == 0)
        mean_out[r] = mean, rstd_out[r] = rstd;
    float *y = out + r * ld_out;
    for (int c = lane; c < C; c += 32)
        y[c] = (x[c] - mean) * rstd * w[c] + b[c];
}

extern "C" void layernorm_forward_cuda(float *out, size_t ld_out, float *mean, float *rstd, const float *in,
                                       size_t ld_in, const float *w, const float *b, size_t rows, int C, float eps)
{
    const int warps = 8;
    const unsigned blocks = (unsigned)((rows + warps - 1) / warps);
    if (!blocks)
        return;
    layernorm_kernel<<<blocks, 32 * warps, 0, (cudaStream_t)cuda_stream()>>>(out, ld_out, mean, rstd, in, ld_in, w, b, rows, C,
                                                                            eps);
    CUDA_LAUNCHED();
}
