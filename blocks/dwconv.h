/* Depthwise K×K convolution (zero padding K/2, stride 1, bias), channels-last:
 * MambaOut's token mixer. */
#ifndef MIXERLAB_DWCONV_H
#define MIXERLAB_DWCONV_H

#include "blocks/mixer.h"

#define DWCONV_MAX_KERNEL 31

/* out (B,H,W,C) contiguous = dwconv(in (B,H,W,C), tokens ld_in floats apart,
 * w [C,1,K,K], b [C]); ws holds dwconv_workspace_floats(B, H, W, C, K): the
 * weights transposed so the inner loop runs over contiguous channels, and a
 * packed copy of a strided input. K odd. */
void dwconv_forward(float *out, const float *in, size_t ld_in, const float *w, const float *b,
                    int B, int H, int W, int C, int K, float *ws);

static inline size_t dwconv_workspace_floats(int B, int H, int W, int C, int K)
{
    return (size_t)C * K * K + (size_t)B * H * W * (size_t)C;
}

static inline uint64_t dwconv_macs(int B, int H, int W, int C, int K)
{
    return (uint64_t)B * H * W * (uint64_t)C * (uint64_t)K * K;
}

extern const mixer_ops mixer_dwconv;

/* The CUDA kernel (dwconv.cu, CUDA builds only): the same on device pointers,
 * weights in PyTorch layout [C,1,K,K] (no workspace); tiled for K = 3, 5, 7,
 * one thread per output otherwise. */
#ifdef __cplusplus
extern "C" {
#endif
void dwconv_forward_cuda(float *out, const float *in, size_t ld_in, const float *w, const float *b, int B, int H,
                         int W, int C, int K);
#ifdef __cplusplus
}
#endif

#endif
