/* GELU / SiLU / softplus on the GPU with the reference's own scalar forms. */
#include "blocks/act.h"
#include "base/cuda_rt.h"

__global__ static void act_kernel(float *out, const float *in, size_t n, act_kind k)
{
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = act_apply(k, in[i]);
}

extern "C" void act_forward_cuda(float *out, const float *in, size_t n, act_kind k)
{
    if (!n)
        return;
    act_kernel<<<(unsigned)((n + 255) / 256), 256, 0, (cudaStream_t)cuda_stream()>>>(out, in, n, k);
    CUDA_LAUNCHED();
}
