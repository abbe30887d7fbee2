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

/* The backward (contract in blocks/backend.h: dwconv_bwd), d_out (B,H,W,C) contiguous:
 *   d_in (tokens ld_din apart) += the forward conv of d_out with the kernel flipped in both axes
 *                                (run by the forward's own row kernel into ws, then added);
 *   d_w [C,1,K,K] += Σ_pixels d_out · in shifted by the tap;  d_b [C] += Σ_pixels d_out.
 * d_w is reduced per (8-channel block, kernel row) on one thread, pixels in order (double sums):
 * no partial depends on the thread count. Any gradient may be NULL. ws holds
 * dwconv_backward_workspace_floats: the flipped weights, C zeros (the flipped conv's bias) and the
 * d_in of one pass (B·H·W·C). */
void dwconv_backward(float *d_in, size_t ld_din, float *d_w, float *d_b, const float *d_out, const float *in,
                     size_t ld_in, const float *w, int B, int H, int W, int C, int K, float *ws);

static inline size_t dwconv_backward_workspace_floats(int B, int H, int W, int C, int K)
{
    return (size_t)C * K * K + (size_t)C + (size_t)B * H * W * (size_t)C;
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
