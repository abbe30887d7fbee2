/* Depthwise KxK conv on the GPU, channels-last: one thread per output
 * element, consecutive threads on consecutive channels so every load and
 * store is coalesced; taps summed in the CPU reference's order. */
#include "harness/cuda_util.h"
#include "blocks/dwconv.h"

__global__ static void dwconv_kernel(float *out, const float *in, size_t ld_in, const float *w, const float *b,
                                     int B, int H, int W, int C, int K)
{
    const size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= (size_t)B * H * W * C)
        return;
    const int c = (int)(k % C);
    const size_t p = k / C;
    const int x = (int)(p % W), h = (int)(p / W % H), bb = (int)(p / ((size_t)W * H)), P = K / 2;
    float acc = b[c];
    for (int kh = 0; kh < K; kh++) {
        const int ih = h + kh - P;
        if (ih < 0 || ih >= H)
            continue;
        for (int kw = 0; kw < K; kw++) {
            const int iw = x + kw - P;
            if (iw < 0 || iw >= W)
                continue;
            acc += in[(((size_t)bb * H + ih) * W + iw) * ld_in + c] * w[((size_t)c * K + kh) * K + kw];
        }
    }
    out[k] = acc;
}

extern "C" void dwconv_forward_cuda(float *out, const float *in, size_t ld_in, const float *w, const float *b, int B,
                                    int H, int W, int C, int K)
{
    const size_t n = (size_t)B * H * W * C;
    if (n)
        dwconv_kernel<<<(unsigned)((n + 255) / 256), 256, 0, (cudaStream_t)cuda_stream()>>>(out, in, ld_in, w, b, B, H, W, C, K);
}
